package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const clientUsage = `Usage:
  bulkhead client create NAME [--tenant T] --grant G... [--redirect-uri U]... [--scope S]... [--public] [--backchannel-logout-uri U]
  bulkhead client list [--tenant T]
  bulkhead client delete CLIENT_ID [--tenant T]
Without --tenant the client is platform-wide (operator only; its tokens carry no tenant).
A confidential client's secret is printed once.
Common flags: --addr, --token, --output json|table`

// clientTenantFlag is the --tenant of the client verbs: none for a
// platform-wide client.
func clientTenantFlag(fs *flag.FlagSet) *string {
	return fs.String("tenant", "", "the tenant the client belongs to (default: platform-wide)")
}

// clientCreate runs bulkhead client create; a confidential client's secret
// is printed once.
func clientCreate(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("client create", clientUsage)
	tenantID := clientTenantFlag(fs)
	var grants, redirects, scopes stringList
	var public bool
	fs.Var(&grants, "grant", "authorization_code, refresh_token, client_credentials or urn:ietf:params:oauth:grant-type:token-exchange (repeatable)")
	fs.Var(&redirects, "redirect-uri", "an exact redirect URI (repeatable)")
	fs.Var(&scopes, "scope", "a scope the client may ask for (repeatable)")
	fs.BoolVar(&public, "public", false, "a public client (no secret; PKCE required)")
	backchannel := fs.String("backchannel-logout-uri", "", "where the client is told that a browser session it signed in with ended (OpenID Connect Back-Channel Logout)")
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	oc, err := c.CreateOAuthClient(ctx, *tenantID, client.CreateOAuthClient{Name: pos[0], GrantTypes: grants,
		RedirectURIs: redirects, Scopes: scopes, Public: public, BackchannelLogoutURI: *backchannel})
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, oc)
	}
	printClients(s.out, []client.OAuthClient{oc})
	if oc.ClientSecret != "" {
		fmt.Fprintf(s.out, "client secret (shown once): %s\n", oc.ClientSecret)
	}
	return nil
}

func clientList(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("client list", clientUsage)
	tenantID := clientTenantFlag(fs)
	_, c, err := cf.open(fs, args, 0, s.err)
	if err != nil {
		return err
	}
	cs, err := c.ListOAuthClients(ctx, *tenantID)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, map[string]any{"items": cs})
	}
	printClients(s.out, cs)
	return nil
}

func clientDelete(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("client delete", clientUsage)
	tenantID := clientTenantFlag(fs)
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	if err := c.DeleteOAuthClient(ctx, *tenantID, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "deleted client %s\n", pos[0])
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
