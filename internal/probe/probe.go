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
	"maps"
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
		s.secrets = append(s.secrets, secretForms(id.Token)...)
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
	for op := range r.probed {
		if _, partly := r.skipped[op]; !partly {
			rep.Probed++
		}
	}
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
	owner   *Identity
	create  *operation
	id      string
	markers []string // the markers in it
}

// run is one probe run's state.
type run struct {
	cfg     Config
	doc     *document
	s       *sender
	ids     []*Identity
	recipe  *Recipe
	creates map[string]*operation             // create operations by their collection's shape
	objects map[string]map[*operation]*object // identity label → create → its object
	markers map[string][]string               // identity label → markers in its objects
	marked  map[string]bool                   // every marker, for leaked
	made    map[string][]string               // identity label → ids of its objects
	probed  map[string]bool                   // operations tested across tenants
	skipped map[string]string                 // operation → why it was not (fully) tested
	report  *Report
}

// mark records m, a marker the probe sends as label's: the one place
// markers are kept, whether the generator or a recipe's {marker} made
// them.
// mark records a marker label's requests carry. The set holds it in
// lower case: an application may change the case of what it stores.
func (r *run) mark(label, m string) {
	r.markers[label] = append(r.markers[label], m)
	r.marked[strings.ToLower(m)] = true
}

// unmark forgets label's markers from the from-th on: they went in a
// request that made nothing of label's (a refused create, a request
// without a credential), and an answer quoting them leaks nothing.
func (r *run) unmark(label string, from int) {
	for _, m := range r.markers[label][from:] {
		delete(r.marked, strings.ToLower(m))
	}
	r.markers[label] = r.markers[label][:from]
}

func (r *run) skip(op *operation, why string) {
	if _, ok := r.skipped[op.ID]; !ok {
		r.skipped[op.ID] = why
	}
}

