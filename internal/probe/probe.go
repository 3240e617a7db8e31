// Package probe tests a running multi-tenant application for
// cross-tenant access, driven by its OpenAPI 3 document: broken
// object-level authorization, which OWASP ranks first among API risks and
// which is hard to find without knowing which objects belong to whom.
//
// With two or more tenants' credentials it creates objects as each tenant
// through the document's create operations, then calls every operation
// that takes an id with another tenant's credential and with none,
// searches lists for other tenants' ids and text, and compares the answer
// for "another tenant's object" with the answer for "no such object" (an
// existence oracle). Each defect is a Finding with the request and answer
// that show it.
//
// It only ever talks to the base URL's host (resolved once; redirects are
// not followed; the document's servers must agree), at a bounded rate and
// within a request budget, and it never writes a credential into its
// report.
package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// Identity is one tenant's credential.
type Identity struct {
	// Label names the identity in the report ("a", "b"); never the token.
	Label string
	// Tenant is the tenant's id, for path parameters that name a tenant
	// ({tenant}); when empty it is read from the token's tenant_id claim.
	Tenant string
	// Token is sent as "Authorization: Bearer".
	Token string
}

// Config is one probe run.
type Config struct {
	Document     []byte // the OpenAPI 3 document, JSON or YAML
	DocumentName string // how the report and SARIF name it (a path, for code scanning)
	BaseURL      string // where operations are sent; the only host the probe talks to
	Identities   []Identity
	Recipe       *Recipe
	Rate         float64 // requests per second; 0: no bound
	Budget       int     // requests in all; 0: no bound
	TLSConfig    *tls.Config
}

// Names of path parameters that, unless a recipe says otherwise, name the
// calling identity's tenant.
var tenantParams = []string{"tenant", "tenant_id", "tenantId", "tenantID", "tenant-id"}

// searchParams are query parameters a list operation takes as a search:
// the probe fills them with another tenant's marker.
var searchParams = []string{"q", "query", "search", "term", "text", "filter", "name", "contains"}

// Run probes the application and reports what it found. An error means
// the run could not start (a bad document, an unreachable host); a run
// that stopped early (budget, ctx) returns its partial report with
// Incomplete set.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("probe: the base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	if base.RawQuery != "" || base.Fragment != "" || base.User != nil {
		return nil, fmt.Errorf("probe: the base URL may not carry a query, a fragment or user information")
	}
	ids, err := identities(cfg.Identities)
	if err != nil {
		return nil, err
	}
	doc, err := loadDocument(ctx, cfg.Document, base)
	if err != nil {
		return nil, err
	}
	s, err := newSender(ctx, base, cfg.Rate, cfg.Budget, cfg.TLSConfig)
	if err != nil {
		return nil, err
	}
	defer s.close()
	for _, id := range ids {
		s.secrets = append(s.secrets, id.Token)
	}
	r := &run{cfg: cfg, doc: doc, s: s, ids: ids, recipe: cfg.Recipe,
		creates: map[string]*operation{}, objects: map[string]map[*operation]*object{},
		markers: map[string][]string{}, marked: map[string]bool{}, made: map[string][]string{}, probed: map[string]bool{}, skipped: map[string]string{},
		report: &Report{Target: base.String(), Document: cfg.DocumentName, Started: time.Now().UTC(), Operations: len(doc.ops)}}
	start := time.Now()
	err = r.run(ctx)
	rep := r.report
	rep.Duration = time.Since(start).Seconds()
	rep.Requests = s.sent
	rep.Probed = len(r.probed)
	for op, why := range r.skipped {
		rep.Skipped = append(rep.Skipped, Skip{Operation: op, Reason: why})
	}
	switch {
	case errors.Is(err, errBudget):
		rep.Incomplete = fmt.Sprintf("the request budget (%d) ran out", cfg.Budget)
	case ctx.Err() != nil:
		rep.Incomplete = "stopped before the end: " + context.Cause(ctx).Error()
	case err != nil:
		rep.Incomplete = err.Error()
	}
	// Excerpts of answers are masked as they are made, but an answer
	// reaches the report by other ways too (a media type, an id in a
	// path or a reason): whatever an application echoes, the report
	// holds no credential.
	rep.mask(s.secrets)
	rep.sort()
	if rep.Findings == nil {
		rep.Findings = []Finding{}
	}
	if rep.Skipped == nil {
		rep.Skipped = []Skip{}
	}
	return rep, nil
}

