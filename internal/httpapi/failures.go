package httpapi

import (
	"sync"
	"time"
)

// failureLimiter bounds how many authentication failures per source IP are
// written to the audit trail, so that an anonymous flood cannot grow the
// platform chain without bound or slow every audit write. Each IP has a
// token bucket; a failure over the limit is counted instead of written, and
// the next failure from that IP that is written carries the count.
type failureLimiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	rate    float64 // tokens per second
	burst   float64
	max     int // IPs tracked; past it the table starts over (bounded memory)
}

type bucket struct {
	tokens     float64
	last       time.Time
	suppressed int
}

func newFailureLimiter() *failureLimiter {
	return &failureLimiter{buckets: map[string]*bucket{}, rate: 1.0 / 6, burst: 20, max: 10000}
}

// allow reports whether a failure from ip at now should be audited, and how
// many were suppressed since the last audited one.
func (l *failureLimiter) allow(ip string, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[ip]
	if !found {
		if len(l.buckets) >= l.max {
			l.buckets = map[string]*bucket{}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[ip] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		b.suppressed++
		return false, 0
	}
	b.tokens--
	suppressed, b.suppressed = b.suppressed, 0
	return true, suppressed
}
