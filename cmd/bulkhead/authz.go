package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const policyUsage = `Usage:
  bulkhead policy list (--tenant T | --global) [--limit N] [--cursor C]
  bulkhead policy get POLICY_ID (--tenant T | --global)
  bulkhead policy create (--tenant T | --global) (--statement TEXT | --file PATH) [--description D]
  bulkhead policy link --tenant T --template TEMPLATE_ID [--principal-type TYPE --principal-id ID]
        [--resource-type TYPE --resource-id ID] [--description D]
  bulkhead policy replace POLICY_ID (--tenant T | --global) (--statement TEXT | --file PATH | --template ID [slot flags]) [--description D]
  bulkhead policy delete POLICY_ID (--tenant T | --global)
  bulkhead policy template list|get|create|replace|delete ...   (see bulkhead policy template --help)
  bulkhead policy schema get|put ...                              (see bulkhead policy schema --help)
  bulkhead policy store get|update ...                            (see bulkhead policy store --help)
A policy is one Cedar statement. --file reads it from PATH (- for stdin).
--global acts on the operator's global policies, which apply to every tenant
(static only; a tenant can neither see nor remove them, and a global forbid
wins over any tenant permit).
link fills a template's slots: an entity is given as its type and id, so
--principal-type User --principal-id alice is User::"alice" (?principal) and
--resource-type Folder --resource-id docs is Folder::"docs" (?resource).
replace sends the whole policy: a --description left out is cleared.
Common flags: --addr, --token, --output json|table`

const templateUsage = `Usage:
  bulkhead policy template list --tenant T [--limit N] [--cursor C]
  bulkhead policy template get TEMPLATE_ID --tenant T
  bulkhead policy template create --tenant T (--statement TEXT | --file PATH) [--description D]
  bulkhead policy template replace TEMPLATE_ID --tenant T (--statement TEXT | --file PATH) [--description D]
  bulkhead policy template delete TEMPLATE_ID --tenant T
A template is a Cedar statement whose scope uses ?principal and/or ?resource
(principal == ?principal, resource in ?resource); bulkhead policy link fills
them in. --file reads it from PATH (- for stdin). Replacing a template changes
every policy linked to it; a template with links cannot be deleted.
Common flags: --addr, --token, --output json|table`

const schemaUsage = `Usage:
  bulkhead policy schema get --tenant T
  bulkhead policy schema put --tenant T --file PATH [--format cedar|json]
get prints the schema as it was put (Cedar schema text, or the JSON schema);
--output json prints the API's {"format","schema","updated_at"} instead.
put reads PATH (- for stdin); without --format, text that starts with { is
json, anything else cedar. A schema that a policy, template or link of the
store does not conform to is refused, and nothing changes.
Common flags: --addr, --token, --output json|table`

const storeUsage = `Usage:
  bulkhead policy store get --tenant T
  bulkhead policy store update --tenant T [--log-allows true|false] [--principal-type TYPE] [--group-type TYPE]
--log-allows true audits allow decisions too (denies always are).
--principal-type and --group-type are the entity types of the caller and of
their groups when a user's token calls authorize without a principal.
Common flags: --addr, --token, --output json|table`

const authorizeUsage = `Usage:
  bulkhead authorize --tenant T [--principal-type TYPE --principal-id ID] [--action-type TYPE] --action-id ID
        --resource-type TYPE --resource-id ID [--context JSON|@FILE] [--entities JSON|@FILE] [--exit-code]
  bulkhead authorize --tenant T --batch JSON|@FILE [--exit-code]
Asks whether the principal may do the action on the resource under the
tenant's policies and the global ones, and prints the decision as JSON:
  {"decision": "allow"|"deny", "determining_policies": [...], "errors": [...]}
(--output table prints one line per decision instead).
An entity is given as its type and id: --principal-type User --principal-id
alice is User::"alice". --action-type defaults to Action. Without
--principal-*, the principal is the caller (only for a user's token of the
tenant). --context is a JSON object, --entities a JSON array in Cedar's
entity format; @FILE reads the value from FILE (@- from stdin).
--batch decides up to 100 requests: a JSON array of
  {"principal": {"type": "User", "id": "alice"}, "action": {...}, "resource": {...}, "context": {...}, "entities": [...]}
(or {"requests": [...]}) and prints {"results": [...]}, in order.
Exit status: 0 when the server decided, allow or deny; with --exit-code, 3
for a deny (in a batch: for any deny). 1 for an error, 2 for a usage error.
Common flags: --addr, --token, --output json|table (default json)`

