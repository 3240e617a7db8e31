package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
)

// defects of the toy application: each a classic multi-tenant bug, or
// (the last group) a trait of a sound application that a careless prober
// takes for one.
type defects struct {
	readAny   bool // GET /items/{id} does not check the tenant
	listAll   bool // GET /items lists every tenant's items
	tellsOwn  bool // DELETE /items/{id} answers 403 for another tenant's item
	noAuth    bool // GET /items/{id} needs no credential
	writeAny  bool // PATCH /items/{id} does not check the tenant
	echoes    bool // a refusal shows the item
	tenantURL bool // /tenants/{tenant}/notes ignores whose tenant the path names
	putAny    bool // PUT /items/{id} does not check the tenant (GET does)
	taskAny   bool // GET /projects/{projectId}/tasks/{taskId} checks the project, not that the task is in it
	searchAll bool // GET /items?q= and GET /projects/{project}/tasks?q= search every tenant's (the plain lists do not)
	sayswhose bool // DELETE /items/{id} says in its 404 that the item is another tenant's

	volatile  bool // every answer carries a request id
	clock     bool // every answer carries the time, to the "second" (one tick every three answers)
	intIDs    bool // ids are 1, 2, 3…, and an id beyond 32 bits is refused as malformed (400)
	envelope  bool // a create answers 200 with its object under "data" and a request id beside it
	validates bool // PUT /items/{id} refuses a body without tags (422) before it looks the item up
	throttle  bool // one answer in seven is 429 with a Retry-After too long to wait
	shouts    bool // titles are kept in capitals
	picky     bool // a title with a digit in it is refused (422): only the document's example will do
	quotes    bool // a 401 quotes the request's body back
	echoesQ   bool // a list quotes its search back ({"q": …})
	numbered  bool // tasks are numbered 1, 2, … within their project
}

// toy is a small multi-tenant application over loopback HTTP: bearer
// tokens "tok-a" and "tok-b" are tenants a and b. It has items, and
// projects with tasks in them.
type toy struct {
	d       defects
	mu      sync.Mutex
	objects map[string]map[string]item // kind → id → object
	made    map[string]int             // kind → objects made, for sequential ids
	seq     int
	answers int
}

type item struct {
	ID, Tenant, Title, Project string
}

const toyDoc = `{
 "openapi": "3.0.3",
 "info": {"title": "toy", "version": "1"},
 "security": [{"bearer": []}],
 "paths": {
  "/healthz": {"get": {"security": [], "responses": {"200": {"description": "ok"}}}},
  "/items": {
   "post": {"requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}}},
            "responses": {"201": {"description": "created"}}},
   "get": {"parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}}], "responses": {"200": {"description": "list"}}}
  },
  "/items/{id}": {
   "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
   "get": {"responses": {"200": {"description": "item"}}},
   "head": {"responses": {"200": {"description": "item"}}},
   "put": {"requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}}}, "responses": {"200": {"description": "item"}}},
   "patch": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}}}, "responses": {"200": {"description": "item"}}},
   "delete": {"responses": {"204": {"description": "gone"}}}
  },
  "/tenants/{tenant}/settings": {
   "parameters": [{"name": "tenant", "in": "path", "required": true, "schema": {"type": "string"}}],
   "get": {"responses": {"200": {"description": "settings"}}}
  },
  "/projects": {
   "post": {"requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}}},
            "responses": {"201": {"description": "created"}}}
  },
  "/projects/{projectId}": {
   "parameters": [{"name": "projectId", "in": "path", "required": true, "schema": {"type": "string"}}],
   "get": {"responses": {"200": {"description": "project"}}},
   "patch": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}}}, "responses": {"200": {"description": "documented, never built: 405"}}}
  },
  "/projects/{project}/tasks": {
   "parameters": [{"name": "project", "in": "path", "required": true, "schema": {"type": "string"}}],
   "post": {"requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}}},
            "responses": {"201": {"description": "created"}}},
   "get": {"parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}}], "responses": {"200": {"description": "the project's tasks"}}}
  },
  "/projects/{projectId}/tasks/{taskId}": {
   "parameters": [{"name": "projectId", "in": "path", "required": true, "schema": {"type": "string"}},
                  {"name": "taskId", "in": "path", "required": true, "schema": {"type": "string"}}],
   "get": {"responses": {"200": {"description": "task"}}}
  }
 },
 "components": {
  "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
  "schemas": {"NewItem": {"type": "object", "required": ["title"], "properties": {
   "title": {"type": "string", "maxLength": 200, "example": "Buy milk"}, "tags": {"type": "array", "items": {"type": "string"}}}}}
 }
}`

