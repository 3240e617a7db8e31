package httpapi

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ratelimit"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// tierRates holds each tier's per-tenant request budget on this node: a
// tenant's credentials get its tier's rate_limit_rps (burst
// rate_limit_burst), and past it 429 tenant_rate_limited with Retry-After,
// so one tenant flooding the API cannot take the node from the others.
// Operators are not limited. The budget is per node: N nodes behind a
// balancer give a tenant N times its rate.
type tierRates struct {
	tiers    tenant.Tiers
	limiters map[string]*ratelimit.Limiter
	limited  *prometheus.CounterVec
}

// maxTrackedTenants bounds the tenants whose buckets a node remembers.
const maxTrackedTenants = 100000

func newTierRates(tiers tenant.Tiers, reg prometheus.Registerer) *tierRates {
	t := &tierRates{tiers: tiers, limiters: map[string]*ratelimit.Limiter{},
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

// allow charges one request of tenant credential tc.
func (t *tierRates) allow(tc tenant.Context, now time.Time) error {
	tier := tc.Tier
	if _, ok := t.tiers[tier]; !ok {
		tier = tenant.DefaultTier
	}
	l := t.limiters[tier]
	if l == nil {
		return nil
	}
	ok, wait := l.Take(string(tc.TenantID), now)
	if ok {
		return nil
	}
	t.limited.WithLabelValues(tier).Inc()
	tr := t.tiers[tier]
	return &errs.Error{Kind: errs.Busy, Code: "tenant_rate_limited", RetryAfter: max(wait, time.Second),
		Detail: fmt.Sprintf("the %s tier allows %g requests a second (bursts of %d) per tenant on this node; retry later",
			tier, tr.RateLimitRPS, max(tr.RateLimitBurst, int(tr.RateLimitRPS), 1))}
}

// limitTenant applies the tenant's rate to an authenticated request made
// with a tenant credential.
func (s *Server) limitTenant(r *http.Request) error {
	if s.rates == nil {
		return nil
	}
	tc, ok := tenant.FromContext(r.Context())
	if !ok {
		return nil // the operator
	}
	return s.rates.allow(tc, time.Now())
}
