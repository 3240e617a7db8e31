package httpapi_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/httpapi"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// badInputNode starts a node with two tenants, known-tenant and
// other-tenant, each with a domain, and returns the tenant listing as it is
// before the bad requests.
func badInputNode(t *testing.T, dsn string) (*apitest.Env, []client.Tenant) {
	t.Helper()
	env := apitest.New(t, dsn, apitest.Options{TenantTokens: tenantTokens()})
	createTenant(t, env, client.CreateTenant{ID: "known-tenant", Name: "Known", Domains: []string{"known.example.com"},
		Config: []byte(`{"plan":"x"}`)})
	createTenant(t, env, client.CreateTenant{ID: "other-tenant", Domains: []string{"other.example.com"}})
	return env, allTenants(t, env)
}

// idRoutes returns the registered routes whose path names a tenant.
func idRoutes(t *testing.T, env *apitest.Env) []httpapi.Route {
	var out []httpapi.Route
	for _, rt := range env.API.Routes() {
		if strings.Contains(rt.Path, "{tenant}") {
			out = append(out, rt)
		}
	}
	if len(out) < 7 {
		t.Fatalf("only %d routes name a tenant: %+v", len(out), out)
	}
	return out
}

// bodyFor returns a well-formed body for a route, or nil.
func bodyFor(rt httpapi.Route) []byte {
	switch rt.Method + " " + rt.Path {
	case "POST /v1/tenants":
		return []byte(`{"id":"probe-tenant","name":"Probe"}`)
	case "PATCH /v1/tenants/{tenant}":
		return []byte(`{"name":"Changed by a bad request"}`)
	case "POST /v1/tenants/{tenant}/policies", "PUT /v1/tenants/{tenant}/policies/{policy}":
		return []byte(`{"statement":"permit(principal, action, resource);"}`)
	case "POST /v1/tenants/{tenant}/policy-templates", "PUT /v1/tenants/{tenant}/policy-templates/{template}":
		return []byte(`{"statement":"permit(principal == ?principal, action, resource);"}`)
	case "PUT /v1/tenants/{tenant}/policy-store/schema":
		return []byte(`{"format":"cedar","schema":"entity User;"}`)
	case "PATCH /v1/tenants/{tenant}/policy-store":
		return []byte(`{"log_allows":true}`)
	case "POST /v1/tenants/{tenant}/authorize":
		return []byte(`{"principal":{"type":"User","id":"a"},"action":{"type":"Action","id":"read"},"resource":{"type":"Doc","id":"d"}}`)
	case "POST /v1/tenants/{tenant}/migrations":
		return []byte(`{"target_tier":"premium"}`)
	case "PUT /v1/tenants/{tenant}/usage-plan":
		return []byte(`{"rps":1,"burst":1,"quota":0}`)
	case "POST /v1/tenants/{tenant}/domains":
		return []byte(`{"name":"probe.example.com"}`)
	case "POST /v1/tenants/{tenant}/authorize/batch":
		return []byte(`{"requests":[{"principal":{"type":"User","id":"a"},"action":{"type":"Action","id":"read"},"resource":{"type":"Doc","id":"d"}}]}`)
	}
	return nil
}

// TestBadPathTenantID sends a malformed tenant id in the path of every route
// that names a tenant, as the operator and as a tenant credential.
func TestBadPathTenantID(t *testing.T) {
	t.Parallel()
	badIDs := []string{
		"A", "ab", "-abc", "abc-", "UPPER", "Tenant-a", "a_b_c", "a.b.c", "a+b", "tenant%20a", "%20tenant-a",
		"t%C3%A9nant", "a%2Fb%2Fc", "%00abc", "abc%00", strings.Repeat("a", 64), "tenant-a%0A",
	}
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env, before := badInputNode(t, dsn)
		for _, rt := range idRoutes(t, env) {
			for _, id := range badIDs {
				for _, tok := range []string{apitest.AdminToken, tokA} {
					c := call{method: rt.Method, path: fillPath(rt.Path, id), token: tok, body: bodyFor(rt)}
					what := fmt.Sprintf("%s (token %s)", c, tok)
					r := send(t, env.URL, c)
					wantProblem(t, what, r, http.StatusBadRequest, "invalid_tenant_id", "id")
					noEcho(t, what, r, tok)
				}
			}
		}
		wantSameTenants(t, env, before)
	})
}

