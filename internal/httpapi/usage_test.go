package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/usage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestUsageAcrossTenants: a tenant's admin reads its own usage and none of
// another's; another tenant's admin, asking for it, gets the answer of a
// tenant that does not exist.
func TestUsageAcrossTenants(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{TenantTokens: map[string]tenant.Context{
			"tok-admin-a": {TenantID: "tenant-a", Principal: "user:adm", Groups: []string{"admins"}},
			"tok-admin-b": {TenantID: "tenant-b", Principal: "user:adm-b", Groups: []string{"admins"}},
			"tok-user-a":  {TenantID: "tenant-a", Principal: "user:u"},
		}})
		ctx := context.Background()
		createTenant(t, env, client.CreateTenant{ID: "tenant-a", Name: "A"})
		createTenant(t, env, client.CreateTenant{ID: "tenant-b", Name: "B"})
		env.Usage.Record(ctx, usage.Usage{Tenant: "tenant-a", Tier: "basic", Status: 200, BytesOut: 42, Latency: time.Millisecond})
		env.Usage.Record(ctx, usage.Usage{Tenant: "tenant-b", Tier: "basic", Status: 500, BytesOut: 7, Latency: time.Second})
		if err := env.Usage.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		q := "?from=" + now.Add(-2*time.Hour).Format(time.RFC3339) + "&to=" + now.Add(time.Hour).Format(time.RFC3339)

		r := send(t, env.URL, call{method: "GET", path: "/v1/tenants/tenant-a/usage" + q, token: "tok-admin-a"})
		var list client.UsageList
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &list) != nil {
			t.Fatalf("own usage: %d %s", r.Status, r.Body)
		}
		if len(list.Items) != 1 || list.Items[0].Requests != 1 || list.Items[0].BytesOut != 42 || list.Items[0].Status.S2xx != 1 ||
			list.Items[0].Status.S5xx != 0 || list.Items[0].Latency[0] != 1 {
			t.Fatalf("tenant-a's usage = %+v", list)
		}

		// B's admin asking for A's usage, and for a tenant that does not
		// exist: the same 404.
		other := send(t, env.URL, call{method: "GET", path: "/v1/tenants/tenant-a/usage" + q, token: "tok-admin-b"})
		none := send(t, env.URL, call{method: "GET", path: "/v1/tenants/tenant-z/usage" + q, token: "tok-admin-b"})
		wantProblem(t, "B reads A's usage", other, http.StatusNotFound, "tenant_not_found", "")
		if a, z := stripProblem(t, "A's", other, "tenant-a"), stripProblem(t, "Z's", none, "tenant-z"); a != z {
			t.Fatalf("another tenant's usage %s differs from a missing tenant's %s", a, z)
		}
		// A user of the tenant who is not an admin is refused.
		r = send(t, env.URL, call{method: "GET", path: "/v1/tenants/tenant-a/usage" + q, token: "tok-user-a"})
		wantProblem(t, "a non-admin reads usage", r, http.StatusForbidden, "tenant_admin_required", "")
		// Bad ranges.
		for _, bad := range []struct{ query, code, field string }{
			{"", "invalid_time", "from"},
			{"?from=yesterday&to=" + now.Format(time.RFC3339), "invalid_time", "from"},
			{"?from=" + now.Format(time.RFC3339) + "&to=" + now.Add(-time.Hour).Format(time.RFC3339), "invalid_range", "to"},
			{"?from=" + now.Add(-100*24*time.Hour).Format(time.RFC3339) + "&to=" + now.Format(time.RFC3339), "invalid_range", "to"},
		} {
			r := send(t, env.URL, call{method: "GET", path: "/v1/tenants/tenant-a/usage" + bad.query, token: "tok-admin-a"})
			wantProblem(t, "usage"+bad.query, r, http.StatusBadRequest, bad.code, bad.field)
		}
	})
}

// TestUsagePlanOverride: the operator's plan replaces the tier's at once,
// and an invalid one is refused whole.
func TestUsagePlanOverride(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{})
		ctx := context.Background()
		createTenant(t, env, client.CreateTenant{ID: "tenant-a", Name: "A"})
		if _, err := env.Admin.GetUsagePlan(ctx, "tenant-a"); !isCode(err, "usage_plan_not_found") {
			t.Fatalf("no plan yet: %v", err)
		}
		if _, err := env.Admin.SetUsagePlan(ctx, "tenant-a", client.UsagePlan{RPS: 1, Burst: 2}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			d, err := env.Usage.Admit(ctx, "tenant-a", "basic")
			if err != nil || d.Allowed != (i < 2) {
				t.Fatalf("request %d under the override: %+v, %v", i, d, err)
			}
		}
		r := send(t, env.URL, call{method: "PUT", path: "/v1/tenants/tenant-a/usage-plan", token: apitest.AdminToken,
			body: []byte(`{"rps":1,"burst":0,"quota":0}`)})
		wantProblem(t, "a rate without a burst", r, http.StatusBadRequest, "invalid_plan", "burst")
		if _, err := env.Admin.SetUsagePlan(ctx, "tenant-z", client.UsagePlan{RPS: 1, Burst: 2}); !isCode(err, "tenant_not_found") {
			t.Fatalf("a plan for a missing tenant: %v", err)
		}
		if p, err := env.Admin.GetUsagePlan(ctx, "tenant-a"); err != nil || p.Burst != 2 {
			t.Fatalf("plan after a refused change: %+v, %v", p, err)
		}
	})
}

// isCode reports whether err is the API's problem of code.
func isCode(err error, code string) bool {
	var p *client.Error
	return errors.As(err, &p) && p.Code == code
}
