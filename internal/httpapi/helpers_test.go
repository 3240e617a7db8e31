package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/httpapi"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// Tokens of the test tenants. They stand in for tenant credentials.
const (
	tokA      = "tok-a"
	tokB      = "tok-b"
	tokAuditA = "tok-audit-a" // tenant-a's client granted audit:read
)

// tenantTokens gives tenant-a and tenant-b a credential each, and tenant-a
// an audit-reading client.
func tenantTokens() map[string]tenant.Context {
	return map[string]tenant.Context{
		tokA:      {TenantID: "tenant-a", Principal: "user:a"},
		tokB:      {TenantID: "tenant-b", Principal: "user:b"},
		tokAuditA: {TenantID: "tenant-a", Principal: "client:cli_auditor", Scopes: []string{httpapi.AuditReadScope}},
	}
}

// httpClient is shared by the tests; it never follows redirects, so a
// redirect shows up as what it is.
var httpClient = &http.Client{
	// Generous: publishing a function compiles it (seconds, and far more
	// on a loaded machine); a test waits for the answer, not for a time.
	Timeout:       3 * time.Minute,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// call is one raw HTTP request.
type call struct {
	method string
	path   string // with query string
	token  string // sent as "Authorization: Bearer <token>" unless auth is set
	auth   string // a raw Authorization header value
	body   []byte // nil: no body
	ctype  string // Content-Type of the body; "application/json" when body is set and ctype is ""
	header http.Header
}

// response is an answer read in full.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (c call) String() string { return c.method + " " + c.path }

// send performs c against base (a node's URL) over real loopback HTTP.
func send(t testing.TB, base string, c call) response {
	t.Helper()
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(context.Background(), c.method, base+c.path, body)
	if err != nil {
		t.Fatalf("%s: new request: %v", c, err)
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	if c.body != nil {
		ct := c.ctype
		if ct == "" {
			ct = "application/json"
		}
		if ct != "-" {
			req.Header.Set("Content-Type", ct)
		}
	}
	switch {
	case c.auth != "":
		req.Header.Set("Authorization", c.auth)
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", c, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: read body: %v", c, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// problem is the problem+json body, decoded strictly: an unexpected member
// fails the test.
type problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	Field     string `json:"field"`
	RequestID string `json:"request_id"`
}

// decodeProblem checks that r is a well-formed problem+json answer and returns it.
func decodeProblem(t testing.TB, what string, r response) problem {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s: Content-Type = %q, want application/problem+json (status %d, body %s)", what, ct, r.Status, r.Body)
	}
	if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options = %q, want nosniff", what, got)
	}
	var p problem
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s: problem body does not decode: %v: %s", what, err, r.Body)
	}
	if p.Status != r.Status {
		t.Errorf("%s: problem status %d != HTTP status %d", what, p.Status, r.Status)
	}
	if p.Code == "" {
		t.Errorf("%s: problem has no code: %s", what, r.Body)
	}
	if want := "urn:bulkhead:problem:" + p.Code; p.Type != want {
		t.Errorf("%s: problem type = %q, want %q", what, p.Type, want)
	}
	if p.Title != http.StatusText(r.Status) {
		t.Errorf("%s: problem title = %q, want %q", what, p.Title, http.StatusText(r.Status))
	}
	if p.RequestID == "" || p.RequestID != r.Header.Get("X-Request-Id") {
		t.Errorf("%s: problem request_id = %q, X-Request-Id header = %q", what, p.RequestID, r.Header.Get("X-Request-Id"))
	}
	if r.Status == http.StatusUnauthorized && r.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("%s: 401 without WWW-Authenticate", what)
	}
	return p
}

// wantProblem checks r is a problem with the given status, code and field.
func wantProblem(t testing.TB, what string, r response, status int, code, field string) problem {
	t.Helper()
	p := decodeProblem(t, what, r)
	if r.Status != status || p.Code != code || p.Field != field {
		t.Errorf("%s: got %d code=%q field=%q, want %d code=%q field=%q (detail %q)",
			what, r.Status, p.Code, p.Field, status, code, field, p.Detail)
	}
	return p
}

// noEcho fails if secret appears anywhere in r (body or header values).
func noEcho(t testing.TB, what string, r response, secret string) {
	t.Helper()
	if secret == "" {
		return
	}
	if bytes.Contains(r.Body, []byte(secret)) {
		t.Errorf("%s: response body echoes the bearer token %q: %s", what, secret, r.Body)
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(v, secret) {
				t.Errorf("%s: response header %s echoes the bearer token", what, k)
			}
		}
	}
}