// throttled reports whether any of the answers is a 429, and notes the
// operation as not covered: a throttled answer is neither a refusal nor
// evidence of an oracle.
func (r *run) throttled(op *operation, as ...answer) bool {
	for _, a := range as {
		if a.status == 429 {
			r.skip(op, "answered 429 Too Many Requests; probe at a lower rate")
			return true
		}
	}
	return false
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
	var ops []*operation
	for _, op := range r.doc.ops {
		if why := r.recipe.operation(op.ID).Skip; why != "" {
			r.skipped[op.ID] = "the recipe: " + why
			continue
		}
		if op.Method == "OPTIONS" || op.Method == "TRACE" {
			r.skipped[op.ID] = "OPTIONS and TRACE are not probed"
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
// with "GET /x/{id}"), or one the recipe marks. Paths are compared by
// their shape, so that "POST /projects/{projectId}/tasks" makes the
// tasks of "GET /projects/{project}/tasks/{id}" and "POST /x/" those of
// "GET /x/{id}": a document need not name a parameter alike everywhere.
func (r *run) findCreates(ops []*operation) {
	for _, op := range ops {
		coll := shape(op.Segments)
		if op.Method != "POST" || len(coll) == 0 || strings.HasSuffix(coll, "/{}") {
			continue
		}
		create := r.recipe.operation(op.ID).Create
		for _, other := range ops {
			if strings.HasPrefix(shape(other.Segments)+"/", coll+"/{}/") {
				create = true
			}
		}
		if create {
			r.creates[coll] = op
		}
	}
}

// shape is a path's template with every parameter written {} and no
// trailing slash: how the probe matches a create with the operations on
// what it makes.
func shape(segs []string) string {
	var b strings.Builder
	for _, seg := range segs {
		if seg == "" {
			continue
		}
		if _, ok := paramName(seg); ok {
			seg = "{}"
		}
		b.WriteString("/" + seg)
	}
	return b.String()
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
			// Marked first; should the application refuse that body,
			// as the document's examples have it.
			from := len(r.markers[id.Label])
			body, query, why := r.request(op, id, true)
			if why != "" {
				r.skip(op, "cannot create: "+why)
				continue
			}
			a, err := r.s.send(ctx, op.Method, f.path, query, body, id.Token)
			if err != nil {
				return err
			}
			plainWhy := ""
			if (a.status == 400 || a.status == 422) && r.recipe.operation(op.ID).Body == nil {
				r.unmark(id.Label, from)
				plain, query, why := r.request(op, id, false)
				if why != "" {
					plainWhy = "; the document's own values were not tried: " + why
				} else if !bytes.Equal(plain, body) {
					if a, err = r.s.send(ctx, op.Method, f.path, query, plain, id.Token); err != nil {
						return err
					}
				}
			}
			if a.status/100 != 2 {
				hint := plainWhy
				if hint == "" && (a.status == 400 || a.status == 422) {
					hint = " (a recipe can supply the body)"
				}
				r.skip(op, fmt.Sprintf("cannot create: %s's request answered %d %s%s",
					id.Label, a.status, strings.TrimSpace(r.s.excerpt(a.body)), hint))
				continue
			}
			oid, ok := r.createdID(op, id, a)
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
			r.objects[id.Label][op] = &object{owner: id, create: op, id: oid, markers: slices.Clone(r.markers[id.Label][from:])}
			r.made[id.Label] = append(r.made[id.Label], oid)
			r.report.Objects++
		}
	}
	return nil
}

// createdID finds the new object's id in a create's answer: where the
// recipe points, else "id", else the one member whose name says it is an
// id, at the top or in the answer's envelope ({"data": {...}}), else the
// Location header. A member naming the caller's tenant or the request
// ("tenant_id", "request_id") is never the object's id, and numbers are
// read as written (a 64-bit id does not survive a float).
func (r *run) createdID(op *operation, caller *Identity, a answer) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.UseNumber()
	var v any
	_ = dec.Decode(&v)
	if ptr := r.recipe.operation(op.ID).ID; ptr != "" {
		x, ok := pointer(v, ptr)
		return scalar(x, ok)
	}
	if m, ok := v.(map[string]any); ok {
		if id, ok := idIn(m, caller); ok {
			return id, true
		}
		if id, ok := idIn(envelope(m), caller); ok {
			return id, true
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

// idIn is m's "id", or the one member whose name says it is an id and
// that names neither the caller's tenant nor the request.
func idIn(m map[string]any, caller *Identity) (string, bool) {
	if id, ok := scalar(m["id"], m["id"] != nil); ok {
		return id, true
	}
	var found []string
	for k, x := range m {
		lower := strings.ToLower(k)
		if !(strings.HasSuffix(lower, "_id") || strings.HasSuffix(lower, "-id") || strings.HasSuffix(k, "Id") ||
			strings.HasSuffix(k, "ID") || lower == "uuid") {
			continue
		}
		if strings.HasPrefix(lower, "tenant") || strings.HasPrefix(lower, "request") || strings.HasPrefix(lower, "trace") ||
			strings.HasPrefix(lower, "correlation") {
			continue
		}
		if s, ok := scalar(x, true); ok && s != caller.Tenant {
			found = append(found, s)
		}
	}
	if len(found) == 1 {
		return found[0], true
	}
	return "", false
}

// envelope is the object an answer wraps its object in: its "data", or
// its one member that is an object.
func envelope(m map[string]any) map[string]any {
	if d, ok := m["data"].(map[string]any); ok {
		return d
	}
	var only map[string]any
	for _, x := range m {
		if o, ok := x.(map[string]any); ok {
			if only != nil {
				return nil
			}
			only = o
		}
	}
	return only
}

func scalar(x any, ok bool) (string, bool) {
	switch v := x.(type) {
	case string:
		return v, ok && v != ""
	case json.Number:
		return v.String(), ok
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
			// "{id:POST /x}" alone names one of owner's objects: the
			// object the operation is on, as if the probe had found it.
			if key, ok := strings.CutPrefix(tmpl, "{id:"); ok && strings.HasSuffix(key, "}") && strings.Count(tmpl, "{id:") == 1 {
				for c, o := range r.objects[owner.Label] {
					if c.ID == key[:len(key)-1] {
						f.objSeg, f.obj = i, o
					}
				}
			}
		} else if slices.Contains(tenantParams, name) {
			if tenant == "" {
				return f, fmt.Sprintf("{%s} names a tenant, and %s's tenant is not known (give it with the identity)", name, owner.Label)
			}
			val, f.tenanted, f.tenants = tenant, true, append(f.tenants, i)
		} else if c := r.creates[shape(op.Segments[:i])]; c != nil {
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
// {id:…} goes first: its key is an operation's path, which may itself
// hold {tenant} and other parameters, so its braces are counted.
func (r *run) expand(tmpl string, owner *Identity, tenant string) (string, string) {
	// Only the template's own text is expanded: an id put in is the
	// application's, and one that spells "{id:…}" or "{marker}" must not
	// be expanded again (forever).
	literal := func(t string) string {
		t = strings.ReplaceAll(t, "{tenant}", tenant)
		for strings.Contains(t, "{marker}") {
			m := marker(owner.Label)
			r.mark(owner.Label, m)
			t = strings.Replace(t, "{marker}", m, 1)
		}
		return t
	}
	var out strings.Builder
	rest := tmpl
	for {
		i := strings.Index(rest, "{id:")
		if i < 0 {
			break
		}
		depth, j := 0, -1
		for k := i; k < len(rest) && j < 0; k++ {
			switch rest[k] {
			case '{':
				depth++
			case '}':
				if depth--; depth == 0 {
					j = k
				}
			}
		}
		if j < 0 {
			return "", "an unclosed {id: in the recipe"
		}
		key := rest[i+4 : j]
		var o *object
		for c, x := range r.objects[owner.Label] {
			if c.ID == key {
				o = x
			}
		}
		if o == nil {
			return "", fmt.Sprintf("the recipe names {id:%s}, and %s has no such object", key, owner.Label)
		}
		out.WriteString(literal(rest[:i]))
		out.WriteString(o.id)
		rest = rest[j+1:]
	}
	out.WriteString(literal(rest))
	return out.String(), ""
}

// request makes op's body and query for caller, from the recipe or from
// the document's schemas; marked, with a marker in every plain string
// (see generator.marked) rather than the document's examples.
func (r *run) request(op *operation, caller *Identity, marked bool) ([]byte, url.Values, string) {
	rec := r.recipe.operation(op.ID)
	query := url.Values{}
	for name, tmpl := range rec.Query {
		v, why := r.expand(tmpl, caller, caller.Tenant)
		if why != "" {
			return nil, nil, why
		}
		query.Set(name, v)
	}
	g := newGenerator(caller.Label, func(m string) { r.mark(caller.Label, m) }, marked)
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
	// Marked, the schema's strings carry markers instead of the
	// example's text (see generator.marked); without a schema, or
	// unmarked, the example is the body.
	var example any
	if !marked || media.Schema == nil {
		if media.Example != nil {
			example = media.Example
		}
		for _, name := range slices.Sorted(maps.Keys(media.Examples)) {
			if ex := media.Examples[name]; example == nil && ex != nil && ex.Value != nil && ex.Value.Value != nil {
				example = ex.Value.Value
			}
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
// and with no credential. Each owner's own request is the control: a read
// before the others', a write or deletion after them (it changes or
// removes the object they aim at).
func (r *run) probe(ctx context.Context, op *operation) error {
	safe := op.Method == "GET" || op.Method == "HEAD"
	if safe {
		for _, owner := range r.ids {
			if err := r.controlAs(ctx, op, owner); err != nil {
				return err
			}
		}
	}
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
	if !op.Public {
		if err := r.nobody(ctx, op, r.ids[0]); err != nil {
			return err
		}
	}
	if !safe {
		for _, owner := range r.ids {
			if err := r.controlAs(ctx, op, owner); err != nil {
				return err
			}
		}
	}
	if !r.probed[op.ID] {
		r.skip(op, "nothing to send: it names no tenant or object of one, and the document marks it public")
	}
	return nil
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
	body, query, why := r.request(op, attacker, false)
	if why != "" {
		r.skip(op, why)
		return nil
	}
	// With owner's tenant and objects in the path; then (when the path
	// names a tenant) with attacker's own tenant and owner's ids; then
	// (when it names a tenant or a parent) with attacker's own tenant and
	// parents around owner's object: an application that checks the
	// parent it is given but not that the object is in it lets
	// "/projects/{mine}/tasks/{yours}" through.
	variants := []filled{f}
	if f.tenanted && f.obj != nil && attacker.Tenant != "" {
		if g, why := r.fill(op, owner, attacker.Tenant); why == "" {
			variants = append(variants, g)
		}
	}
	if f.obj != nil {
		if g, why := r.fill(op, attacker, attacker.Tenant); why == "" && g.objSeg == f.objSeg {
			g.segs[g.objSeg], g.obj = f.segs[f.objSeg], f.obj
			g.path = "/" + strings.Join(g.segs, "/")
			if !slices.ContainsFunc(variants, func(v filled) bool { return v.path == g.path }) {
				variants = append(variants, g)
			}
		}
	}
	for i, v := range variants {
		if err := r.attack(ctx, op, v, owner, attacker, body, query, i > 0); err != nil {
			return err
		}
	}
	// A list or search under a tenant or a parent object
	// ("/projects/{p}/tasks") is also sent in attacker's own, where owner's
	// objects must not show.
	if _, item := paramName(op.Segments[len(op.Segments)-1]); safe && (f.obj == nil || !item) {
		return r.listAs(ctx, op, owner, attacker)
	}
	return nil
}

// controlAs sends owner's own request: when the owner itself is
// refused (a body the application will not take, a method it does not
// have, a scope the credential lacks), a refusal to another tenant proves
// nothing, and the report says the operation was not really covered.
// Writes are only sent on objects the probe made: the owner's own write
// on its tenant ("DELETE /tenants/{tenant}") would change or end a real
// tenant. A list has its control in listAs.
func (r *run) controlAs(ctx context.Context, op *operation, owner *Identity) error {
	f, why := r.fill(op, owner, owner.Tenant)
	safe := op.Method == "GET" || op.Method == "HEAD"
	if why != "" || (f.obj == nil && !(safe && f.tenanted)) {
		return nil
	}
	body, query, why := r.request(op, owner, false)
	if why != "" {
		return nil
	}
	a, err := r.s.send(ctx, op.Method, f.path, query, body, owner.Token)
	if err != nil || r.throttled(op, a) {
		return err
	}
	if a.status/100 == 2 {
		if r.creates[shape(op.Segments)] == op {
			r.report.Objects++
		}
		return nil
	}
	if !slices.ContainsFunc(r.report.Findings, func(g Finding) bool { return g.Operation == op.ID }) {
		r.skip(op, fmt.Sprintf("%s's own request answered %d, so refusals to others prove little (a recipe can supply what it needs)", owner.Label, a.status))
	}
	return nil
}

// attack sends op on f (owner's object or tenant) as attacker and judges
// the answer.
//
// mine says the path is in attacker's own tenant or parents. There an id
// that is a number, or that one of attacker's own objects also has, may
// name attacker's own object (issues numbered 1, 2, … in each project),
// so a success is a finding only when the answer shows owner's text.
func (r *run) attack(ctx context.Context, op *operation, f filled, owner, attacker *Identity, body []byte, query url.Values, mine bool) error {
	a, err := r.s.send(ctx, op.Method, f.path, query, body, attacker.Token)
	if err != nil || r.throttled(op, a) {
		return err
	}
	r.probed[op.ID] = true
	req := r.exchange(op.Method, f.path, query, body, attacker.Label, a)
	if a.status/100 == 2 && mine && f.obj != nil && r.leaked(a.body, owner, false) == "" &&
		(isDigits(f.obj.id) || slices.Contains(r.made[attacker.Label], f.obj.id)) {
		r.skip(op, fmt.Sprintf("%s's id %s in %s's own tenant or parent answered %d, which may be %s's own object of that number; "+
			"the answer does not show %s's text, so it proves nothing", owner.Label, f.obj.id, attacker.Label, a.status, attacker.Label, owner.Label))
		return nil
	}
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
	// What the request itself carried (an object named by owner's text,
	// as a group by its name) may be quoted back: it is no leak.
	sent := f.path + "?" + query.Encode() + string(body)
	if p, err := url.PathUnescape(f.path); err == nil {
		sent += p
	}
	if m := r.leakedBeyond(a.body, owner, false, sent); m != "" {
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
	if err != nil || r.throttled(op, b) {
		return err
	}
	if same(a, b, realID, absent1) {
		return nil
	}
	// The two differ. A request id or a clock in the answers would make
	// any two differ, so ask again for another missing id and then for
	// owner's: whatever a clock changes between the first two answers
	// also tells the first from the last, so what varies from one answer
	// to the next shows, and only the rest is compared.
	absent2 := r.absent(realID)
	c, err := r.s.send(ctx, op.Method, f.with(absent2), query, body, token)
	if err != nil || r.throttled(op, c) {
		return err
	}
	a2, err := r.s.send(ctx, op.Method, f.path, query, body, token)
	if err != nil || r.throttled(op, a2) {
		return err
	}
	if first, then := a.status, a2.status; first != then || b.status != c.status {
		if first == then {
			first, then = b.status, c.status
		}
		r.skip(op, fmt.Sprintf("the same request was answered %d and then %d, so its answers cannot be compared", first, then))
		return nil
	}
	if alike(a, a2, b, c, realID, absent1, absent2) {
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
	_, query, why := r.request(op, attacker, false)
	if why != "" {
		r.skip(op, why)
		return nil
	}
	// The list, then searches: each text parameter set to a marker of
	// owner's.
	type search struct {
		q           url.Values
		param, term string
	}
	searches := []search{{q: query}}
	for _, m := range r.searchMarkers(op, owner) {
		for _, p := range op.Params {
			if p.In == "query" && slices.Contains(searchParams, p.Name) {
				searches = append(searches, search{q: withParam(query, p.Name, m), param: p.Name, term: m})
			}
		}
	}
	for _, x := range searches {
		a, err := r.s.send(ctx, op.Method, f.path, x.q, nil, attacker.Token)
		if err != nil {
			return err
		}
		if r.throttled(op, a) {
			continue
		}
		if a.status/100 != 2 && x.term == "" {
			r.skip(op, fmt.Sprintf("%s's own list answered %d, so it shows nothing either way", attacker.Label, a.status))
		}
		r.probed[op.ID] = true
		// The term searched for is no evidence by itself: an answer may
		// quote its search back ({"q": "probe-a-…", "items": []}).
		body := a.body
		if x.term != "" {
			body = bytes.ReplaceAll(bytes.ReplaceAll(body, []byte(x.term), nil), []byte(strings.ToUpper(x.term)), nil)
		}
		m := r.leaked(body, owner, true)
		if m == "" && x.term != "" && len(body) < len(a.body) {
			// Only the term: the same search for a marker nobody has
			// tells a leak (the answer holds more) from a quote.
			decoy := marker(owner.Label)
			b, err := r.s.send(ctx, op.Method, f.path, withParam(x.q, x.param, decoy), nil, attacker.Token)
			if err != nil || r.throttled(op, b) {
				return err
			}
			if !quoted(a, b, x.term, decoy) {
				m = "text " + x.term
			}
		}
		if m != "" {
			r.find(Finding{Rule: RuleListLeak, Operation: op.ID, Owner: owner.Label, Attacker: attacker.Label,
				Request: r.exchange(op.Method, f.path, x.q, nil, attacker.Label, a),
				Why:     fmt.Sprintf("tenant %s's answer (%d) holds tenant %s's %s", attacker.Label, a.status, owner.Label, m)})
		}
	}
	return nil
}

// withParam is query with name set to v.
func withParam(query url.Values, name, v string) url.Values {
	out := url.Values{}
	for k, vs := range query {
		out[k] = vs
	}
	out.Set(name, v)
	return out
}

// quoted reports whether a search's answer (a, for term) is the answer
// for a term nothing holds (b, for decoy) with the term quoted in it:
// the same status and, for JSON, values at the same places (which may
// differ: a request id, the term); otherwise the same bytes, each term
// written {id}.
func quoted(a, b answer, term, decoy string) bool {
	if a.status != b.status {
		return false
	}
	la, ok1 := leaves(a.body, term)
	lb, ok2 := leaves(b.body, decoy)
	if !ok1 || !ok2 {
		return same(a, b, term, decoy)
	}
	if len(la) != len(lb) {
		return false
	}
	for k := range la {
		if _, ok := lb[k]; !ok {
			return false
		}
	}
	return true
}

// listed are owner's objects that op lists: those its create made on
// op's own path ("POST /x" for "GET /x").
func (r *run) listed(op *operation, owner *Identity) []*object {
	var out []*object
	for c, o := range r.objects[owner.Label] {
		if shape(c.Segments) == shape(op.Segments) {
			out = append(out, o)
		}
	}
	return out
}

// searchMarkers are the markers a search as another tenant looks for:
// one of each object op lists, or, for a search of something the probe
// did not make ("GET /search"), one of each of owner's objects. A
// marker of the wrong kind of object finds nothing even where the
// search leaks.
func (r *run) searchMarkers(op *operation, owner *Identity) []string {
	objs := r.listed(op, owner)
	if len(objs) == 0 {
		for _, o := range r.objects[owner.Label] {
			objs = append(objs, o)
		}
	}
	slices.SortFunc(objs, func(a, b *object) int { return strings.Compare(a.create.ID, b.create.ID) })
	var out []string
	for _, o := range objs {
		if len(o.markers) > 0 {
			out = append(out, o.markers[0])
		}
	}
	return out
}

// nobody tests op without a credential.
func (r *run) nobody(ctx context.Context, op *operation, owner *Identity) error {
	f, why := r.fill(op, owner, owner.Tenant)
	if why != "" {
		return nil
	}
	// The request is made as owner's (a recipe's {id:…} are owner's),
	// but its markers are not put into any of owner's objects: an answer
	// quoting them back ("you sent …") leaks nothing of owner's.
	kept := len(r.markers[owner.Label])
	body, query, why := r.request(op, owner, false)
	r.unmark(owner.Label, kept)
	if why != "" {
		return nil
	}
	a, err := r.s.send(ctx, op.Method, f.path, query, body, "")
	if err != nil || r.throttled(op, a) {
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
	return r.leakedBeyond(b, owner, ids, "")
}

// leakedBeyond is leaked, leaving out the markers and ids that sent (the
// request's own path, query and body) holds.
func (r *run) leakedBeyond(b []byte, owner *Identity, ids bool, sent string) string {
	sentLower := strings.ToLower(sent)
	// An application may change the case of what it stores
	// ("Probe-A-…"); the set holds markers in lower case.
	lower := bytes.ToLower(b)
	prefix := []byte(strings.ToLower(markerPrefix(owner.Label)))
	for at := 0; ; {
		i := bytes.Index(lower[at:], prefix)
		if i < 0 {
			break
		}
		i += at
		// The whole marker, or one cut to a field's maxLength.
		for end := min(i+len(prefix)+markerHex, len(lower)); end >= i+len(prefix)+minMarkerHex; end-- {
			if r.marked[string(lower[i:end])] {
				if strings.Contains(sentLower, string(lower[i:end])) {
					break
				}
				return "text " + string(b[i:end])
			}
		}
		at = i + 1
	}
	if ids {
		for _, id := range r.made[owner.Label] {
			if len(id) >= 6 && bytes.Contains(b, []byte(id)) && !strings.Contains(sent, id) {
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

// alike compares the answer for owner's object (a, then a2) with the
// answer for a missing one (b, then c, each for its own id) once what
// varies between two answers to the same question is set aside: status
// and media type, then each JSON value, by its place in the body, that
// neither pair shows changing. A value equal to its own answer's id
// counts as {id}. Bodies that are not JSON and vary are compared by
// status and media type alone.
func alike(a, a2, b, c answer, idA, idB, idC string) bool {
	if a.status != b.status || mediaType(a.contentType) != mediaType(b.contentType) {
		return false
	}
	la, ok1 := leaves(a.body, idA)
	la2, ok2 := leaves(a2.body, idA)
	lb, ok3 := leaves(b.body, idB)
	lc, ok4 := leaves(c.body, idC)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return !same(a, a2, idA, idA) || !same(b, c, idB, idC)
	}
	for k := range la {
		if _, ok := lb[k]; !ok {
			lb[k] = leaf{} // every place either answer has
		}
	}
	for k, vb := range lb {
		va := la[k]
		if va.raw == vb.raw || va.norm == vb.norm {
			continue
		}
		if va.raw != la2[k].raw || vb.norm != lc[k].norm {
			continue // it varies: a request id, a time
		}
		return false
	}
	return true
}

// leaf is one JSON value of an answer: as sent, and with the answer's
// id written {id}.
type leaf struct{ raw, norm string }

// leaves flattens a JSON body into its scalar values by JSON pointer;
// ok is false for a body that is not JSON.
func leaves(body []byte, id string) (map[string]leaf, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil, false
	}
	out := map[string]leaf{}
	var walk func(string, any)
	walk = func(at string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, y := range x {
				walk(at+"/"+k, y)
			}
		case []any:
			for i, y := range x {
				walk(fmt.Sprintf("%s/%d", at, i), y)
			}
		default:
			raw, _ := json.Marshal(x)
			out[at] = leaf{raw: string(raw), norm: string(normalize(raw, id))}
		}
	}
	walk("", v)
	return out, true
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
