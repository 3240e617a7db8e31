package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const partnerUsage = `Usage:
  bulkhead partner create NAME [--jwks-url URL]
  bulkhead partner list
  bulkhead partner get ID
  bulkhead partner delete ID
  bulkhead partner rotate-secret ID
  bulkhead partner assume --partner ID --tenant T [--scope S]... [--tag KEY=VALUE]...
The operator registers integration partners: third-party services that tenants may trust
to act in their tenant (see bulkhead trust --help). create prints a client secret once, or,
with --jwks-url, registers a partner that authenticates with private_key_jwt.
assume is the partner's side: it gets an access token for a tenant that trusts it, with the
partner's secret from BULKHEAD_PARTNER_SECRET and the tenant's external id from
BULKHEAD_EXTERNAL_ID (never flags: they would show in the process list), and prints it.
Common flags: --addr, --token, --output json|table`

const trustUsage = `Usage:
  bulkhead trust create --tenant T --partner ID --scope S... [--policy-file PATH] [--max-session SECONDS]
        [--network CIDR]... [--tag KEY=VALUE]... [--partner-tag KEY]... [--description TEXT]
  bulkhead trust list --tenant T
  bulkhead trust get ID --tenant T
  bulkhead trust update ID --tenant T [--scope S]... [--policy-file PATH] [--max-session SECONDS]
        [--network CIDR]... [--no-networks] [--description TEXT]
  bulkhead trust suspend|resume|delete ID --tenant T
  bulkhead trust rotate-external-id ID --tenant T
A tenant's trusts in partners (the operator or the tenant's admins). create and
rotate-external-id print the external id once: hand it to the partner, who presents it
with every token request for this tenant. A suspended, deleted or rotated trust stops
its tokens at once.
Common flags: --addr, --token, --output json|table`

// partnerCreate runs bulkhead partner create NAME.
func partnerCreate(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("partner create", partnerUsage)
	jwks := fs.String("jwks-url", "", "authenticate the partner with private_key_jwt against its keys at this https URL")
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	in := client.CreatePartner{Name: pos[0]}
	if *jwks != "" {
		in.AuthMethod, in.JWKSURL = "private_key_jwt", *jwks
	}
	p, err := c.CreatePartner(ctx, in)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, p)
	}
	printPartners(s.out, []client.Partner{p.Partner})
	if p.ClientSecret != "" {
		fmt.Fprintf(s.out, "client secret: %s (shown once)\n", p.ClientSecret)
	}
	return nil
}

// partnerList runs bulkhead partner list.
func partnerList(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("partner list", partnerUsage)
	var lf listFlags
	lf.register(fs)
	_, c, err := cf.open(fs, args, 0, s.err)
	if err != nil {
		return err
	}
	page, err := c.ListPartners(ctx, lf.limit, lf.cursor)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, page)
	}
	printPartners(s.out, page.Items)
	printMore(s.out, page.NextCursor)
	return nil
}

// partnerGet runs bulkhead partner get ID.
func partnerGet(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("partner get", partnerUsage)
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	p, err := c.GetPartner(ctx, pos[0])
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, p)
	}
	printPartners(s.out, []client.Partner{p})
	return nil
}

// partnerDelete runs bulkhead partner delete ID.
func partnerDelete(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("partner delete", partnerUsage)
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	if err := c.DeletePartner(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "deleted %s\n", pos[0])
	return nil
}

// partnerRotateSecret runs bulkhead partner rotate-secret ID.
func partnerRotateSecret(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("partner rotate-secret", partnerUsage)
	pos, c, err := cf.open(fs, args, 1, s.err)
	if err != nil {
		return err
	}
	p, err := c.RotatePartnerSecret(ctx, pos[0])
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, p)
	}
	fmt.Fprintf(s.out, "client secret: %s (shown once; the old one no longer works)\n", p.ClientSecret)
	return nil
}

