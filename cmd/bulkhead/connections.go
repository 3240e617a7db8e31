package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const connectionUsage = `Usage:
  bulkhead connection create NAME --tenant T --upstream-url URL (--token-file PATH | --token-stdin)
        [--placement bearer|header:NAME|query:NAME] [--allow-method M]... [--allow-path /PREFIX]...
        [--sensitivity N] [--webhook-url URL] [--grant-name N] [--auto-suspend]
  bulkhead connection list --tenant T [--limit N] [--cursor C]
  bulkhead connection get CONNECTION --tenant T
  bulkhead connection update CONNECTION --tenant T [--name N] [--placement P] [--allow-method M]... [--allow-path /PREFIX]...
        [--sensitivity N] [--webhook-url URL] [(--token-file PATH | --token-stdin) [--upstream-url URL]]
  bulkhead connection delete CONNECTION --tenant T
  bulkhead connection grant create|list|rotate|suspend|resume|delete ...   (see bulkhead connection grant --help)
  bulkhead connection activity CONNECTION --tenant T [--limit N] [--cursor C]
  bulkhead connection alerts --tenant T [--connection CONNECTION] [--limit N] [--cursor C]
A connection is a tenant's link to a third-party API. Bulkhead never stores
its upstream token: each grant splits it into Part A, printed once for one
integration, and Part B, kept encrypted under the tenant's key. The
integration calls {proxy}/c/CONNECTION/PATH with Part A as its bearer token;
the proxy recombines the token for that one request and sends it only to the
connection's upstream URL.
The upstream token is read from a file (--token-file PATH, - for stdin) or
from stdin (--token-stdin), never from the command line, where ps and shell
history would keep it; surrounding whitespace is dropped. (--token is the
CLI's own bearer token, as everywhere.)
--placement says how the proxy presents the token: bearer (Authorization:
Bearer, the default), header:NAME (e.g. header:X-Api-Key) or query:NAME.
--allow-method and --allow-path (a path prefix under the upstream URL) limit
what integrations may call; without them, or with "any", they may call
everything. --sensitivity (1 to 50, default 4) is how far a grant's traffic may
stray from its baseline before an alert; --webhook-url receives the alerts as
signed POSTs (the signing secret is printed once).
update changes only what is given (--webhook-url "" removes the webhook). A
new token (--token-file or --token-stdin) re-splits every grant: each gets a
new Part A, printed once, and the old ones stop working. --upstream-url
changes only together with the token.
Common flags: --addr, --token, --output json|table`

const grantUsage = `Usage:
  bulkhead connection grant create CONNECTION --tenant T (--token-file PATH | --token-stdin | --part-a-file PATH)
        [--name N] [--auto-suspend]
  bulkhead connection grant list CONNECTION --tenant T
  bulkhead connection grant rotate CONNECTION GRANT --tenant T (--token-file PATH | --token-stdin | --part-a-file PATH)
  bulkhead connection grant suspend CONNECTION GRANT --tenant T [--reason R]
  bulkhead connection grant resume CONNECTION GRANT --tenant T
  bulkhead connection grant delete CONNECTION GRANT --tenant T
A grant is one integration's access to a connection: its Part A is printed
once, by create and rotate (which gives the grant a new Part A; the old one
stops working at once). Bulkhead never holds the whole token, so both need it
again: the upstream token (--token-file PATH or --token-stdin) or a current
Part A of an active grant of the connection (--part-a-file PATH); - reads
either file from stdin.
suspend refuses the grant's Part A (403 grant_suspended) until resume;
--auto-suspend makes an anomaly alert suspend the grant by itself. delete
removes the grant and its Part B for good.
Common flags: --addr, --token, --output json|table`

// anyValue, as --allow-method or --allow-path, lets integrations call every
// method or path.
const anyValue = "any"

// connectionFlags are the settings of a connection that create and update
// take.
type connectionFlags struct {
	placement   string
	methods     stringList
	paths       stringList
	sensitivity float64
	webhookURL  string
}

