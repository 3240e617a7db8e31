package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// fuzzNode starts the node a fuzz target talks to: SQLite, or PostgreSQL
// when BULKHEAD_FUZZ_POSTGRES=1 (and BULKHEAD_TEST_POSTGRES is set).
func fuzzNode(f *testing.F) *apitest.Env {
	f.Helper()
	d := storage.SQLite
	if os.Getenv("BULKHEAD_FUZZ_POSTGRES") == "1" {
		d = storage.Postgres
	}
	env := apitest.New(f, storagetest.DSN(f, d), apitest.Options{TenantTokens: tenantTokens()})
	for _, id := range []string{"fuzz-one", "fuzz-two", "fuzz-three", "tenant-a"} {
		createTenant(f, env, client.CreateTenant{ID: id, Domains: []string{id + ".example.com"}})
	}
	if _, err := env.Admin.SuspendTenant(f.Context(), "fuzz-two"); err != nil {
		f.Fatal(err)
	}
	return env
}

// checkAnswer fails unless r is a problem+json 4xx, or a JSON answer with
// the success status.
func checkAnswer(t *testing.T, what string, r response, success int) {
	t.Helper()
	switch {
	case r.Status == success:
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s: %d with Content-Type %q", what, r.Status, ct)
		}
		if !json.Valid(r.Body) {
			t.Fatalf("%s: %d with a body that is not JSON: %q", what, r.Status, r.Body)
		}
	case r.Status >= 400 && r.Status < 500:
		decodeProblem(t, what, r)
	default:
		t.Fatalf("%s: status %d: %s", what, r.Status, r.Body)
	}
}

// FuzzCreateTenantBody posts arbitrary bytes to POST /v1/tenants. The answer
// must be a 201 with the tenant, or a 4xx problem; never a 5xx.
func FuzzCreateTenantBody(f *testing.F) {
	for _, s := range []string{
		`{"id":"seed-tenant"}`,
		`{"id":"seed-full","name":"Seed Full","tier":"premium","domains":["a.seed.example","B.seed.example."],"config":{"a":[1,2,{"b":null}]}}`,
		`{"id":"fuzz-one"}`,
		`{"id":"seed-dom","domains":["fuzz-one.example.com"]}`,
		`{"id":"seed-tier","tier":"gold"}`,
		`{"id":"seed-cfg","config":[]}`,
		`{"id":"seed-cfg2","config":null}`,
		`{"id":"seed-name","name":"` + strings.Repeat("n", 201) + `"}`,
		`{"id":"seed-uni","name":"名前 🚀","config":{"ü":"\u00fc\u0000"}}`,
		`{"id":"seed-x","unknown":1}`,
		`{"id":7}`,
		`{"id":"seed-y","domains":[1]}`,
		`{"id":"seed-z","domains":"a.b.c"}`,
		`{"id":"Seed"}`,
		`{}`, `null`, `[]`, `"x"`, `1`, ``, `{`, `{"id":"a"}{"id":"b"}`, `{"id":"seed-w"} `, "{\"id\":\"seed-v\",\"name\":\"\xff\"}", "{\"id\":\"seed-u\",\"config\":{\"k\":\"\xff\"}}",
		`{"id":"seed-deep","config":` + strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat(`}`, 200) + `}`,
		`{"id":"seed-many","domains":` + domains(101) + `}`,
	} {
		f.Add([]byte(s))
	}
	env := fuzzNode(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		c := call{method: "POST", path: "/v1/tenants", token: apitest.AdminToken, body: body}
		r := send(t, env.URL, c)
		checkAnswer(t, "POST /v1/tenants", r, 201)
		noEcho(t, "POST /v1/tenants", r, apitest.AdminToken)
		if r.Status != 201 {
			return
		}
		var tn client.Tenant
		if err := json.Unmarshal(r.Body, &tn); err != nil {
			t.Fatalf("201 body: %v: %s", err, r.Body)
		}
		if _, err := tenant.ParseID(tn.ID); err != nil || tn.Status != "active" || tn.Name == "" || tn.Tier == "" {
			t.Fatalf("created tenant %+v", tn)
		}
		if got := r.Header.Get("Location"); got != "/v1/tenants/"+tn.ID {
			t.Fatalf("Location %q", got)
		}
		// It is really there, as answered.
		g := send(t, env.URL, call{method: "GET", path: "/v1/tenants/" + tn.ID, token: apitest.AdminToken})
		var got client.Tenant
		wantJSON(t, "GET created tenant", g, 200, &got)
		if got.ID != tn.ID || got.Name != tn.Name || got.Tier != tn.Tier || len(got.Domains) != len(tn.Domains) {
			t.Fatalf("created %+v, read back %+v", tn, got)
		}
	})
}

