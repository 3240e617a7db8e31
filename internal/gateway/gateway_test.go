package gateway_test

import (
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// unknown is how the gateway answers a host nobody serves.
func unknown(t *testing.T, e *env) answer {
	t.Helper()
	a := e.do(t, "GET", "nobody."+appDomain, "/", "", nil)
	if a.status != 404 || a.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("unknown tenant: %d %s", a.status, a.body)
	}
	return a
}

func TestResolution(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, host, token, want string
	}{
		{"subdomain", "acme." + appDomain, "", "pool acme anonymous"},
		{"subdomain with port and case", "ACME." + appDomain + ":443", "", "pool acme anonymous"},
		{"custom domain", "acme.example", "", "pool acme anonymous"},
		{"token on own subdomain", "acme." + appDomain, "tok-acme", "pool acme user:u1"},
		{"token on own domain", "acme.example", "tok-acme", "pool acme user:u1"},
		{"token on an api host", "api." + appDomain + ".com", "tok-acme", "pool acme user:u1"},
		{"not a bulkhead token", "acme." + appDomain, "opaque-app-token", "pool acme anonymous"},
		{"silo tenant", "globex." + appDomain, "", "silo globex anonymous"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/x"
			if strings.HasPrefix(tc.host, "api.") {
				path = "/v1/x"
			}
			a := e.do(t, "GET", tc.host, path, tc.token, nil)
			if a.status != 200 || a.body != tc.want {
				t.Fatalf("got %d %q, want %q", a.status, a.body, tc.want)
			}
		})
	}
}

// TestCrossTenantIsIdenticalToUnknown: a token of one tenant on another's
// host, sources that disagree, and hosts or paths nobody serves all get
// the same answer, which tells nothing of whether the tenant exists.
func TestCrossTenantIsIdenticalToUnknown(t *testing.T) {
	e := newEnv(t)
	want := unknown(t, e)
	before := e.pool.count.Load() + e.silo.count.Load()
	for _, tc := range []struct{ name, host, path, token string }{
		{"A's token on B's subdomain", "globex." + appDomain, "/", "tok-acme"},
		{"A's token on B's domain", "globex.example", "/", "tok-acme"},
		{"A's token on a tenantless subdomain", "initech." + appDomain, "/", "tok-acme"},
		{"A's token for an unknown tenant's host", "nobody." + appDomain, "/", "tok-acme"},
		{"token of an unknown tenant", "api." + appDomain + ".com", "/v1/x", "tok-nobody"},
		{"no source at all", "api." + appDomain + ".com", "/v1/x", ""},
		{"unknown domain", "evil.example", "/", ""},
		{"nested subdomain", "a.acme." + appDomain, "/", ""},
		{"not a tenant id", "-x-." + appDomain, "/", ""},
		{"path no route serves", "api." + appDomain + ".com", "/v2", "tok-acme"},
		{"prefix is whole segments", "api." + appDomain + ".com", "/v1x", "tok-acme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do(t, "GET", tc.host, tc.path, tc.token, nil)
			if a.status != want.status || a.body != want.body || a.header.Get("Content-Type") != want.header.Get("Content-Type") {
				t.Fatalf("got %d %q, want %d %q", a.status, a.body, want.status, want.body)
			}
		})
	}
	if after := e.pool.count.Load() + e.silo.count.Load(); after != before {
		t.Fatalf("%d refused requests reached an upstream", after-before)
	}
}

func TestInvalidBulkheadToken(t *testing.T) {
	e := newEnv(t)
	a := e.do(t, "GET", "acme."+appDomain, "/", "tok-bad", nil)
	if a.status != 401 || !strings.Contains(a.body, `"invalid_token"`) {
		t.Fatalf("got %d %s", a.status, a.body)
	}
}

func TestTenantStatus(t *testing.T) {
	e := newEnv(t)
	e.dir.setStatus("acme", tenants.Suspended)
	a := e.do(t, "GET", "acme."+appDomain, "/", "", nil)
	if a.status != 403 || !strings.Contains(a.body, `"tenant_suspended"`) {
		t.Fatalf("suspended: %d %s", a.status, a.body)
	}
	want := unknown(t, e)
	for _, s := range []tenants.Status{tenants.Provisioning, tenants.Offboarding, tenants.Deleted} {
		e.dir.setStatus("acme", s)
		if a := e.do(t, "GET", "acme."+appDomain, "/", "", nil); a.status != 404 || a.body != want.body {
			t.Fatalf("%s: %d %s", s, a.status, a.body)
		}
	}
	if n := e.pool.count.Load(); n != 0 {
		t.Fatalf("the upstream saw %d requests of a tenant that is not active", n)
	}
}