// identities checks the identities and fills in their tenants.
func identities(in []Identity) ([]*Identity, error) {
	if len(in) < 2 {
		return nil, fmt.Errorf("probe: it takes at least two tenants' credentials, got %d", len(in))
	}
	var out []*Identity
	labels := map[string]bool{}
	for _, id := range in {
		if id.Label == "" || labels[id.Label] || strings.ContainsAny(id.Label, " \t\n{}") {
			return nil, fmt.Errorf("probe: identity labels must be distinct words, got %q", id.Label)
		}
		labels[id.Label] = true
		if id.Token == "" {
			return nil, fmt.Errorf("probe: identity %s has no token", id.Label)
		}
		if id.Tenant == "" {
			id.Tenant = tenantClaim(id.Token)
		}
		out = append(out, &id)
	}
	for i, a := range out {
		for _, b := range out[i+1:] {
			if a.Tenant != "" && a.Tenant == b.Tenant {
				return nil, fmt.Errorf("probe: identities %s and %s are of the same tenant %s; a cross-tenant probe needs two tenants", a.Label, b.Label, a.Tenant)
			}
		}
	}
	return out, nil
}

// tenantClaim reads a JWT's tenant claim without checking its signature:
// it only names the tenant for path parameters, it grants nothing.
func tenantClaim(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c map[string]any
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	for _, k := range []string{"tenant_id", "tid", "tenant"} {
		if s, ok := c[k].(string); ok {
			return s
		}
	}
	return ""
}

// maxIDBytes bounds an id the probe takes from a create's answer: it
// goes into request paths and is looked for in answers, and the ids of
// an application's objects are short.
const maxIDBytes = 256

// object is one object the probe created.
type object struct {
	owner  *Identity
	create *operation
	id     string
}

// run is one probe run's state.
type run struct {
	cfg     Config
	doc     *document
	s       *sender
	ids     []*Identity
	recipe  *Recipe
	creates map[string]*operation             // create operations by their collection's path template
	objects map[string]map[*operation]*object // identity label → create → its object
	markers map[string][]string               // identity label → markers in its objects
	marked  map[string]bool                   // every marker, for leaked
	made    map[string][]string               // identity label → ids of its objects
	probed  map[string]bool                   // operations tested across tenants
	skipped map[string]string                 // operation → why it was not (fully) tested
	control map[string]bool                   // op+owner whose own request was tried
	report  *Report
}

// mark records m, a marker the probe sends as label's: the one place
// markers are kept, whether the generator or a recipe's {marker} made
// them.
func (r *run) mark(label, m string) {
	r.markers[label] = append(r.markers[label], m)
	r.marked[m] = true
}

func (r *run) skip(op *operation, why string) {
	if _, ok := r.skipped[op.ID]; !ok {
		r.skipped[op.ID] = why
	}
}

func (r *run) find(f Finding) {
	f.Severity = ruleSeverity(f.Rule)
	for _, g := range r.report.Findings {
		if g.Rule == f.Rule && g.Operation == f.Operation && g.Owner == f.Owner && g.Attacker == f.Attacker {
			return
		}
	}
	r.report.Findings = append(r.report.Findings, f)
}

func (r *run) run(ctx context.Context) error {
	r.control = map[string]bool{}
	var ops []*operation
	for _, op := range r.doc.ops {
		if why := r.recipe.operation(op.ID).Skip; why != "" {
			r.skipped[op.ID] = "the recipe: " + why
			continue
		}
		if op.Method == "OPTIONS" || op.Method == "TRACE" {
			continue
		}
		ops = append(ops, op)
	}
	r.findCreates(ops)
	if err := r.createObjects(ctx); err != nil {
		return err
	}
	// Reads first, then writes, then deletions (the deepest first), so
	// that a defect found by a write does not hide one a read would have
	// shown, and objects outlive the operations that need them.
	phase := func(op *operation) int {
		switch op.Method {
		case "GET", "HEAD":
			return 0
		case "DELETE":
			return 2
		}
		return 1
	}
	slices.SortStableFunc(ops, func(a, b *operation) int {
		if d := phase(a) - phase(b); d != 0 {
			return d
		}
		if phase(a) == 2 {
			return len(b.Segments) - len(a.Segments)
		}
		return 0
	})
	for _, op := range ops {
		if err := r.probe(ctx, op); err != nil {
			return err
		}
	}
	return nil
}