// wantJSON checks r has status and a JSON body, and decodes it into out (if not nil).
func wantJSON(t testing.TB, what string, r response, status int, out any) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type = %q, want application/json", what, ct)
	}
	if out != nil {
		if err := json.Unmarshal(r.Body, out); err != nil {
			t.Fatalf("%s: decode %T: %v: %s", what, out, err, r.Body)
		}
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// createTenant creates a tenant as the operator and fails the test on error.
func createTenant(t testing.TB, env *apitest.Env, in client.CreateTenant) client.Tenant {
	t.Helper()
	tn, err := env.Admin.CreateTenant(context.Background(), in, "")
	if err != nil {
		t.Fatalf("create tenant %s: %v", in.ID, err)
	}
	return tn
}

// getTenant reads a tenant as the operator.
func getTenant(t testing.TB, env *apitest.Env, id string) client.Tenant {
	t.Helper()
	tn, err := env.Admin.GetTenant(context.Background(), id)
	if err != nil {
		t.Fatalf("get tenant %s: %v", id, err)
	}
	return tn
}

// wantNoTenant checks, as the operator, that the tenant does not exist.
func wantNoTenant(t testing.TB, env *apitest.Env, id string) {
	t.Helper()
	r := send(t, env.URL, call{method: "GET", path: "/v1/tenants/" + id, token: apitest.AdminToken})
	wantProblem(t, "GET "+id+" after a failed write", r, 404, "tenant_not_found", "")
}

// allTenants walks every page of GET /v1/tenants as the operator.
func allTenants(t testing.TB, env *apitest.Env) []client.Tenant {
	t.Helper()
	var out []client.Tenant
	cursor := ""
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("tenant listing does not end")
		}
		p, err := env.Admin.ListTenants(context.Background(), 1000, cursor)
		if err != nil {
			t.Fatalf("list tenants: %v", err)
		}
		out = append(out, p.Items...)
		if p.NextCursor == "" {
			return out
		}
		cursor = p.NextCursor
	}
}

// wantSameTenants fails if the tenant listing changed from before.
func wantSameTenants(t testing.TB, env *apitest.Env, before []client.Tenant) {
	t.Helper()
	after := allTenants(t, env)
	if !reflect.DeepEqual(normTenants(before), normTenants(after)) {
		t.Errorf("the tenant listing changed:\nbefore %s\nafter  %s", mustJSON(t, before), mustJSON(t, after))
	}
}

func normTenants(ts []client.Tenant) []string {
	out := make([]string, len(ts))
	for i, tn := range ts {
		b, _ := json.Marshal(tn)
		out[i] = string(b)
	}
	return out
}

// waitStatus waits until the tenant has the status.
func waitStatus(t testing.TB, env *apitest.Env, id, status string) client.Tenant {
	t.Helper()
	var tn client.Tenant
	runtest.Eventually(t, "tenant "+id+" "+status, func() bool {
		tn = getTenant(t, env, id)
		return tn.Status == status
	})
	return tn
}

// auditEvents lists audit events as the operator (one page of up to 1000).
func auditEvents(t testing.TB, env *apitest.Env, q client.AuditQuery) []client.AuditEvent {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = 1000
	}
	p, err := env.Admin.ListAudit(context.Background(), q)
	if err != nil {
		t.Fatalf("list audit: %v", err)
	}
	return p.Items
}

// newTieredNode starts a node with the tiers of testdata/tiers.json, which
// has two pool tiers, so that a tier change within one isolation model can
// be tested.
func newTieredNode(t *testing.T, dsn string) *apitest.Env {
	t.Helper()
	tiers, err := filepath.Abs(filepath.Join("testdata", "tiers.json"))
	if err != nil {
		t.Fatal(err)
	}
	return apitest.New(t, dsn, apitest.Options{TiersFile: tiers})
}

// fillPath makes a request path of a route pattern: {tenant} becomes tenant,
// and the other wildcards become ids that need not exist.
func fillPath(pattern, tenant string) string {
	return strings.NewReplacer("{tenant}", tenant, "{user}", "usr_probe", "{group}", "admins", "{client}", "cli_probe",
		"{policy}", "pol_probeprobeprobeprobeprobepr", "{template}", "tpl_probeprobeprobeprobeprobepr",
		"{key}", "key_probeprobeprobeprobeprobepr", "{function}", "counter",
		"{connection}", "con_probeprobeprobeprobeprobepr", "{grant}", "grt_probeprobeprobeprobeprobepr", "{name}", "probe-cluster", "{route}", "rt-probe", "{domain}", "probe.example.com", "{migration}", "wf_probe", "{webhook}", "whk_probeprobeprobeprobeprobepr", "{stream}", "probe", "{consumer}", "probe",
		"{partner}", "prt_probeprobeprobeprobeprobepr", "{trust}", "trs_probeprobeprobeprobeprobepr",
		"{operator}", "opr_probeprobeprobeprobeprobepr", "{session}", "sid_probeprobeprobeprobeprobepr").Replace(pattern)
}