// bodyCase is a request body that must be refused.
type bodyCase struct {
	name   string
	body   []byte
	ctype  string // "" = application/json, "-" = none
	hdr    http.Header
	status int
	code   string
	field  string
	id     string // a tenant id the body names; it must not exist afterwards
}

func big(n int, c byte) string { return strings.Repeat(string(c), n) }

func domains(n int) string {
	ds := make([]string, n)
	for i := range ds {
		ds[i] = fmt.Sprintf(`"d%d.example.com"`, i)
	}
	return "[" + strings.Join(ds, ",") + "]"
}

// commonBodyCases are refused by every route that decodes a body.
func commonBodyCases() []bodyCase {
	return []bodyCase{
		{name: "empty body", body: []byte{}, status: 400, code: "invalid_json"},
		{name: "no body no content type", body: nil, status: 400, code: "invalid_json"},
		{name: "empty body no content type", body: []byte{}, ctype: "-", status: 400, code: "invalid_json"},
		{name: "whitespace only", body: []byte(" \n\t "), status: 400, code: "invalid_json"},
		{name: "truncated object", body: []byte(`{"name":`), status: 400, code: "invalid_json"},
		{name: "open brace", body: []byte(`{`), status: 400, code: "invalid_json"},
		{name: "not json", body: []byte(`not json`), status: 400, code: "invalid_json"},
		{name: "array", body: []byte(`[]`), status: 400, code: "invalid_json"},
		{name: "array of object", body: []byte(`[{"name":"x"}]`), status: 400, code: "invalid_json"},
		{name: "string", body: []byte(`"a string"`), status: 400, code: "invalid_json"},
		{name: "number", body: []byte(`42`), status: 400, code: "invalid_json"},
		{name: "boolean", body: []byte(`true`), status: 400, code: "invalid_json"},
		{name: "two objects", body: []byte(`{"name":"x"} {"name":"y"}`), status: 400, code: "invalid_json"},
		{name: "trailing garbage", body: []byte(`{"name":"x"}garbage`), status: 400, code: "invalid_json"},
		{name: "trailing brace", body: []byte(`{"name":"x"}}`), status: 400, code: "invalid_json"},
		{name: "single quotes", body: []byte(`{'name':'x'}`), status: 400, code: "invalid_json"},
		{name: "trailing comma", body: []byte(`{"name":"x",}`), status: 400, code: "invalid_json"},
		{name: "text/plain", body: []byte(`{"name":"x"}`), ctype: "text/plain", status: 400, code: "unsupported_media_type"},
		{name: "form", body: []byte(`name=x`), ctype: "application/x-www-form-urlencoded", status: 400, code: "unsupported_media_type"},
		{name: "xml", body: []byte(`<name>x</name>`), ctype: "application/xml", status: 400, code: "unsupported_media_type"},
		{name: "over 1 MiB string", body: []byte(`{"name":"` + big(httpapi.MaxBodySize+10, 'a') + `"}`), status: 400, code: "body_too_large"},
		{name: "over 1 MiB config", body: []byte(`{"config":{"k":"` + big(httpapi.MaxBodySize, 'c') + `"}}`), status: 400, code: "body_too_large"},
		{name: "over 1 MiB of trailing whitespace", body: []byte(`{"name":"x"}` + big(httpapi.MaxBodySize+10, ' ')),
			status: 400, code: "body_too_large"},
		{name: "over 1 MiB garbage", body: []byte(big(2*httpapi.MaxBodySize, '{')), status: 400, code: "invalid_json"},
		{name: "unknown field name typo", body: []byte(`{"nmae":"x"}`), status: 400, code: "unknown_field", field: "nmae"},
		{name: "unknown field status", body: []byte(`{"status":"active"}`), status: 400, code: "unknown_field", field: "status"},
		{name: "unknown field isolation", body: []byte(`{"isolation":"silo"}`), status: 400, code: "unknown_field", field: "isolation"},
		{name: "unknown field created_at", body: []byte(`{"created_at":"2020-01-01T00:00:00Z"}`), status: 400, code: "unknown_field", field: "created_at"},
		{name: "name number", body: []byte(`{"name":5}`), status: 400, code: "invalid_field_type", field: "name"},
		{name: "name object", body: []byte(`{"name":{"first":"x"}}`), status: 400, code: "invalid_field_type", field: "name"},
		{name: "tier bool", body: []byte(`{"tier":true}`), status: 400, code: "invalid_field_type", field: "tier"},
		{name: "tier array", body: []byte(`{"tier":["basic"]}`), status: 400, code: "invalid_field_type", field: "tier"},
		{name: "domains string", body: []byte(`{"domains":"a.example.com"}`), status: 400, code: "invalid_field_type", field: "domains"},
		{name: "domains object", body: []byte(`{"domains":{"a":"b"}}`), status: 400, code: "invalid_field_type", field: "domains"},
		{name: "domains numbers", body: []byte(`{"domains":[1,2]}`), status: 400, code: "invalid_field_type", field: "domains"},
		{name: "config array", body: []byte(`{"config":[]}`), status: 400, code: "invalid_config", field: "config"},
		{name: "config string", body: []byte(`{"config":"x"}`), status: 400, code: "invalid_config", field: "config"},
		{name: "config number", body: []byte(`{"config":1}`), status: 400, code: "invalid_config", field: "config"},
		{name: "config over 64 KiB", body: []byte(`{"config":{"k":"` + big(tenants.MaxConfigSize, 'c') + `"}}`), status: 400, code: "config_too_large", field: "config"},
		{name: "blank name", body: []byte(`{"name":"   "}`), status: 400, code: "invalid_name", field: "name"},
		{name: "name over 200 characters", body: []byte(`{"name":"` + big(201, 'n') + `"}`), status: 400, code: "invalid_name", field: "name"},
		{name: "bad domain", body: []byte(`{"domains":["not a domain"]}`), status: 400, code: "invalid_domain", field: "domains[0]"},
		{name: "second domain bad", body: []byte(`{"domains":["ok.example.com","-bad-.example.com"]}`), status: 400, code: "invalid_domain", field: "domains[1]"},
		{name: "domain without dot", body: []byte(`{"domains":["localhost"]}`), status: 400, code: "invalid_domain", field: "domains[0]"},
		{name: "domain empty label", body: []byte(`{"domains":["a..example.com"]}`), status: 400, code: "invalid_domain", field: "domains[0]"},
		{name: "domain with port", body: []byte(`{"domains":["a.example.com:443"]}`), status: 400, code: "invalid_domain", field: "domains[0]"},
		{name: "domain with scheme", body: []byte(`{"domains":["https://a.example.com"]}`), status: 400, code: "invalid_domain", field: "domains[0]"},
		{name: "domain ip", body: []byte(`{"domains":["127.0.0.1"]}`), status: 400, code: "invalid_domain", field: "domains[0]"},
		{name: "domain too long", body: []byte(`{"domains":["` + strings.Repeat("abcdefghi.", 26) + `com"]}`), status: 400, code: "invalid_domain", field: "domains[0]"},
		{name: "101 domains", body: []byte(`{"domains":` + domains(101) + `}`), status: 400, code: "invalid_domain", field: "domains"},
		{name: "unknown tier", body: []byte(`{"tier":"gold"}`), status: 400, code: "unknown_tier", field: "tier"},
	}
}

