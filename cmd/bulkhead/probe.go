package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulkhead-dev/bulkhead/internal/probe"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const probeUsage = `Usage:
  bulkhead probe --openapi FILE|URL --base-url URL --tenant LABEL[@TENANT]=SOURCE ... [flags]
  bulkhead probe --openapi FILE|URL --base-url URL --make-tenants 2 --scope S... [--tier T] [--policy FILE]

probe tests a running application for cross-tenant access, driven by its
OpenAPI 3 document: it creates objects as each tenant through the
document's create operations, calls every operation that takes an id with
another tenant's credential and with none, looks for one tenant's ids and
text in the others' lists and searches, and compares the answer for
another tenant's object with the answer for no such object. Findings have
the request, the answer and why. Use it against a test deployment: it
creates objects, and it sends other tenants' writes and deletions (which a
sound application refuses).

It only talks to the host of --base-url (and, for tokens, to Bulkhead at
--issuer/--addr): a document URL must be on that host, a document whose
servers name another host is refused, redirects are not followed.

SOURCE is where a tenant's bearer token comes from (never the token itself,
which would land in the process list):
  env:VAR      the environment variable VAR
  file:PATH    the file PATH
  client:ID    a client_credentials token of Bulkhead OAuth client ID from --issuer
               (default --addr; a silo tenant's is --addr/t/TENANT); its secret in
               env BULKHEAD_PROBE_SECRET_<LABEL>
TENANT fills path parameters named tenant/tenant_id; by default it is read
from the token's tenant_id claim. --make-tenants N creates N tenants on a
test Bulkhead instead (--addr, --token as an operator), each with --tier, the
Cedar policies of --policy and a client with the --scope scopes, and deletes
them afterwards unless --keep-tenants.

A recipe (--recipe FILE, JSON) supplies bodies, id locations and parameters
the document cannot (see the README's section "Probe: cross-tenant tests of
your application's API").

Exit status: 0 no finding, 3 findings, 1 the run failed or stopped early
(budget, --timeout), 2 a usage error or an unusable document.`

// probeTenants is --tenant, repeatable.
type probeTenants []string

func (p *probeTenants) String() string     { return strings.Join(*p, ",") }
func (p *probeTenants) Set(v string) error { *p = append(*p, v); return nil }

// probeCmd is bulkhead probe's flags.
type probeCmd struct {
	cf                        clientFlags
	document, base, recipe    string
	format, out, issuer, tier string
	policy                    string
	tenants                   probeTenants
	scopes                    stringList
	rate                      float64
	budget, makeTenants       int
	timeout                   time.Duration
	keepTenants               bool
}

func (p *probeCmd) flags() *flag.FlagSet {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	withUsage(fs, probeUsage)
	p.cf.register(fs)
	fs.StringVar(&p.document, "openapi", "", "the application's OpenAPI 3 document: a file, or a URL on the --base-url host")
	fs.StringVar(&p.base, "base-url", "", "the application's base URL (operations' paths are appended to it)")
	fs.Var(&p.tenants, "tenant", "LABEL[@TENANT]=SOURCE: a tenant's credential (repeatable, at least two)")
	fs.StringVar(&p.recipe, "recipe", "", "a recipe file (JSON): bodies, id locations, parameters, operations to skip")
	fs.Float64Var(&p.rate, "rate", 20, "requests per second at most")
	fs.IntVar(&p.budget, "budget", 5000, "requests in all at most")
	fs.DurationVar(&p.timeout, "timeout", 15*time.Minute, "stop after this long")
	fs.StringVar(&p.format, "format", "text", "the report's format: text, json or sarif")
	fs.StringVar(&p.out, "out", "", "write the report to this file (default: standard output)")
	fs.StringVar(&p.issuer, "issuer", "", "Bulkhead's URL for client: tokens (default --addr)")
	fs.Var(&p.scopes, "scope", "a scope to ask tokens for (repeatable)")
	fs.IntVar(&p.makeTenants, "make-tenants", 0, "create this many tenants on the Bulkhead at --addr (operator) instead of --tenant")
	fs.StringVar(&p.tier, "tier", "basic", "the tier of the tenants --make-tenants creates")
	fs.StringVar(&p.policy, "policy", "", "a Cedar policy file installed in each tenant --make-tenants creates")
	fs.BoolVar(&p.keepTenants, "keep-tenants", false, "keep the tenants --make-tenants created")
	return fs
}

func (p *probeCmd) check() error {
	switch {
	case p.document == "" || p.base == "":
		return fmt.Errorf("%w: probe needs --openapi and --base-url", errUsage)
	case p.format != "text" && p.format != "json" && p.format != "sarif":
		return fmt.Errorf("%w: --format must be text, json or sarif", errUsage)
	case p.makeTenants == 0 && len(p.tenants) < 2:
		return fmt.Errorf("%w: probe needs two tenants' credentials (--tenant twice) or --make-tenants 2", errUsage)
	case p.makeTenants != 0 && len(p.tenants) > 0:
		return fmt.Errorf("%w: --make-tenants and --tenant do not go together", errUsage)
	case p.makeTenants < 0 || p.makeTenants == 1 || p.makeTenants > 8:
		return fmt.Errorf("%w: --make-tenants takes 2 to 8", errUsage)
	case p.rate < 0 || p.budget < 0:
		return fmt.Errorf("%w: --rate and --budget must not be negative", errUsage)
	}
	return nil
}

// probeRun runs bulkhead probe.
func probeRun(ctx context.Context, s stdio, args []string) error {
	p := &probeCmd{}
	fs := p.flags()
	if _, err := parseArgs(fs, args, 0, s.err, p); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, p.timeout, fmt.Errorf("--timeout (%s) passed", p.timeout))
	defer cancel()
	cfg := probe.Config{BaseURL: p.base, Rate: p.rate, Budget: p.budget, DocumentName: p.document}
	var err error
	if cfg.Document, err = p.readDocument(ctx); err != nil {
		return err
	}
	if p.recipe != "" {
		b, err := os.ReadFile(p.recipe)
		if err != nil {
			return fmt.Errorf("%w: the recipe: %w", errUsage, err)
		}
		if cfg.Recipe, err = probe.ParseRecipe(b); err != nil {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
	}
	if p.makeTenants > 0 {
		ids, cleanup, err := p.makeIdentities(ctx, s)
		if cleanup != nil {
			defer cleanup()
		}
		if err != nil {
			return err
		}
		cfg.Identities = ids
	} else if cfg.Identities, err = p.identities(ctx); err != nil {
		return err
	}
	rep, err := probe.Run(ctx, cfg)
	if errors.Is(err, probe.ErrDocument) {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if err != nil {
		return err
	}
	if err := p.write(s.out, rep, cfg.Document); err != nil {
		return err
	}
	switch {
	case len(rep.Findings) > 0:
		return errDenied
	case rep.Incomplete != "":
		return fmt.Errorf("the probe stopped early: %s", rep.Incomplete)
	}
	return nil
}

// readDocument reads --openapi: a file, or a URL on the base URL's host.
func (p *probeCmd) readDocument(ctx context.Context) ([]byte, error) {
	if strings.HasPrefix(p.document, "http://") || strings.HasPrefix(p.document, "https://") {
		b, err := probe.FetchDocument(ctx, p.base, p.document)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		return b, nil
	}
	f, err := os.Open(p.document)
	if err != nil {
		return nil, fmt.Errorf("%w: the document: %w", errUsage, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, probe.MaxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: the document: %w", errUsage, err)
	}
	return b, nil
}

func (p *probeCmd) write(stdout io.Writer, rep *probe.Report, document []byte) error {
	w := stdout
	if p.out != "" {
		f, err := os.OpenFile(p.out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	switch p.format {
	case "json":
		return rep.WriteJSON(w)
	case "sarif":
		return rep.WriteSARIF(w, document)
	}
	return rep.WriteText(w)
}

// identities reads --tenant's credentials.
func (p *probeCmd) identities(ctx context.Context) ([]probe.Identity, error) {
	var out []probe.Identity
	for _, spec := range p.tenants {
		who, source, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("%w: --tenant %q is not LABEL[@TENANT]=SOURCE", errUsage, spec)
		}
		label, tenantID, _ := strings.Cut(who, "@")
		id := probe.Identity{Label: label, Tenant: tenantID}
		kind, arg, _ := strings.Cut(source, ":")
		switch {
		case kind == "env" && arg != "":
			id.Token = strings.TrimSpace(os.Getenv(arg))
			if id.Token == "" {
				return nil, fmt.Errorf("%w: --tenant %s: environment variable %s is empty", errUsage, label, arg)
			}
		case kind == "file" && arg != "":
			b, err := os.ReadFile(arg)
			if err != nil {
				return nil, fmt.Errorf("%w: --tenant %s: %w", errUsage, label, err)
			}
			id.Token = strings.TrimSpace(string(b))
		case kind == "client" && arg != "":
			env := "BULKHEAD_PROBE_SECRET_" + strings.ToUpper(label)
			secret := os.Getenv(env)
			if secret == "" {
				return nil, fmt.Errorf("%w: --tenant %s: the client's secret goes in %s, which is empty", errUsage, label, env)
			}
			tok, err := p.clientToken(ctx, tenantID, arg, secret)
			if err != nil {
				return nil, fmt.Errorf("--tenant %s: %w", label, err)
			}
			id.Token = tok
		default:
			return nil, fmt.Errorf("%w: --tenant %s: the source must be env:VAR, file:PATH or client:ID", errUsage, label)
		}
		out = append(out, id)
	}
	return out, nil
}

// clientToken gets a client_credentials token from Bulkhead: from the
// platform issuer, or a silo tenant's own when the platform's refuses.
func (p *probeCmd) clientToken(ctx context.Context, tenantID, clientID, secret string) (string, error) {
	issuer := strings.TrimRight(p.issuer, "/")
	if issuer == "" {
		issuer = strings.TrimRight(p.cf.addr, "/")
	}
	issuers := []string{issuer}
	if tenantID != "" {
		issuers = append(issuers, issuer+"/t/"+tenantID)
	}
	var last error
	for _, iss := range issuers {
		tok, err := (&clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: iss + "/oauth/token",
			Scopes: p.scopes}).Token(ctx)
		if err == nil {
			return tok.AccessToken, nil
		}
		last = err
	}
	return "", fmt.Errorf("a token for client %s: %w", clientID, last)
}

// makeIdentities creates the tenants of --make-tenants, each with a
// client, and returns their credentials and what removes them.
func (p *probeCmd) makeIdentities(ctx context.Context, s stdio) ([]probe.Identity, func(), error) {
	c, err := p.cf.client()
	if err != nil {
		return nil, nil, err
	}
	var policy string
	if p.policy != "" {
		b, err := os.ReadFile(p.policy)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: --policy: %w", errUsage, err)
		}
		policy = string(b)
	}
	run := make([]byte, 3)
	rand.Read(run)
	var made []string
	cleanup := func() {
		if p.keepTenants {
			fmt.Fprintf(s.err, "probe: kept tenants %s\n", strings.Join(made, ", "))
			return
		}
		// Deleted even when the run was cancelled: the tenants are the
		// probe's own.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for _, tid := range made {
			if _, err := c.DeleteTenant(ctx, tid); err != nil {
				fmt.Fprintf(s.err, "probe: delete tenant %s: %v\n", tid, err)
			}
		}
	}
	var out []probe.Identity
	for i := range p.makeTenants {
		label := string(rune('a' + i))
		tid := "probe-" + hex.EncodeToString(run) + "-" + label
		tn, err := c.CreateTenant(ctx, client.CreateTenant{ID: tid, Tier: p.tier}, "")
		if err != nil {
			return nil, cleanup, fmt.Errorf("create tenant %s: %w", tid, err)
		}
		made = append(made, tid)
		if err := waitActive(ctx, c, tn); err != nil {
			return nil, cleanup, err
		}
		if policy != "" {
			if _, err := c.CreatePolicy(ctx, tid, client.PolicyInput{Statement: policy}); err != nil {
				return nil, cleanup, fmt.Errorf("the policy of %s: %w", tid, err)
			}
		}
		oc, err := c.CreateOAuthClient(ctx, tid, client.CreateOAuthClient{Name: "bulkhead-probe",
			GrantTypes: []string{"client_credentials"}, Scopes: p.scopes})
		if err != nil {
			return nil, cleanup, fmt.Errorf("a client of %s: %w", tid, err)
		}
		tok, err := p.clientToken(ctx, tid, oc.ClientID, oc.ClientSecret)
		if err != nil {
			return nil, cleanup, err
		}
		out = append(out, probe.Identity{Label: label, Tenant: tid, Token: tok})
	}
	return out, cleanup, nil
}

// waitActive waits for a new tenant's onboarding to finish.
func waitActive(ctx context.Context, c *client.Client, tn client.Tenant) error {
	for tn.Status != "active" {
		if tn.Status == "failed" || tn.Status == "deleted" {
			return fmt.Errorf("tenant %s: onboarding ended %s", tn.ID, tn.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tenant %s is still %s: %w", tn.ID, tn.Status, context.Cause(ctx))
		case <-time.After(200 * time.Millisecond):
		}
		var err error
		if tn, err = c.GetTenant(ctx, tn.ID); err != nil {
			return err
		}
	}
	return nil
}
