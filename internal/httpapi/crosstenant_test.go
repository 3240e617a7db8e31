package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/httpapi"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// crossCalls returns a request to every route that names tenant id, with a
// body where the route takes one, and a few variants (bad query parameters,
// bad bodies) that must not be looked at before the tenant is refused.
func crossCalls(t *testing.T, routes []httpapi.Route, id, token string) []call {
	var out []call
	for _, rt := range routes {
		if !strings.Contains(rt.Path, "{tenant}") {
			continue
		}
		path := fillPath(rt.Path, id)
		c := call{method: rt.Method, path: path, token: token, body: bodyFor(rt)}
		out = append(out, c)
		switch rt.Method {
		case "GET":
			out = append(out, call{method: rt.Method, path: path + "?limit=abc&cursor=garbage&since=notatime", token: token})
		case "PATCH":
			out = append(out,
				call{method: rt.Method, path: path, token: token, body: []byte(`{"nope":1}`)},
				call{method: rt.Method, path: path, token: token, body: []byte(`{"tier":"premium"}`)},
				call{method: rt.Method, path: path, token: token, body: []byte(`{`)})
		}
	}
	if len(out) < 7 {
		t.Fatalf("only %d cross-tenant calls", len(out))
	}
	return out
}

// stripProblem returns the problem body without its request id, and with
// the tenant id in the detail replaced, for comparing answers about
// different tenants.
func stripProblem(t *testing.T, what string, r response, id string) string {
	t.Helper()
	p := decodeProblem(t, what, r)
	p.RequestID = ""
	p.Detail = strings.ReplaceAll(p.Detail, id, "<id>")
	b, _ := json.Marshal(p)
	return fmt.Sprintf("%d %s %s", r.Status, r.Header.Get("Content-Type"), b)
}