// withID adds "id":id to a JSON object body (for creation).
func withID(c bodyCase, id string) bodyCase {
	c.id = id
	s := string(c.body)
	if strings.HasPrefix(s, "{") {
		rest := strings.TrimPrefix(s, "{")
		sep := ","
		if strings.HasPrefix(strings.TrimSpace(rest), "}") {
			sep = ""
		}
		c.body = []byte(`{"id":"` + id + `"` + sep + rest)
	}
	return c
}

func runBodyCase(t *testing.T, env *apitest.Env, method, path string, c bodyCase) {
	t.Helper()
	cl := call{method: method, path: path, token: apitest.AdminToken, body: c.body, ctype: c.ctype, header: c.hdr}
	if c.body == nil && c.ctype == "" {
		cl.body = nil
	}
	r := send(t, env.URL, cl)
	what := fmt.Sprintf("%s %q", cl, c.name)
	wantProblem(t, what, r, c.status, c.code, c.field)
	noEcho(t, what, r, apitest.AdminToken)
	if c.id != "" {
		if _, err := tenant.ParseID(c.id); err == nil && c.code != "tenant_exists" {
			wantNoTenant(t, env, c.id)
		}
	}
}

// TestBadCreateBody posts bodies that must be refused, and checks each one
// left nothing behind.
func TestBadCreateBody(t *testing.T) {
	t.Parallel()
	var cases []bodyCase
	for i, c := range commonBodyCases() {
		cases = append(cases, withID(c, fmt.Sprintf("bad-create-%02d", i)))
	}
	cases = append(cases,
		bodyCase{name: "missing id", body: []byte(`{"name":"x"}`), status: 400, code: "invalid_tenant_id", field: "id"},
		bodyCase{name: "empty object", body: []byte(`{}`), status: 400, code: "invalid_tenant_id", field: "id"},
		bodyCase{name: "null", body: []byte(`null`), status: 400, code: "invalid_tenant_id", field: "id"},
		bodyCase{name: "empty id", body: []byte(`{"id":""}`), status: 400, code: "invalid_tenant_id", field: "id"},
		bodyCase{name: "id too short", body: []byte(`{"id":"ab"}`), id: "ab", status: 400, code: "invalid_tenant_id", field: "id"},
		bodyCase{name: "id upper case", body: []byte(`{"id":"BAD"}`), id: "BAD", status: 400, code: "invalid_tenant_id", field: "id"},
		bodyCase{name: "id leading dash", body: []byte(`{"id":"-abc"}`), id: "-abc", status: 400, code: "invalid_tenant_id", field: "id"},
		bodyCase{name: "id trailing dash", body: []byte(`{"id":"abc-"}`), id: "abc-", status: 400, code: "invalid_tenant_id", field: "id"},
		bodyCase{name: "id underscore", body: []byte(`{"id":"a_bc"}`), status: 400, code: "invalid_tenant_id", field: "id"},
		bodyCase{name: "id slash", body: []byte(`{"id":"a/bc"}`), status: 400, code: "invalid_tenant_id", field: "id"},
		bodyCase{name: "id space", body: []byte(`{"id":"a bc"}`), status: 400, code: "invalid_tenant_id", field: "id"},
		bodyCase{name: "id NUL", body: []byte(`{"id":"abc\u0000"}`), status: 400, code: "invalid_tenant_id", field: "id"},
		bodyCase{name: "id newline", body: []byte(`{"id":"abc\n"}`), status: 400, code: "invalid_tenant_id", field: "id"},
		bodyCase{name: "id unicode", body: []byte(`{"id":"ténant"}`), status: 400, code: "invalid_tenant_id", field: "id"},
		bodyCase{name: "id 64 characters", body: []byte(`{"id":"` + big(64, 'a') + `"}`), status: 400, code: "invalid_tenant_id", field: "id"},
		bodyCase{name: "id number", body: []byte(`{"id":123}`), status: 400, code: "invalid_field_type", field: "id"},
		bodyCase{name: "id array", body: []byte(`{"id":["abc"]}`), status: 400, code: "invalid_field_type", field: "id"},
		bodyCase{name: "id null", body: []byte(`{"id":null}`), status: 400, code: "invalid_tenant_id", field: "id"},
		bodyCase{name: "duplicate id", body: []byte(`{"id":"known-tenant","name":"Impostor"}`), id: "known-tenant", status: 409, code: "tenant_exists"},
		bodyCase{name: "domain taken", body: []byte(`{"id":"taker-one","domains":["known.example.com"]}`), id: "taker-one",
			status: 409, code: "domain_taken", field: "domains"},
		bodyCase{name: "domain taken in other case", body: []byte(`{"id":"taker-two","domains":["fresh.example.com","KNOWN.Example.COM."]}`),
			id: "taker-two", status: 409, code: "domain_taken", field: "domains"},
		bodyCase{name: "idempotency key with space", body: []byte(`{"id":"idem-bad-one"}`), id: "idem-bad-one",
			hdr: http.Header{"Idempotency-Key": {"has space"}}, status: 400, code: "invalid_idempotency_key", field: "Idempotency-Key"},
		bodyCase{name: "idempotency key over 255", body: []byte(`{"id":"idem-bad-two"}`), id: "idem-bad-two",
			hdr: http.Header{"Idempotency-Key": {big(256, 'k')}}, status: 400, code: "invalid_idempotency_key", field: "Idempotency-Key"},
		bodyCase{name: "idempotency key non-ascii", body: []byte(`{"id":"idem-bad-three"}`), id: "idem-bad-three",
			hdr: http.Header{"Idempotency-Key": {"kéy"}}, status: 400, code: "invalid_idempotency_key", field: "Idempotency-Key"},
	)
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env, before := badInputNode(t, dsn)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) { runBodyCase(t, env, "POST", "/v1/tenants", c) })
		}
		wantSameTenants(t, env, before)

		// A JSON content type with parameters is accepted (the control case).
		r := send(t, env.URL, call{method: "POST", path: "/v1/tenants", token: apitest.AdminToken,
			body: []byte(`{"id":"charset-tenant"}`), ctype: "application/json; charset=utf-8"})
		wantJSON(t, "create with charset", r, http.StatusCreated, nil)
	})
}

