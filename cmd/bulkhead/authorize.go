package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

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

// authorize runs bulkhead authorize: one decision, or a batch.
func authorize(ctx context.Context, s stdio, args []string) error {
	fs, cf := clientFlagSet("authorize", authorizeUsage)
	cf.output, fs.Lookup("output").DefValue = "json", "json"
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
	if _, err := parseArgs(fs, args, 0, s.err, &sf); err != nil {
		return err
	}
	var reqs []client.AuthorizeRequest
	if batchArg != "" {
		if principal.typ+principal.id+action.id+resource.typ+resource.id+contextArg+entitiesArg != "" {
			return fmt.Errorf("%w: --batch holds the requests: give no entity, --context or --entities flags", errUsage)
		}
		raw, err := jsonArg("batch", batchArg, s.in)
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
		if r.Context, err = jsonArg("context", contextArg, s.in); err != nil {
			return err
		}
		if r.Entities, err = jsonArg("entities", entitiesArg, s.in); err != nil {
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
		err = printJSON(s.out, out)
	} else {
		err = printDecisions(s.out, ds)
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