// findCreates picks the operations that make objects: a POST on a
// collection path whose items another operation takes by id ("POST /x"
// with "GET /x/{id}"), or one the recipe marks.
func (r *run) findCreates(ops []*operation) {
	for _, op := range ops {
		if op.Method != "POST" || len(op.Segments) == 0 {
			continue
		}
		if _, isParam := paramName(op.Segments[len(op.Segments)-1]); isParam {
			continue
		}
		create := r.recipe.operation(op.ID).Create
		for _, other := range ops {
			if len(other.Segments) > len(op.Segments) && strings.HasPrefix(other.Path, op.Path+"/") {
				if _, isParam := paramName(other.Segments[len(op.Segments)]); isParam {
					create = true
				}
			}
		}
		if create {
			r.creates[op.Path] = op
		}
	}
}

// createObjects makes one object per create operation per identity,
// parents before children.
func (r *run) createObjects(ctx context.Context) error {
	var creates []*operation
	for _, op := range r.creates {
		creates = append(creates, op)
	}
	sort.Slice(creates, func(i, j int) bool {
		if len(creates[i].Segments) != len(creates[j].Segments) {
			return len(creates[i].Segments) < len(creates[j].Segments)
		}
		return creates[i].ID < creates[j].ID
	})
	for _, id := range r.ids {
		r.objects[id.Label] = map[*operation]*object{}
		for _, op := range creates {
			f, why := r.fill(op, id, id.Tenant)
			if why != "" {
				r.skip(op, "cannot create: "+why)
				continue
			}
			body, query, why := r.request(op, id)
			if why != "" {
				r.skip(op, "cannot create: "+why)
				continue
			}
			a, err := r.s.send(ctx, op.Method, f.path, query, body, id.Token)
			if err != nil {
				return err
			}
			if a.status/100 != 2 {
				r.skip(op, fmt.Sprintf("cannot create: %s's request answered %d %s (a recipe can supply the body)",
					id.Label, a.status, r.s.excerpt(a.body)))
				continue
			}
			oid, ok := r.createdID(op, a)
			if !ok {
				r.skip(op, "created, but the answer names no id (give its JSON pointer as the recipe's \"id\")")
				continue
			}
			if r.s.holdsSecret(oid) {
				// Masked in the report, it would still be sent in paths,
				// and an id made from it (absent) shows most of it.
				r.skip(op, "created, but the answer's id holds a credential")
				continue
			}
			if len(oid) > maxIDBytes {
				r.skip(op, fmt.Sprintf("created, but the answer's id is %d bytes, more than the %d the probe takes", len(oid), maxIDBytes))
				continue
			}
			r.objects[id.Label][op] = &object{owner: id, create: op, id: oid}
			r.made[id.Label] = append(r.made[id.Label], oid)
			r.report.Objects++
		}
	}
	return nil
}

// createdID finds the new object's id in a create's answer.
func (r *run) createdID(op *operation, a answer) (string, bool) {
	var v any
	_ = json.Unmarshal(a.body, &v)
	if ptr := r.recipe.operation(op.ID).ID; ptr != "" {
		x, ok := pointer(v, ptr)
		return scalar(x, ok)
	}
	if m, ok := v.(map[string]any); ok {
		if id, ok := scalar(m["id"], m["id"] != nil); ok {
			return id, true
		}
		var found []string
		for k, x := range m {
			if strings.HasSuffix(strings.ToLower(k), "id") {
				if s, ok := scalar(x, true); ok {
					found = append(found, s)
				}
			}
		}
		if len(found) == 1 {
			return found[0], true
		}
	}
	if a.location != "" {
		if u, err := url.Parse(a.location); err == nil {
			segs := strings.Split(strings.TrimRight(u.Path, "/"), "/")
			if last := segs[len(segs)-1]; last != "" {
				return last, true
			}
		}
	}
	return "", false
}