// TestBadPatchBody sends refused updates to an existing tenant and checks
// that none of them changed it (nor half-changed it).
func TestBadPatchBody(t *testing.T) {
	t.Parallel()
	cases := commonBodyCases()
	cases = append(cases,
		bodyCase{name: "id is not patchable", body: []byte(`{"id":"new-id"}`), status: 400, code: "unknown_field", field: "id"},
		bodyCase{name: "empty name", body: []byte(`{"name":""}`), status: 400, code: "invalid_name", field: "name"},
		bodyCase{name: "valid name with unknown tier", body: []byte(`{"name":"Renamed","tier":"gold"}`), status: 400, code: "unknown_tier", field: "tier"},
		bodyCase{name: "pool to silo", body: []byte(`{"tier":"premium"}`), status: 409, code: "tier_migration_unsupported", field: "tier"},
		bodyCase{name: "pool to bridge", body: []byte(`{"name":"Renamed","tier":"standard"}`), status: 409, code: "tier_migration_unsupported", field: "tier"},
		bodyCase{name: "tier null string", body: []byte(`{"tier":""}`), status: 400, code: "unknown_tier", field: "tier"},
		bodyCase{name: "valid name with bad domain", body: []byte(`{"name":"Renamed","domains":["x.example.com","bad domain"]}`),
			status: 400, code: "invalid_domain", field: "domains[1]"},
		bodyCase{name: "domain of another tenant", body: []byte(`{"name":"Renamed","domains":["new.example.com","other.example.com"]}`),
			status: 409, code: "domain_taken", field: "domains"},
		bodyCase{name: "domain of another tenant in other case", body: []byte(`{"domains":["Other.Example.Com."]}`),
			status: 409, code: "domain_taken", field: "domains"},
		bodyCase{name: "valid config with bad name", body: []byte(`{"config":{"a":1},"name":" "}`), status: 400, code: "invalid_name", field: "name"},
	)
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env, before := badInputNode(t, dsn)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) { runBodyCase(t, env, "PATCH", "/v1/tenants/known-tenant", c) })
		}
		t.Run("unknown tenant", func(t *testing.T) {
			r := send(t, env.URL, call{method: "PATCH", path: "/v1/tenants/no-such-tenant", token: apitest.AdminToken, body: []byte(`{"name":"x"}`)})
			wantProblem(t, "PATCH unknown tenant", r, 404, "tenant_not_found", "")
			wantNoTenant(t, env, "no-such-tenant")
		})
		wantSameTenants(t, env, before)
		// The domains of known-tenant survived the refused replacements.
		if got := getTenant(t, env, "known-tenant"); len(got.Domains) != 1 || got.Domains[0] != "known.example.com" {
			t.Errorf("known-tenant domains = %v after refused updates", got.Domains)
		}
	})
}

