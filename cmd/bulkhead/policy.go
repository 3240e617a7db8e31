package main

import (
	"context"
	"flag"
	"fmt"
	"io"
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

func (p *policyFlags) register(fs *flag.FlagSet, verb string) {
	p.statementFlags.register(fs, "policy")
	if verb == "create" {
		return
	}
	fs.StringVar(&p.template, "template", "", "link this template of the tenant")
	p.principal = newEntityFlags(fs, "principal", "", "the template's ?principal", "User or App::User")
	p.resource = newEntityFlags(fs, "resource", "", "the template's ?resource", "Folder")
}

func (p *policyFlags) input(verb string, global bool, stdin io.Reader) (client.PolicyInput, error) {
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
	case verb == "link" && in.TemplateID == "":
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

// templateFlags are the body of policy template create and replace.
type templateFlags struct {
	statementFlags
}

func (t *templateFlags) register(fs *flag.FlagSet, _ string) {
	t.statementFlags.register(fs, "template")
}

func (t *templateFlags) input(_ string, _ bool, stdin io.Reader) (client.PolicyTemplateInput, error) {
	in := client.PolicyTemplateInput{Description: t.description}
	text, err := t.text(stdin)
	if err != nil {
		return in, err
	}
	if strings.TrimSpace(text) == "" {
		return in, fmt.Errorf("%w: give the template as --statement TEXT or --file PATH", errUsage)
	}
	in.Statement = text
	return in, nil
}

// inputFlags are the flags of the body that create (or link) and replace
// send: register adds them for a verb, input reads them after parsing.
type inputFlags[In any] interface {
	register(fs *flag.FlagSet, verb string)
	input(verb string, global bool, stdin io.Reader) (In, error)
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

// objectVerbs make the verbs of one kind of object in a policy store
// (policies, templates), which differ only in the calls they make and the
// body they send.
type objectVerbs[In, Out, Page any] struct {
	group, usage string // e.g. "policy template", templateUsage
	kind         string // what delete says it deleted
	allowGlobal  bool   // whether --global may select the global policies
	// ops are the calls on the objects of the store sf selects.
	ops func(c *client.Client, sf storeFlags) objectOps[In, Out, Page]
	// body returns new flags of what create and replace send.
	body func() inputFlags[In]
}

// start begins the verb name: its flag set, with the flags that select the
// store (--global where allowed).
func (v objectVerbs[In, Out, Page]) start(name string, allowGlobal bool) (*flag.FlagSet, *clientFlags, *storeFlags) {
	fs, cf := clientFlagSet(v.group+" "+name, v.usage)
	sf := &storeFlags{}
	sf.register(fs, allowGlobal)
	return fs, cf, sf
}

// list is the verb list: a page of the store's objects.
func (v objectVerbs[In, Out, Page]) list(ctx context.Context, s stdio, args []string) error {
	fs, cf, sf := v.start("list", v.allowGlobal)
	var lf listFlags
	lf.register(fs)
	_, c, err := cf.open(fs, args, 0, s.err, sf)
	if err != nil {
		return err
	}
	page, err := v.ops(c, *sf).list(ctx, lf.limit, lf.cursor)
	if err != nil {
		return err
	}
	return printAuthz(s.out, cf.output, page)
}

// get is the verb get ID.
func (v objectVerbs[In, Out, Page]) get(ctx context.Context, s stdio, args []string) error {
	fs, cf, sf := v.start("get", v.allowGlobal)
	pos, c, err := cf.open(fs, args, 1, s.err, sf)
	if err != nil {
		return err
	}
	o, err := v.ops(c, *sf).get(ctx, pos[0])
	if err != nil {
		return err
	}
	return printAuthz(s.out, cf.output, o)
}

// delete is the verb delete ID.
func (v objectVerbs[In, Out, Page]) delete(ctx context.Context, s stdio, args []string) error {
	fs, cf, sf := v.start("delete", v.allowGlobal)
	pos, c, err := cf.open(fs, args, 1, s.err, sf)
	if err != nil {
		return err
	}
	if err := v.ops(c, *sf).delete(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "deleted %s %s\n", v.kind, pos[0])
	return nil
}

// create returns the verb name (create, or policy link: a template's
// slots filled, in a tenant's store only), which creates an object.
func (v objectVerbs[In, Out, Page]) create(name string) func(context.Context, stdio, []string) error {
	return func(ctx context.Context, s stdio, args []string) error {
		return v.write(ctx, s, name, args)
	}
}

// replace is the verb replace ID: the whole object sent again.
func (v objectVerbs[In, Out, Page]) replace(ctx context.Context, s stdio, args []string) error {
	return v.write(ctx, s, "replace", args)
}

// write runs create, link or replace, the verbs that send a body.
func (v objectVerbs[In, Out, Page]) write(ctx context.Context, s stdio, name string, args []string) error {
	fs, cf, sf := v.start(name, v.allowGlobal && name != "link")
	body := v.body()
	body.register(fs, name)
	positional := 0
	if name == "replace" {
		positional = 1
	}
	pos, err := parseArgs(fs, args, positional, s.err, sf)
	if err != nil {
		return err
	}
	in, err := body.input(name, sf.global, s.in)
	if err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ops := v.ops(c, *sf)
	var o Out
	if name == "replace" {
		o, err = ops.replace(ctx, pos[0], in)
	} else {
		o, err = ops.create(ctx, in)
	}
	if err != nil {
		return err
	}
	return printAuthz(s.out, cf.output, o)
}

// policyVerbs are the verbs of bulkhead policy that act on policies.
func policyVerbs() objectVerbs[client.PolicyInput, client.Policy, client.PolicyPage] {
	return objectVerbs[client.PolicyInput, client.Policy, client.PolicyPage]{
		group: "policy", usage: policyUsage, kind: "policy", allowGlobal: true,
		ops: func(c *client.Client, sf storeFlags) objectOps[client.PolicyInput, client.Policy, client.PolicyPage] {
			if sf.global {
				return objectOps[client.PolicyInput, client.Policy, client.PolicyPage]{
					c.CreateGlobalPolicy, c.ListGlobalPolicies, c.GetGlobalPolicy, c.ReplaceGlobalPolicy, c.DeleteGlobalPolicy}
			}
			return tenantOps(sf.tenant, c.CreatePolicy, c.ListPolicies, c.GetPolicy, c.ReplacePolicy, c.DeletePolicy)
		},
		body: func() inputFlags[client.PolicyInput] { return &policyFlags{} },
	}
}

// templateVerbs are the verbs of bulkhead policy template.
func templateVerbs() objectVerbs[client.PolicyTemplateInput, client.PolicyTemplate, client.PolicyTemplatePage] {
	return objectVerbs[client.PolicyTemplateInput, client.PolicyTemplate, client.PolicyTemplatePage]{
		group: "policy template", usage: templateUsage, kind: "template",
		ops: func(c *client.Client, sf storeFlags) objectOps[client.PolicyTemplateInput, client.PolicyTemplate, client.PolicyTemplatePage] {
			return tenantOps(sf.tenant, c.CreateTemplate, c.ListTemplates, c.GetTemplate, c.ReplaceTemplate, c.DeleteTemplate)
		},
		body: func() inputFlags[client.PolicyTemplateInput] { return &templateFlags{} },
	}
}

// printAuthz prints what a policy or template verb answered.
func printAuthz(w io.Writer, output string, v any) error {
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