func (t *toy) tenant(r *http.Request) string {
	switch r.Header.Get("Authorization") {
	case "Bearer tok-a":
		return "a"
	case "Bearer tok-b":
		return "b"
	}
	return ""
}

// newID is a new object's id: random and prefixed, or the next integer.
func (t *toy) newID(kind string) string {
	if t.d.intIDs {
		t.made[kind]++
		return fmt.Sprint(t.made[kind])
	}
	return ids.New(kind[:3])
}

func (t *toy) handler() http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, status int, v any) {
		t.answers++
		w.Header().Set("Content-Type", "application/json")
		if m, ok := v.(map[string]any); ok {
			if t.d.volatile {
				t.seq++
				m["request_id"] = fmt.Sprint("req-", t.seq)
			}
			if t.d.clock {
				m["at"] = fmt.Sprintf("2026-01-02T03:04:%02dZ", t.answers/3%60)
			}
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	notFound := func(w http.ResponseWriter) { reply(w, 404, map[string]any{"code": "not_found"}) }
	auth := func(h func(w http.ResponseWriter, r *http.Request, tn string), open bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			t.mu.Lock()
			defer t.mu.Unlock()
			if t.d.throttle && t.answers%7 == 6 {
				t.answers++
				w.Header().Set("Retry-After", "120")
				w.WriteHeader(429)
				return
			}
			if t.d.intIDs {
				for _, name := range []string{"id", "projectId", "project", "taskId"} {
					if v := r.PathValue(name); v != "" {
						if _, err := strconv.ParseInt(v, 10, 32); err != nil {
							reply(w, 400, map[string]any{"code": "malformed_id"})
							return
						}
					}
				}
			}
			tn := t.tenant(r)
			if tn == "" && !open {
				body, _ := io.ReadAll(r.Body)
				if t.d.quotes {
					reply(w, 401, map[string]any{"code": "unauthenticated", "you_sent": string(body)})
					return
				}
				reply(w, 401, map[string]any{"code": "unauthenticated"})
				return
			}
			h(w, r, tn)
		}
	}
	create := func(kind string) http.HandlerFunc {
		return auth(func(w http.ResponseWriter, r *http.Request, tn string) {
			var in struct{ Title string }
			if json.NewDecoder(r.Body).Decode(&in) != nil || in.Title == "" {
				reply(w, 400, map[string]any{"code": "bad"})
				return
			}
			if t.d.picky && strings.ContainsAny(in.Title, "0123456789") {
				reply(w, 422, map[string]any{"code": "bad_title"})
				return
			}
			if t.d.shouts {
				in.Title = strings.ToUpper(in.Title)
			}
			it := item{ID: t.newID(kind), Tenant: tn, Title: in.Title}
			if p := r.PathValue("project"); p != "" {
				if pr, ok := t.objects["projects"][p]; !ok || pr.Tenant != tn {
					notFound(w)
					return
				}
				it.Project = p
			}
			key := it.ID
			if kind == "tasks" && t.d.numbered {
				t.made[it.Project]++
				it.ID = fmt.Sprint(t.made[it.Project])
				key = it.Project + "/" + it.ID
			}
			t.objects[kind][key] = it
			if t.d.envelope {
				reply(w, 200, map[string]any{"data": map[string]any{"id": it.ID, "title": it.Title}, "request_id": ids.New("req")})
				return
			}
			reply(w, 201, map[string]any{"id": it.ID, "title": it.Title})
		}, false)
	}
	mux.HandleFunc("GET /healthz", auth(func(w http.ResponseWriter, r *http.Request, _ string) { reply(w, 200, map[string]any{}) }, true))
	mux.HandleFunc("POST /items", create("items"))
	mux.HandleFunc("GET /items", auth(func(w http.ResponseWriter, r *http.Request, tn string) {
		q := r.URL.Query().Get("q")
		out := []any{}
		for _, it := range t.objects["items"] {
			if (it.Tenant == tn || t.d.listAll || (t.d.searchAll && q != "")) && strings.Contains(it.Title, q) {
				out = append(out, map[string]any{"id": it.ID, "title": it.Title})
			}
		}
		if t.d.echoesQ {
			reply(w, 200, map[string]any{"items": out, "q": q})
			return
		}
		reply(w, 200, map[string]any{"items": out})
	}, false))
	mux.HandleFunc("GET /items/{id}", auth(func(w http.ResponseWriter, r *http.Request, tn string) {
		it, ok := t.objects["items"][r.PathValue("id")]
		if !ok || (it.Tenant != tn && !t.d.readAny && !(t.d.noAuth && tn == "")) {
			if ok && t.d.echoes {
				reply(w, 404, map[string]any{"code": "not_found", "title": it.Title})
				return
			}
			notFound(w)
			return
		}
		reply(w, 200, map[string]any{"id": it.ID, "title": it.Title})
	}, t.d.noAuth))
	write := func(anyone bool) http.HandlerFunc {
		return auth(func(w http.ResponseWriter, r *http.Request, tn string) {
			var in struct{ Tags []string }
			if json.NewDecoder(r.Body).Decode(&in); t.d.validates && r.Method == "PUT" && in.Tags == nil {
				reply(w, 422, map[string]any{"code": "tags_required"})
				return
			}
			it, ok := t.objects["items"][r.PathValue("id")]
			if !ok || (it.Tenant != tn && !anyone) {
				notFound(w)
				return
			}
			reply(w, 200, map[string]any{"id": it.ID})
		}, false)
	}
	mux.HandleFunc("PUT /items/{id}", write(t.d.putAny))
	mux.HandleFunc("PATCH /items/{id}", write(t.d.writeAny))
	mux.HandleFunc("DELETE /items/{id}", auth(func(w http.ResponseWriter, r *http.Request, tn string) {
		it, ok := t.objects["items"][r.PathValue("id")]
		switch {
		case ok && it.Tenant != tn && t.d.tellsOwn:
			reply(w, 403, map[string]any{"code": "not_yours"})
		case ok && it.Tenant != tn && t.d.sayswhose:
			reply(w, 404, map[string]any{"code": "not_found", "detail": "the item belongs to another tenant"})
		case t.d.sayswhose && (!ok || it.Tenant != tn):
			reply(w, 404, map[string]any{"code": "not_found", "detail": "no such item"})
		case !ok || it.Tenant != tn:
			notFound(w)
		default:
			delete(t.objects["items"], it.ID)
			w.WriteHeader(204)
		}
	}, false))
	mux.HandleFunc("GET /tenants/{tenant}/settings", auth(func(w http.ResponseWriter, r *http.Request, tn string) {
		if r.PathValue("tenant") != tn && !t.d.tenantURL {
			notFound(w)
			return
		}
		reply(w, 200, map[string]any{"tenant": r.PathValue("tenant")})
	}, false))
	mux.HandleFunc("POST /projects", create("projects"))
	mux.HandleFunc("GET /projects/{projectId}", auth(func(w http.ResponseWriter, r *http.Request, tn string) {
		p, ok := t.objects["projects"][r.PathValue("projectId")]
		if !ok || p.Tenant != tn {
			notFound(w)
			return
		}
		reply(w, 200, map[string]any{"id": p.ID, "title": p.Title})
	}, false))
	mux.HandleFunc("POST /projects/{project}/tasks", create("tasks"))
	mux.HandleFunc("GET /projects/{project}/tasks", auth(func(w http.ResponseWriter, r *http.Request, tn string) {
		if p, ok := t.objects["projects"][r.PathValue("project")]; !ok || p.Tenant != tn {
			notFound(w)
			return
		}
		out := []any{}
		q := r.URL.Query().Get("q")
		for _, it := range t.objects["tasks"] {
			if (it.Project == r.PathValue("project") || (t.d.searchAll && q != "")) && strings.Contains(it.Title, q) {
				out = append(out, map[string]any{"id": it.ID, "title": it.Title})
			}
		}
		if t.d.echoesQ {
			reply(w, 200, map[string]any{"tasks": out, "q": q})
			return
		}
		reply(w, 200, map[string]any{"tasks": out})
	}, false))
	mux.HandleFunc("GET /projects/{projectId}/tasks/{taskId}", auth(func(w http.ResponseWriter, r *http.Request, tn string) {
		p, ok := t.objects["projects"][r.PathValue("projectId")]
		key := r.PathValue("taskId")
		if t.d.numbered {
			key = r.PathValue("projectId") + "/" + key
		}
		task, found := t.objects["tasks"][key]
		if !ok || p.Tenant != tn || !found || (task.Project != p.ID && !t.d.taskAny) {
			notFound(w)
			return
		}
		reply(w, 200, map[string]any{"id": task.ID, "title": task.Title})
	}, false))
	return mux
}

