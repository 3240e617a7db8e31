// Package lru is the bounded, invalidatable in-memory cache that Bulkhead's
// services keep of state read from the database (compiled policy sets,
// unwrapped tenant keys).
//
// A value read from the database may already be stale when it is ready to
// be cached, if a write committed (and invalidated) while it was being
// read. Every invalidation bumps a generation; a loader notes Generation
// before reading and Put drops its value if the generation moved since: it
// is used for that one request, and the next one reads again.
//
// A cache can be switched off (Disable) while invalidations from other
// nodes cannot arrive, and entries expire after a maximum age in case one
// went missing all the same. Evicted values are handed to an OnEvict
// function, which can zero key material.
package lru

import (
	"container/list"
	"sync"
	"time"
)

// Cache is a bounded LRU cache. The zero value is not usable; call New.
type Cache[K comparable, V any] struct {
	mu      sync.Mutex
	size    int
	maxAge  time.Duration
	now     func() time.Time
	onEvict func(V)
	on      bool
	gen     uint64
	order   *list.List // of *entry, most recent first
	entries map[K]*list.Element
}

type entry[K comparable, V any] struct {
	key K
	val V
	at  time.Time
}

// Options configure a Cache.
type Options[V any] struct {
	Size    int              // entries kept (at least 1)
	MaxAge  time.Duration    // 0: no age limit
	Now     func() time.Time // default time.Now
	OnEvict func(V)          // called (under the cache's lock) for every value dropped
	Off     bool             // start switched off (see Enable)
}

// New returns an empty cache.
func New[K comparable, V any](o Options[V]) *Cache[K, V] {
	if o.Size < 1 {
		o.Size = 1
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Cache[K, V]{size: o.Size, maxAge: o.MaxAge, now: o.Now, onEvict: o.OnEvict, on: !o.Off,
		order: list.New(), entries: map[K]*list.Element{}}
}

// Generation is the invalidation count; a loader reads it before reading
// what it will Put.
func (c *Cache[K, V]) Generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// Get returns the value cached for k, if any and not too old.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	el, ok := c.entries[k]
	if !ok {
		return zero, false
	}
	e := el.Value.(*entry[K, V])
	if c.maxAge > 0 && c.now().Sub(e.at) >= c.maxAge {
		c.remove(el)
		return zero, false
	}
	c.order.MoveToFront(el)
	return e.val, true
}

// Put caches v for k unless the generation moved since gen was read or the
// cache is off; it reports whether v was kept (if not, the caller still
// owns v, and should zero it if it is key material).
func (c *Cache[K, V]) Put(k K, v V, gen uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || !c.on {
		return false
	}
	if el, ok := c.entries[k]; ok {
		c.remove(el)
	}
	now := c.now()
	c.entries[k] = c.order.PushFront(&entry[K, V]{key: k, val: v, at: now})
	for c.order.Len() > c.size {
		c.remove(c.order.Back())
	}
	// Entries past their age at the cold end go too, so that what the
	// cache holds is bounded by its age limit as well as its size.
	for c.maxAge > 0 && c.order.Len() > 0 {
		back := c.order.Back()
		if now.Sub(back.Value.(*entry[K, V]).at) < c.maxAge {
			break
		}
		c.remove(back)
	}
	return true
}

func (c *Cache[K, V]) remove(el *list.Element) {
	e := el.Value.(*entry[K, V])
	c.order.Remove(el)
	delete(c.entries, e.key)
	if c.onEvict != nil {
		c.onEvict(e.val)
	}
}

// Evict drops k and bumps the generation.
func (c *Cache[K, V]) Evict(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if el, ok := c.entries[k]; ok {
		c.remove(el)
	}
}

// EvictFunc drops every entry whose key matches and bumps the generation.
func (c *Cache[K, V]) EvictFunc(match func(K) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k, el := range c.entries {
		if match(k) {
			c.remove(el)
		}
	}
}

// Purge drops everything and bumps the generation.
func (c *Cache[K, V]) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.purge()
}

func (c *Cache[K, V]) purge() {
	c.gen++
	for el := c.order.Front(); el != nil; el = c.order.Front() {
		c.remove(el)
	}
}

// Enable switches the cache on, empty.
func (c *Cache[K, V]) Enable() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = true
	c.purge()
}

// Disable switches the cache off and empties it.
func (c *Cache[K, V]) Disable() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
	c.purge()
}

// Len is the number of entries.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