// FuzzListQuery sends arbitrary limit, cursor and status values to the
// listings. Never a 5xx; a 200 honours the limit and the status filter.
func FuzzListQuery(f *testing.F) {
	b64 := base64.RawURLEncoding.EncodeToString
	for _, s := range [][3]string{
		{"", "", ""},
		{"1", "", "active"},
		{"2", b64([]byte("fuzz-one")), ""},
		{"3", b64([]byte("2")), "suspended"},
		{"1000", "", "deleted"},
		{"0", "garbage", "bogus"},
		{"-1", "!!!", "ACTIVE"},
		{"abc", "%00", "\x00"},
		{"1e3", b64([]byte("BAD ID")), "provisioning"},
		{"99999999999999999999", b64([]byte("0")), "offboarding"},
		{" 5", "====", "active' OR '1'='1"},
		{"5&limit=0", "a&cursor=b", "active&status=x"},
		{"\xff", "\xff", "\xff"},
		{"5", "", "tenant.update"},
		{"", "", "a\x00b"},
		{"", "", "caf\xe9"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	env := fuzzNode(f)
	f.Fuzz(func(t *testing.T, limit, cursor, status string) {
		q := url.Values{}
		for k, v := range map[string]string{"limit": limit, "cursor": cursor, "status": status} {
			if v != "" {
				q.Set(k, v)
			}
		}
		// The tenant listing.
		path := "/v1/tenants?" + q.Encode()
		r := send(t, env.URL, call{method: "GET", path: path, token: apitest.AdminToken})
		checkAnswer(t, "GET "+path, r, 200)
		if r.Status == 200 {
			var p client.TenantPage
			if err := json.Unmarshal(r.Body, &p); err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			maxItems := 100
			if n, err := strconv.Atoi(limit); err == nil && limit != "" {
				maxItems = n
			}
			if len(p.Items) > maxItems || p.Items == nil {
				t.Fatalf("GET %s: %d items", path, len(p.Items))
			}
			for _, tn := range p.Items {
				if status != "" && tn.Status != status {
					t.Fatalf("GET %s: tenant %s is %s", path, tn.ID, tn.Status)
				}
			}
		}
		// The audit listings, with the status as the action and as the tenant.
		aq := url.Values{}
		for k, v := range map[string]string{"limit": limit, "cursor": cursor, "action": status} {
			if v != "" {
				aq.Set(k, v)
			}
		}
		for _, p := range []string{"/v1/audit?" + aq.Encode(), "/v1/audit?tenant=" + url.QueryEscape(status), "/v1/tenants/tenant-a/audit?" + aq.Encode()} {
			checkAnswer(t, "GET "+p, send(t, env.URL, call{method: "GET", path: p, token: apitest.AdminToken}), 200)
		}
		// A tenant credential that may read its own trail; and on the tenant listing, refused whatever the query.
		checkAnswer(t, "tenant audit", send(t, env.URL, call{method: "GET", path: "/v1/tenants/tenant-a/audit?" + aq.Encode(), token: tokAuditA}), 200)
		rr := send(t, env.URL, call{method: "GET", path: path, token: tokA})
		wantProblem(t, "GET "+path+" as a tenant", rr, 403, "operator_required", "")
		// The raw, unescaped query (parameters may smuggle more parameters),
		// when it is printable ASCII without spaces, so that it makes a
		// request line at all.
		raw := "/v1/tenants?limit=" + limit + "&cursor=" + cursor + "&status=" + status
		if !strings.ContainsFunc(raw, func(c rune) bool { return c <= ' ' || c > '~' || c == '#' }) {
			checkAnswer(t, "GET "+raw, send(t, env.URL, call{method: "GET", path: raw, token: apitest.AdminToken}), 200)
		}
	})
}