// partnerAssume runs bulkhead partner assume: the partner's own token
// request for a tenant.
func partnerAssume(ctx context.Context, s stdio, args []string) error {
	fs := flag.NewFlagSet("partner assume", flag.ContinueOnError)
	withUsage(fs, partnerUsage)
	addr := fs.String("addr", envOr("BULKHEAD_ADDR", "http://127.0.0.1:8080"), "server address (env BULKHEAD_ADDR): its /oauth/token serves every tenant")
	partner := fs.String("partner", "", "the partner's id, prt_… (required)")
	tenant := fs.String("tenant", "", "the tenant to act in (required)")
	output := fs.String("output", "table", "output format: table (the token alone) or json")
	var scopes, tags stringList
	fs.Var(&scopes, "scope", "a scope to ask for (repeatable; none: all of the trust's)")
	fs.Var(&tags, "tag", "a session tag KEY=VALUE the trust lets the partner set (repeatable)")
	if _, err := parseArgs(fs, args, 0, s.err); err != nil {
		return err
	}
	if *partner == "" || *tenant == "" {
		return fmt.Errorf("%w: partner assume needs --partner and --tenant", errUsage)
	}
	secret, ext := os.Getenv("BULKHEAD_PARTNER_SECRET"), os.Getenv("BULKHEAD_EXTERNAL_ID")
	if secret == "" {
		return fmt.Errorf("%w: set BULKHEAD_PARTNER_SECRET to the partner's client secret", errUsage)
	}
	tagMap, err := keyValues("--tag", tags)
	if err != nil {
		return err
	}
	tok, err := client.AssumeTrustToken(ctx, client.AssumeTrust{TokenURL: strings.TrimRight(*addr, "/") + "/oauth/token",
		PartnerID: *partner, ClientSecret: secret, Tenant: *tenant, ExternalID: ext, Scopes: scopes, Tags: tagMap})
	if err != nil {
		return err
	}
	if *output == "json" {
		return printJSON(s.out, tok)
	}
	fmt.Fprintln(s.out, tok.AccessToken)
	return nil
}

// keyValues parses KEY=VALUE flags.
func keyValues(flagName string, kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: %s takes KEY=VALUE", errUsage, flagName)
		}
		out[k] = v
	}
	return out, nil
}

func printPartners(w io.Writer, ps []client.Partner) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tAUTH\tCREATED")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.ID, p.Name, p.AuthMethod, stamp(p.CreatedAt))
	}
	tw.Flush()
}

// trustVerb returns a trust verb's flag set with --tenant.
func trustVerb(verb string) (*flag.FlagSet, *clientFlags, *tenantFlag) {
	fs, cf := clientFlagSet("trust "+verb, trustUsage)
	tf := &tenantFlag{}
	tf.register(fs, "trusts")
	return fs, cf, tf
}

// trustSettings are the flags of create and update.
type trustSettings struct {
	scopes, networks, tags, partnerTags stringList
	policyFile, description             string
	maxSession                          int
	noNetworks                          bool
}

func (t *trustSettings) register(fs *flag.FlagSet, update bool) {
	fs.Var(&t.scopes, "scope", "a scope the partner's tokens may carry (repeatable)")
	fs.Var(&t.networks, "network", "a network (CIDR) the partner may come from (repeatable; none: any)")
	fs.StringVar(&t.policyFile, "policy-file", "", "Cedar statements that bound every decision about the partner (- for stdin)")
	fs.IntVar(&t.maxSession, "max-session", 0, "a token's life in seconds (60 to 3600; default 900)")
	fs.StringVar(&t.description, "description", "", "what the trust is for")
	if update {
		fs.BoolVar(&t.noNetworks, "no-networks", false, "remove the network limit")
		return
	}
	fs.Var(&t.tags, "tag", "a session tag KEY=VALUE set on every session (repeatable)")
	fs.Var(&t.partnerTags, "partner-tag", "a tag key the partner may set when it assumes the trust (repeatable)")
}

func (t *trustSettings) policy(in io.Reader) (string, error) {
	if t.policyFile == "" {
		return "", nil
	}
	var b []byte
	var err error
	if t.policyFile == "-" {
		b, err = io.ReadAll(io.LimitReader(in, 1<<20))
	} else {
		b, err = os.ReadFile(t.policyFile)
	}
	if err != nil {
		return "", fmt.Errorf("read --policy-file: %w", err)
	}
	return string(b), nil
}

// trustCreate runs bulkhead trust create; the external id is printed once.
func trustCreate(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := trustVerb("create")
	partner := fs.String("partner", "", "the partner's id, prt_… (required)")
	var set trustSettings
	set.register(fs, false)
	if _, err := parseArgs(fs, args, 0, s.err, tf); err != nil {
		return err
	}
	if *partner == "" || len(set.scopes) == 0 {
		return fmt.Errorf("%w: trust create needs --partner and at least one --scope", errUsage)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	policy, err := set.policy(s.in)
	if err != nil {
		return err
	}
	tags, err := keyValues("--tag", set.tags)
	if err != nil {
		return err
	}
	tr, err := c.CreateTrust(ctx, tf.id, client.CreateTrust{Partner: *partner, Description: set.description, Scopes: set.scopes,
		Policy: policy, MaxSessionSeconds: set.maxSession, SourceNetworks: set.networks, Tags: tags, PartnerTags: set.partnerTags})
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, tr)
	}
	printTrusts(s.out, []client.Trust{tr.Trust})
	fmt.Fprintf(s.out, "external id: %s (shown once: hand it to the partner for this tenant)\n", tr.ExternalID)
	return nil
}

