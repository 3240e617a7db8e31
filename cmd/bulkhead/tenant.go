package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const tenantUsage = `Usage:
  bulkhead tenant create ID [--name N] [--tier T] [--domain D]... [--config JSON] [--admin-email E] [--idempotency-key K]
  bulkhead tenant get ID
  bulkhead tenant list [--limit N] [--cursor C] [--all]
  bulkhead tenant update ID [--name N] [--tier T] [--domain D]... [--config JSON]
  bulkhead tenant suspend|resume|delete ID
  bulkhead tenant migrate ID --tier T [--no-wait]
migrate moves the tenant to another tier while it serves (its data, issuer, usage plan
and routes) and follows the migration with a progress bar on stderr.
--domain is repeatable and takes a comma-separated list too (--domain a.example,b.example).
update replaces the tenant's domains with those given; --domain "" removes them all.
Common flags: --addr, --token, --output json|table`

// domainsFlag is a tenant's domains: --domain, repeatable, each value a
// domain or a comma-separated list of them. --domains is the same flag:
// create took --domain and update --domains, and each refused the other's
// spelling. given tells --domain "" (no domains) from no flag.
type domainsFlag struct {
	list  []string
	given bool
}

func (d *domainsFlag) String() string { return strings.Join(d.list, ",") }

func (d *domainsFlag) Set(v string) error {
	d.given = true
	for _, dom := range strings.Split(v, ",") {
		if dom = strings.TrimSpace(dom); dom != "" {
			d.list = append(d.list, dom)
		}
	}
	return nil
}

func (d *domainsFlag) register(fs *flag.FlagSet, usage string) {
	fs.Var(d, "domain", usage)
	fs.Var(d, "domains", "the same as --domain")
}

// tenantCreate runs bulkhead tenant create: onboarding, which answers with
// the tenant active (or still provisioning, said on stderr).
func tenantCreate(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("tenant create", tenantUsage)
	var (
		in               client.CreateTenant
		domains          domainsFlag
		cfgJSON, idemKey string
	)
	fs.StringVar(&in.Name, "name", "", "display name (default: the id)")
	fs.StringVar(&in.Tier, "tier", "", "tier (default basic)")
	domains.register(fs, "a domain of the tenant (repeatable, or a comma-separated list)")
	fs.StringVar(&cfgJSON, "config", "", "tenant config, a JSON object")
	fs.StringVar(&idemKey, "idempotency-key", "", "makes a retry return the first result")
	fs.StringVar(&in.AdminEmail, "admin-email", "", "onboarding creates this user as the tenant's first admin (temporary password printed once)")
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	in.ID, in.Domains = pos[0], domains.list
	if cfgJSON != "" {
		in.Config = json.RawMessage(cfgJSON)
		if !json.Valid(in.Config) {
			return fmt.Errorf("%w: --config is not valid JSON", errUsage)
		}
	}
	t, err := c.CreateTenant(ctx, in, idemKey)
	if err != nil {
		return err
	}
	if t.Status == "provisioning" {
		fmt.Fprintf(s.err, "bulkhead: %s is still onboarding; `bulkhead tenant get %s` shows when it is active\n", t.ID, t.ID)
	}
	return printTenant(s.out, cf.output, t)
}

// tenantAction returns the verb name that makes one call on the tenant its
// argument names (get, suspend, resume, delete) and prints the tenant.
func tenantAction(name string, call func(*client.Client, context.Context, string) (client.Tenant, error)) func(context.Context, stdio, []string) error {
	return func(ctx context.Context, s stdio, args []string) error {
		fs, cf := clientFlagSet("tenant "+name, tenantUsage)
		pos, c, err := cf.open(fs, args, 1, s.err)
		if err != nil {
			return err
		}
		t, err := call(c, ctx, pos[0])
		if err != nil {
			return err
		}
		return printTenant(s.out, cf.output, t)
	}
}

// tenantUpdate runs bulkhead tenant update: it sends only the fields given.
func tenantUpdate(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("tenant update", tenantUsage)
	var name, tier, cfgJSON string
	var domains domainsFlag
	fs.StringVar(&name, "name", "", "new display name")
	fs.StringVar(&tier, "tier", "", "new tier")
	domains.register(fs, "replace the domains with these (repeatable, or a comma-separated list; \"\" for none)")
	fs.StringVar(&cfgJSON, "config", "", "replace the config: a JSON object")
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	var p client.TenantPatch
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "name":
			p.Name = &name
		case "tier":
			p.Tier = &tier
		case "config":
			p.Config = json.RawMessage(cfgJSON)
		}
	})
	if domains.given {
		ds := append([]string{}, domains.list...) // [] for none, not null
		p.Domains = &ds
	}
	if p.Config != nil && !json.Valid(p.Config) {
		return fmt.Errorf("%w: --config is not valid JSON", errUsage)
	}
	t, err := c.UpdateTenant(ctx, pos[0], p)
	if err != nil {
		return err
	}
	return printTenant(s.out, cf.output, t)
}

// tenantList runs bulkhead tenant list: a page, or with --all every page.
func tenantList(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("tenant list", tenantUsage)
	var lf listFlags
	var all bool
	lf.register(fs)
	fs.BoolVar(&all, "all", false, "follow cursors to list every tenant")
	_, c, err := cf.open(fs, args, 0, s.err)
	if err != nil {
		return err
	}
	var items []client.Tenant
	next := lf.cursor
	for {
		page, err := c.ListTenants(ctx, lf.limit, next)
		if err != nil {
			return err
		}
		items = append(items, page.Items...)
		next = page.NextCursor
		if !all || next == "" {
			break
		}
	}
	if cf.output == "json" {
		return printJSON(s.out, client.TenantPage{Items: items, NextCursor: next})
	}
	printTenants(s.out, items)
	printMore(s.out, next)
	return nil
}

// printTenant prints one tenant, and its first admin's temporary password
// when the answer holds it (once).
func printTenant(w io.Writer, output string, t client.Tenant) error {
	if output == "json" {
		return printJSON(w, t)
	}
	printTenants(w, []client.Tenant{t})
	if a := t.InitialAdmin; a != nil {
		fmt.Fprintf(w, "first admin %s, temporary password (shown once): %s\n", a.Email, a.TemporaryPassword)
	}
	return nil
}

func printTenants(w io.Writer, ts []client.Tenant) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTIER\tISOLATION\tSTATUS\tDOMAINS\tCREATED")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Tier, t.Isolation, t.Status,
			strings.Join(t.Domains, ","), t.CreatedAt.Format(time.RFC3339))
	}
	tw.Flush()
}