func scalar(x any, ok bool) (string, bool) {
	switch v := x.(type) {
	case string:
		return v, ok && v != ""
	case float64:
		return fmt.Sprint(int64(v)), ok
	}
	return "", false
}

// filled is an operation's path with its parameters filled.
type filled struct {
	path     string
	segs     []string
	objSeg   int // the segment of the innermost object's id, or -1
	obj      *object
	tenanted bool  // a parameter named the tenant
	tenants  []int // the segments that name it
}

// with is the path with the innermost object's id (or, for a path that
// names no object, the tenant) replaced.
func (f filled) with(id string) string {
	segs := slices.Clone(f.segs)
	if f.objSeg >= 0 {
		segs[f.objSeg] = url.PathEscape(id)
	} else {
		for _, i := range f.tenants {
			segs[i] = url.PathEscape(id)
		}
	}
	return "/" + strings.Join(segs, "/")
}

// fill fills op's path parameters for owner's objects, with tenant for
// the parameters that name a tenant. It returns why it cannot.
func (r *run) fill(op *operation, owner *Identity, tenant string) (filled, string) {
	f := filled{objSeg: -1}
	for i, seg := range op.Segments {
		name, ok := paramName(seg)
		if !ok && strings.ContainsAny(seg, "{}") {
			return f, fmt.Sprintf("its path segment %q mixes text and a parameter, which the probe does not fill", seg)
		}
		if !ok {
			// A literal segment, escaped as a URL's path would be (it
			// holds no "/").
			f.segs = append(f.segs, (&url.URL{Path: seg}).EscapedPath())
			continue
		}
		var val string
		if tmpl, ok := r.recipe.param(name); ok {
			v, why := r.expand(tmpl, owner, tenant)
			if why != "" {
				return f, why
			}
			val = v
			if strings.Contains(tmpl, "{tenant}") {
				f.tenanted, f.tenants = true, append(f.tenants, i)
			}
		} else if slices.Contains(tenantParams, name) {
			if tenant == "" {
				return f, fmt.Sprintf("{%s} names a tenant, and %s's tenant is not known (give it with the identity)", name, owner.Label)
			}
			val, f.tenanted, f.tenants = tenant, true, append(f.tenants, i)
		} else if c := r.creates["/"+strings.Join(op.Segments[:i], "/")]; c != nil {
			o := r.objects[owner.Label][c]
			if o == nil {
				return f, fmt.Sprintf("{%s} needs an object made by %s, and %s has none", name, c.ID, owner.Label)
			}
			val, f.objSeg, f.obj = o.id, i, o
		} else {
			return f, fmt.Sprintf("nothing the probe makes fills {%s} (name it in the recipe's params)", name)
		}
		// "." and ".." cannot be escaped: a server (or a proxy in front
		// of it) resolves them, and the request leaves its path.
		if val == "." || val == ".." {
			return f, fmt.Sprintf("{%s} would be %q, which is no path segment", name, val)
		}
		f.segs = append(f.segs, url.PathEscape(val))
	}
	f.path = "/" + strings.Join(f.segs, "/")
	return f, ""
}

// expand fills a recipe template for owner, with tenant as {tenant}.
func (r *run) expand(tmpl string, owner *Identity, tenant string) (string, string) {
	out := strings.ReplaceAll(tmpl, "{tenant}", tenant)
	for strings.Contains(out, "{marker}") {
		m := marker(owner.Label)
		r.mark(owner.Label, m)
		out = strings.Replace(out, "{marker}", m, 1)
	}
	for at := 0; ; {
		i := strings.Index(out[at:], "{id:")
		if i < 0 {
			break
		}
		i += at
		j := strings.Index(out[i:], "}")
		if j < 0 {
			return "", "an unclosed {id: in the recipe"
		}
		key := out[i+4 : i+j]
		var o *object
		for c, x := range r.objects[owner.Label] {
			if c.ID == key {
				o = x
			}
		}
		if o == nil {
			return "", fmt.Sprintf("the recipe names {id:%s}, and %s has no such object", key, owner.Label)
		}
		out = out[:i] + o.id + out[i+j+1:]
		// The id is the application's, and no template: an id that
		// spells "{id:...}" must not be expanded again (forever).
		at = i + len(o.id)
	}
	return out, ""
}

