package httpapi_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
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

// TestBatchCostsItsDecisions: a batch of n decisions is charged n against
// the tier's rate (a batch of 100 made a basic tenant 100 times its rate);
// a refused batch costs one request, and it is audited as one event that lists its decisions
// (100 audit events a batch took the node's audit writer from the others).
func TestBatchCostsItsDecisions(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		tiers := filepath.Join(t.TempDir(), "tiers.json")
		os.WriteFile(tiers, []byte(`{"tiers":[{"name":"basic","isolation":"pool","rate_limit_rps":0.5,"rate_limit_burst":10}]}`), 0o600)
		toks := map[string]tenant.Context{tokA: {TenantID: "tenant-a", Principal: "user:a", Tier: "basic"}}
		env := apitest.New(t, dsn, apitest.Options{TiersFile: tiers, TenantTokens: toks})
		createTenant(t, env, client.CreateTenant{ID: "tenant-a"})
		req := map[string]any{"principal": ref("User", "u"), "action": ref("Action", "read"), "resource": ref("Doc", "d")}
		batch := func(n int) []any {
			out := make([]any, n)
			for i := range out {
				out[i] = req
			}
			return out
		}
		path := "/v1/tenants/tenant-a/authorize/batch"
		if r := send(t, env.URL, call{method: "POST", path: path, token: tokA, body: mustJSON(t, map[string]any{"requests": batch(8)})}); r.Status != 200 {
			t.Fatalf("a batch of 8 within a burst of 10: %d %s", r.Status, r.Body)
		}
		r := send(t, env.URL, call{method: "POST", path: path, token: tokA, body: mustJSON(t, map[string]any{"requests": batch(8)})})
		wantProblem(t, "a second batch of 8 with 2 left", r, 429, "tenant_rate_limited", "")
		// The refused batch cost one request (its admission), not 8: one
		// is left.
		if r := send(t, env.URL, call{method: "POST", path: path, token: tokA, body: mustJSON(t, map[string]any{"requests": batch(1)})}); r.Status != 200 {
			t.Fatalf("a batch of 1 after the refused one: %d %s", r.Status, r.Body)
		}
		var events []client.AuditEvent
		runtest.Eventually(t, "the batches' audit events", func() bool {
			events = auditEvents(t, env, client.AuditQuery{Tenant: "tenant-a", Action: "authz.batch_decision"})
			return len(events) == 2
		})
		if n := len(auditEvents(t, env, client.AuditQuery{Tenant: "tenant-a", Action: "authz.decision"})); n != 0 {
			t.Errorf("%d authz.decision events for batches; want one authz.batch_decision each", n)
		}
		for _, e := range events {
			var list []map[string]any
			if err := json.Unmarshal([]byte(e.Detail["decisions"]), &list); err != nil {
				t.Fatalf("decisions detail %q: %v", e.Detail["decisions"], err)
			}
			if e.Outcome != "denied" || e.Detail["denied"] != e.Detail["requests"] ||
				strconv.Itoa(len(list)) != e.Detail["requests"] || list[0]["resource"] != `Doc::"d"` {
				t.Errorf("batch event %+v", e)
			}
		}
	})
}