// TestCrossTenant checks invariant 1 through the API: a tenant credential
// naming another tenant gets the answer it would get for a tenant that does
// not exist, and learns nothing about it; it cannot change it.
func TestCrossTenant(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{TenantTokens: tenantTokens()})
		ctx := context.Background()
		routes := env.API.Routes()
		createTenant(t, env, client.CreateTenant{ID: "tenant-a", Name: "A", Domains: []string{"a.example.com"}})

		// 1. tenant-b does not exist yet: what does A's credential get?
		before := map[string]string{}
		for _, c := range crossCalls(t, routes, "tenant-b", tokA) {
			r := send(t, env.URL, c)
			wantProblem(t, c.String()+" before B exists", r, http.StatusNotFound, "tenant_not_found", "")
			noEcho(t, c.String(), r, tokA)
			before[c.String()+string(c.body)] = stripProblem(t, c.String(), r, "tenant-b")
		}

		// 2. tenant-b exists, with activity in its own chain.
		createTenant(t, env, client.CreateTenant{ID: "tenant-b", Name: "B", Domains: []string{"b.example.com"}, Config: []byte(`{"secret":"b"}`)})
		bName := "B renamed"
		if _, err := env.Admin.UpdateTenant(ctx, "tenant-b", client.TenantPatch{Name: &bName}); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Admin.SuspendTenant(ctx, "tenant-b"); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Admin.ResumeTenant(ctx, "tenant-b"); err != nil {
			t.Fatal(err)
		}
		b0 := getTenant(t, env, "tenant-b")

		// The same requests now get the very same answers (minus request ids),
		// and the same as for a tenant that never existed.
		for _, c := range crossCalls(t, routes, "tenant-b", tokA) {
			r := send(t, env.URL, c)
			what := c.String() + " (A's credential, B exists)"
			wantProblem(t, what, r, http.StatusNotFound, "tenant_not_found", "")
			noEcho(t, what, r, tokA)
			if bytes.Contains(r.Body, []byte("B renamed")) || bytes.Contains(r.Body, []byte("b.example.com")) {
				t.Errorf("%s: answer reveals B's data: %s", what, r.Body)
			}
			if r.Header.Get("Location") != "" || r.Header.Get("WWW-Authenticate") != "" {
				t.Errorf("%s: unexpected headers %v", what, r.Header)
			}
			got := stripProblem(t, what, r, "tenant-b")
			if want := before[c.String()+string(c.body)]; got != want {
				t.Errorf("%s: answer differs once B exists:\nbefore %s\nnow    %s", what, want, got)
			}
		}
		for _, c := range crossCalls(t, routes, "tenant-zzz", tokA) {
			r := send(t, env.URL, c)
			what := c.String() + " (A's credential, no such tenant)"
			got := stripProblem(t, what, r, "tenant-zzz")
			bc := c
			bc.path = strings.ReplaceAll(c.path, "tenant-zzz", "tenant-b")
			if want := before[bc.String()+string(c.body)]; got != want {
				t.Errorf("%s: answer differs from the one about tenant-b:\nB       %s\nmissing %s", what, want, got)
			}
		}

		// Nothing A sent changed B.
		if b1 := getTenant(t, env, "tenant-b"); !jsonEqual(b0, b1) {
			t.Errorf("tenant-b changed by A's requests:\nbefore %+v\nafter  %+v", b0, b1)
		}
		if wfs := workflows(t, env, "tenant-b"); countKind(wfs, "offboarding") != 0 {
			t.Errorf("A's DELETE started an offboarding of B: %+v", wfs)
		}

		// 3. Operator-only routes: 403 operator_required, for collections and
		// for A's own tenant.
		opCalls := []call{
			{method: "GET", path: "/v1/tenants", token: tokA},
			{method: "GET", path: "/v1/tenants?status=active", token: tokA},
			{method: "POST", path: "/v1/tenants", token: tokA, body: []byte(`{"id":"tenant-c"}`)},
			{method: "GET", path: "/v1/audit", token: tokA},
			{method: "GET", path: "/v1/audit?tenant=tenant-b", token: tokA},
			{method: "POST", path: "/v1/audit/verify", token: tokA},
			{method: "GET", path: "/v1/tiers", token: tokA},
			{method: "PATCH", path: "/v1/tenants/tenant-a", token: tokA, body: []byte(`{"name":"self-service"}`)},
			{method: "DELETE", path: "/v1/tenants/tenant-a", token: tokA},
			{method: "POST", path: "/v1/tenants/tenant-a/suspend", token: tokA},
			{method: "POST", path: "/v1/tenants/tenant-a/resume", token: tokA},
			{method: "GET", path: "/v1/tenants/tenant-a/workflows", token: tokA},
			// A tenant cannot move itself to another tier.
			{method: "POST", path: "/v1/tenants/tenant-a/migrations", token: tokA, body: []byte(`{"target_tier":"premium"}`)},
			{method: "GET", path: "/v1/tenants/tenant-a/migrations", token: tokA},
			{method: "GET", path: "/v1/tenants/tenant-a/migrations/wf_probe", token: tokA},
			{method: "POST", path: "/v1/clients", token: tokA, body: []byte(`{"name":"x","grant_types":["client_credentials"]}`)},
			{method: "GET", path: "/v1/clients", token: tokA},
			{method: "DELETE", path: "/v1/clients/cli_probe", token: tokA},
			{method: "POST", path: "/v1/global-policies", token: tokA, body: []byte(`{"statement":"permit(principal, action, resource);"}`)},
			{method: "GET", path: "/v1/global-policies", token: tokA},
			{method: "GET", path: fillPath("/v1/global-policies/{policy}", ""), token: tokA},
			{method: "PUT", path: fillPath("/v1/global-policies/{policy}", ""), token: tokA, body: []byte(`{"statement":"permit(principal, action, resource);"}`)},
			{method: "DELETE", path: fillPath("/v1/global-policies/{policy}", ""), token: tokA},
			{method: "POST", path: "/v1/functions", token: tokA, body: []byte(`{}`)},
			{method: "GET", path: "/v1/functions", token: tokA},
			{method: "DELETE", path: "/v1/functions/counter", token: tokA},
			{method: "GET", path: "/v1/functions/counter/environments", token: tokA},
			{method: "POST", path: "/v1/clusters", token: tokA, body: []byte(`{"name":"app","dsn":"postgres://u:p@127.0.0.1:1/db","admin_dsn":"postgres://a:p@127.0.0.1:1/db"}`)},
			{method: "GET", path: "/v1/clusters", token: tokA},
			{method: "GET", path: "/v1/clusters/probe-cluster", token: tokA},
			{method: "DELETE", path: "/v1/clusters/probe-cluster", token: tokA},
			{method: "PUT", path: "/v1/clusters/probe-cluster/migrations", token: tokA, body: []byte(`{"files":[{"name":"001_a.sql","sql":"CREATE TABLE a (id int)"}]}`)},
			{method: "GET", path: "/v1/clusters/probe-cluster/migrations", token: tokA},
			// A tenant cannot raise its own usage plan.
			{method: "GET", path: "/v1/tenants/tenant-a/usage-plan", token: tokA},
			{method: "PUT", path: "/v1/tenants/tenant-a/usage-plan", token: tokA, body: []byte(`{"rps":1000000,"burst":1000000,"quota":0}`)},
			{method: "DELETE", path: "/v1/tenants/tenant-a/usage-plan", token: tokA},
			{method: "GET", path: "/v1/gateway/routes", token: tokA},
			{method: "GET", path: "/v1/gateway/routes/rt-probe", token: tokA},
			{method: "PUT", path: "/v1/gateway/routes/rt-probe", token: tokA, body: []byte(`{"host":"*","path_prefix":"/","upstream":"http://127.0.0.1:1"}`)},
			{method: "DELETE", path: "/v1/gateway/routes/rt-probe", token: tokA},
			{method: "GET", path: "/v1/certs", token: tokA},
			{method: "POST", path: "/v1/certs/reissue", token: tokA, body: []byte(`{"from_ca":"https://ca.example/dir"}`)},
			// Bulkhead's own events are the operator's: a tenant neither
			// subscribes a webhook nor reads one or its delivery log.
			{method: "POST", path: "/v1/webhooks", token: tokA, body: []byte(`{"url":"https://hooks.example.com/x","events":["*"]}`)},
			{method: "GET", path: "/v1/webhooks", token: tokA},
			{method: "GET", path: "/v1/webhooks/whk_probeprobeprobeprobeprobepr", token: tokA},
			{method: "DELETE", path: "/v1/webhooks/whk_probeprobeprobeprobeprobepr", token: tokA},
			{method: "GET", path: "/v1/webhooks/whk_probeprobeprobeprobeprobepr/deliveries", token: tokA},
			{method: "POST", path: "/v1/partners", token: tokA, body: []byte(`{"name":"Probe partner"}`)},
			{method: "GET", path: "/v1/partners", token: tokA},
			{method: "GET", path: "/v1/partners/prt_probeprobeprobeprobeprobepr", token: tokA},
			{method: "DELETE", path: "/v1/partners/prt_probeprobeprobeprobeprobepr", token: tokA},
			{method: "POST", path: "/v1/partners/prt_probeprobeprobeprobeprobepr/secret", token: tokA},
			{method: "GET", path: "/v1/posture", token: tokA},
			{method: "POST", path: "/v1/posture/scan", token: tokA},
			// The platform's operators are no tenant's to see or make.
			{method: "POST", path: "/v1/operators", token: tokA, body: []byte(`{"email":"evil@example.com","name":"Evil"}`)},
			{method: "GET", path: "/v1/operators", token: tokA},
			{method: "GET", path: fillPath("/v1/operators/{operator}", ""), token: tokA},
			{method: "POST", path: fillPath("/v1/operators/{operator}/disable", ""), token: tokA},
			{method: "DELETE", path: fillPath("/v1/operators/{operator}", ""), token: tokA},
		}
		for _, c := range opCalls {
			r := send(t, env.URL, c)
			wantProblem(t, c.String()+" (tenant credential)", r, http.StatusForbidden, "operator_required", "")
			noEcho(t, c.String(), r, tokA)
		}
		// Every operator route is among them.
		for _, rt := range routes {
			if rt.Access != httpapi.Operator {
				continue
			}
			path := fillPath(rt.Path, "tenant-a")
			found := false
			for _, c := range opCalls {
				found = found || (c.method == rt.Method && strings.SplitN(c.path, "?", 2)[0] == path)
			}
			if !found {
				t.Errorf("operator route %s %s is not checked with a tenant credential", rt.Method, rt.Path)
			}
		}
		wantNoTenant(t, env, "tenant-c")
		if a := getTenant(t, env, "tenant-a"); a.Name != "A" || a.Status != "active" {
			t.Errorf("tenant-a changed by its own refused calls: %+v", a)
		}

		// 4. A may read itself, and its own trail with a credential that
		// may read it (a plain user may not).
		wantProblem(t, "A's plain user reads A's trail", send(t, env.URL, call{method: "GET", path: "/v1/tenants/tenant-a/audit", token: tokA}),
			http.StatusForbidden, "audit_reader_required", "")
		ca := env.Client(tokA)
		self, err := ca.GetTenant(ctx, "tenant-a")
		if err != nil || self.ID != "tenant-a" || self.Name != "A" {
			t.Fatalf("A reads itself: %v %+v", err, self)
		}
		for _, q := range []string{"", "?tenant=tenant-b", "?tenant=-", "?limit=1000", "?action=tenant.updated"} {
			var page client.AuditPage
			path := "/v1/tenants/tenant-a/audit" + q
			r := send(t, env.URL, call{method: "GET", path: path, token: tokAuditA})
			wantJSON(t, path, r, 200, &page)
			if q == "" && len(page.Items) == 0 {
				t.Errorf("%s: A's own trail is empty", path)
			}
			for _, e := range page.Items {
				if e.TenantID != "tenant-a" || e.Target == "tenant-b" || e.Principal == "user:b" {
					t.Errorf("%s: A's trail holds a foreign event %+v", path, e)
				}
			}
			if bytes.Contains(r.Body, []byte("tenant-b")) {
				t.Errorf("%s: A's trail mentions tenant-b: %s", path, r.Body)
			}
		}
		// B's trail does have events, and A cannot list them by any spelling.
		if evs := auditEvents(t, env, client.AuditQuery{Tenant: "tenant-b"}); len(evs) < 3 {
			t.Errorf("tenant-b's trail has %d events", len(evs))
		}

		// 5. The symmetric case: B cannot reach A.
		for _, c := range crossCalls(t, routes, "tenant-a", tokB) {
			r := send(t, env.URL, c)
			wantProblem(t, c.String()+" (B's credential)", r, http.StatusNotFound, "tenant_not_found", "")
		}
		if _, err := env.Client(tokB).GetTenant(ctx, "tenant-b"); err != nil {
			t.Errorf("B reads itself: %v", err)
		}
		if a := getTenant(t, env, "tenant-a"); a.Name != "A" || a.Status != "active" {
			t.Errorf("tenant-a changed by B: %+v", a)
		}

		// 6. The refused attempts are in the platform chain, denied, under A's
		// principal; none of them landed in B's chain.
		denied := 0
		for _, e := range auditEvents(t, env, client.AuditQuery{Tenant: "-"}) {
			if e.Principal == "user:a" && e.Outcome == "denied" && e.Target == "tenant-b" && e.Detail["code"] == "tenant_not_found" {
				denied++
			}
		}
		if denied == 0 {
			t.Error("A's refused attempts on tenant-b are not audited")
		}
		for _, e := range auditEvents(t, env, client.AuditQuery{Tenant: "tenant-b"}) {
			if e.Principal == "user:a" {
				t.Errorf("tenant-b's chain holds A's event %+v", e)
			}
		}
	})
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestTenantCredentialWithoutTenant checks a tenant credential whose own
// tenant does not exist (yet, or any more): it gets 404 for itself and
// cannot learn about others either.
func TestTenantCredentialWithoutTenant(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{TenantTokens: tenantTokens()})
		createTenant(t, env, client.CreateTenant{ID: "tenant-b"})
		for _, path := range []string{"/v1/tenants/tenant-a", "/v1/tenants/tenant-a/audit", "/v1/tenants/tenant-b", "/v1/tenants/tenant-b/audit"} {
			token := tokA
			if strings.HasSuffix(path, "/audit") {
				token = tokAuditA // tokA, a plain user, may not read a trail at all
			}
			r := send(t, env.URL, call{method: "GET", path: path, token: token})
			wantProblem(t, "GET "+path, r, 404, "tenant_not_found", "")
		}
	})
}