// TestBadQueryParams sends bad query parameters to every listing.
func TestBadQueryParams(t *testing.T) {
	t.Parallel()
	b64 := base64.RawURLEncoding.EncodeToString
	type qcase struct {
		query string
		code  string
		field string
	}
	limits := []qcase{
		{"limit=0", "invalid_limit", "limit"},
		{"limit=-1", "invalid_limit", "limit"},
		{"limit=1001", "invalid_limit", "limit"},
		{"limit=99999999999999999999", "invalid_limit", "limit"},
		{"limit=abc", "invalid_limit", "limit"},
		{"limit=1.5", "invalid_limit", "limit"},
		{"limit=1e2", "invalid_limit", "limit"},
		{"limit=0x10", "invalid_limit", "limit"},
		{"limit=%203", "invalid_limit", "limit"},
		{"limit=0&limit=3", "invalid_limit", "limit"}, // the first value counts
	}
	common := append([]qcase{}, limits...)
	common = append(common,
		qcase{"cursor=garbage", "invalid_cursor", "cursor"},
		qcase{"cursor=!!!", "invalid_cursor", "cursor"},
		qcase{"cursor=%00", "invalid_cursor", "cursor"},
		qcase{"cursor=" + url.QueryEscape(big(300, '/')), "invalid_cursor", "cursor"},
	)
	audit := append([]qcase{}, common...)
	audit = append(audit,
		qcase{"cursor=" + b64([]byte("0")), "invalid_cursor", "cursor"},
		qcase{"cursor=" + b64([]byte("-5")), "invalid_cursor", "cursor"},
		qcase{"cursor=" + b64([]byte("known-tenant")), "invalid_cursor", "cursor"},
		qcase{"since=notatime", "invalid_time", "since"},
		qcase{"since=2026-01-02", "invalid_time", "since"},
		qcase{"since=1700000000", "invalid_time", "since"},
		qcase{"until=yesterday", "invalid_time", "until"},
		qcase{"until=2026-01-02T15:04:05", "invalid_time", "until"},
		qcase{"since=2026-01-02T15:04:05Z&until=soon", "invalid_time", "until"},
		qcase{"tenant=BAD", "invalid_tenant_id", "tenant"},
		qcase{"tenant=ab", "invalid_tenant_id", "tenant"},
		qcase{"tenant=--", "invalid_tenant_id", "tenant"},
		qcase{"tenant=" + url.QueryEscape("known-tenant' OR '1'='1"), "invalid_tenant_id", "tenant"},
	)
	tenants := append([]qcase{}, common...)
	tenants = append(tenants,
		qcase{"cursor=" + b64([]byte("BAD ID")), "invalid_cursor", "cursor"},
		qcase{"cursor=" + b64([]byte("x")), "invalid_cursor", "cursor"},
		qcase{"cursor=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("known-tenant"))+"=="), "invalid_cursor", "cursor"},
		qcase{"status=bogus", "invalid_status", "status"},
		qcase{"status=ACTIVE", "invalid_status", "status"},
		qcase{"status=" + url.QueryEscape("active' OR '1'='1"), "invalid_status", "status"},
	)
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env, _ := badInputNode(t, dsn)
		for _, tc := range []struct {
			path  string
			token string
			cases []qcase
		}{
			{"/v1/tenants", apitest.AdminToken, tenants},
			{"/v1/audit", apitest.AdminToken, audit},
			{"/v1/tenants/known-tenant/audit", apitest.AdminToken, audit},
		} {
			for _, q := range tc.cases {
				c := call{method: "GET", path: tc.path + "?" + q.query, token: tc.token}
				r := send(t, env.URL, c)
				wantProblem(t, c.String(), r, 400, q.code, q.field)
				noEcho(t, c.String(), r, tc.token)
			}
		}
		// A tenant credential gets the same answers on its own audit listing.
		createTenant(t, env, client.CreateTenant{ID: "tenant-a"})
		for _, q := range audit {
			c := call{method: "GET", path: "/v1/tenants/tenant-a/audit?" + q.query, token: tokAuditA}
			r := send(t, env.URL, c)
			wantProblem(t, c.String()+" (tenant credential)", r, 400, q.code, q.field)
		}
		// The control cases: the same listings with good parameters work.
		for _, path := range []string{
			"/v1/tenants?limit=1", "/v1/tenants?limit=1000&status=active", "/v1/tenants?limit=3&limit=0",
			"/v1/audit?limit=1&tenant=-", "/v1/audit?since=2000-01-02T15:04:05Z&until=2999-01-02T15:04:05.123456789%2B02:00",
			"/v1/tenants/known-tenant/audit?tenant=known-tenant&limit=1000",
		} {
			wantJSON(t, "GET "+path, send(t, env.URL, call{method: "GET", path: path, token: apitest.AdminToken}), 200, nil)
		}
	})
}

