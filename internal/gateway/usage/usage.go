// Package usage is the gateway's usage plans and usage records: before it
// proxies a request the gateway asks Admit whether the tenant's plan lets
// it through (a rate per node and a quota per day or month across all
// nodes), and after the response it hands Record what the request cost
// (bytes, latency, status), which becomes hourly usage rows for cost
// allocation, Prometheus metrics and an access log line.
//
// A plan comes from the tenant's tier (the gateway_* fields of the tiers
// file) unless the operator has given the tenant a plan of its own. Both
// apply without a restart: the tier is the caller's per request, and an
// override is cached only while its invalidation channel listens.
//
// Counting is local and batched, so that a request never waits for the
// database: quota increments and usage rows are flushed every FlushEvery
// (and, for quotas, whenever a node's unflushed count reaches QuotaBatch),
// by Run, which flushes one last time when it stops. A crash loses what was
// not flushed: at most one batch of each.
package usage

import (
	"context"
	"embed"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/httpx"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/ratelimit"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/prometheus/client_golang/prometheus"
)

//go:embed migrations
var migrations embed.FS

// Migrations returns the usage tables' migrations.
func Migrations() storage.Component {
	c := storage.Embedded("gateway_usage", migrations)
	c.RowSecurity = map[string]storage.Rows{
		"gateway_usage_plans":    storage.TenantRows("tenant_id"),
		"gateway_quota_counters": storage.TenantRows("tenant_id"),
		"gateway_usage":          storage.TenantRows("tenant_id"),
	}
	return c
}

// Period is how long a quota lasts before it starts again, in UTC.
type Period string

// The quota periods.
const (
	Day   Period = "day"
	Month Period = "month"
)

// start returns the start of the period that holds t (UTC).
func (p Period) start(t time.Time) time.Time {
	t = t.UTC()
	if p == Month {
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// end returns the end of the period that starts at start.
func (p Period) end(start time.Time) time.Time {
	if p == Month {
		return start.AddDate(0, 1, 0)
	}
	return start.AddDate(0, 0, 1)
}

// Plan is a tenant's usage plan: a rate of RPS requests per second with
// bursts of Burst (per gateway node, divided by Config.Nodes), and a quota
// of Quota requests per QuotaPeriod across all nodes. A zero RPS or Quota
// is no limit.
type Plan struct {
	RPS         float64 `json:"rps"`
	Burst       int     `json:"burst"`
	Quota       int64   `json:"quota"`
	QuotaPeriod Period  `json:"quota_period,omitempty"`
}

// Validate checks a plan as the operator sends it.
func (p Plan) Validate() error {
	switch {
	case math.IsNaN(p.RPS) || math.IsInf(p.RPS, 0) || p.RPS < 0 || p.RPS > 1e6:
		return errs.Field("rps", "invalid_plan", "rps must be between 0 and 1000000")
	case p.Burst < 0 || p.Burst > 1e7 || (p.RPS > 0 && p.Burst < 1):
		return errs.Field("burst", "invalid_plan", "burst must be between 1 and 10000000 when rps is set")
	case p.Quota < 0:
		return errs.Field("quota", "invalid_plan", "quota cannot be negative")
	case p.Quota > 0 && p.QuotaPeriod != Day && p.QuotaPeriod != Month:
		return errs.Field("quota_period", "invalid_plan", "quota_period must be day or month when quota is set")
	case p.Quota == 0 && p.QuotaPeriod != "":
		return errs.Field("quota_period", "invalid_plan", "quota_period needs a quota")
	}
	return nil
}

// TierPlan returns the plan of tier t.
func TierPlan(t tenants.Tier) Plan {
	return Plan{RPS: t.GatewayRPS, Burst: t.GatewayBurst, Quota: t.GatewayQuota, QuotaPeriod: Period(t.GatewayQuotaPeriod)}
}

// Config is what a Service needs.
type Config struct {
	DB     *storage.DB
	Audit  *audit.Log // audits the operator's overrides
	Tiers  tenants.Tiers
	Clock  clock.Clock
	Logger *slog.Logger // flush failures, and the access log without AccessLog
	// AccessLog, if set, takes the access log: one line per request
	// (the node's logging.Buffer, so that a line is not a write each).
	AccessLog *slog.Logger
	// Nodes divides each plan's rate between this many gateway nodes, so
	// that N nodes together give the plan's rate rather than N times it
	// (default 1). Quotas are global and not divided.
	Nodes int
	// FlushEvery is how often counts are flushed (default one second).
	FlushEvery time.Duration
	// QuotaBatch is how many requests a node admits against a quota
	// before it must flush them (default 100): the bound of its overshoot.
	QuotaBatch int
	// TopTenants is how many tenants, by requests, get their own metric
	// label; the others are "other" (default 20).
	TopTenants int
	// Registerer takes the metrics (none if nil).
	Registerer prometheus.Registerer
}

// Service admits requests under usage plans and records their usage.
type Service struct {
	db         *storage.DB
	clock      clock.Clock
	log        *slog.Logger
	access     slog.Handler // the access log
	nodes      int
	flushEvery time.Duration
	batch      int
	topN       int
	inval      *inval.Channel

	tiersMu sync.RWMutex
	tiers   tenants.Tiers

	limitersMu sync.Mutex
	limiters   map[Plan]*ratelimit.Limiter // by the plan's rate and burst

	plans planCache

	quotaMu   sync.Mutex
	counters  map[counterKey]*counter
	flushQuMu sync.Mutex // one quota flush at a time

	recMu   sync.Mutex
	records map[recordKey]*Record
	full    chan struct{} // Record asks Run for an early flush
	metrics *metrics
}

// maxLimiters bounds the limiters kept for distinct rates: past it they
// are all dropped (and refilled), which only ever lets more through.
const maxLimiters = 1024

// maxTenantsPerLimiter bounds each limiter's buckets.
const maxTenantsPerLimiter = 100_000

// New returns a service. Run it for the flushes and the override cache.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.AccessLog == nil {
		cfg.AccessLog = cfg.Logger
	}
	s := &Service{db: cfg.DB, clock: cfg.Clock, log: cfg.Logger, access: cfg.AccessLog.Handler(), tiers: cfg.Tiers, nodes: max(cfg.Nodes, 1),
		flushEvery: cfg.FlushEvery, batch: cfg.QuotaBatch, topN: cfg.TopTenants,
		limiters: map[Plan]*ratelimit.Limiter{}, counters: map[counterKey]*counter{}, records: map[recordKey]*Record{}, full: make(chan struct{}, 1)}
	if s.flushEvery <= 0 {
		s.flushEvery = time.Second
	}
	if s.batch <= 0 {
		s.batch = 100
	}
	if s.topN <= 0 {
		s.topN = 20
	}
	s.plans.entries = map[tenant.ID]*Plan{}
	s.inval = inval.New(cfg.DB, "bulkhead_gateway_plans", cfg.Audit, cfg.Logger, s.plans.hooks())
	s.metrics = newMetrics(s, cfg.Registerer)
	return s
}

