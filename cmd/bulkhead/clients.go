package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const clientUsage = `Usage:
  bulkhead client create NAME [--tenant T] --grant G... [--redirect-uri U]... [--scope S]... [--public]
  bulkhead client list [--tenant T]
  bulkhead client delete CLIENT_ID [--tenant T]
Without --tenant the client is platform-wide (operator only; its tokens carry no tenant).
A confidential client's secret is printed once.
Common flags: --addr, --token, --output json|table`

func clientCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, fs, cf, err := subcommand("client", clientUsage, args)
	if err != nil {
		return err
	}
	var tenantID string
	var grants, redirects, scopes stringList
	var public bool
	fs.StringVar(&tenantID, "tenant", "", "the tenant the client belongs to (default: platform-wide)")
	positional, ok := map[string]int{"create": 1, "list": 0, "delete": 1}[sub]
	if !ok {
		return fmt.Errorf("%w: unknown client command %q\n%s", errUsage, sub, clientUsage)
	}
	if sub == "create" {
		fs.Var(&grants, "grant", "authorization_code, refresh_token, client_credentials or urn:ietf:params:oauth:grant-type:token-exchange (repeatable)")
		fs.Var(&redirects, "redirect-uri", "an exact redirect URI (repeatable)")
		fs.Var(&scopes, "scope", "a scope the client may ask for (repeatable)")
		fs.BoolVar(&public, "public", false, "a public client (no secret; PKCE required)")
	}
	pos, err := parseArgs(fs, args[1:], positional, stderr)
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var cs []client.OAuthClient
	switch sub {
	case "create":
		oc, err := c.CreateOAuthClient(ctx, tenantID, client.CreateOAuthClient{Name: pos[0], GrantTypes: grants,
			RedirectURIs: redirects, Scopes: scopes, Public: public})
		if err != nil {
			return err
		}
		if cf.output == "json" {
			return printJSON(stdout, oc)
		}
		printClients(stdout, []client.OAuthClient{oc})
		if oc.ClientSecret != "" {
			fmt.Fprintf(stdout, "client secret (shown once): %s\n", oc.ClientSecret)
		}
		return nil
	case "list":
		if cs, err = c.ListOAuthClients(ctx, tenantID); err != nil {
			return err
		}
	case "delete":
		if err := c.DeleteOAuthClient(ctx, tenantID, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted client %s\n", pos[0])
		return nil
	}
	if cf.output == "json" {
		return printJSON(stdout, map[string]any{"items": cs})
	}
	printClients(stdout, cs)
	return nil
}

func printClients(w io.Writer, cs []client.OAuthClient) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT_ID\tTENANT\tNAME\tGRANTS\tSCOPES\tPUBLIC")
	for _, c := range cs {
		t := c.TenantID
		if t == "" {
			t = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\n", c.ClientID, t, c.Name, strings.Join(c.GrantTypes, ","), strings.Join(c.Scopes, ","), c.Public)
	}
	tw.Flush()
}