// request makes op's body and query for caller, from the recipe or from
// the document's schemas.
func (r *run) request(op *operation, caller *Identity) ([]byte, url.Values, string) {
	rec := r.recipe.operation(op.ID)
	query := url.Values{}
	for name, tmpl := range rec.Query {
		v, why := r.expand(tmpl, caller, caller.Tenant)
		if why != "" {
			return nil, nil, why
		}
		query.Set(name, v)
	}
	g := newGenerator(caller.Label, func(m string) { r.mark(caller.Label, m) })
	for _, p := range op.Params {
		if p.In != "query" || !p.Required || query.Has(p.Name) {
			continue
		}
		v, ok := g.value(p.Schema, 0)
		if !ok {
			return nil, nil, fmt.Sprintf("query parameter %s needs a value the probe cannot make (give it in the recipe)", p.Name)
		}
		query.Set(p.Name, fmt.Sprint(v))
	}
	if rec.Body != nil {
		var v any
		if err := json.Unmarshal(rec.Body, &v); err != nil {
			return nil, nil, "the recipe's body is not JSON"
		}
		v, why := r.expandValue(v, caller)
		if why != "" {
			return nil, nil, why
		}
		b, _ := json.Marshal(v)
		return b, query, ""
	}
	if op.Op.RequestBody == nil || op.Op.RequestBody.Value == nil {
		if op.Method == "POST" || op.Method == "PUT" || op.Method == "PATCH" {
			return []byte("{}"), query, ""
		}
		return nil, query, ""
	}
	rb := op.Op.RequestBody.Value
	var media *openapi3.MediaType
	for ct, m := range rb.Content {
		if mt, _, err := mime.ParseMediaType(ct); err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
			media = m
		}
	}
	if media == nil {
		if !rb.Required {
			return nil, query, ""
		}
		return nil, nil, "its body is not JSON (give it in the recipe)"
	}
	var example any
	if media.Example != nil {
		example = media.Example
	}
	for _, name := range sortedKeys(media.Examples) {
		if ex := media.Examples[name]; example == nil && ex != nil && ex.Value != nil && ex.Value.Value != nil {
			example = ex.Value.Value
		}
	}
	if example != nil {
		if _, ok := g.given(example); !ok {
			return nil, nil, fmt.Sprintf("its body example is more than the %d bytes the probe sends (give the body in the recipe)", maxGenerated)
		}
		b, _ := json.Marshal(example)
		return b, query, ""
	}
	v, ok := g.value(media.Schema, 0)
	if !ok {
		return nil, nil, "its body schema needs a value the probe cannot make (a pattern, deep nesting, a size past the probe's bound; give the body in the recipe)"
	}
	b, _ := json.Marshal(v)
	return b, query, ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// expandValue expands the templates in every string of a recipe body.
func (r *run) expandValue(v any, caller *Identity) (any, string) {
	switch x := v.(type) {
	case string:
		return r.expand(x, caller, caller.Tenant)
	case []any:
		for i := range x {
			var why string
			if x[i], why = r.expandValue(x[i], caller); why != "" {
				return nil, why
			}
		}
	case map[string]any:
		for k := range x {
			var why string
			if x[k], why = r.expandValue(x[k], caller); why != "" {
				return nil, why
			}
		}
	}
	return v, ""
}

// probe tests one operation: for every owner and every other identity,
// and with no credential.
func (r *run) probe(ctx context.Context, op *operation) error {
	for _, owner := range r.ids {
		for _, attacker := range r.ids {
			if owner == attacker {
				continue
			}
			if err := r.across(ctx, op, owner, attacker); err != nil {
				return err
			}
		}
	}
	if op.Public {
		return nil
	}
	return r.nobody(ctx, op, r.ids[0])
}