// SetTiers replaces the tiers (a reloaded tiers file): the next admission
// of each tier uses its new plan.
func (s *Service) SetTiers(ts tenants.Tiers) {
	s.tiersMu.Lock()
	defer s.tiersMu.Unlock()
	s.tiers = ts
}

// Run flushes counts every FlushEvery and keeps the override cache
// coherent until ctx ends, then flushes one last time and returns.
func (s *Service) Run(ctx context.Context) error {
	ticker, tick := s.clock.NewTicker(s.flushEvery)
	defer ticker.Stop()
	var listener sync.WaitGroup
	listener.Go(func() { s.inval.Run(ctx) })
	defer listener.Wait()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			return s.Flush(final)
		case <-tick:
		case <-s.full:
		}
		if err := s.Flush(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "usage: flush", "err", err)
		}
	}
}

// Flush writes the pending quota increments and usage rows now.
func (s *Service) Flush(ctx context.Context) error {
	qerr := s.flushQuotas(ctx)
	rerr := s.flushRecords(ctx)
	if qerr != nil {
		return qerr
	}
	return rerr
}

// PlanFor returns the plan that applies to tenant tid of tier: its
// override, or its tier's.
func (s *Service) PlanFor(ctx context.Context, tid tenant.ID, tier string) (Plan, error) {
	o, err := s.override(ctx, tid)
	if err != nil {
		return Plan{}, err
	}
	if o != nil {
		return *o, nil
	}
	s.tiersMu.RLock()
	defer s.tiersMu.RUnlock()
	return TierPlan(s.tiers[tier]), nil
}

// Decision is Admit's answer, with the RateLimit fields the response
// carries either way.
type Decision struct {
	Allowed bool
	// Reason is why a request was refused: "rate" or "quota".
	Reason string
	// RetryAfter is how long until a refused request may succeed.
	RetryAfter time.Duration
	// Policy and Limit are the RateLimit-Policy and RateLimit fields
	// (draft-ietf-httpapi-ratelimit-headers-11), empty with no limit. A
	// refusal carries only the violated policy in Limit.
	Policy, Limit string
}

// SetHeaders writes the decision's RateLimit fields into h.
func (d Decision) SetHeaders(h http.Header) {
	if d.Policy != "" {
		h.Set("RateLimit-Policy", d.Policy)
		h.Set("RateLimit", d.Limit)
	}
}

