package gateway_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/gateway"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// countingDir counts the directory's reads.
type countingDir struct {
	*directory
	reads atomic.Int64
}

func (d *countingDir) Get(ctx context.Context, id tenant.ID) (tenants.Tenant, error) {
	d.reads.Add(1)
	return d.directory.Get(ctx, id)
}

func (d *countingDir) TenantForDomainAllTenants(ctx context.Context, domain string) (tenant.ID, error) {
	d.reads.Add(1)
	return d.directory.TenantForDomainAllTenants(ctx, domain)
}

// TestStateCache: tenant reads are kept for the TTL, and a change on this
// node (Changes moves) applies at once.
func TestStateCache(t *testing.T) {
	e := newEnv(t)
	dir := &countingDir{directory: e.dir}
	var changes atomic.Uint64
	gw := gateway.New(gateway.Config{Tenants: dir, Domains: registryDomains{Registry: dir}, Verifiers: []authn.Verifier{tokens{}},
		AppDomain: appDomain, Asserter: gateway.NewAsserter(e.keys, issuer, "", nil), AllowPrivateUpstreams: true,
		Cache: gateway.StateCache{TTL: time.Hour, Changes: changes.Load}})
	defer gw.Close()
	gw.SetRoutes(gateway.NewTable([]gateway.Route{{ID: "rt", Host: "*", PathPrefix: "/", Upstream: e.pool.URL},
		{ID: "rt_app", Host: "*." + appDomain, PathPrefix: "/", Upstream: e.pool.URL}}))
	e.url = startGateway(t, gw)
	for range 5 {
		if a := e.do(t, "GET", "acme.example", "/", "", nil); a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
	}
	if n := dir.reads.Load(); n != 3 { // the domain, its tenant to confirm it, the tenant: once each
		t.Fatalf("%d reads for 5 requests", n)
	}
	e.dir.setStatus("acme", tenants.Suspended)
	changes.Add(1)
	if a := e.do(t, "GET", "acme."+appDomain, "/", "", nil); a.status != 403 {
		t.Fatalf("after a change: %d", a.status)
	}
}

// TestNoCustomDomainRouteNoLookup: without a "*" route, hosts that are no
// route's are answered without reading anything.
func TestNoCustomDomainRouteNoLookup(t *testing.T) {
	e := newEnv(t)
	dir := &countingDir{directory: e.dir}
	gw := gateway.New(gateway.Config{Tenants: dir, Domains: registryDomains{Registry: dir}, Verifiers: []authn.Verifier{tokens{}},
		AppDomain: appDomain, Asserter: gateway.NewAsserter(e.keys, issuer, "", nil), AllowPrivateUpstreams: true})
	defer gw.Close()
	gw.SetRoutes(gateway.NewTable([]gateway.Route{{ID: "rt_app", Host: "*." + appDomain, PathPrefix: "/", Upstream: e.pool.URL}}))
	e.url = startGateway(t, gw)
	for _, host := range []string{"acme.example", "random-1.example", "random-2.example", ""} {
		if a := e.do(t, "GET", host, "/", "", nil); a.status != 404 {
			t.Fatalf("%q: %d", host, a.status)
		}
	}
	if n := dir.reads.Load(); n != 0 {
		t.Fatalf("%d reads", n)
	}
}
