package httpapi_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestTenantRateLimit: a tenant's credentials get its tier's rate on the
// API (the tier's rate_limit_rps, read by no code before); past it 429
// with Retry-After, while another tenant and the operator are served.
func TestTenantRateLimit(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		tiers := filepath.Join(t.TempDir(), "tiers.json")
		os.WriteFile(tiers, []byte(`{"tiers":[
			{"name":"basic","isolation":"pool","rate_limit_rps":2,"rate_limit_burst":10},
			{"name":"standard","isolation":"bridge","rate_limit_rps":1000,"rate_limit_burst":1000}]}`), 0o600)
		toks := map[string]tenant.Context{
			tokA: {TenantID: "tenant-a", Principal: "user:a", Tier: "basic"},
			tokB: {TenantID: "tenant-b", Principal: "user:b", Tier: "basic"},
		}
		env := apitest.New(t, dsn, apitest.Options{TiersFile: tiers, TenantTokens: toks})
		createTenant(t, env, client.CreateTenant{ID: "tenant-a"})
		createTenant(t, env, client.CreateTenant{ID: "tenant-b"})
		limited := 0
		for range 30 {
			start := time.Now()
			r := send(t, env.URL, call{method: "GET", path: "/v1/tenants/tenant-a", token: tokA})
			switch r.Status {
			case http.StatusOK:
			case http.StatusTooManyRequests:
				limited++
				// A refusal is held until a token is due (half a second at
				// 2/s), so a client that resends at once cannot make the
				// node refuse thousands a second.
				if d := time.Since(start); d < 200*time.Millisecond {
					t.Errorf("a refusal answered after %v", d)
				}
				wantProblem(t, "over the rate", r, 429, "tenant_rate_limited", "")
				if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
					t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
				}
			default:
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
		}
		if limited < 5 {
			t.Errorf("30 requests at a burst of 10 and 2/s: %d refused", limited)
		}
		if r := send(t, env.URL, call{method: "GET", path: "/v1/tenants/tenant-b", token: tokB}); r.Status != 200 {
			t.Errorf("tenant-b while tenant-a is limited: %d", r.Status)
		}
		for range 20 {
			if r := send(t, env.URL, call{method: "GET", path: "/v1/tenants/tenant-a", token: apitest.AdminToken}); r.Status != 200 {
				t.Fatalf("the operator while tenant-a is limited: %d", r.Status)
			}
		}
	})
}