// Reject answers a refused request: 429 problem+json with Retry-After,
// the RateLimit fields and the violated policy's name in the problem's
// "violated-policies" member (draft-ietf-httpapi-ratelimit-headers). The
// problem keeps Bulkhead's own type and code, like every other answer.
func (d Decision) Reject(w http.ResponseWriter) {
	d.SetHeaders(w.Header())
	code, detail := "rate_limited", "the tenant's request rate is over its plan; retry after the Retry-After seconds"
	if d.Reason == "quota" {
		code, detail = "quota_exceeded", "the tenant's request quota for this period is used up"
	}
	e := &errs.Error{Kind: errs.Busy, Code: code, Detail: detail, RetryAfter: max(d.RetryAfter, time.Second)}
	p := httpx.ProblemFor(e)
	p.ViolatedPolicies = []string{d.Reason}
	httpx.WriteProblem(w, p)
}

// Admit decides whether tenant tid, of tier, may make one more request
// now, and counts it if so. A rate refusal does not count against the
// quota; a quota refusal has taken a rate token. It fails only when the
// plan cannot be read or the quota count cannot be flushed.
func (s *Service) Admit(ctx context.Context, tid tenant.ID, tier string) (Decision, error) {
	plan, err := s.PlanFor(ctx, tid, tier)
	if err != nil {
		return Decision{}, err
	}
	now := s.clock.Now()
	d := Decision{Allowed: true}
	var policies []string
	limits := map[string]string{} // policy → its RateLimit item
	if plan.RPS > 0 {
		l := s.limiter(plan)
		ok, _ := l.Take(string(tid), now)
		burst := s.share(plan.Burst)
		rate := plan.RPS / float64(s.nodes)
		left := l.Tokens(string(tid), now)
		// The bucket of q=burst refills in w seconds. Until its next whole
		// token (t) the client can use no more than the r it holds; a full
		// bucket gets no t.
		policies = append(policies, fmt.Sprintf(`"rate";q=%d;w=%d`, burst, ceilSeconds(float64(burst)/rate)))
		limits["rate"] = fmt.Sprintf(`"rate";r=%d`, int(left))
		if r := math.Floor(left); r < float64(burst) {
			next := ceilSeconds((r + 1 - left) / rate)
			limits["rate"] += fmt.Sprintf(";t=%d", next)
			if !ok {
				d.Allowed, d.Reason, d.RetryAfter = false, "rate", time.Duration(next)*time.Second
			}
		}
	}
	if plan.Quota > 0 {
		remaining, until, ok, err := s.admitQuota(ctx, tid, plan, now, d.Allowed)
		if err != nil {
			return Decision{}, err
		}
		start := plan.QuotaPeriod.start(now)
		window := plan.QuotaPeriod.end(start).Sub(start)
		policies = append(policies, fmt.Sprintf(`"quota";q=%d;w=%d`, plan.Quota, ceilSeconds(window.Seconds())))
		t := ceilSeconds(until.Seconds())
		limits["quota"] = fmt.Sprintf(`"quota";r=%d;t=%d`, remaining, t)
		if d.Allowed && !ok {
			d.Allowed, d.Reason, d.RetryAfter = false, "quota", time.Duration(t)*time.Second
		}
	}
	d.Policy = strings.Join(policies, ", ")
	if d.Allowed {
		var items []string
		for _, name := range []string{"rate", "quota"} {
			if it, ok := limits[name]; ok {
				items = append(items, it)
			}
		}
		d.Limit = strings.Join(items, ", ")
	} else {
		// Only the violated policy: Retry-After must not end before the
		// effective window (t) of any service limit the answer carries.
		d.Limit = limits[d.Reason]
		s.metrics.refused(s.tierOf(tier), d.Reason)
	}
	return d, nil
}

// ceilSeconds rounds seconds up to a whole number of at least one: what
// the RateLimit fields and Retry-After carry (delay-seconds).
func ceilSeconds(sec float64) int { return max(int(math.Ceil(sec)), 1) }

// share is this node's share of a plan's burst: at least one request.
func (s *Service) share(burst int) int { return max(burst/s.nodes, 1) }

// limiter returns the limiter of plan's rate and burst (this node's share).
func (s *Service) limiter(plan Plan) *ratelimit.Limiter {
	key := Plan{RPS: plan.RPS, Burst: plan.Burst}
	s.limitersMu.Lock()
	defer s.limitersMu.Unlock()
	if l, ok := s.limiters[key]; ok {
		return l
	}
	if len(s.limiters) >= maxLimiters {
		clear(s.limiters)
	}
	l := ratelimit.New(plan.RPS/float64(s.nodes), s.share(plan.Burst), maxTenantsPerLimiter)
	s.limiters[key] = l
	return l
}

// tierOf returns tier if it is configured, else "unknown": a metric label
// of bounded values.
func (s *Service) tierOf(tier string) string {
	s.tiersMu.RLock()
	defer s.tiersMu.RUnlock()
	if _, ok := s.tiers[tier]; ok {
		return tier
	}
	return "unknown"
}
