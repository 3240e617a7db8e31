package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/gateway"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/auth"
)

// appUpstream is the application behind a real node's gateway: it trusts
// the tenant only through the assertion, checked by sdk/auth against the
// node's published keys.
func appUpstream(t *testing.T, issuer string, count *atomic.Int64) *httptest.Server {
	v, err := auth.NewValidator(auth.Config{Issuer: issuer, Audience: gateway.DefaultAudience})
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count.Add(1)
		c, err := v.Validate(r.Context(), r.Header.Get(gateway.AssertionHeader))
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		io.WriteString(w, c.TenantID+" "+c.Tier+" "+c.Subject)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestNode(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		var count atomic.Int64
		// The upstream's address is known before the node starts: the
		// handler is set once the node's issuer is.
		var handler atomic.Pointer[http.Handler]
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }))
		defer front.Close()
		// Custom domains are verified over HTTP through the gateway's own
		// listener, which serves the verification tokens.
		var gatewayAddr atomic.Pointer[string]
		e := apitest.New(t, dsn, apitest.Options{GatewayAppDomain: appDomain,
			TenantTokens:  map[string]tenant.Context{"tok-acme": {TenantID: "acme", Principal: "user:u1", Tier: "basic"}},
			GatewayRoutes: []gateway.Route{{ID: "rt_app", Host: "*." + appDomain, PathPrefix: "/", Upstream: front.URL}, {ID: "rt_custom", Host: "*", PathPrefix: "/", Upstream: front.URL}},
			DomainsDial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, *gatewayAddr.Load())
			}})
		addr := strings.TrimPrefix(e.GatewayURL, "http://")
		gatewayAddr.Store(&addr)
		h := http.Handler(appUpstream(t, e.URL, &count).Config.Handler)
		handler.Store(&h)
		// A tenant's own Domains (a sign-in hint) route nothing: only a
		// verified custom domain does.
		for _, ct := range []api.CreateTenant{{ID: "acme", Tier: "basic", Domains: []string{"acme.example"}}, {ID: "globex", Tier: "premium"}} {
			if _, err := e.Admin.CreateTenant(ctx, ct, ""); err != nil {
				t.Fatal(err)
			}
		}
		if st, _ := gatewayGet(t, e.GatewayURL, "acme.example", "/x", ""); st != 404 {
			t.Fatalf("an unverified domain: %d", st)
		}
		if _, err := e.Admin.CreateDomain(ctx, "acme", api.CreateDomain{Name: "acme.example"}); err != nil {
			t.Fatal(err)
		}
		if d, err := e.Admin.VerifyDomain(ctx, "acme", "acme.example"); err != nil || d.State != "verified" {
			t.Fatalf("verify acme.example through the gateway: %+v %v", d, err)
		}
		get := func(host, token string) (int, string) { return gatewayGet(t, e.GatewayURL, host, "/x", token) }
		for host, want := range map[string]string{"acme." + appDomain: "acme basic anonymous", "acme.example": "acme basic anonymous",
			"globex." + appDomain: "globex premium anonymous"} {
			if st, body := get(host, ""); st != 200 || body != want {
				t.Fatalf("%s: %d %q", host, st, body)
			}
		}
		if st, body := get("acme."+appDomain, "tok-acme"); st != 200 || body != "acme basic user:u1" {
			t.Fatalf("token: %d %q", st, body)
		}
		seen := count.Load()
		_, unknownBody := get("nobody."+appDomain, "")
		for _, host := range []string{"globex." + appDomain, "evil.example"} {
			if st, body := get(host, "tok-acme"); st != 404 || body != unknownBody {
				t.Fatalf("acme's token on %s: %d %q", host, st, body)
			}
		}
		if _, err := e.Admin.SuspendTenant(ctx, "globex"); err != nil {
			t.Fatal(err)
		}
		if st, body := get("globex."+appDomain, ""); st != 403 || !strings.Contains(body, "tenant_suspended") {
			t.Fatalf("suspended: %d %q", st, body)
		}
		if n := count.Load(); n != seen {
			t.Fatalf("%d refused requests reached the application", n-seen)
		}
	})
}