func (f *connectionFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.placement, "placement", "", "how the proxy presents the token upstream: bearer (Authorization: Bearer; create's default), header:NAME or query:NAME")
	fs.Var(&f.methods, "allow-method", `a method integrations may use (repeatable; "any" or none: every method)`)
	fs.Var(&f.paths, "allow-path", `a path prefix under the upstream URL integrations may call (repeatable; "any" or none: every path)`)
	fs.Float64Var(&f.sensitivity, "sensitivity", 0, "how many deviations from a grant's baseline raise an alert: 1 (most sensitive) to 50 (create's default 4)")
	fs.StringVar(&f.webhookURL, "webhook-url", "", "POST each alert, signed, to this URL")
}

// parsedPlacement is --placement parsed; nil when it is not given.
func (f *connectionFlags) parsedPlacement() (*client.Placement, error) {
	if f.placement == "" {
		return nil, nil
	}
	p, err := parsePlacement(f.placement)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// parsePlacement parses bearer, header:NAME or query:NAME.
func parsePlacement(s string) (client.Placement, error) {
	typ, name, _ := strings.Cut(s, ":")
	switch {
	case typ == client.PlacementBearer && name == "":
		return client.Placement{Type: typ}, nil
	case (typ == client.PlacementHeader || typ == client.PlacementQuery) && name != "":
		return client.Placement{Type: typ, Name: name}, nil
	}
	return client.Placement{}, fmt.Errorf("%w: --placement must be bearer, header:NAME or query:NAME, not %q", errUsage, s)
}

// allowList is the list of a repeatable --allow-… flag: empty for "any".
func allowList(vs stringList) []string {
	if slices.Contains(vs, anyValue) {
		return []string{}
	}
	return vs
}

// tokenFlags bring a connection's upstream token or, where allowed, a
// current Part A of it: from a file or stdin, never from the command line.
type tokenFlags struct {
	file, partAFile string
	stdin           bool
}

func (t *tokenFlags) register(fs *flag.FlagSet, partA bool) {
	fs.StringVar(&t.file, "token-file", "", "read the upstream token from this file (- for stdin)")
	fs.BoolVar(&t.stdin, "token-stdin", false, "read the upstream token from stdin")
	if partA {
		fs.StringVar(&t.partAFile, "part-a-file", "", "instead of the token, read a current Part A of the connection from this file (- for stdin)")
	}
}

// source reads what the flags name; an empty source when none is given.
func (t *tokenFlags) source(stdin io.Reader) (client.TokenSource, error) {
	var src client.TokenSource
	given := 0
	for _, set := range []bool{t.file != "", t.stdin, t.partAFile != ""} {
		if set {
			given++
		}
	}
	if given > 1 {
		return src, fmt.Errorf("%w: give the token once: --token-file, --token-stdin and --part-a-file exclude each other", errUsage)
	}
	read := func(flagName, path string) (string, error) {
		b, err := readSource(path, stdin)
		if err != nil {
			return "", fmt.Errorf("%s: %w", flagName, err)
		}
		defer clear(b)
		s := strings.TrimSpace(string(b))
		if s == "" {
			if path == "-" {
				path = "stdin"
			}
			return "", fmt.Errorf("%w: %s: nothing to read in %s", errUsage, flagName, path)
		}
		return s, nil
	}
	var err error
	switch {
	case t.file != "":
		src.Token, err = read("--token-file", t.file)
	case t.stdin:
		src.Token, err = read("--token-stdin", "-")
	case t.partAFile != "":
		src.PartA, err = read("--part-a-file", t.partAFile)
	}
	return src, err
}

// connectionVerb begins a verb of a tenant's connections (or of their
// grants, when group is "connection grant"): its flag set, with the
// --tenant it requires.
func connectionVerb(group, usage, name string) (*flag.FlagSet, *clientFlags, *tenantFlag) {
	fs, cf := clientFlagSet(group+" "+name, usage)
	tf := &tenantFlag{}
	tf.register(fs, "connections")
	return fs, cf, tf
}

// connectionCreate runs bulkhead connection create: the upstream token
// split, its Part A printed once.
func connectionCreate(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := connectionVerb("connection", connectionUsage, "create")
	var (
		set                 connectionFlags
		tok                 tokenFlags
		upstream, grantName string
		autoSuspend         bool
	)
	fs.StringVar(&upstream, "upstream-url", "", "the third-party API's base URL, http(s)://host[:port][/path prefix] (update: only with a new token)")
	tok.register(fs, false)
	set.register(fs)
	fs.StringVar(&grantName, "grant-name", "", "a name for the first grant: the integration it is for")
	fs.BoolVar(&autoSuspend, "auto-suspend", false, "let an anomaly alert suspend the first grant")
	pos, err := parseArgs(fs, args, 1, s.err, tf)
	if err != nil {
		return err
	}
	placement, err := set.parsedPlacement()
	if err != nil {
		return err
	}
	src, err := tok.source(s.in)
	if err != nil {
		return err
	}
	if upstream == "" || src.Token == "" {
		return fmt.Errorf("%w: create needs --upstream-url URL and the upstream token: --token-file PATH or --token-stdin", errUsage)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	in := client.CreateConnection{Name: pos[0], UpstreamURL: upstream, Token: src.Token, AllowedMethods: allowList(set.methods),
		AllowedPaths: allowList(set.paths), Alerts: client.Alerts{Sensitivity: set.sensitivity, WebhookURL: set.webhookURL},
		Grant: client.GrantOptions{Name: grantName, AutoSuspend: autoSuspend}}
	if placement != nil {
		in.Placement = *placement
	}
	out, err := c.CreateConnection(ctx, tf.id, in)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, out)
	}
	printConnections(s.out, []client.Connection{out.Connection})
	printPartAs(s.out, "Part A", out.Grant)
	printWebhookSecret(s.out, out.WebhookSecret)
	return nil
}