// across tests op on owner's objects (or owner's tenant) with attacker's
// credential, and lists as attacker for owner's ids.
func (r *run) across(ctx context.Context, op *operation, owner, attacker *Identity) error {
	f, why := r.fill(op, owner, owner.Tenant)
	if why != "" {
		r.skip(op, why)
		return nil
	}
	safe := op.Method == "GET" || op.Method == "HEAD"
	if f.obj == nil && !f.tenanted {
		// Nothing of owner's is named: a list or search as attacker.
		if !safe {
			return nil
		}
		return r.listAs(ctx, op, owner, attacker)
	}
	body, query, why := r.request(op, attacker)
	if why != "" {
		r.skip(op, why)
		return nil
	}
	if f.obj != nil && safe {
		if err := r.controlAs(ctx, op, f, owner, query); err != nil {
			return err
		}
	}
	// With owner's tenant in the path, then (when the path names a
	// tenant) with attacker's own tenant and owner's ids.
	variants := []filled{f}
	if f.tenanted && f.obj != nil && attacker.Tenant != "" {
		if g, why := r.fill(op, owner, attacker.Tenant); why == "" {
			variants = append(variants, g)
		}
	}
	for _, v := range variants {
		if err := r.attack(ctx, op, v, owner, attacker, body, query); err != nil {
			return err
		}
	}
	if f.obj == nil && safe {
		return r.listAs(ctx, op, owner, attacker)
	}
	return nil
}

// controlAs sends owner's own request once: when the owner itself is
// refused, a refusal to the attacker proves nothing, and the report says
// the operation was not really covered.
func (r *run) controlAs(ctx context.Context, op *operation, f filled, owner *Identity, query url.Values) error {
	key := op.ID + "\x00" + owner.Label
	if r.control[key] {
		return nil
	}
	r.control[key] = true
	a, err := r.s.send(ctx, op.Method, f.path, query, nil, owner.Token)
	if err != nil {
		return err
	}
	if a.status/100 != 2 {
		r.skip(op, fmt.Sprintf("%s's own request answered %d, so refusals to others prove little (a recipe can supply what it needs)", owner.Label, a.status))
	}
	return nil
}

// attack sends op on f (owner's object or tenant) as attacker and judges
// the answer.
func (r *run) attack(ctx context.Context, op *operation, f filled, owner, attacker *Identity, body []byte, query url.Values) error {
	a, err := r.s.send(ctx, op.Method, f.path, query, body, attacker.Token)
	if err != nil {
		return err
	}
	r.probed[op.ID] = true
	req := r.exchange(op.Method, f.path, query, body, attacker.Label, a)
	if a.status/100 == 2 {
		rule, what := RuleCrossTenantWrite, "changed or acted on"
		if op.Method == "GET" || op.Method == "HEAD" {
			rule, what = RuleCrossTenantRead, "read"
		}
		target := "tenant " + owner.Label + "'s object " + objectID(f)
		if f.obj == nil {
			target = "tenant " + owner.Label + "'s tenant (" + owner.Tenant + ")"
		}
		r.find(Finding{Rule: rule, Operation: op.ID, Owner: owner.Label, Attacker: attacker.Label, Request: req,
			Why: fmt.Sprintf("tenant %s's credential %s %s: answered %d", attacker.Label, what, target, a.status)})
		return nil
	}
	if m := r.leaked(a.body, owner, false); m != "" {
		r.find(Finding{Rule: RuleCrossTenantRead, Operation: op.ID, Owner: owner.Label, Attacker: attacker.Label, Request: req,
			Why: fmt.Sprintf("the refusal (%d) shows tenant %s's %s", a.status, owner.Label, m)})
		return nil
	}
	return r.oracle(ctx, op, f, owner, attacker.Label, attacker.Token, body, query, a, req)
}