// serveToy starts the toy application and returns its URL.
func serveToy(t *testing.T, d defects) string {
	t.Helper()
	app := &toy{d: d, objects: map[string]map[string]item{"items": {}, "projects": {}, "tasks": {}}, made: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: app.handler()}
	runtest.Go(t, func(ctx context.Context) error {
		go func() { <-ctx.Done(); srv.Close() }()
		if err := srv.Serve(ln); err != http.ErrServerClosed {
			return err
		}
		return nil
	})
	return "http://" + ln.Addr().String()
}

func toyIdentities() []Identity {
	return []Identity{{Label: "a", Tenant: "a", Token: "tok-a"}, {Label: "b", Tenant: "b", Token: "tok-b"}}
}

func probeToy(t *testing.T, d defects) *Report {
	t.Helper()
	rep, err := Run(t.Context(), Config{Document: []byte(toyDoc), DocumentName: "toy.json", BaseURL: serveToy(t, d), Identities: toyIdentities()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Incomplete != "" {
		t.Fatalf("incomplete: %s", rep.Incomplete)
	}
	return rep
}

func textOf(r *Report) string {
	var b strings.Builder
	r.WriteText(&b)
	return b.String()
}

// rulesFound are the report's findings as "rule METHOD /path" strings.
func rulesFound(r *Report) map[string]bool {
	out := map[string]bool{}
	for _, f := range r.Findings {
		out[f.Rule+" "+f.Operation] = true
	}
	return out
}

func TestCleanToyHasNoFindings(t *testing.T) {
	for name, d := range map[string]defects{
		"plain":                      {},
		"request ids":                {volatile: true},
		"a coarse clock":             {clock: true},
		"throttled":                  {throttle: true},
		"integer ids":                {intIDs: true},
		"an envelope":                {envelope: true},
		"capitals":                   {shouts: true},
		"picky":                      {picky: true},
		"search quoted":              {echoesQ: true},
		"search quoted, request ids": {echoesQ: true, volatile: true},
		"numbered tasks":             {numbered: true},
	} {
		t.Run(name, func(t *testing.T) {
			rep := probeToy(t, d)
			if len(rep.Findings) != 0 {
				t.Errorf("findings on the clean application:\n%s", textOf(rep))
			}
			if rep.Probed+len(rep.Skipped) != rep.Operations {
				t.Errorf("%d operations covered and %d not, of %d:\n%s", rep.Probed, len(rep.Skipped), rep.Operations, textOf(rep))
			}
			if d.throttle {
				return
			}
			// Two of each of items, projects and tasks, and a task more
			// for each tenant's own control of the nested create.
			if rep.Probed < 8 || rep.Objects != 8 {
				t.Errorf("probed %d operations, made %d objects:\n%s", rep.Probed, rep.Objects, textOf(rep))
			}
		})
	}
}

func TestEachDefectIsFound(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    defects
		want string
	}{
		{"read", defects{readAny: true}, RuleCrossTenantRead + " GET /items/{id}"},
		{"read by HEAD", defects{readAny: true}, RuleCrossTenantRead + " HEAD /items/{id}"},
		{"list", defects{listAll: true}, RuleListLeak + " GET /items"},
		{"oracle", defects{tellsOwn: true}, RuleExistenceOracle + " DELETE /items/{id}"},
		{"oracle with request ids", defects{tellsOwn: true, volatile: true}, RuleExistenceOracle + " DELETE /items/{id}"},
		{"no auth", defects{noAuth: true}, RuleUnauthenticated + " GET /items/{id}"},
		{"write", defects{writeAny: true}, RuleCrossTenantWrite + " PATCH /items/{id}"},
		{"echo", defects{echoes: true}, RuleCrossTenantRead + " GET /items/{id}"},
		{"tenant in the path", defects{tenantURL: true}, RuleCrossTenantRead + " GET /tenants/{tenant}/settings"},
		{"write by PUT only", defects{putAny: true}, RuleCrossTenantWrite + " PUT /items/{id}"},
		{"oracle in a detail with request ids", defects{sayswhose: true, volatile: true}, RuleExistenceOracle + " DELETE /items/{id}"},
		{"oracle in a detail with a clock", defects{sayswhose: true, clock: true}, RuleExistenceOracle + " DELETE /items/{id}"},
		{"read with integer ids", defects{readAny: true, intIDs: true}, RuleCrossTenantRead + " GET /items/{id}"},
		{"oracle with integer ids", defects{tellsOwn: true, intIDs: true}, RuleExistenceOracle + " DELETE /items/{id}"},
		{"list with integer ids", defects{listAll: true, intIDs: true}, RuleListLeak + " GET /items"},
		{"list in capitals", defects{listAll: true, shouts: true}, RuleListLeak + " GET /items"},
		{"search", defects{searchAll: true}, RuleListLeak + " GET /items"},
		{"search that quotes itself", defects{searchAll: true, echoesQ: true, volatile: true}, RuleListLeak + " GET /items"},
		{"search of tasks", defects{searchAll: true}, RuleListLeak + " GET /projects/{project}/tasks"},
		{"read with ids in an envelope", defects{readAny: true, envelope: true}, RuleCrossTenantRead + " GET /items/{id}"},
		{"a task through one's own project", defects{taskAny: true}, RuleCrossTenantRead + " GET /projects/{projectId}/tasks/{taskId}"},
		{"a task through one's own project, integer ids", defects{taskAny: true, intIDs: true}, RuleCrossTenantRead + " GET /projects/{projectId}/tasks/{taskId}"},
		{"oracle in a detail", defects{sayswhose: true}, RuleExistenceOracle + " DELETE /items/{id}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := probeToy(t, tc.d)
			got := rulesFound(rep)
			if !got[tc.want] {
				t.Fatalf("want %s:\n%s", tc.want, textOf(rep))
			}
			for _, f := range rep.Findings {
				if strings.Contains(f.Request.Body+f.Request.RequestBody, "tok-") {
					t.Errorf("a finding holds a credential: %+v", f)
				}
			}
		})
	}
}