// connectionUpdate runs bulkhead connection update: it sends only what is
// given; a new token re-splits every grant.
func connectionUpdate(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := connectionVerb("connection", connectionUsage, "update")
	var (
		set            connectionFlags
		tok            tokenFlags
		name, upstream string
	)
	fs.StringVar(&name, "name", "", "a new name")
	fs.StringVar(&upstream, "upstream-url", "", "the third-party API's base URL, http(s)://host[:port][/path prefix] (update: only with a new token)")
	tok.register(fs, false)
	set.register(fs)
	pos, err := parseArgs(fs, args, 1, s.err, tf)
	if err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	placement, err := set.parsedPlacement()
	if err != nil {
		return err
	}
	src, err := tok.source(s.in)
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	in := client.UpdateConnection{Placement: placement}
	if given["name"] {
		in.Name = &name
	}
	if given["upstream-url"] {
		in.UpstreamURL = &upstream
	}
	if src.Token != "" {
		in.Token = &src.Token
	}
	if given["allow-method"] {
		ms := allowList(set.methods)
		in.AllowedMethods = &ms
	}
	if given["allow-path"] {
		ps := allowList(set.paths)
		in.AllowedPaths = &ps
	}
	if in == (client.UpdateConnection{}) && !given["sensitivity"] && !given["webhook-url"] {
		return fmt.Errorf("%w: update needs something to change (see bulkhead connection --help)", errUsage)
	}
	if given["sensitivity"] || given["webhook-url"] {
		// The API replaces both alert settings: keep the one not given.
		cur, err := c.GetConnection(ctx, tf.id, pos[0])
		if err != nil {
			return err
		}
		in.Alerts = &cur.Alerts
		if given["sensitivity"] {
			in.Alerts.Sensitivity = set.sensitivity
		}
		if given["webhook-url"] {
			in.Alerts.WebhookURL = set.webhookURL
		}
	}
	out, err := c.UpdateConnection(ctx, tf.id, pos[0], in)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, out)
	}
	printConnections(s.out, []client.Connection{out.Connection})
	printPartAs(s.out, "new Part A", out.Grants...)
	printWebhookSecret(s.out, out.WebhookSecret)
	return nil
}

func connectionList(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := connectionVerb("connection", connectionUsage, "list")
	var lf listFlags
	lf.register(fs)
	_, c, err := cf.open(fs, args, 0, s.err, tf)
	if err != nil {
		return err
	}
	page, err := c.ListConnections(ctx, tf.id, lf.limit, lf.cursor)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, page)
	}
	printConnections(s.out, page.Items)
	printMore(s.out, page.NextCursor)
	return nil
}

func connectionGet(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := connectionVerb("connection", connectionUsage, "get")
	pos, c, err := cf.open(fs, args, 1, s.err, tf)
	if err != nil {
		return err
	}
	conn, err := c.GetConnection(ctx, tf.id, pos[0])
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, conn)
	}
	printConnections(s.out, []client.Connection{conn})
	return nil
}