// oracle compares the answer for owner's object (or tenant) with the
// answer for one that does not exist.
func (r *run) oracle(ctx context.Context, op *operation, f filled, owner *Identity, as, token string, body []byte, query url.Values, a answer, req Exchange) error {
	// Without an object in the path, the tenant itself is the object:
	// another tenant's and one that does not exist must look alike.
	realID, what := owner.Tenant, "tenant "+owner.Tenant
	if f.obj != nil {
		realID, what = f.obj.id, "object "+f.obj.id
	}
	absent1 := r.absent(realID)
	b, err := r.s.send(ctx, op.Method, f.with(absent1), query, body, token)
	if err != nil {
		return err
	}
	if same(a, b, realID, absent1) {
		return nil
	}
	// The two differ: make sure the answer for a missing object is
	// stable before calling it an oracle (a request id or time in the
	// body would differ every time).
	absent2 := r.absent(realID)
	c, err := r.s.send(ctx, op.Method, f.with(absent2), query, body, token)
	if err != nil {
		return err
	}
	if !same(b, c, absent1, absent2) && alike(a, b) {
		return nil
	}
	cmp := r.exchange(op.Method, f.with(absent1), query, body, as, b)
	r.find(Finding{Rule: RuleExistenceOracle, Operation: op.ID, Owner: owner.Label, Attacker: as, Request: req, Compared: &cmp,
		Why: fmt.Sprintf("tenant %s's %s got %d and an id that does not exist got %d%s: a caller can tell which ids exist",
			owner.Label, what, a.status, b.status, differsIn(a, b))})
	return nil
}

// absent is an id shaped like id that names nothing the probe knows of:
// no identity's tenant, no object it made.
func (r *run) absent(id string) string {
	for range 50 {
		a := absentID(id)
		known := false
		for _, x := range r.ids {
			known = known || a == x.Tenant || slices.Contains(r.made[x.Label], a)
		}
		if !known {
			return a
		}
	}
	return id + "-absent"
}

// listAs sends a list or search operation as attacker (in attacker's own
// tenant) and looks for owner's ids and markers in the answer.
func (r *run) listAs(ctx context.Context, op *operation, owner, attacker *Identity) error {
	f, why := r.fill(op, attacker, attacker.Tenant)
	if why != "" {
		r.skip(op, why)
		return nil
	}
	_, query, why := r.request(op, attacker)
	if why != "" {
		r.skip(op, why)
		return nil
	}
	queries := []url.Values{query}
	// A search: its text parameters set to one of owner's markers.
	if ms := r.markers[owner.Label]; len(ms) > 0 {
		search := url.Values{}
		for k, v := range query {
			search[k] = v
		}
		for _, p := range op.Params {
			if p.In == "query" && slices.Contains(searchParams, p.Name) {
				search.Set(p.Name, ms[0])
			}
		}
		if len(search) > len(query) || !equalValues(search, query) {
			queries = append(queries, search)
		}
	}
	for _, q := range queries {
		a, err := r.s.send(ctx, op.Method, f.path, q, nil, attacker.Token)
		if err != nil {
			return err
		}
		r.probed[op.ID] = true
		if m := r.leaked(a.body, owner, true); m != "" {
			r.find(Finding{Rule: RuleListLeak, Operation: op.ID, Owner: owner.Label, Attacker: attacker.Label,
				Request: r.exchange(op.Method, f.path, q, nil, attacker.Label, a),
				Why:     fmt.Sprintf("tenant %s's answer (%d) holds tenant %s's %s", attacker.Label, a.status, owner.Label, m)})
		}
	}
	return nil
}

func equalValues(a, b url.Values) bool { return a.Encode() == b.Encode() }

// nobody tests op without a credential.
func (r *run) nobody(ctx context.Context, op *operation, owner *Identity) error {
	f, why := r.fill(op, owner, owner.Tenant)
	if why != "" {
		return nil
	}
	body, query, why := r.request(op, owner)
	if why != "" {
		return nil
	}
	a, err := r.s.send(ctx, op.Method, f.path, query, body, "")
	if err != nil {
		return err
	}
	r.probed[op.ID] = true
	req := r.exchange(op.Method, f.path, query, body, "nobody", a)
	if a.status/100 == 2 {
		r.find(Finding{Rule: RuleUnauthenticated, Operation: op.ID, Owner: owner.Label, Attacker: "nobody", Request: req,
			Why: fmt.Sprintf("a request without any credential answered %d, and the document does not mark the operation public", a.status)})
		return nil
	}
	if m := r.leaked(a.body, owner, f.obj == nil); m != "" {
		r.find(Finding{Rule: RuleListLeak, Operation: op.ID, Owner: owner.Label, Attacker: "nobody", Request: req,
			Why: fmt.Sprintf("the answer to a request without a credential (%d) holds tenant %s's %s", a.status, owner.Label, m)})
		return nil
	}
	if f.obj == nil && !f.tenanted {
		return nil
	}
	return r.oracle(ctx, op, f, owner, "nobody", "", body, query, a, req)
}

