package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// findEvent returns the event with the request id, if any.
func findEvent(evs []client.AuditEvent, requestID string) (client.AuditEvent, bool) {
	for _, e := range evs {
		if e.RequestID == requestID {
			return e, true
		}
	}
	return client.AuditEvent{}, false
}

// TestAuditAuthnFailure checks that refused credentials are audited in the
// platform chain, with the source address and without the token.
func TestAuditAuthnFailure(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{TenantTokens: tenantTokens()})
		ctx := context.Background()
		createTenant(t, env, client.CreateTenant{ID: "audited-tenant"})
		const leaked = "leaked-secret-token-5f4e3d2c1b0a"

		cases := []struct {
			c      call
			code   string
			target string
		}{
			{call{method: "GET", path: "/v1/tenants", auth: "Bearer " + leaked}, "invalid_token", "tenant.list"},
			{call{method: "POST", path: "/v1/tenants", auth: "Bearer " + leaked, body: []byte(`{"id":"never-made"}`)}, "invalid_token", "tenant.create"},
			{call{method: "GET", path: "/v1/tenants/audited-tenant", auth: "Basic " + leaked}, "invalid_token", "tenant.get"},
			{call{method: "DELETE", path: "/v1/tenants/audited-tenant"}, "missing_token", "tenant.delete"},
			{call{method: "GET", path: "/v1/audit", auth: leaked}, "invalid_token", "audit.list"},
		}
		rids := make([]string, len(cases))
		for i, tc := range cases {
			r := send(t, env.URL, tc.c)
			wantProblem(t, tc.c.String(), r, 401, tc.code, "")
			rids[i] = r.Header.Get("X-Request-Id")
		}

		r := send(t, env.URL, call{method: "GET", path: "/v1/audit?action=authn.failure&limit=1000", token: apitest.AdminToken})
		var page client.AuditPage
		wantJSON(t, "list authn.failure", r, 200, &page)
		if bytes.Contains(r.Body, []byte(leaked)) {
			t.Errorf("the audit listing holds the token: %s", r.Body)
		}
		if bytes.Contains(r.Body, []byte(apitest.AdminToken)) {
			t.Errorf("the audit listing holds the admin token")
		}
		for i, tc := range cases {
			e, ok := findEvent(page.Items, rids[i])
			if !ok {
				t.Errorf("%s: no authn.failure event with request id %s", tc.c, rids[i])
				continue
			}
			if e.Action != "authn.failure" || e.Outcome != "denied" || e.TenantID != "" || e.Principal != "anonymous" ||
				e.Target != tc.target || e.Detail["code"] != tc.code {
				t.Errorf("%s: event %+v", tc.c, e)
			}
			if e.SourceIP != "127.0.0.1" && e.SourceIP != "::1" {
				t.Errorf("%s: source_ip %q, want the loopback address", tc.c, e.SourceIP)
			}
			if e.Hash == "" || e.PrevHash == "" || e.Seq < 1 || e.Time.IsZero() {
				t.Errorf("%s: event not chained: %+v", tc.c, e)
			}
		}
		// The platform chain filter finds them too; a tenant filter does not.
		if _, ok := findEvent(auditEvents(t, env, client.AuditQuery{Tenant: "-", Action: "authn.failure"}), rids[0]); !ok {
			t.Error("tenant=- does not list the authn.failure event")
		}
		if evs := auditEvents(t, env, client.AuditQuery{Tenant: "audited-tenant", Action: "authn.failure"}); len(evs) != 0 {
			t.Errorf("authn failures landed in a tenant chain: %+v", evs)
		}
		// Time filters: the events are within [since, until).
		now := time.Now()
		if evs := auditEvents(t, env, client.AuditQuery{Action: "authn.failure", Since: now.Add(-time.Hour), Until: now.Add(time.Hour)}); len(evs) < len(cases) {
			t.Errorf("since/until: %d events, want %d", len(evs), len(cases))
		}
		if evs := auditEvents(t, env, client.AuditQuery{Action: "authn.failure", Until: now.Add(-time.Hour)}); len(evs) != 0 {
			t.Errorf("until an hour ago: %d events", len(evs))
		}
		if evs := auditEvents(t, env, client.AuditQuery{Action: "authn.failure", Since: now.Add(time.Hour)}); len(evs) != 0 {
			t.Errorf("since in an hour: %d events", len(evs))
		}

		// Nothing the refused requests asked for happened.
		wantNoTenant(t, env, "never-made")
		if got := getTenant(t, env, "audited-tenant"); got.Status != "active" {
			t.Errorf("audited-tenant is %s", got.Status)
		}

		rep, err := env.Admin.VerifyAudit(ctx)
		if err != nil || !rep.OK || rep.Broken != nil || rep.Events < int64(len(cases)) || rep.Chains < 2 {
			t.Errorf("verify: %v %+v", err, rep)
		}
	})
}

