package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/fairshare"
	"github.com/bulkhead-dev/bulkhead/internal/ratelimit"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// tierRates holds each tier's per-tenant request budget on this node: a
// tenant's credentials get its tier's rate_limit_rps (burst
// rate_limit_burst), and past it 429 tenant_rate_limited with Retry-After,
// so one tenant flooding the API cannot take the node from the others.
// Operators are not limited. The budget is per node: N nodes behind a
// balancer give a tenant N times its rate.
type tierRates struct {
	tiers    tenants.Tiers
	limiters map[string]*ratelimit.Limiter
	limited  *prometheus.CounterVec

	heldMu sync.Mutex
	held   map[string]int // refusals being held, by tenant
}

// slowRefusal holds a refusal over the rate until the tenant's bucket has
// a token again (at most a second), for up to maxHeldRefusals of a tenant
// at once: a client that ignores Retry-After and resends at once would
// otherwise make the node refuse tens of thousands of requests a second,
// and those refusals, cheap as each is, take the cores from other
// tenants. Held connections cost memory, not CPU.
func (t *tierRates) slowRefusal(ctx context.Context, key string, err error) {
	e, _ := errs.As(err)
	wait := time.Second
	if e != nil && e.RetryAfter > 0 {
		wait = min(e.RetryAfter, time.Second)
	}
	t.heldMu.Lock()
	if t.held[key] >= maxHeldRefusals {
		t.heldMu.Unlock()
		return
	}
	t.held[key]++
	t.heldMu.Unlock()
	defer func() {
		t.heldMu.Lock()
		if t.held[key]--; t.held[key] == 0 {
			delete(t.held, key)
		}
		t.heldMu.Unlock()
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// maxHeldRefusals bounds the refusals held at once per tenant.
const maxHeldRefusals = 64

// maxTrackedTenants bounds the tenants whose buckets a node remembers.
const maxTrackedTenants = 100000

func newTierRates(tiers tenants.Tiers, reg prometheus.Registerer) *tierRates {
	t := &tierRates{tiers: tiers, limiters: map[string]*ratelimit.Limiter{}, held: map[string]int{},
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulkhead_tenant_rate_limited_total", Help: "API requests refused over the tenant's tier rate, by tier.",
		}, []string{"tier"})}
	for name, tr := range tiers {
		if tr.RateLimitRPS > 0 {
			burst := max(tr.RateLimitBurst, int(tr.RateLimitRPS), 1)
			t.limiters[name] = ratelimit.New(tr.RateLimitRPS, burst, maxTrackedTenants)
		}
	}
	reg.MustRegister(t.limited)
	return t
}

// allow charges n requests of tenant credential tc.
func (t *tierRates) allow(tc tenant.Context, n int, now time.Time) error {
	tier := tc.Tier
	if _, ok := t.tiers[tier]; !ok {
		tier = tenants.DefaultTier
	}
	l := t.limiters[tier]
	if l == nil {
		return nil
	}
	ok, wait := l.TakeN(string(tc.TenantID), n, now)
	if ok {
		return nil
	}
	t.limited.WithLabelValues(tier).Inc()
	tr := t.tiers[tier]
	return &errs.Error{Kind: errs.Busy, Code: "tenant_rate_limited", RetryAfter: max(wait, time.Second),
		Detail: fmt.Sprintf("the %s tier allows %g requests a second (bursts of %d) per tenant on this node; retry later",
			tier, tr.RateLimitRPS, max(tr.RateLimitBurst, int(tr.RateLimitRPS), 1))}
}

// charge counts n requests of tenant credential tc against its tier's
// rate, holding a refusal as slowRefusal says.
func (t *tierRates) charge(ctx context.Context, tc tenant.Context, n int) error {
	if err := t.allow(tc, n, time.Now()); err != nil {
		t.slowRefusal(ctx, string(tc.TenantID), err)
		return err
	}
	return nil
}

// limitTenant applies the tenant's rate to an authenticated request made
// with a tenant credential, then waits for one of the tenant's in-flight
// places. It returns the request's context, which carries what chargeMore
// needs, and the function that gives the place back.
func (s *Server) limitTenant(r *http.Request) (context.Context, func(), error) {
	ctx := r.Context()
	tc, ok := tenant.FromContext(ctx)
	if !ok {
		return ctx, func() {}, nil // the operator
	}
	if s.rates != nil {
		if err := s.rates.charge(ctx, tc, 1); err != nil {
			return nil, nil, err
		}
		ctx = context.WithValue(ctx, costKey{}, func(n int) error { return s.rates.charge(ctx, tc, n) })
	}
	key := string(tc.TenantID)
	if err := s.inflight.Acquire(ctx, key, maxInflightWait); err != nil {
		if errors.Is(err, fairshare.ErrBusy) {
			err = &errs.Error{Kind: errs.Busy, Code: "tenant_busy", RetryAfter: time.Second,
				Detail: "this tenant's requests have filled its share of the node; retry shortly"}
		}
		return nil, nil, err
	}
	release := sync.OnceFunc(func() { s.inflight.Release(key) })
	return context.WithValue(ctx, inflightKey{}, release), release, nil
}

type costKey struct{}

type inflightKey struct{}

// leaveInflight gives the request's in-flight place back before the
// request waits without working (a long-poll pull): waiting costs no CPU,
// and held it would keep the tenant's other requests out (a tenant may
// have one place per two cores). What bounds such waits is the caller's
// own limit on them.
func leaveInflight(r *http.Request) {
	if f, ok := r.Context().Value(inflightKey{}).(func()); ok {
		f()
	}
}

// chargeMore counts n more requests of the caller against its tier's rate,
// for a request whose cost is known only once its body is read: a batch of
// n decisions costs what n single requests do, so batching does not
// multiply a tier's rate a hundredfold. The operator's requests, and a
// tier without a rate, cost nothing.
func chargeMore(r *http.Request, n int) error {
	f, _ := r.Context().Value(costKey{}).(func(int) error)
	if f == nil || n <= 0 {
		return nil
	}
	return f(n)
}

// A tenant's requests in flight on a node are bounded (newInflight): more
// wait, in arrival order, for up to maxInflightWait. Waiting costs no CPU,
// so a tenant that floods the API with many connections holds a few cores'
// worth of work at a time and another tenant's request is served beside
// it rather than behind all of it. Operators are not bounded.
const maxInflightWait = 10 * time.Second

func newInflight() *fairshare.Slots {
	return fairshare.New(1<<30, max(1, runtime.GOMAXPROCS(0)/2))
}