func connectionDelete(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := connectionVerb("connection", connectionUsage, "delete")
	pos, c, err := cf.open(fs, args, 1, s.err, tf)
	if err != nil {
		return err
	}
	if err := c.DeleteConnection(ctx, tf.id, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "deleted connection %s: its grants' Part As no longer work\n", pos[0])
	return nil
}

// connectionActivity runs bulkhead connection activity: the proxied
// requests of a connection.
func connectionActivity(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := connectionVerb("connection", connectionUsage, "activity")
	var lf listFlags
	lf.register(fs)
	pos, c, err := cf.open(fs, args, 1, s.err, tf)
	if err != nil {
		return err
	}
	page, err := c.ConnectionActivity(ctx, tf.id, pos[0], lf.limit, lf.cursor)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, page)
	}
	printActivity(s.out, page.Items)
	printMore(s.out, page.NextCursor)
	return nil
}

// connectionAlerts runs bulkhead connection alerts: the anomaly alerts of
// a tenant's connections, or of one.
func connectionAlerts(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := connectionVerb("connection", connectionUsage, "alerts")
	var lf listFlags
	var only string
	fs.StringVar(&only, "connection", "", "only this connection's alerts")
	lf.register(fs)
	_, c, err := cf.open(fs, args, 0, s.err, tf)
	if err != nil {
		return err
	}
	page, err := c.ListAlerts(ctx, tf.id, only, lf.limit, lf.cursor)
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, page)
	}
	printAlerts(s.out, page.Items)
	printMore(s.out, page.NextCursor)
	return nil
}

// grantIssue returns the verb create or rotate of connection grant: a
// grant's Part A made from the token (or a current Part A) and printed
// once.
func grantIssue(name string) func(context.Context, stdio, []string) error {
	return func(ctx context.Context, s stdio, args []string) error {
		fs, cf, tf := connectionVerb("connection grant", grantUsage, name)
		var tok tokenFlags
		var opts client.GrantOptions
		positional := 2
		if name == "create" {
			positional = 1
			fs.StringVar(&opts.Name, "name", "", "a name for the grant: the integration it is for")
			fs.BoolVar(&opts.AutoSuspend, "auto-suspend", false, "let an anomaly alert suspend the grant")
		}
		tok.register(fs, true)
		pos, err := parseArgs(fs, args, positional, s.err, tf)
		if err != nil {
			return err
		}
		src, err := tok.source(s.in)
		if err != nil {
			return err
		}
		if src == (client.TokenSource{}) {
			return fmt.Errorf("%w: %s needs the upstream token (--token-file PATH or --token-stdin) or a current Part A of the connection (--part-a-file PATH): Bulkhead never keeps the whole token",
				errUsage, name)
		}
		c, err := cf.client()
		if err != nil {
			return err
		}
		var ig client.IssuedGrant
		label := "Part A"
		if name == "create" {
			ig, err = c.CreateGrant(ctx, tf.id, pos[0], client.CreateGrant{GrantOptions: opts, TokenSource: src})
		} else {
			ig, err = c.RotateGrant(ctx, tf.id, pos[0], pos[1], src)
			label = "new Part A (the old one no longer works)"
		}
		if err != nil {
			return err
		}
		if cf.output == "json" {
			return printJSON(s.out, ig)
		}
		printGrants(s.out, []client.Grant{ig.Grant})
		printPartAs(s.out, label, ig)
		return nil
	}
}

func grantList(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := connectionVerb("connection grant", grantUsage, "list")
	pos, c, err := cf.open(fs, args, 1, s.err, tf)
	if err != nil {
		return err
	}
	gs, err := c.ListGrants(ctx, tf.id, pos[0])
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(s.out, map[string]any{"items": gs})
	}
	printGrants(s.out, gs)
	return nil
}

// grantSuspend runs bulkhead connection grant suspend: its Part A refused
// until resume.
func grantSuspend(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := connectionVerb("connection grant", grantUsage, "suspend")
	var reason string
	fs.StringVar(&reason, "reason", "", "why (kept with the grant and in the audit trail)")
	pos, c, err := cf.open(fs, args, 2, s.err, tf)
	if err != nil {
		return err
	}
	g, err := c.SuspendGrant(ctx, tf.id, pos[0], pos[1], reason)
	if err != nil {
		return err
	}
	return printGrant(s.out, cf.output, g)
}