// TestBadAuth calls every route that needs a credential with a missing or
// wrong one: 401 with the right code, nothing written, no token echoed.
func TestBadAuth(t *testing.T) {
	t.Parallel()
	const wrong = "wrong-token-9d8f7a6b5c4e3d2f1a0b"
	variants := []struct {
		name   string
		auth   string // the raw Authorization header; "" = none
		secret string // what must not be echoed
		code   string
	}{
		{"no header", "", "", "missing_token"},
		// Go's client trims the trailing space, so the server sees "Bearer".
		{"bearer without token", "Bearer ", "", "invalid_token"},
		{"bearer and spaces", "Bearer   \t ", "", "invalid_token"},
		{"unknown bearer token", "Bearer " + wrong, wrong, "invalid_token"},
		{"admin token with a suffix", "Bearer " + apitest.AdminToken + "x", apitest.AdminToken, "invalid_token"},
		{"admin token prefix", "Bearer " + apitest.AdminToken[:20], apitest.AdminToken[:20], "invalid_token"},
		{"basic auth", "Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA==", "invalid_token"},
		{"token scheme", "Token " + apitest.AdminToken, apitest.AdminToken, "invalid_token"},
		{"no scheme", apitest.AdminToken, apitest.AdminToken, "invalid_token"},
		{"two bearers", "Bearer " + wrong + ", Bearer " + apitest.AdminToken, apitest.AdminToken, "invalid_token"},
	}
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env, before := badInputNode(t, dsn)
		n := 0
		for _, rt := range env.API.Routes() {
			if rt.Access == httpapi.Public {
				continue
			}
			n++
			for _, v := range variants {
				path := fillPath(rt.Path, "known-tenant")
				c := call{method: rt.Method, path: path, auth: v.auth, body: bodyFor(rt)}
				what := fmt.Sprintf("%s with %s", c, v.name)
				r := send(t, env.URL, c)
				wantProblem(t, what, r, http.StatusUnauthorized, v.code, "")
				if got := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
					t.Errorf("%s: WWW-Authenticate = %q", what, got)
				}
				noEcho(t, what, r, v.secret)
			}
		}
		if n < 10 {
			t.Fatalf("only %d routes need a credential", n)
		}
		wantNoTenant(t, env, "probe-tenant")
		wantSameTenants(t, env, before)

		// Public routes need no credential, and a bad one does not hurt them.
		for _, rt := range env.API.Routes() {
			if rt.Access != httpapi.Public {
				continue
			}
			for _, auth := range []string{"", "Bearer " + wrong} {
				r := send(t, env.URL, call{method: rt.Method, path: rt.Path, auth: auth})
				if r.Status != 200 {
					t.Errorf("%s %s (auth %q): %d %s", rt.Method, rt.Path, auth, r.Status, r.Body)
				}
				noEcho(t, rt.Path, r, wrong)
			}
		}
	})
}

