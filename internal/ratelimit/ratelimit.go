// Package ratelimit is a keyed token-bucket limiter with bounded memory,
// for throttling by source IP, by user and the like.
package ratelimit

import (
	"container/list"
	"sync"
	"time"
)

// Limiter gives each key a bucket of Burst tokens refilled at Rate per
// second. It remembers at most Max keys, forgetting the least recently used
// one when a new key arrives, so its memory stays bounded whatever keys an
// attacker sends, and a flood of new keys cannot reset an old key's bucket
// unless it outlasts Max others.
type Limiter struct {
	rate  float64
	burst float64
	max   int

	mu      sync.Mutex
	buckets map[string]*list.Element // of *bucket
	lru     *list.List               // most recently used first
}

type bucket struct {
	key     string
	tokens  float64
	last    time.Time
	refused int
}

// New returns a limiter of burst tokens per key, refilled at rate per second,
// tracking at most max keys.
func New(rate float64, burst, max int) *Limiter {
	return &Limiter{rate: rate, burst: float64(burst), max: max, buckets: map[string]*list.Element{}, lru: list.New()}
}

// Allow takes a token from key's bucket at now. It reports whether one was
// there, and, when it was, how many requests were refused since the key's
// last allowed one.
func (l *Limiter) Allow(key string, now time.Time) (ok bool, refusedBefore int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, now)
	if b.tokens < 1 {
		b.refused++
		return false, 0
	}
	b.tokens--
	refusedBefore, b.refused = b.refused, 0
	return true, refusedBefore
}

// Take takes a token from key's bucket at now, like Allow, and when there
// is none says how long until there is one (for Retry-After).
func (l *Limiter) Take(key string, now time.Time) (ok bool, wait time.Duration) {
	return l.TakeN(key, 1, now)
}

// TakeN takes n tokens from key's bucket at now, all of them or none, for
// a request that costs n (a batch of n decisions); when they are not there
// it says how long until they are. A cost above the burst is charged as
// the burst, the most a bucket holds.
func (l *Limiter) TakeN(key string, n int, now time.Time) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, now)
	need := min(float64(max(n, 1)), l.burst)
	if b.tokens >= need {
		b.tokens -= need
		b.refused = 0
		return true, 0
	}
	b.refused++
	if l.rate <= 0 {
		return false, time.Hour
	}
	return false, time.Duration((need - b.tokens) / l.rate * float64(time.Second))
}

// bucket returns key's bucket refilled up to now, making it (full) if the
// limiter did not know key. l.mu is held.
func (l *Limiter) bucket(key string, now time.Time) *bucket {
	e, found := l.buckets[key]
	if found {
		l.lru.MoveToFront(e)
	} else {
		if l.lru.Len() >= l.max {
			oldest := l.lru.Back()
			delete(l.buckets, oldest.Value.(*bucket).key)
			l.lru.Remove(oldest)
		}
		e = l.lru.PushFront(&bucket{key: key, tokens: l.burst, last: now})
		l.buckets[key] = e
	}
	b := e.Value.(*bucket)
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	return b
}

// Ready reports whether key's bucket holds a token at now, without
// taking it: for throttles that charge only failures, checked before the
// attempt and charged (Allow) after a failed one.
func (l *Limiter) Ready(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, found := l.buckets[key]
	if !found {
		return true
	}
	b := e.Value.(*bucket)
	return min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate) >= 1
}

// Tracked reports how many keys the limiter remembers.
func (l *Limiter) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// Tokens reports how many tokens key's bucket holds at now, without taking
// any: what a RateLimit header advertises as remaining. A key the limiter
// does not know has a full bucket.
func (l *Limiter) Tokens(key string, now time.Time) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, found := l.buckets[key]
	if !found {
		return l.burst
	}
	b := e.Value.(*bucket)
	return min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
}
