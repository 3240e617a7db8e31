package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// clientFlags are the flags every client command takes.
type clientFlags struct {
	addr   string
	token  string
	output string
}

func (cf *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&cf.addr, "addr", envOr("BULKHEAD_ADDR", "http://127.0.0.1:8080"), "server address (env BULKHEAD_ADDR)")
	// No default from the environment: flag usage prints defaults, and a token must never be printed.
	fs.StringVar(&cf.token, "token", "", "bearer token (default: env BULKHEAD_TOKEN, else BULKHEAD_ADMIN_TOKEN)")
	fs.StringVar(&cf.output, "output", "table", "output format: table or json")
}

func (cf *clientFlags) client() (*client.Client, error) {
	if cf.output != "table" && cf.output != "json" {
		return nil, fmt.Errorf("%w: --output must be table or json", errUsage)
	}
	if cf.token == "" {
		cf.token = os.Getenv("BULKHEAD_TOKEN")
	}
	if cf.token == "" {
		cf.token = os.Getenv("BULKHEAD_ADMIN_TOKEN")
	}
	if cf.token == "" {
		return nil, fmt.Errorf("%w: no token: set BULKHEAD_TOKEN or pass --token", errUsage)
	}
	addr := cf.addr
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return client.New(addr, cf.token), nil
}

// subcommand starts a client command group (tenant, user, …): it takes the
// subcommand name from args and returns a flag set with the common client
// flags registered.
func subcommand(group, usage string, args []string) (string, *flag.FlagSet, *clientFlags, error) {
	if len(args) == 0 {
		return "", nil, nil, fmt.Errorf("%w: %s needs a command\n%s", errUsage, group, usage)
	}
	fs := flag.NewFlagSet(group+" "+args[0], flag.ContinueOnError)
	cf := &clientFlags{}
	cf.register(fs)
	return args[0], fs, cf, nil
}

// parseArgs parses flags that may come before or after positional
// arguments, and checks the number of positional arguments.
func parseArgs(fs *flag.FlagSet, args []string, positional int, stderr io.Writer) ([]string, error) {
	fs.SetOutput(stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errSilentOK
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != positional {
		return nil, fmt.Errorf("%w: %s takes %d argument(s), got %d", errUsage, fs.Name(), positional, len(pos))
	}
	return pos, nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

const tenantUsage = `Usage:
  bulkhead tenant create ID [--name N] [--tier T] [--domain D]... [--config JSON] [--admin-email E] [--idempotency-key K]
  bulkhead tenant get ID
  bulkhead tenant list [--limit N] [--cursor C] [--all]
  bulkhead tenant update ID [--name N] [--tier T] [--domains a,b] [--config JSON]
  bulkhead tenant suspend|resume|delete ID
Common flags: --addr, --token, --output json|table`

func tenantCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, fs, cf, err := subcommand("tenant", tenantUsage, args)
	if err != nil {
		return err
	}
	var (
		name, tier, cfgJSON, idemKey, domainsCSV, cursor, adminEmail string
		domains                                                      stringList
		limit                                                        int
		all                                                          bool
	)
	positional := 1
	switch sub {
	case "create":
		fs.StringVar(&name, "name", "", "display name (default: the id)")
		fs.StringVar(&tier, "tier", "", "tier (default basic)")
		fs.Var(&domains, "domain", "a domain of the tenant (repeatable)")
		fs.StringVar(&cfgJSON, "config", "", "tenant config, a JSON object")
		fs.StringVar(&idemKey, "idempotency-key", "", "makes a retry return the first result")
		fs.StringVar(&adminEmail, "admin-email", "", "onboarding creates this user as the tenant's first admin (temporary password printed once)")
	case "update":
		fs.StringVar(&name, "name", "", "new display name")
		fs.StringVar(&tier, "tier", "", "new tier")
		fs.StringVar(&domainsCSV, "domains", "\x00", "replace the domains: comma-separated list (\"\" for none)")
		fs.StringVar(&cfgJSON, "config", "", "replace the config: a JSON object")
	case "list":
		positional = 0
		fs.IntVar(&limit, "limit", 0, "page size (1-1000)")
		fs.StringVar(&cursor, "cursor", "", "cursor from a previous page")
		fs.BoolVar(&all, "all", false, "follow cursors to list every tenant")
	case "get", "suspend", "resume", "delete":
	default:
		return fmt.Errorf("%w: unknown tenant command %q\n%s", errUsage, sub, tenantUsage)
	}
	pos, err := parseArgs(fs, args[1:], positional, stderr)
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var t client.Tenant
	switch sub {
	case "create":
		in := client.CreateTenant{ID: pos[0], Name: name, Tier: tier, Domains: domains, AdminEmail: adminEmail}
		if cfgJSON != "" {
			in.Config = json.RawMessage(cfgJSON)
			if !json.Valid(in.Config) {
				return fmt.Errorf("%w: --config is not valid JSON", errUsage)
			}
		}
		t, err = c.CreateTenant(ctx, in, idemKey)
	case "get":
		t, err = c.GetTenant(ctx, pos[0])
	case "update":
		var p client.TenantPatch
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "name":
				p.Name = &name
			case "tier":
				p.Tier = &tier
			case "domains":
				ds := []string{}
				for _, d := range strings.Split(domainsCSV, ",") {
					if d = strings.TrimSpace(d); d != "" {
						ds = append(ds, d)
					}
				}
				p.Domains = &ds
			case "config":
				p.Config = json.RawMessage(cfgJSON)
			}
		})
		if p.Config != nil && !json.Valid(p.Config) {
			return fmt.Errorf("%w: --config is not valid JSON", errUsage)
		}
		t, err = c.UpdateTenant(ctx, pos[0], p)
	case "suspend":
		t, err = c.SuspendTenant(ctx, pos[0])
	case "resume":
		t, err = c.ResumeTenant(ctx, pos[0])
	case "delete":
		t, err = c.DeleteTenant(ctx, pos[0])
	case "list":
		var items []client.Tenant
		next := cursor
		for {
			var page client.TenantPage
			if page, err = c.ListTenants(ctx, limit, next); err != nil {
				return err
			}
			items = append(items, page.Items...)
			next = page.NextCursor
			if !all || next == "" {
				break
			}
		}
		if cf.output == "json" {
			return printJSON(stdout, client.TenantPage{Items: items, NextCursor: next})
		}
		printTenants(stdout, items)
		printMore(stdout, next)
		return nil
	}
	if err != nil {
		return err
	}
	if sub == "create" && t.Status == "provisioning" {
		fmt.Fprintf(stderr, "bulkhead: %s is still onboarding; `bulkhead tenant get %s` shows when it is active\n", t.ID, t.ID)
	}
	if cf.output == "json" {
		return printJSON(stdout, t)
	}
	printTenants(stdout, []client.Tenant{t})
	if a := t.InitialAdmin; a != nil {
		fmt.Fprintf(stdout, "first admin %s, temporary password (shown once): %s\n", a.Email, a.TemporaryPassword)
	}
	return nil
}