// TestSiloNeverReachesPool: a silo tenant's requests go to its own
// upstream only; a pool tenant's never to a silo's.
func TestSiloNeverReachesPool(t *testing.T) {
	e := newEnv(t)
	for range 20 {
		if a := e.do(t, "GET", "globex."+appDomain, "/", "tok-globex", nil); a.status != 200 || a.header.Get("X-Upstream") != "silo" {
			t.Fatalf("silo tenant: %d %s", a.status, a.body)
		}
		if a := e.do(t, "POST", "globex.example", "/", "", nil); a.status != 200 || a.header.Get("X-Upstream") != "silo" {
			t.Fatalf("silo tenant by domain: %d %s", a.status, a.body)
		}
	}
	if n := e.pool.count.Load(); n != 0 {
		t.Fatalf("the pool upstream saw %d requests of a silo tenant", n)
	}
	e.do(t, "GET", "acme."+appDomain, "/", "", nil)
	if e.pool.count.Load() != 1 || e.silo.count.Load() != 40 {
		t.Fatalf("pool %d, silo %d", e.pool.count.Load(), e.silo.count.Load())
	}
	// A tenant named in a route's silo map but not placed as a silo (not
	// yet migrated) is served by the default upstream.
	e.dir.mu.Lock()
	e.dir.models["globex"] = "bridge"
	e.dir.mu.Unlock()
	if a := e.do(t, "GET", "globex."+appDomain, "/", "", nil); a.header.Get("X-Upstream") != "pool" {
		t.Fatalf("bridge tenant went to %q", a.header.Get("X-Upstream"))
	}
}

// TestHeaderStripping: nothing the client says about tenants or its
// origin reaches the upstream; the gateway's own headers do.
func TestHeaderStripping(t *testing.T) {
	e := newEnv(t)
	a := e.do(t, "GET", "acme."+appDomain, "/", "", map[string]string{
		"X-Bulkhead-Tenant":           "globex",
		"X-Bulkhead-Tenant-Assertion": "forged",
		"X-Tenant-Id":                 "globex",
		"X_Tenant_Id":                 "globex",
		"X-Forwarded-For":             "10.9.9.9",
		"X-Forwarded-Host":            "globex." + appDomain,
		"X-Forwarded-Proto":           "https",
		"Forwarded":                   "for=10.9.9.9;host=globex.example",
		"X-Real-Ip":                   "10.9.9.9",
		"X-Request-Id":                "client-request-1",
		"X-App-Header":                "kept",
	})
	if a.status != 200 || a.body != "pool acme anonymous" {
		t.Fatalf("got %d %s", a.status, a.body)
	}
	h := e.pool.seen().header
	for k := range h {
		l := strings.ToLower(k)
		if strings.Contains(l, "tenant_id") || l == "x-tenant-id" || l == "forwarded" || l == "x-real-ip" {
			t.Errorf("header %s reached the upstream", k)
		}
	}
	if got := h.Get("X-Bulkhead-Tenant"); got != "acme" {
		t.Errorf("X-Bulkhead-Tenant = %q", got)
	}
	if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", got)
	}
	if got := h.Get("X-Forwarded-Host"); got != "acme."+appDomain {
		t.Errorf("X-Forwarded-Host = %q", got)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto = %q", got)
	}
	if h.Get("X-Request-Id") != "client-request-1" || a.header.Get("X-Request-Id") != "client-request-1" {
		t.Errorf("a valid client request id was not kept: %q", h.Get("X-Request-Id"))
	}
	if h.Get("X-App-Header") != "kept" {
		t.Error("an application header was dropped")
	}
	a = e.do(t, "GET", "acme."+appDomain, "/", "", map[string]string{"X-Request-Id": "bad id\x01"[:6]})
	if rid := e.pool.seen().header.Get("X-Request-Id"); !strings.HasPrefix(rid, "req_") || a.header.Get("X-Request-Id") != rid {
		t.Errorf("an invalid request id was kept: %q", rid)
	}
}

func TestAssertionClaims(t *testing.T) {
	e := newEnv(t)
	e.do(t, "GET", "globex."+appDomain, "/", "tok-globex", nil)
	c := e.silo.seen().claims
	if c.TenantID != "globex" || c.Tier != "premium" || c.Subject != "user:u1" || c.Issuer != issuer {
		t.Fatalf("claims %+v", c)
	}
	if life := c.Expiry.Sub(c.IssuedAt); life <= 0 || life > 60*1e9 {
		t.Fatalf("assertion lives %v", life)
	}
}