// TestUnknownRoute checks that paths and methods the API does not serve get
// a problem too, not a bare text answer.
func TestUnknownRoute(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env, _ := badInputNode(t, dsn)
		for _, tc := range []struct {
			c      call
			status int
			allow  string
		}{
			{call{method: "GET", path: "/v1/nope", token: apitest.AdminToken}, 404, ""},
			{call{method: "GET", path: "/v2/tenants", token: apitest.AdminToken}, 404, ""},
			{call{method: "GET", path: "/v1/tenants/known-tenant/nope", token: apitest.AdminToken}, 404, ""},
			{call{method: "PUT", path: "/v1/tenants/known-tenant", token: apitest.AdminToken, body: []byte(`{"name":"x"}`)}, 405, "GET, PATCH, DELETE"},
			{call{method: "POST", path: "/v1/tenants/known-tenant", token: apitest.AdminToken, body: []byte(`{"name":"x"}`)}, 405, "GET, PATCH, DELETE"},
			{call{method: "DELETE", path: "/v1/tenants", token: apitest.AdminToken}, 405, "GET, POST"},
			{call{method: "GET", path: "/v1/tenants/known-tenant/suspend", token: apitest.AdminToken}, 405, "POST"},
			{call{method: "GET", path: "/v1/nope", token: "wrong-token-for-a-missing-route"}, 404, ""},
		} {
			r := send(t, env.URL, tc.c)
			p := decodeProblem(t, tc.c.String(), r)
			if r.Status != tc.status || r.Header.Get("Allow") != tc.allow {
				t.Errorf("%s: status %d (%s) Allow %q; want %d Allow %q", tc.c, r.Status, p.Code, r.Header.Get("Allow"), tc.status, tc.allow)
			}
			noEcho(t, tc.c.String(), r, tc.c.token)
		}
		if got := getTenant(t, env, "known-tenant"); got.Name != "Known" {
			t.Errorf("known-tenant was changed through an unknown route: %+v", got)
		}
	})
}

