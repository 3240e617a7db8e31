package events

import (
	"context"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/ratelimit"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// A tenant's NATS connections may send its tier's stream_publish_rps
// messages a second (bursts of stream_publish_burst): publishes, acks and
// API requests alike, everything that enters the tenant's account.
// nats-server limits no rate itself but counts each account's messages
// (the embedded server directly, an external one through the system
// account: sysops.go), so once a second Bulkhead charges each tenant what
// its account received and, past the budget, closes the tenant's
// connections and refuses new ones for rateCooldown: a flood costs its
// own tenant, not the others. (HTTP publishes also pay the API's rate.)
const (
	publishRPS   = 5000 // the built-in rate (stream_publish_rps 0)
	rateCooldown = 5 * time.Second
	rateEvery    = time.Second
)

// rates is the publish budget of the embedded server's tenants.
type rates struct {
	mu       sync.Mutex
	limiters map[[2]float64]*ratelimit.Limiter // by rate and burst
	seen     map[string]uint64                 // account → messages received when last charged
	until    map[string]time.Time              // tenant → refused until
}

func (r *rates) limiter(t tenants.Tier) *ratelimit.Limiter {
	rps, burst := t.StreamPublishRPS, float64(t.StreamPublishBurst)
	if rps <= 0 {
		rps = publishRPS
	}
	if burst <= 0 {
		burst = 5 * rps
	}
	k := [2]float64{rps, burst}
	if r.limiters == nil {
		r.limiters = map[[2]float64]*ratelimit.Limiter{}
	}
	l, ok := r.limiters[k]
	if !ok {
		l = ratelimit.New(rps, int(burst), 100_000)
		r.limiters[k] = l
	}
	return l
}

// throttled reports whether tenant tid is refused for its message rate.
func (r *rates) throttled(tid string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return now.Before(r.until[tid])
}

// chargeRates charges each tenant with connections what its account
// received since the last time, and throttles those over their budget.
func (s *Server) chargeRates(ctx context.Context) {
	if !s.watches() {
		return
	}
	tiers := map[string]string{} // tenant → its tier, from its live connections
	for _, c := range s.live.snapshot() {
		tiers[c.tid] = c.tier
	}
	if len(tiers) == 0 {
		return
	}
	byAccount := map[string]string{} // account → tenant
	for tid := range tiers {
		if acc, err := s.accountFor(ctx, tid); err == nil {
			byAccount[acc] = tid
		}
	}
	received, err := s.accountsReceived(ctx, byAccount)
	if err != nil {
		return
	}
	now := time.Now()
	var throttle []string
	s.rates.mu.Lock()
	if s.rates.seen == nil {
		s.rates.seen, s.rates.until = map[string]uint64{}, map[string]time.Time{}
	}
	for acc, n := range received {
		tid := byAccount[acc]
		prev, known := s.rates.seen[acc]
		s.rates.seen[acc] = n
		// The embedded server's counts start with Bulkhead (0 the first
		// time); an external server's are its history: a baseline.
		if n <= prev || (!known && s.ns == nil) {
			continue
		}
		// Over the budget: more messages than the bucket holds (TakeN
		// alone would charge a cost above the burst as the burst).
		l := s.rates.limiter(s.cfg.Tiers[tiers[tid]])
		over := float64(n-prev) > l.Tokens(tid, now)
		if ok, _ := l.TakeN(tid, int(n-prev), now); !ok || over {
			s.rates.until[tid] = now.Add(rateCooldown)
			throttle = append(throttle, tid)
		}
	}
	s.rates.mu.Unlock()
	for _, tid := range throttle {
		s.kick(ctx, tid)
		s.cfg.Logger.WarnContext(ctx, "events: a tenant's connections closed: over its tier's message rate", "tenant_id", tid,
			"refused_for", rateCooldown.String())
	}
}
