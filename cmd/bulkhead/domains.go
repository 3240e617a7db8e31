package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const domainUsage = `Usage:
  bulkhead domain add DOMAIN --tenant T
  bulkhead domain list --tenant T
  bulkhead domain get DOMAIN --tenant T
  bulkhead domain verify DOMAIN --tenant T
  bulkhead domain delete DOMAIN --tenant T
A new domain is pending: serve its token at http://DOMAIN/.well-known/bulkhead-domain/TOKEN
(the gateway does, once DOMAIN points at it) or publish it as a TXT record at
_bulkhead.DOMAIN, then verify it. Only a verified domain is served and gets a certificate.
Common flags: --addr, --token, --output json|table`

// domainVerb runs one of the domain verbs: positional is the number of
// arguments (the domain) it takes; call does its API request.
func domainVerb(verb string, positional int, call func(ctx context.Context, c *client.Client, tenant string, args []string) ([]client.Domain, error)) func(context.Context, stdio, []string) error {
	return func(ctx context.Context, s stdio, args []string) error {
		fs, cf := clientFlagSet("domain "+verb, domainUsage)
		tenantID := fs.String("tenant", "", "the tenant the domain is of (required)")
		pos, err := parseArgs(fs, args, positional, s.err)
		if err != nil {
			return err
		}
		if *tenantID == "" {
			return fmt.Errorf("%w: domain %s needs --tenant", errUsage, verb)
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		ds, err := call(ctx, c, *tenantID, pos)
		if err != nil || ds == nil {
			return err
		}
		if cf.output == "json" {
			if positional == 0 {
				return printJSON(s.out, ds)
			}
			return printJSON(s.out, ds[0])
		}
		printDomains(s.out, ds)
		return nil
	}
}

func one(d client.Domain, err error) ([]client.Domain, error) {
	if err != nil {
		return nil, err
	}
	return []client.Domain{d}, nil
}

func addDomain(ctx context.Context, c *client.Client, t string, a []string) ([]client.Domain, error) {
	return one(c.CreateDomain(ctx, t, client.CreateDomain{Name: a[0]}))
}

func listDomains(ctx context.Context, c *client.Client, t string, _ []string) ([]client.Domain, error) {
	ds, err := c.ListDomains(ctx, t)
	if ds == nil && err == nil {
		ds = []client.Domain{}
	}
	return ds, err
}

func getDomain(ctx context.Context, c *client.Client, t string, a []string) ([]client.Domain, error) {
	return one(c.GetDomain(ctx, t, a[0]))
}

func verifyDomain(ctx context.Context, c *client.Client, t string, a []string) ([]client.Domain, error) {
	return one(c.VerifyDomain(ctx, t, a[0]))
}

func deleteDomain(ctx context.Context, c *client.Client, t string, a []string) ([]client.Domain, error) {
	return nil, c.DeleteDomain(ctx, t, a[0])
}

func printDomains(w io.Writer, ds []client.Domain) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tMETHOD\tVERIFIED\tTOKEN")
	for _, d := range ds {
		verified := "-"
		if d.VerifiedAt != nil {
			verified = d.VerifiedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Name, d.State, orDash(d.Method), verified, d.Token)
	}
	tw.Flush()
}