// TestOddTextNeverServerError sends text that one database or the other may
// choke on (NUL characters, invalid UTF-8) through every place it can reach
// a query. Each must be refused or stored, never a 5xx.
func TestOddTextNeverServerError(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		c    call
	}{
		{name: "NUL in name", c: call{method: "POST", path: "/v1/tenants", body: []byte(`{"id":"odd-nul-name","name":"a\u0000b"}`)}},
		{name: "NUL in patched name", c: call{method: "PATCH", path: "/v1/tenants/known-tenant", body: []byte(`{"name":"a\u0000b"}`)}},
		{name: "escaped NUL in config", c: call{method: "POST", path: "/v1/tenants", body: []byte(`{"id":"odd-nul-config","config":{"k":"\u0000"}}`)}},
		{name: "invalid UTF-8 in name", c: call{method: "POST", path: "/v1/tenants", body: []byte("{\"id\":\"odd-utf8-name\",\"name\":\"a\xffb\"}")}},
		{name: "invalid UTF-8 in config", c: call{method: "POST", path: "/v1/tenants", body: []byte("{\"id\":\"odd-utf8-config\",\"config\":{\"k\":\"\xff\xfe\"}}")}},
		{name: "invalid UTF-8 in patched config", c: call{method: "PATCH", path: "/v1/tenants/known-tenant", body: []byte("{\"config\":{\"\xc3\x28\":1}}")}},
		{name: "invalid UTF-8 in domain", c: call{method: "POST", path: "/v1/tenants", body: []byte("{\"id\":\"odd-utf8-domain\",\"domains\":[\"a\xff.example.com\"]}")}},
		{name: "NUL in audit action", c: call{method: "GET", path: "/v1/audit?action=%00"}},
		{name: "invalid UTF-8 in audit action", c: call{method: "GET", path: "/v1/audit?action=%FF%FE"}},
		{name: "NUL in tenant audit action", c: call{method: "GET", path: "/v1/tenants/known-tenant/audit?action=a%00b"}},
		{name: "NUL in status", c: call{method: "GET", path: "/v1/tenants?status=%00"}},
		{name: "NUL in cursor", c: call{method: "GET", path: "/v1/tenants?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("abc\x00def"))}},
		{name: "invalid UTF-8 in idempotency key", c: call{method: "POST", path: "/v1/tenants", body: []byte(`{"id":"odd-idem"}`), header: http.Header{"Idempotency-Key": {"k\xff"}}}},
		{name: "long action", c: call{method: "GET", path: "/v1/audit?action=" + big(8000, 'x')}},
	}
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env, _ := badInputNode(t, dsn)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				tc.c.token = apitest.AdminToken
				r := send(t, env.URL, tc.c)
				if r.Status >= 500 {
					t.Fatalf("%s: %d %s", tc.c, r.Status, r.Body)
				}
				if r.Status >= 400 {
					decodeProblem(t, tc.c.String(), r)
				}
			})
		}
		if _, err := env.Admin.VerifyAudit(context.Background()); err != nil {
			t.Errorf("verify: %v", err)
		}
	})
}

// TestProtocolDetails checks details of HTTP and of the documented limits
// that clients depend on.
func TestProtocolDetails(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env, _ := badInputNode(t, dsn)
		cases := []struct {
			name   string
			c      call
			status int
			code   string // for a problem
		}{
			{name: "bearer scheme is case-insensitive",
				c:      call{method: "GET", path: "/v1/tenants/known-tenant", auth: "bearer " + apitest.AdminToken},
				status: 200},
			{name: "media type is case-insensitive",
				c:      call{method: "PATCH", path: "/v1/tenants/known-tenant", token: apitest.AdminToken, body: []byte(`{}`), ctype: "Application/JSON"},
				status: 200},
			{name: "json-like media type is refused",
				c:      call{method: "PATCH", path: "/v1/tenants/known-tenant", token: apitest.AdminToken, body: []byte(`{}`), ctype: "application/jsonl"},
				status: 400, code: "unsupported_media_type"},
			{name: "name of 150 two-byte characters",
				c:      call{method: "POST", path: "/v1/tenants", token: apitest.AdminToken, body: []byte(`{"id":"long-name","name":"` + strings.Repeat("é", 150) + `"}`)},
				status: 201},
			{name: "HEAD of a GET route", c: call{method: "HEAD", path: "/v1/tenants/known-tenant", token: apitest.AdminToken}, status: 200},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := send(t, env.URL, tc.c)
				code := ""
				if r.Status >= 400 {
					code = decodeProblem(t, tc.c.String(), r).Code
				}
				if r.Status != tc.status || code != tc.code {
					t.Errorf("%s: %d %s, want %d %s", tc.c, r.Status, code, tc.status, tc.code)
				}
			})
		}
	})
}