// groupHelp prints usage and reports true when args ask a command group for help.
func groupHelp(args []string, usage string, stdout io.Writer) bool {
	if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stdout, usage)
		return true
	}
	return false
}

// storeFlags select the policy store a command acts on: a tenant's, or
// (where allowed) the global policies.
type storeFlags struct {
	tenant      string
	global      bool
	allowGlobal bool
}

func (sf *storeFlags) register(fs *flag.FlagSet, allowGlobal bool) {
	sf.allowGlobal = allowGlobal
	fs.StringVar(&sf.tenant, "tenant", "", "the tenant whose policy store to use")
	if allowGlobal {
		fs.BoolVar(&sf.global, "global", false, "the operator's global policies instead of a tenant's")
	}
}

func (sf *storeFlags) check() error {
	switch {
	case sf.global && sf.tenant != "":
		return fmt.Errorf("%w: --tenant and --global exclude each other", errUsage)
	case sf.global || sf.tenant != "":
		return nil
	case sf.allowGlobal:
		return fmt.Errorf("%w: --tenant T (or --global) is required", errUsage)
	}
	return fmt.Errorf("%w: --tenant T is required", errUsage)
}

// entityFlags are an entity given as --NAME-type and --NAME-id.
type entityFlags struct {
	name, typ, id string
}

func newEntityFlags(fs *flag.FlagSet, name, defaultType, what, example string) *entityFlags {
	e := &entityFlags{name: name}
	fs.StringVar(&e.typ, name+"-type", defaultType, "the entity type of "+what+", e.g. "+example)
	fs.StringVar(&e.id, name+"-id", "", "the entity id of "+what)
	return e
}

// ref returns the entity, or nil when no id is given (a usage error when
// required, or when only a type that is not the default is given).
func (e *entityFlags) ref(required bool, defaultType string) (*client.EntityRef, error) {
	switch {
	case e.id == "" && required:
		return nil, fmt.Errorf("%w: --%s-id is required", errUsage, e.name)
	case e.id == "" && e.typ != defaultType:
		return nil, fmt.Errorf("%w: --%s-type needs --%s-id", errUsage, e.name, e.name)
	case e.id == "":
		return nil, nil
	case e.typ == "":
		return nil, fmt.Errorf("%w: --%s-id needs --%s-type", errUsage, e.name, e.name)
	}
	return &client.EntityRef{Type: e.typ, ID: e.id}, nil
}

// jsonArg is the JSON of a flag given inline or as @FILE (@- for stdin);
// nil when the flag is empty.
func jsonArg(name, v string, stdin io.Reader) (json.RawMessage, error) {
	if v == "" {
		return nil, nil
	}
	b := []byte(v)
	if path, ok := strings.CutPrefix(v, "@"); ok {
		var err error
		if b, err = readSource(path, stdin); err != nil {
			return nil, err
		}
	}
	b = bytes.TrimSpace(b)
	if !json.Valid(b) {
		return nil, fmt.Errorf("%w: --%s is not valid JSON", errUsage, name)
	}
	return b, nil
}

// statementFlags are a Cedar statement given inline or from a file, and a description.
type statementFlags struct {
	statement, file, description string
}

func (s *statementFlags) register(fs *flag.FlagSet, what string) {
	fs.StringVar(&s.statement, "statement", "", "the Cedar text of the "+what)
	fs.StringVar(&s.file, "file", "", "read the Cedar text of the "+what+" from a file (- for stdin)")
	fs.StringVar(&s.description, "description", "", "what the "+what+" is for")
}

// text returns the statement, "" when none is given.
func (s *statementFlags) text(stdin io.Reader) (string, error) {
	switch {
	case s.statement != "" && s.file != "":
		return "", fmt.Errorf("%w: --statement and --file exclude each other", errUsage)
	case s.file != "":
		b, err := readSource(s.file, stdin)
		return string(b), err
	}
	return s.statement, nil
}

// policyFlags are the body of policy create, link and replace.
type policyFlags struct {
	statementFlags
	template            string
	principal, resource *entityFlags
}

func (p *policyFlags) register(fs *flag.FlagSet, sub string) {
	p.statementFlags.register(fs, "policy")
	if sub == "create" {
		return
	}
	fs.StringVar(&p.template, "template", "", "link this template of the tenant")
	p.principal = newEntityFlags(fs, "principal", "", "the template's ?principal", "User or App::User")
	p.resource = newEntityFlags(fs, "resource", "", "the template's ?resource", "Folder")
}