// TestNodePlacementRouting: on a real node with the application's cluster,
// a silo tenant (premium) goes to its own upstream and never to the pool
// upstream; pool (basic) and bridge (standard) tenants go to the default
// upstream, even when a route names them in its silo map.
func TestNodePlacementRouting(t *testing.T) {
	app := storagetest.App(t)
	ctx := context.Background()
	var pool, silo atomic.Int64
	poolUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { pool.Add(1); io.WriteString(w, "pool") }))
	defer poolUp.Close()
	siloUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { silo.Add(1); io.WriteString(w, "silo") }))
	defer siloUp.Close()
	e := apitest.New(t, storagetest.DSN(t, "sqlite"), apitest.Options{GatewayAppDomain: appDomain,
		GatewayRoutes: []gateway.Route{{ID: "rt_app", Host: "*." + appDomain, PathPrefix: "/", Upstream: poolUp.URL,
			Silo: map[tenant.ID]string{"big-co": siloUp.URL, "mid-co": siloUp.URL, "small-co": siloUp.URL}}}})
	if _, err := e.Admin.CreateCluster(ctx, api.CreateDataCluster{Name: "app", DSN: app.ServingDSN, AdminDSN: app.AdminDSN, Prefix: app.Prefix}); err != nil {
		t.Fatal(err)
	}
	for id, tier := range map[string]string{"big-co": "premium", "mid-co": "standard", "small-co": "basic"} {
		if tn, err := e.Admin.CreateTenant(ctx, api.CreateTenant{ID: id, Tier: tier}, ""); err != nil || tn.Status != "active" {
			t.Fatalf("create %s: %+v %v", id, tn, err)
		}
	}
	for range 10 {
		if st, body := gatewayGet(t, e.GatewayURL, "big-co."+appDomain, "/", ""); st != 200 || body != "silo" {
			t.Fatalf("silo tenant: %d %q", st, body)
		}
	}
	if n := pool.Load(); n != 0 {
		t.Fatalf("the pool upstream saw %d requests of the silo tenant", n)
	}
	for _, id := range []string{"mid-co", "small-co"} {
		if st, body := gatewayGet(t, e.GatewayURL, id+"."+appDomain, "/", ""); st != 200 || body != "pool" {
			t.Fatalf("%s: %d %q", id, st, body)
		}
	}
	if silo.Load() != 10 || pool.Load() != 2 {
		t.Fatalf("silo %d, pool %d", silo.Load(), pool.Load())
	}
}

// TestNodeUsagePlan: on a real node the gateway applies the tenant's usage
// plan (its override here; a tier's works the same way): a burst, then 429
// with Retry-After and the RateLimit fields, nothing past the plan reaches
// the application, and the answered requests are in the tenant's usage.
func TestNodeUsagePlan(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		var count atomic.Int64
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { count.Add(1); io.WriteString(w, "ok") }))
		defer up.Close()
		e := apitest.New(t, dsn, apitest.Options{GatewayAppDomain: appDomain,
			GatewayRoutes: []gateway.Route{{ID: "rt_app", Host: "*." + appDomain, PathPrefix: "/", Upstream: up.URL}}})
		if _, err := e.Admin.CreateTenant(ctx, api.CreateTenant{ID: "acme"}, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Admin.SetUsagePlan(ctx, "acme", api.UsagePlan{RPS: 0.001, Burst: 3}); err != nil {
			t.Fatal(err)
		}
		statuses := []int{}
		var last *http.Response
		for range 5 {
			req, _ := http.NewRequest("GET", e.GatewayURL+"/x", nil)
			req.Host = "acme." + appDomain
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses = append(statuses, resp.StatusCode)
			last = resp
		}
		if fmt.Sprint(statuses) != "[200 200 200 429 429]" {
			t.Fatalf("statuses %v, want a burst of 3 then 429", statuses)
		}
		if last.Header.Get("Retry-After") == "" || !strings.Contains(last.Header.Get("RateLimit"), `"rate"`) ||
			!strings.Contains(last.Header.Get("RateLimit-Policy"), `"rate";q=3`) {
			t.Fatalf("429 headers: %v", last.Header)
		}
		if n := count.Load(); n != 3 {
			t.Fatalf("%d requests reached the application, want 3", n)
		}
		runtest.Eventually(t, "the answered requests in acme's usage", func() bool {
			u, err := e.Admin.Usage(ctx, "acme", time.Now().Add(-2*time.Hour), time.Now().Add(time.Hour))
			var n int64
			for _, r := range u.Items {
				n += r.Requests
			}
			return err == nil && n >= 3
		})
	})
}