// TestWritesAreControlled: a write the owner itself cannot make (a body
// the application refuses, a method it does not have) proves nothing by
// being refused to another tenant, and is reported as not covered.
func TestWritesAreControlled(t *testing.T) {
	rep := probeToy(t, defects{putAny: true, validates: true})
	skipped := map[string]string{}
	for _, s := range rep.Skipped {
		skipped[s.Operation] = s.Reason
	}
	for _, op := range []string{"PUT /items/{id}", "PATCH /projects/{projectId}"} {
		if skipped[op] == "" {
			t.Errorf("%s is not reported as not covered:\n%s", op, textOf(rep))
		}
	}
}

// TestRecipeParamsNameObjects: a path parameter the recipe fills with
// one of the probe's objects ({id:…}) is that object, tried in the
// attacker's own parent like any other.
func TestRecipeParamsNameObjects(t *testing.T) {
	recipe, err := ParseRecipe([]byte(`{"params": {"taskId": "{id:POST /projects/{project}/tasks}"}}`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(t.Context(), Config{Document: []byte(toyDoc), BaseURL: serveToy(t, defects{taskAny: true}), Identities: toyIdentities(), Recipe: recipe})
	if err != nil {
		t.Fatal(err)
	}
	if want := RuleCrossTenantRead + " GET /projects/{projectId}/tasks/{taskId}"; !rulesFound(rep)[want] {
		t.Errorf("want %s:\n%s", want, textOf(rep))
	}
}

// TestNobodysMarkersAreNotTheOwners: the markers in a request sent
// without a credential are not the owner's, and an answer quoting them
// back is no leak of the owner's.
func TestNobodysMarkersAreNotTheOwners(t *testing.T) {
	recipe, err := ParseRecipe([]byte(`{"operations": {"PATCH /items/{id}": {"body": {"title": "{marker}"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(t.Context(), Config{Document: []byte(toyDoc), BaseURL: serveToy(t, defects{quotes: true}), Identities: toyIdentities(), Recipe: recipe})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 {
		t.Errorf("findings on the clean application:\n%s", textOf(rep))
	}
}

// TestCreatesMatchByShape: a create and the operations on what it makes
// are matched whatever their parameters are called and with or without a
// trailing slash.
func TestCreatesMatchByShape(t *testing.T) {
	doc := `{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {
	 "/things/": {"post": {"responses": {"201": {"description": "made"}}}},
	 "/things/{thingId}": {"get": {"responses": {"200": {"description": "a thing"}}}},
	 "/things/{thing}/parts": {"post": {"responses": {"201": {"description": "made"}}}},
	 "/things/{t}/parts/{part}/": {"get": {"responses": {"200": {"description": "a part"}}}}}}`
	base, _ := url.Parse("http://127.0.0.1")
	d, err := loadDocument(t.Context(), []byte(doc), base)
	if err != nil {
		t.Fatal(err)
	}
	r := &run{creates: map[string]*operation{}, objects: map[string]map[*operation]*object{}}
	r.findCreates(d.ops)
	a := &Identity{Label: "a", Tenant: "a"}
	r.objects["a"] = map[*operation]*object{}
	for _, op := range d.ops {
		if op.Method == "POST" {
			r.objects["a"][op] = &object{owner: a, create: op, id: "id-of-" + op.Path}
		}
	}
	for _, op := range d.ops {
		if op.Method != "GET" {
			continue
		}
		f, why := r.fill(op, a, "a")
		if why != "" {
			t.Errorf("%s: %s", op.ID, why)
		} else if f.obj == nil {
			t.Errorf("%s names no object: %s", op.ID, f.path)
		}
	}
	if len(r.creates) != 2 {
		t.Errorf("creates: %v", r.creates)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		h    string
		wait time.Duration
		ok   bool
	}{
		{"", time.Second, true},
		{"2", 2 * time.Second, true},
		{"120", 120 * time.Second, false},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second, true},
		{now.Add(time.Hour).Format(http.TimeFormat), time.Hour, false},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
	} {
		wait, ok := retryAfter(tc.h, now)
		if ok != tc.ok || (ok && wait != tc.wait) {
			t.Errorf("Retry-After %q: %v %v, want %v %v", tc.h, wait, ok, tc.wait, tc.ok)
		}
	}
}

func TestNormalizeJudgesEachOccurrenceInItsBody(t *testing.T) {
	for _, tc := range []struct{ body, id, want string }{
		{`{"code": "not_found", "id": "itm_1"}`, "itm_1", `{"code": "not_found", "id": "{id}"}`},
		{`{"tenant": "a", "code": "not_found"}`, "a", `{"tenant": "{id}", "code": "not_found"}`},
		// The second "a" follows another: inside a word, left alone.
		{`aa`, "a", `aa`},
		{`aa a`, "a", `aa {id}`},
		// An occurrence inside a word does not hide the one it overlaps.
		{`xa.a.a`, "a.a", `xa.{id}`},
		{`/items/a%2Fb and a/b`, "a/b", `/items/{id} and {id}`},
	} {
		if got := string(normalize([]byte(tc.body), tc.id)); got != tc.want {
			t.Errorf("normalize(%q, %q) = %q, want %q", tc.body, tc.id, got, tc.want)
		}
	}
}

func TestAbsentNumbers(t *testing.T) {
	for _, id := range []string{"1", "17", "2147483647", "0042", "1234567890123456789"[:18]} {
		a := absentID(id)
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil || a == id || (len(id) <= 10 && id[0] != '0' && (n < 2e9 || n > math.MaxInt32)) || (len(id) > 10 || id[0] == '0') && len(a) != len(id) {
			t.Errorf("absentID(%s) = %s", id, a)
		}
	}
}

func TestCreatedID(t *testing.T) {
	caller := &Identity{Label: "a", Tenant: "acme"}
	r := &run{}
	for body, want := range map[string]string{
		`{"id": "x1", "project_id": "p1"}`:                     "x1",
		`{"note_id": "n1", "tenant_id": "acme"}`:               "n1",
		`{"noteId": "n1", "tenant": "acme", "paid": 100}`:      "n1",
		`{"data": {"id": 7}, "request_id": "req-1"}`:           "7",
		`{"result": {"key_id": "k1"}, "requestId": "r"}`:       "k1",
		`{"id": 1234567890123456789}`:                          "1234567890123456789",
		`{"owner": "acme", "tenantId": "acme", "uuid": "u-1"}`: "u-1",
	} {
		got, ok := r.createdID(&operation{ID: "POST /x"}, caller, answer{body: []byte(body)})
		if !ok || got != want {
			t.Errorf("%s: %q %v, want %q", body, got, ok, want)
		}
	}
}

// TestStopsWithAPartialReport: a run that runs out of budget or time
// returns what it found so far, marked incomplete, never a clean report.
func TestStopsWithAPartialReport(t *testing.T) {
	base := serveToy(t, defects{readAny: true})
	rep, err := Run(t.Context(), Config{Document: []byte(toyDoc), BaseURL: base, Identities: toyIdentities(), Budget: 30})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Incomplete == "" || rep.Requests != 30 || !rulesFound(rep)[RuleCrossTenantRead+" GET /items/{id}"] {
		t.Errorf("a run out of budget:\n%s", textOf(rep))
	}
	ctx, cancel := context.WithTimeoutCause(t.Context(), 200*time.Millisecond, errors.New("the deadline passed"))
	defer cancel()
	rep, err = Run(ctx, Config{Document: []byte(toyDoc), BaseURL: base, Identities: toyIdentities(), Rate: 20})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.Incomplete, "the deadline passed") || rep.Requests == 0 {
		t.Errorf("a run out of time:\n%s", textOf(rep))
	}
}

func TestQuoted(t *testing.T) {
	ans := func(body string) answer {
		return answer{status: 200, contentType: "application/json", body: []byte(body)}
	}
	term, decoy := "probe-a-0123456789ab", "probe-a-ba9876543210"
	if !quoted(ans(`{"q": "`+term+`", "items": [], "request_id": "r1"}`), ans(`{"q": "`+decoy+`", "items": [], "request_id": "r2"}`), term, decoy) {
		t.Error("a quote taken for a leak")
	}
	if quoted(ans(`{"q": "`+term+`", "items": [{"title": "`+term+`"}]}`), ans(`{"q": "`+decoy+`", "items": []}`), term, decoy) {
		t.Error("a leak taken for a quote")
	}
	if quoted(ans(`you searched `+term+`: `+term), ans(`you searched `+decoy+`: nothing`), term, decoy) {
		t.Error("a leak in text taken for a quote")
	}
}

// An id's absent twin keeps its length, whatever letters it uses and
// whatever bytes it holds: an application may answer an id of another
// length as malformed (400), which would look like an existence oracle.
func TestAbsentIDKeepsTheShape(t *testing.T) {
	for _, id := range []string{"z", "ZZ", "zz-zz", "ZZZ-zzz", "x.y.z", "\xb30", "é1", "itm_01HZX3"} {
		for range 20 {
			got := absentID(id)
			if got == id || len(got) != len(id) {
				t.Fatalf("absentID(%q) = %q, want another id of %d bytes", id, got, len(id))
			}
			for i := range len(id) {
				if class(rune(id[i])) == "" && got[i] != id[i] {
					t.Fatalf("absentID(%q) = %q: byte %d changed", id, got, i)
				}
			}
		}
	}
}