func (p *policyFlags) input(sub string, global bool, stdin io.Reader) (client.PolicyInput, error) {
	in := client.PolicyInput{Description: p.description, TemplateID: p.template}
	text, err := p.text(stdin)
	if err != nil {
		return in, err
	}
	in.Statement = text
	if p.principal != nil {
		if in.Principal, err = p.principal.ref(false, ""); err != nil {
			return in, err
		}
		if in.Resource, err = p.resource.ref(false, ""); err != nil {
			return in, err
		}
	}
	switch {
	case sub == "link" && in.TemplateID == "":
		return in, fmt.Errorf("%w: link needs --template", errUsage)
	case in.TemplateID != "" && global:
		return in, fmt.Errorf("%w: global policies are static: --global takes no --template", errUsage)
	case in.TemplateID != "" && (in.Statement != "" || p.file != ""):
		return in, fmt.Errorf("%w: a linked policy takes its text from --template: give no --statement or --file", errUsage)
	case in.TemplateID == "" && (in.Principal != nil || in.Resource != nil):
		return in, fmt.Errorf("%w: --principal-* and --resource-* fill a template's slots: they go with --template", errUsage)
	case in.TemplateID == "" && strings.TrimSpace(in.Statement) == "":
		return in, fmt.Errorf("%w: give the policy as --statement TEXT or --file PATH", errUsage)
	}
	return in, nil
}

// objectOps are the calls on one kind of object (policies, templates) in
// one store.
type objectOps[In, Out, Page any] struct {
	create  func(context.Context, In) (Out, error)
	list    func(context.Context, int, string) (Page, error)
	get     func(context.Context, string) (Out, error)
	replace func(context.Context, string, In) (Out, error)
	delete  func(context.Context, string) error
}

// tenantOps binds a tenant's object calls to tenant t.
func tenantOps[In, Out, Page any](t string,
	create func(context.Context, string, In) (Out, error),
	list func(context.Context, string, int, string) (Page, error),
	get func(context.Context, string, string) (Out, error),
	replace func(context.Context, string, string, In) (Out, error),
	del func(context.Context, string, string) error) objectOps[In, Out, Page] {
	return objectOps[In, Out, Page]{
		create:  func(ctx context.Context, in In) (Out, error) { return create(ctx, t, in) },
		list:    func(ctx context.Context, limit int, cursor string) (Page, error) { return list(ctx, t, limit, cursor) },
		get:     func(ctx context.Context, id string) (Out, error) { return get(ctx, t, id) },
		replace: func(ctx context.Context, id string, in In) (Out, error) { return replace(ctx, t, id, in) },
		delete:  func(ctx context.Context, id string) error { return del(ctx, t, id) },
	}
}

// run calls op (create, list, get, replace or delete) and returns the
// answer (nil for delete).
func (o objectOps[In, Out, Page]) run(ctx context.Context, op string, pos []string, in In, limit int, cursor string) (any, error) {
	switch op {
	case "create":
		return o.create(ctx, in)
	case "list":
		return o.list(ctx, limit, cursor)
	case "get":
		return o.get(ctx, pos[0])
	case "replace":
		return o.replace(ctx, pos[0], in)
	}
	return nil, o.delete(ctx, pos[0])
}

// objectPositional is the number of arguments of each object command.
var objectPositional = map[string]int{"list": 0, "get": 1, "create": 0, "replace": 1, "delete": 1}

func policyCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "template":
			return templateCmd(ctx, args[1:], stdin, stdout, stderr)
		case "schema":
			return schemaCmd(ctx, args[1:], stdin, stdout, stderr)
		case "store":
			return storeCmd(ctx, args[1:], stdout, stderr)
		}
	}
	if groupHelp(args, policyUsage, stdout) {
		return nil
	}
	sub, fs, cf, err := subcommand("policy", policyUsage, args)
	if err != nil {
		return err
	}
	op, positional := sub, objectPositional[sub]
	if sub == "link" {
		op = "create"
	} else if _, ok := objectPositional[sub]; !ok {
		return fmt.Errorf("%w: unknown policy command %q\n%s", errUsage, sub, policyUsage)
	}
	withUsage(fs, policyUsage)
	var sf storeFlags
	sf.register(fs, sub != "link")
	var pf policyFlags
	var lf listFlags
	switch sub {
	case "create", "replace", "link":
		pf.register(fs, sub)
	case "list":
		lf.register(fs)
	}
	pos, err := parseArgs(fs, args[1:], positional, stderr)
	if err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	var in client.PolicyInput
	if op == "create" || op == "replace" {
		if in, err = pf.input(sub, sf.global, stdin); err != nil {
			return err
		}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ops := objectOps[client.PolicyInput, client.Policy, client.PolicyPage]{
		c.CreateGlobalPolicy, c.ListGlobalPolicies, c.GetGlobalPolicy, c.ReplaceGlobalPolicy, c.DeleteGlobalPolicy}
	if !sf.global {
		ops = tenantOps(sf.tenant, c.CreatePolicy, c.ListPolicies, c.GetPolicy, c.ReplacePolicy, c.DeletePolicy)
	}
	v, err := ops.run(ctx, op, pos, in, lf.limit, lf.cursor)
	if err != nil {
		return err
	}
	return printAuthz(stdout, cf.output, "policy", pos, v)
}

func templateCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if groupHelp(args, templateUsage, stdout) {
		return nil
	}
	sub, fs, cf, err := subcommand("policy template", templateUsage, args)
	if err != nil {
		return err
	}
	positional, ok := objectPositional[sub]
	if !ok {
		return fmt.Errorf("%w: unknown policy template command %q\n%s", errUsage, sub, templateUsage)
	}
	withUsage(fs, templateUsage)
	var sf storeFlags
	sf.register(fs, false)
	var st statementFlags
	var lf listFlags
	switch sub {
	case "create", "replace":
		st.register(fs, "template")
	case "list":
		lf.register(fs)
	}
	pos, err := parseArgs(fs, args[1:], positional, stderr)
	if err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	in := client.PolicyTemplateInput{Description: st.description}
	if sub == "create" || sub == "replace" {
		if in.Statement, err = st.text(stdin); err != nil {
			return err
		}
		if strings.TrimSpace(in.Statement) == "" {
			return fmt.Errorf("%w: give the template as --statement TEXT or --file PATH", errUsage)
		}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ops := tenantOps(sf.tenant, c.CreateTemplate, c.ListTemplates, c.GetTemplate, c.ReplaceTemplate, c.DeleteTemplate)
	v, err := ops.run(ctx, sub, pos, in, lf.limit, lf.cursor)
	if err != nil {
		return err
	}
	return printAuthz(stdout, cf.output, "template", pos, v)
}

// printAuthz prints what a policy or template command answered (nil: a
// delete of pos[0]).
func printAuthz(w io.Writer, output, kind string, pos []string, v any) error {
	if v == nil {
		fmt.Fprintf(w, "deleted %s %s\n", kind, pos[0])
		return nil
	}
	if output == "json" {
		return printJSON(w, v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	var statement, next string
	switch v := v.(type) {
	case client.Policy:
		printPolicies(tw, []client.Policy{v})
		statement = v.Statement
	case client.PolicyPage:
		printPolicies(tw, v.Items)
		next = v.NextCursor
	case client.PolicyTemplate:
		printTemplates(tw, []client.PolicyTemplate{v})
		statement = v.Statement
	case client.PolicyTemplatePage:
		printTemplates(tw, v.Items)
		next = v.NextCursor
	}
	tw.Flush()
	if statement != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(statement, "\n"))
	}
	printMore(w, next)
	return nil
}

func printPolicies(tw io.Writer, ps []client.Policy) {
	fmt.Fprintln(tw, "ID\tTYPE\tTEMPLATE\tDESCRIPTION\tUPDATED")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.ID, p.Type, orDash(p.TemplateID), p.Description, p.UpdatedAt.Format(time.RFC3339))
	}
}

func printTemplates(tw io.Writer, ts []client.PolicyTemplate) {
	fmt.Fprintln(tw, "ID\tSLOTS\tDESCRIPTION\tUPDATED")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, strings.Join(t.Slots, ","), t.Description, t.UpdatedAt.Format(time.RFC3339))
	}
}