func grantResume(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := connectionVerb("connection grant", grantUsage, "resume")
	pos, c, err := cf.open(fs, args, 2, s.err, tf)
	if err != nil {
		return err
	}
	g, err := c.ResumeGrant(ctx, tf.id, pos[0], pos[1])
	if err != nil {
		return err
	}
	return printGrant(s.out, cf.output, g)
}

func grantDelete(ctx context.Context, s stdio, args []string) error {
	fs, cf, tf := connectionVerb("connection grant", grantUsage, "delete")
	pos, c, err := cf.open(fs, args, 2, s.err, tf)
	if err != nil {
		return err
	}
	if err := c.DeleteGrant(ctx, tf.id, pos[0], pos[1]); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "deleted grant %s: its Part A no longer works\n", pos[1])
	return nil
}

func printGrant(w io.Writer, output string, g client.Grant) error {
	if output == "json" {
		return printJSON(w, g)
	}
	printGrants(w, []client.Grant{g})
	return nil
}

// printPartAs prints the Part A of each grant, which the server shows once.
func printPartAs(w io.Writer, label string, gs ...client.IssuedGrant) {
	for _, g := range gs {
		fmt.Fprintf(w, "%s of grant %s (shown once; the integration's bearer token at the proxy): %s\n", label, g.ID, g.PartA)
	}
}

func printWebhookSecret(w io.Writer, secret string) {
	if secret != "" {
		fmt.Fprintf(w, "alert webhook signing secret (shown once): %s\n", secret)
	}
}

// orAny is a connection's list of allowed methods or paths.
func orAny(vs []string) string {
	if len(vs) == 0 {
		return anyValue
	}
	return strings.Join(vs, ",")
}

func printConnections(w io.Writer, cs []client.Connection) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tUPSTREAM\tPLACEMENT\tMETHODS\tPATHS\tSENSITIVITY\tWEBHOOK\tTOKEN_VERSION\tUPDATED")
	for _, c := range cs {
		placement := c.Placement.Type
		if c.Placement.Name != "" {
			placement += ":" + c.Placement.Name
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", c.ID, c.Name, c.UpstreamURL, placement, orAny(c.AllowedMethods),
			orAny(c.AllowedPaths), strconv.FormatFloat(c.Alerts.Sensitivity, 'g', -1, 64), orDash(c.Alerts.WebhookURL), c.TokenVersion,
			c.UpdatedAt.Format(time.RFC3339))
	}
	tw.Flush()
}

func printGrants(w io.Writer, gs []client.Grant) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tAUTO_SUSPEND\tCREATED\tROTATED\tSUSPENDED_REASON")
	for _, g := range gs {
		rotated := "-"
		if g.RotatedAt != nil {
			rotated = g.RotatedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\t%s\n", g.ID, orDash(g.Name), g.Status, g.AutoSuspend, g.CreatedAt.Format(time.RFC3339),
			rotated, orDash(g.SuspendedReason))
	}
	tw.Flush()
}

// printActivity prints a connection's proxied requests.
func printActivity(w io.Writer, es []client.AuditEvent) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tGRANT\tMETHOD\tPATH\tSTATUS\tOUTCOME\tCODE\tSOURCE_IP")
	for _, e := range es {
		d := e.Detail
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Format(time.RFC3339), orDash(d["grant"]), d["method"], d["path"],
			d["status"], e.Outcome, orDash(d["code"]), e.SourceIP)
	}
	tw.Flush()
}

func printAlerts(w io.Writer, as []client.Alert) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tCONNECTION\tGRANT\tKIND\tGRANT_SUSPENDED\tDETAIL")
	for _, a := range as {
		var detail []string
		for _, k := range slices.Sorted(maps.Keys(a.Detail)) {
			detail = append(detail, k+"="+a.Detail[k])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\n", a.ID, a.CreatedAt.Format(time.RFC3339), a.ConnectionID, a.GrantID, a.Kind,
			a.GrantSuspended, strings.Join(detail, " "))
	}
	tw.Flush()
}