// printMore tells how to ask for the next page, if there is one.
func printMore(w io.Writer, next string) {
	if next != "" {
		fmt.Fprintf(w, "more: --cursor %s\n", next)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
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

const auditUsage = `Usage:
  bulkhead audit list [--tenant ID|-] [--action A] [--since T] [--until T] [--limit N] [--cursor C]
  bulkhead audit verify
Common flags: --addr, --token, --output json|table`

func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, fs, cf, err := subcommand("audit", auditUsage, args)
	if err != nil {
		return err
	}
	var q client.AuditQuery
	var since, until string
	switch sub {
	case "list":
		fs.StringVar(&q.Tenant, "tenant", "", "only this tenant's events (- for platform events)")
		fs.StringVar(&q.Action, "action", "", "only this action, e.g. tenant.updated")
		fs.StringVar(&since, "since", "", "only events at or after this RFC 3339 time")
		fs.StringVar(&until, "until", "", "only events before this RFC 3339 time")
		fs.IntVar(&q.Limit, "limit", 0, "page size (1-1000)")
		fs.StringVar(&q.Cursor, "cursor", "", "cursor from a previous page")
	case "verify":
	default:
		return fmt.Errorf("%w: unknown audit command %q\n%s", errUsage, sub, auditUsage)
	}
	if _, err := parseArgs(fs, args[1:], 0, stderr); err != nil {
		return err
	}
	for _, p := range []struct {
		s   string
		dst *time.Time
	}{{since, &q.Since}, {until, &q.Until}} {
		if p.s != "" {
			if *p.dst, err = time.Parse(time.RFC3339Nano, p.s); err != nil {
				return fmt.Errorf("%w: %q is not an RFC 3339 time", errUsage, p.s)
			}
		}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if sub == "verify" {
		rep, err := c.VerifyAudit(ctx)
		if err != nil {
			return err
		}
		if cf.output == "json" {
			if err := printJSON(stdout, rep); err != nil {
				return err
			}
		} else if rep.OK {
			fmt.Fprintf(stdout, "ok: %d chains, %d events verified\n", rep.Chains, rep.Events)
		}
		if !rep.OK {
			if b := rep.Broken; b != nil {
				chain := b.TenantID
				if chain == "" {
					chain = "platform"
				}
				fmt.Fprintf(stderr, "audit chain broken: chain %s, event seq %d (id %d): %s\n", chain, b.Seq, b.EventID, b.Reason)
			}
			return errSilent
		}
		return nil
	}
	page, err := c.ListAudit(ctx, q)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(stdout, page)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tTENANT\tSEQ\tPRINCIPAL\tACTION\tTARGET\tOUTCOME")
	for _, e := range page.Items {
		tn := e.TenantID
		if tn == "" {
			tn = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", e.ID, e.Time.Format(time.RFC3339), tn, e.Seq, e.Principal, e.Action, e.Target, e.Outcome)
	}
	tw.Flush()
	printMore(stdout, page.NextCursor)
	return nil
}