// schemaInput is the body of a schema put from the text read and --format.
func schemaInput(text []byte, format string) (client.PolicySchema, error) {
	text = bytes.TrimSpace(text)
	if format == "" {
		format = client.SchemaFormatCedar
		if bytes.HasPrefix(text, []byte("{")) {
			format = client.SchemaFormatJSON
		}
	}
	switch format {
	case client.SchemaFormatCedar:
		return client.CedarSchema(string(text)), nil
	case client.SchemaFormatJSON:
		if !json.Valid(text) {
			return client.PolicySchema{}, fmt.Errorf("%w: the schema is not valid JSON (for Cedar schema text, --format cedar)", errUsage)
		}
		return client.PolicySchema{Format: format, Schema: text}, nil
	}
	return client.PolicySchema{}, fmt.Errorf("%w: --format must be cedar or json", errUsage)
}

func schemaCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if groupHelp(args, schemaUsage, stdout) {
		return nil
	}
	sub, fs, cf, err := subcommand("policy schema", schemaUsage, args)
	if err != nil {
		return err
	}
	withUsage(fs, schemaUsage)
	var sf storeFlags
	sf.register(fs, false)
	var file, format string
	switch sub {
	case "get":
	case "put":
		fs.StringVar(&file, "file", "", "read the schema from a file (- for stdin)")
		fs.StringVar(&format, "format", "", "cedar or json (default: json when the text starts with {, else cedar)")
	default:
		return fmt.Errorf("%w: unknown policy schema command %q\n%s", errUsage, sub, schemaUsage)
	}
	if _, err := parseArgs(fs, args[1:], 0, stderr); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	var s client.PolicySchema
	if sub == "put" {
		if file == "" {
			return fmt.Errorf("%w: schema put needs --file PATH (- for stdin)", errUsage)
		}
		text, err := readSource(file, stdin)
		if err != nil {
			return err
		}
		if s, err = schemaInput(text, format); err != nil {
			return err
		}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if sub == "put" {
		s, err = c.PutSchema(ctx, sf.tenant, s)
	} else {
		s, err = c.GetSchema(ctx, sf.tenant)
	}
	if err != nil {
		return err
	}
	switch {
	case cf.output == "json":
		return printJSON(stdout, s)
	case sub == "put":
		fmt.Fprintf(stdout, "schema of %s set (format %s)\n", sf.tenant, s.Format)
		return nil
	}
	text := s.Text()
	var b bytes.Buffer
	if s.Format == client.SchemaFormatJSON && json.Indent(&b, []byte(text), "", "  ") == nil {
		text = b.String()
	}
	fmt.Fprintln(stdout, strings.TrimRight(text, "\n"))
	return nil
}

func storeCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if groupHelp(args, storeUsage, stdout) {
		return nil
	}
	sub, fs, cf, err := subcommand("policy store", storeUsage, args)
	if err != nil {
		return err
	}
	withUsage(fs, storeUsage)
	var sf storeFlags
	sf.register(fs, false)
	var logAllows, principalType, groupType string
	switch sub {
	case "get":
	case "update":
		fs.StringVar(&logAllows, "log-allows", "", "true to audit allow decisions too, false for denies only")
		fs.StringVar(&principalType, "principal-type", "", "the entity type of a user calling authorize without a principal")
		fs.StringVar(&groupType, "group-type", "", "the entity type of that user's groups")
	default:
		return fmt.Errorf("%w: unknown policy store command %q\n%s", errUsage, sub, storeUsage)
	}
	if _, err := parseArgs(fs, args[1:], 0, stderr); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	var u client.PolicyStoreUpdate
	var parseErr error
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "log-allows":
			b, err := strconv.ParseBool(logAllows)
			if err != nil {
				parseErr = fmt.Errorf("%w: --log-allows is true or false", errUsage)
			}
			u.LogAllows = &b
		case "principal-type":
			u.PrincipalType = &principalType
		case "group-type":
			u.GroupType = &groupType
		}
	})
	if parseErr != nil {
		return parseErr
	}
	if sub == "update" && u == (client.PolicyStoreUpdate{}) {
		return fmt.Errorf("%w: store update needs --log-allows, --principal-type or --group-type", errUsage)
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var st client.PolicyStore
	if sub == "update" {
		st, err = c.UpdatePolicyStore(ctx, sf.tenant, u)
	} else {
		st, err = c.GetPolicyStore(ctx, sf.tenant)
	}
	if err != nil {
		return err
	}
	if cf.output == "json" {
		return printJSON(stdout, st)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tHAS_SCHEMA\tLOG_ALLOWS\tPRINCIPAL_TYPE\tGROUP_TYPE\tUPDATED")
	fmt.Fprintf(tw, "%s\t%v\t%v\t%s\t%s\t%s\n", st.TenantID, st.HasSchema, st.LogAllows, st.PrincipalType, st.GroupType, st.UpdatedAt.Format(time.RFC3339))
	return tw.Flush()
}

// batchRequests reads authorize --batch: a JSON array of requests or {"requests": [...]}.
func batchRequests(raw json.RawMessage) ([]client.AuthorizeRequest, error) {
	var rs []client.AuthorizeRequest
	var wrapped struct {
		Requests *[]client.AuthorizeRequest `json:"requests"`
	}
	dst := any(&rs)
	if bytes.HasPrefix(raw, []byte("{")) {
		wrapped.Requests = &rs
		dst = &wrapped
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // a misspelt field would be dropped, not sent
	if err := dec.Decode(dst); err != nil {
		return nil, fmt.Errorf("%w: --batch: %v", errUsage, err)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("%w: --batch holds no requests", errUsage)
	}
	return rs, nil
}

func authorizeCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("authorize", flag.ContinueOnError)
	cf := &clientFlags{}
	cf.register(fs)
	cf.output, fs.Lookup("output").DefValue = "json", "json"
	withUsage(fs, authorizeUsage)
	var sf storeFlags
	sf.register(fs, false)
	principal := newEntityFlags(fs, "principal", "", "the principal (none: the caller, for a user's token)", "User or App::User")
	action := newEntityFlags(fs, "action", "Action", "the action", "Action or App::Action")
	resource := newEntityFlags(fs, "resource", "", "the resource", "Document")
	var contextArg, entitiesArg, batchArg string
	var exitCode bool
	fs.StringVar(&contextArg, "context", "", "the request context: a JSON object, or @FILE")
	fs.StringVar(&entitiesArg, "entities", "", "entities in Cedar's JSON entity format (an array), or @FILE")
	fs.StringVar(&batchArg, "batch", "", "decide many requests: a JSON array of requests, or @FILE")
	fs.BoolVar(&exitCode, "exit-code", false, "exit with status 3 when the decision is deny (any deny in a batch)")
	if _, err := parseArgs(fs, args, 0, stderr); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	var reqs []client.AuthorizeRequest
	if batchArg != "" {
		if principal.typ+principal.id+action.id+resource.typ+resource.id+contextArg+entitiesArg != "" {
			return fmt.Errorf("%w: --batch holds the requests: give no entity, --context or --entities flags", errUsage)
		}
		raw, err := jsonArg("batch", batchArg, stdin)
		if err != nil {
			return err
		}
		if reqs, err = batchRequests(raw); err != nil {
			return err
		}
	} else {
		var r client.AuthorizeRequest
		var err error
		if r.Principal, err = principal.ref(false, ""); err != nil {
			return err
		}
		if r.Action, err = action.ref(true, "Action"); err != nil {
			return err
		}
		if r.Resource, err = resource.ref(true, ""); err != nil {
			return err
		}
		if r.Context, err = jsonArg("context", contextArg, stdin); err != nil {
			return err
		}
		if r.Entities, err = jsonArg("entities", entitiesArg, stdin); err != nil {
			return err
		}
		reqs = []client.AuthorizeRequest{r}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var ds []client.Decision
	var out any
	if batchArg != "" {
		ds, err = c.AuthorizeBatch(ctx, sf.tenant, reqs)
		out = map[string]any{"results": ds}
	} else {
		var d client.Decision
		d, err = c.Authorize(ctx, sf.tenant, reqs[0])
		ds, out = []client.Decision{d}, d
	}
	if err != nil {
		return err
	}
	if cf.output == "json" {
		err = printJSON(stdout, out)
	} else {
		err = printDecisions(stdout, ds)
	}
	if err != nil {
		return err
	}
	for _, d := range ds {
		if exitCode && d.Decision != client.DecisionAllow {
			return errDenied
		}
	}
	return nil
}

func printDecisions(w io.Writer, ds []client.Decision) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tDECISION\tDETERMINING_POLICIES\tERRORS")
	for i, d := range ds {
		var errs []string
		for _, e := range d.Errors {
			errs = append(errs, e.Policy+": "+e.Message)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", i, d.Decision, orDash(strings.Join(d.DeterminingPolicies, ",")), orDash(strings.Join(errs, "; ")))
	}
	return tw.Flush()
}