// TestAuditFailedChanges checks that failed state-changing requests are
// audited with outcome failure (and GETs are not), and that the audit
// listing pages.
func TestAuditFailedChanges(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{TenantTokens: tenantTokens()})
		ctx := context.Background()
		createTenant(t, env, client.CreateTenant{ID: "tenant-a"})

		type expect struct {
			c               call
			action, outcome string
			code, target    string
			principal       string
		}
		rid := func(s string) http.Header { return http.Header{"X-Request-Id": {s}} }
		cases := []expect{
			{call{method: "POST", path: "/v1/tenants", token: apitest.AdminToken, body: []byte(`{"id":"BAD"}`), header: rid("req-create-bad-id")},
				"tenant.create", "failure", "invalid_tenant_id", "", "operator:"},
			{call{method: "POST", path: "/v1/tenants", token: apitest.AdminToken, body: []byte(`{"id":"tenant-a"}`), header: rid("req-create-dup")},
				"tenant.create", "failure", "tenant_exists", "", "operator:"},
			{call{method: "PATCH", path: "/v1/tenants/tenant-a", token: apitest.AdminToken, body: []byte(`{"tier":"premium"}`), header: rid("req-patch-migrate")},
				"tenant.update", "failure", "tier_migration_unsupported", "tenant-a", "operator:"},
			{call{method: "POST", path: "/v1/tenants/nope-tenant/resume", token: apitest.AdminToken, header: rid("req-resume-missing")},
				"tenant.resume", "failure", "tenant_not_found", "nope-tenant", "operator:"},
			{call{method: "DELETE", path: "/v1/tenants/tenant-a", token: tokA, header: rid("req-tenant-delete-self")},
				"tenant.delete", "denied", "operator_required", "tenant-a", "user:a"},
			{call{method: "POST", path: "/v1/tenants/tenant-b/suspend", token: tokA, header: rid("req-tenant-cross")},
				"tenant.suspend", "denied", "tenant_not_found", "tenant-b", "user:a"},
		}
		for _, tc := range cases {
			r := send(t, env.URL, tc.c)
			if r.Status < 400 {
				t.Fatalf("%s: %d", tc.c, r.Status)
			}
			if got := r.Header.Get("X-Request-Id"); got != tc.c.header.Get("X-Request-Id") {
				t.Errorf("%s: X-Request-Id %q, want the client's", tc.c, got)
			}
		}
		// A failed GET is not audited.
		send(t, env.URL, call{method: "GET", path: "/v1/tenants/missing-tenant", token: apitest.AdminToken, header: rid("req-get-missing")})

		evs := auditEvents(t, env, client.AuditQuery{Tenant: "-"})
		for _, tc := range cases {
			e, ok := findEvent(evs, tc.c.header.Get("X-Request-Id"))
			if !ok {
				t.Errorf("%s: not audited", tc.c)
				continue
			}
			if e.Action != tc.action || e.Outcome != tc.outcome || e.Detail["code"] != tc.code || e.Target != tc.target ||
				!strings.HasPrefix(e.Principal, tc.principal) || e.SourceIP == "" {
				t.Errorf("%s: event %+v, want action %s outcome %s code %s target %q", tc.c, e, tc.action, tc.outcome, tc.code, tc.target)
			}
		}
		if _, ok := findEvent(evs, "req-get-missing"); ok {
			t.Error("a failed GET was audited")
		}

		// A client request id that is not acceptable is replaced.
		r := send(t, env.URL, call{method: "GET", path: "/healthz", header: rid("bad id with spaces")})
		if got := r.Header.Get("X-Request-Id"); got == "" || got == "bad id with spaces" {
			t.Errorf("X-Request-Id %q", got)
		}

		// The operator listing pages newest first without repeats.
		seen := map[int64]bool{}
		var last int64 = 1 << 62
		cursor := ""
		for i := 0; ; i++ {
			p, err := env.Admin.ListAudit(ctx, client.AuditQuery{Limit: 2, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Items {
				if seen[e.ID] || e.ID >= last {
					t.Errorf("audit page %d: event %d repeated or out of order", i, e.ID)
				}
				seen[e.ID], last = true, e.ID
			}
			if p.NextCursor == "" {
				break
			}
			if i > 100 {
				t.Fatal("audit pagination does not end")
			}
			cursor = p.NextCursor
		}
		if all := auditEvents(t, env, client.AuditQuery{}); len(all) != len(seen) {
			t.Errorf("paged through %d events, one page of 1000 has %d", len(seen), len(all))
		}

		rep, err := env.Admin.VerifyAudit(ctx)
		if err != nil || !rep.OK {
			t.Errorf("verify: %v %+v", err, rep)
		}
		// verify is for the operator only, and must be POST.
		wantProblem(t, "verify as tenant", send(t, env.URL, call{method: "POST", path: "/v1/audit/verify", token: tokA}), 403, "operator_required", "")
	})
}

// TestAuditTenantBadPathIDAction records how a tenant credential's request
// with a malformed tenant id in the path is audited. It is refused in
// authorization, so it is a denial of that route, not an authentication
// failure.
func TestAuditTenantBadPathIDAction(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{TenantTokens: tenantTokens()})
		r := send(t, env.URL, call{method: "GET", path: "/v1/tenants/BAD-ID", token: tokA, header: http.Header{"X-Request-Id": {"req-tenant-bad-path"}}})
		wantProblem(t, "GET /v1/tenants/BAD-ID as tenant", r, 400, "invalid_tenant_id", "id")
		e, ok := findEvent(auditEvents(t, env, client.AuditQuery{Tenant: "-"}), "req-tenant-bad-path")
		if !ok {
			t.Fatal("not audited")
		}
		if e.Principal != "user:a" {
			t.Errorf("principal %q", e.Principal)
		}
		if e.Action != "tenant.get" || e.Outcome != "denied" {
			t.Errorf("event %+v; want action tenant.get, outcome denied (the credential was valid)", e)
		}
	})
}
