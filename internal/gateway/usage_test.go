package gateway_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/gateway"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/usage"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// plan refuses one tenant and records every response.
type plan struct {
	refuse tenant.ID
	mu     sync.Mutex
	usage  []usage.Usage
}

func (p *plan) Admit(_ context.Context, id tenant.ID, _ string) (usage.Decision, error) {
	if id == p.refuse {
		return usage.Decision{Reason: "rate", RetryAfter: 2 * time.Second, Policy: `"rate";q=1;w=1`, Limit: `"rate";r=0;t=2`}, nil
	}
	return usage.Decision{Allowed: true, Policy: `"rate";q=1;w=1`, Limit: `"rate";r=1`}, nil
}

func (p *plan) Record(_ context.Context, u usage.Usage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.usage = append(p.usage, u)
}

func (p *plan) recorded() []usage.Usage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]usage.Usage(nil), p.usage...)
}

// TestAdmitter: the usage hook is asked after resolution, refuses with 429
// before anything reaches the upstream, and is told of each response.
func TestAdmitter(t *testing.T) {
	e := newEnv(t)
	p := &plan{refuse: "acme"}
	gw := gateway.New(gateway.Config{Tenants: e.dir, Verifiers: []authn.Verifier{tokens{}}, AppDomain: appDomain,
		Asserter: gateway.NewAsserter(e.keys, issuer, "", nil), Admitter: p, AllowPrivateUpstreams: true})
	defer gw.Close()
	gw.SetRoutes(gateway.NewTable([]gateway.Route{{ID: "rt_app", Host: "*." + appDomain, PathPrefix: "/", Upstream: e.pool.URL}}))
	e.gw = gw
	srv := startGateway(t, gw)
	e.url = srv
	a := e.do(t, "GET", "acme."+appDomain, "/", "", nil)
	if a.status != 429 || !strings.Contains(a.body, `"rate_limited"`) || !strings.Contains(a.body, `"violated-policies":["rate"]`) ||
		a.header.Get("Retry-After") != "2" ||
		a.header.Get("RateLimit") != `"rate";r=0;t=2` {
		t.Fatalf("refused: %d %v %s", a.status, a.header, a.body)
	}
	if e.pool.count.Load() != 0 {
		t.Fatal("a refused request reached the upstream")
	}
	if a := e.do(t, "GET", "initech."+appDomain, "/?token=secret", "", nil); a.status != 200 || a.header.Get("RateLimit-Policy") != `"rate";q=1;w=1` {
		t.Fatalf("admitted: %d %v %s", a.status, a.header, a.body)
	}
	runtest.Eventually(t, "the response recorded", func() bool {
		u := p.recorded()
		return len(u) == 1 && u[0].Tenant == "initech" && u[0].Path == "/" && u[0].Method == "GET" && u[0].Status == 200 && u[0].BytesOut > 0
	})
}
