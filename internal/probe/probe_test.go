package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
)

// defects of the toy application: each a classic multi-tenant bug.
type defects struct {
	readAny   bool // GET /items/{id} does not check the tenant
	listAll   bool // GET /items lists every tenant's items
	tellsOwn  bool // DELETE /items/{id} answers 403 for another tenant's item
	noAuth    bool // GET /items/{id} needs no credential
	writeAny  bool // PATCH /items/{id} does not check the tenant
	echoes    bool // a refusal shows the item
	tenantURL bool // /tenants/{tenant}/notes ignores whose tenant the path names
	volatile  bool // every answer carries a request id
}

// toy is a small multi-tenant application over loopback HTTP: bearer
// tokens "tok-a" and "tok-b" are tenants a and b.
type toy struct {
	d     defects
	mu    sync.Mutex
	items map[string]item
	seq   int
}

type item struct {
	ID, Tenant, Title string
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
   "patch": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}}}}, "responses": {"200": {"description": "item"}}},
   "delete": {"responses": {"204": {"description": "gone"}}}
  },
  "/tenants/{tenant}/settings": {
   "parameters": [{"name": "tenant", "in": "path", "required": true, "schema": {"type": "string"}}],
   "get": {"responses": {"200": {"description": "settings"}}}
  }
 },
 "components": {
  "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
  "schemas": {"NewItem": {"type": "object", "required": ["title"], "properties": {"title": {"type": "string", "maxLength": 200}, "tags": {"type": "array", "items": {"type": "string"}}}}}
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

func (t *toy) handler() http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		if t.d.volatile {
			w.Header().Set("Content-Type", "application/json")
			if m, ok := v.(map[string]any); ok {
				t.seq++
				m["request_id"] = fmt.Sprint("req-", t.seq)
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
			tn := t.tenant(r)
			if tn == "" && !open {
				reply(w, 401, map[string]any{"code": "unauthenticated"})
				return
			}
			h(w, r, tn)
		}
	}
	mux.HandleFunc("GET /healthz", auth(func(w http.ResponseWriter, r *http.Request, _ string) { reply(w, 200, map[string]any{}) }, true))
	mux.HandleFunc("POST /items", auth(func(w http.ResponseWriter, r *http.Request, tn string) {
		var in struct{ Title string }
		if json.NewDecoder(r.Body).Decode(&in) != nil || in.Title == "" {
			reply(w, 400, map[string]any{"code": "bad"})
			return
		}
		it := item{ID: ids.New("itm"), Tenant: tn, Title: in.Title}
		t.items[it.ID] = it
		reply(w, 201, map[string]any{"id": it.ID, "title": it.Title})
	}, false))
	mux.HandleFunc("GET /items", auth(func(w http.ResponseWriter, r *http.Request, tn string) {
		out := []any{}
		for _, it := range t.items {
			if (it.Tenant == tn || t.d.listAll) && strings.Contains(it.Title, r.URL.Query().Get("q")) {
				out = append(out, map[string]any{"id": it.ID, "title": it.Title})
			}
		}
		reply(w, 200, map[string]any{"items": out})
	}, false))
	mux.HandleFunc("GET /items/{id}", auth(func(w http.ResponseWriter, r *http.Request, tn string) {
		it, ok := t.items[r.PathValue("id")]
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
	mux.HandleFunc("PATCH /items/{id}", auth(func(w http.ResponseWriter, r *http.Request, tn string) {
		it, ok := t.items[r.PathValue("id")]
		if !ok || (it.Tenant != tn && !t.d.writeAny) {
			notFound(w)
			return
		}
		reply(w, 200, map[string]any{"id": it.ID})
	}, false))
	mux.HandleFunc("DELETE /items/{id}", auth(func(w http.ResponseWriter, r *http.Request, tn string) {
		it, ok := t.items[r.PathValue("id")]
		if ok && it.Tenant != tn && t.d.tellsOwn {
			reply(w, 403, map[string]any{"code": "not_yours"})
			return
		}
		if !ok || it.Tenant != tn {
			notFound(w)
			return
		}
		delete(t.items, it.ID)
		w.WriteHeader(204)
	}, false))
	mux.HandleFunc("GET /tenants/{tenant}/settings", auth(func(w http.ResponseWriter, r *http.Request, tn string) {
		if r.PathValue("tenant") != tn && !t.d.tenantURL {
			notFound(w)
			return
		}
		reply(w, 200, map[string]any{"tenant": r.PathValue("tenant")})
	}, false))
	return mux
}

// serveToy starts the toy application and returns its URL.
func serveToy(t *testing.T, d defects) string {
	t.Helper()
	app := &toy{d: d, items: map[string]item{}}
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
	for _, volatile := range []bool{false, true} {
		rep := probeToy(t, defects{volatile: volatile})
		if len(rep.Findings) != 0 {
			t.Errorf("volatile=%v: findings on the clean application:\n%s", volatile, textOf(rep))
		}
		if rep.Probed < 5 || rep.Objects != 2 {
			t.Errorf("volatile=%v: probed %d operations, made %d objects:\n%s", volatile, rep.Probed, rep.Objects, textOf(rep))
		}
	}
}

func TestEachDefectIsFound(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    defects
		want string
	}{
		{"read", defects{readAny: true}, RuleCrossTenantRead + " GET /items/{id}"},
		{"list", defects{listAll: true}, RuleListLeak + " GET /items"},
		{"oracle", defects{tellsOwn: true}, RuleExistenceOracle + " DELETE /items/{id}"},
		{"oracle with request ids", defects{tellsOwn: true, volatile: true}, RuleExistenceOracle + " DELETE /items/{id}"},
		{"no auth", defects{noAuth: true}, RuleUnauthenticated + " GET /items/{id}"},
		{"write", defects{writeAny: true}, RuleCrossTenantWrite + " PATCH /items/{id}"},
		{"echo", defects{echoes: true}, RuleCrossTenantRead + " GET /items/{id}"},
		{"tenant in the path", defects{tenantURL: true}, RuleCrossTenantRead + " GET /tenants/{tenant}/settings"},
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