// trustList runs bulkhead trust list.
func trustList(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := trustVerb("list")
	var lf listFlags
	lf.register(fs)
	_, c, err := cf.open(fs, args, 0, s.err, tf)
	if err != nil {
		return err
	}
	page, err := c.ListTrusts(ctx, tf.id, lf.limit, lf.cursor)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, page)
	}
	printTrusts(s.out, page.Items)
	printMore(s.out, page.NextCursor)
	return nil
}

// trustGet runs bulkhead trust get ID.
func trustGet(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := trustVerb("get")
	pos, c, err := cf.open(fs, args, 1, s.err, tf)
	if err != nil {
		return err
	}
	tr, err := c.GetTrust(ctx, tf.id, pos[0])
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, tr)
	}
	printTrusts(s.out, []client.Trust{tr})
	return nil
}

// trustUpdate runs bulkhead trust update ID.
func trustUpdate(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := trustVerb("update")
	var set trustSettings
	set.register(fs, true)
	pos, c, err := cf.open(fs, args, 1, s.err, tf)
	if err != nil {
		return err
	}
	var in client.PatchTrust
	if len(set.scopes) > 0 {
		in.Scopes = set.scopes
	}
	if set.policyFile != "" {
		p, err := set.policy(s.in)
		if err != nil {
			return err
		}
		in.Policy = &p
	}
	if set.maxSession != 0 {
		in.MaxSessionSeconds = &set.maxSession
	}
	if set.description != "" {
		in.Description = &set.description
	}
	switch {
	case set.noNetworks && len(set.networks) > 0:
		return fmt.Errorf("%w: --no-networks and --network exclude each other", errUsage)
	case set.noNetworks:
		none := []string{}
		in.SourceNetworks = &none
	case len(set.networks) > 0:
		nets := []string(set.networks)
		in.SourceNetworks = &nets
	}
	tr, err := c.UpdateTrust(ctx, tf.id, pos[0], in)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, tr)
	}
	printTrusts(s.out, []client.Trust{tr})
	return nil
}

// trustAct runs the trust verbs that take an ID and change its state.
func trustAct(verb string) func(ctx context.Context, s stdio, args []string) error {
	return func(ctx context.Context, s stdio, args []string) error {
		fs, cf, tf := trustVerb(verb)
		pos, c, err := cf.open(fs, args, 1, s.err, tf)
		if err != nil {
			return err
		}
		var tr client.Trust
		switch verb {
		case "suspend":
			tr, err = c.SuspendTrust(ctx, tf.id, pos[0])
		case "resume":
			tr, err = c.ResumeTrust(ctx, tf.id, pos[0])
		case "delete":
			if err := c.DeleteTrust(ctx, tf.id, pos[0]); err != nil {
				return err
			}
			fmt.Fprintf(s.out, "deleted %s\n", pos[0])
			return nil
		case "rotate-external-id":
			var created client.TrustCreated
			if created, err = c.RotateExternalID(ctx, tf.id, pos[0]); err != nil {
				return err
			}
			if cf.output == "json" {
				return printJSON(s.out, created)
			}
			fmt.Fprintf(s.out, "external id: %s (shown once; the old one, and its tokens, no longer work)\n", created.ExternalID)
			return nil
		}
		if err != nil {
			return err
		}
		if cf.output == "json" {
			return printJSON(s.out, tr)
		}
		printTrusts(s.out, []client.Trust{tr})
		return nil
	}
}

func printTrusts(w io.Writer, ts []client.Trust) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPARTNER\tSTATUS\tSCOPES\tSESSION\tNETWORKS\tEXTERNAL ID\tCREATED")
	for _, t := range ts {
		partner := t.Partner
		if t.PartnerName != "" {
			partner += " (" + t.PartnerName + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%ds\t%s\t…%s\t%s\n", t.ID, partner, t.Status, strings.Join(t.Scopes, " "), t.MaxSessionSeconds,
			orDash(strings.Join(t.SourceNetworks, " ")), t.ExternalIDHint, stamp(t.CreatedAt))
	}
	tw.Flush()
}