// leaked names one of owner's markers (and, with ids, the first of its
// object ids) found in b. Markers are found by what they start with and
// looked up, not searched for one by one: a run makes a marker for every
// text field of every body it sends, and an answer can be a megabyte.
func (r *run) leaked(b []byte, owner *Identity, ids bool) string {
	prefix := []byte(markerPrefix(owner.Label))
	for at := 0; ; {
		i := bytes.Index(b[at:], prefix)
		if i < 0 {
			break
		}
		i += at
		if end := i + len(prefix) + markerHex; end <= len(b) && r.marked[string(b[i:end])] {
			return "text " + string(b[i:end])
		}
		at = i + 1
	}
	if ids {
		for _, id := range r.made[owner.Label] {
			if len(id) >= 6 && bytes.Contains(b, []byte(id)) {
				return "object id " + id
			}
		}
	}
	return ""
}

func (r *run) exchange(method, path string, query url.Values, body []byte, as string, a answer) Exchange {
	u := path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return Exchange{Method: method, URL: u, As: as, RequestBody: r.s.excerpt(body), Status: a.status,
		ContentType: a.contentType, Body: r.s.excerpt(a.body)}
}

func objectID(f filled) string {
	if f.obj == nil {
		return ""
	}
	return f.obj.id
}

// same reports whether two answers are the same once each names its own
// id as {id}: status, media type and body.
func same(a, b answer, idA, idB string) bool {
	return a.status == b.status && mediaType(a.contentType) == mediaType(b.contentType) &&
		bytes.Equal(normalize(a.body, idA), normalize(b.body, idB))
}

// normalize replaces id in body with "{id}" where it stands as a whole
// token (not inside a longer word: a one-letter tenant id must not change
// "not_found").
func normalize(body []byte, id string) []byte {
	if id == "" {
		return body
	}
	body = replaceToken(body, id)
	if esc := url.PathEscape(id); esc != id {
		body = replaceToken(body, esc)
	}
	return body
}

// replaceToken replaces tok in body with "{id}" where it stands as a
// whole token. Each occurrence is judged by the bytes around it in body:
// one inside a word hides no occurrence it overlaps, and one at the
// start of what is left to search is not taken to start the body.
func replaceToken(body []byte, tok string) []byte {
	word := func(c byte) bool {
		return c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	if tok == "" {
		return body
	}
	var out []byte
	done := 0 // body[:done] is in out
	for at := 0; ; {
		i := bytes.Index(body[at:], []byte(tok))
		if i < 0 {
			return append(out, body[done:]...)
		}
		i += at
		end := i + len(tok)
		if (i > 0 && word(body[i-1])) || (end < len(body) && word(body[end])) {
			at = i + 1
			continue
		}
		out = append(append(out, body[done:i]...), "{id}"...)
		done, at = end, end
	}
}

// alike is the coarse comparison for applications whose answers vary
// from one request to the next: status, media type and JSON members.
func alike(a, b answer) bool {
	return a.status == b.status && mediaType(a.contentType) == mediaType(b.contentType) && slices.Equal(members(a.body), members(b.body))
}

func members(body []byte) []string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil
	}
	return sortedKeys(m)
}

func mediaType(ct string) string {
	mt, _, _ := mime.ParseMediaType(ct)
	return mt
}

// differsIn says what besides the status differs between two answers.
func differsIn(a, b answer) string {
	switch {
	case a.status != b.status:
		return ""
	case mediaType(a.contentType) != mediaType(b.contentType):
		return fmt.Sprintf(" (as %s and %s)", mediaType(a.contentType), mediaType(b.contentType))
	}
	return ", with different bodies"
}
