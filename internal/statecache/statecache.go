// Package statecache keeps, for a moment, what a request path read of
// state that rarely changes (a tenant's record, an OAuth client's
// registration), under the rule every such cache in Bulkhead follows:
// a read is used for at most TTL, and never after a state change made on
// this node since it was read (audit.Log.Changes counts them), so a
// change made here applies at once and one made on another node within
// TTL. The token checks of the API (authn.StateCache) and the edge
// gateway's tenant reads follow the same rule.
package statecache

import (
	"context"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/lru"
)

// Config is a cache's rule.
type Config struct {
	// TTL is how long a read is used (0: no cache).
	TTL time.Duration
	// Changes counts the state changes made on this node; nil counts
	// none (then only TTL bounds a read's use).
	Changes func() uint64
	// Size bounds the reads kept (default 10,000): past it the least
	// recently used go, so a flood of made-up keys costs reads, not
	// memory.
	Size int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Reads caches the values of load by key.
type Reads[K comparable, V any] struct {
	cfg Config
	c   *lru.Cache[K, read[V]]
}

type read[V any] struct {
	v      V
	err    error // an answer kept like a value (keep said so)
	change uint64
}

// New returns an empty cache with cfg's rule.
func New[K comparable, V any](cfg Config) *Reads[K, V] {
	if cfg.Changes == nil {
		cfg.Changes = func() uint64 { return 0 }
	}
	if cfg.Size <= 0 {
		cfg.Size = 10000
	}
	return &Reads[K, V]{cfg: cfg, c: lru.New[K, read[V]](lru.Options[read[V]]{Size: cfg.Size, MaxAge: max(cfg.TTL, time.Nanosecond), Now: cfg.Now})}
}

// Get returns k's value: the one read within TTL and since this node's
// last change, or else load's, which is kept if keep says so (a value,
// or an answer such as "not found" that is as good as one; never a
// failure to read).
func (r *Reads[K, V]) Get(ctx context.Context, k K, load func(context.Context) (V, error), keep func(V, error) bool) (V, error) {
	change := r.cfg.Changes() // before reading: a change during the read makes it stale
	if r.cfg.TTL > 0 {
		if got, ok := r.c.Get(k); ok && got.change == change {
			return got.v, got.err
		}
	}
	v, err := load(ctx)
	if r.cfg.TTL > 0 && keep(v, err) {
		r.c.Put(k, read[V]{v: v, err: err, change: change}, r.c.Generation())
	}
	return v, err
}
