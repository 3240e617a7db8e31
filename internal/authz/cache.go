package authz

import (
	"container/list"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// cache is a bounded LRU of compiled effective sets, plus the global set.
//
// A set read from the database may already be stale when it is ready to
// be cached, if a write committed (and invalidated) while it was being
// read. Every invalidation bumps gen; a loader notes gen before reading and
// put drops its result if gen moved since: it is used for that one
// decision, and the next request reads again.
type cache struct {
	mu      sync.Mutex
	size    int
	maxAge  time.Duration
	now     func() time.Time
	on      bool // off while invalidations cannot arrive (see Service.Start)
	gen     uint64
	order   *list.List // of *entry, most recent first
	entries map[tenant.ID]*list.Element
	global  *globals
	globAt  time.Time
}

type entry struct {
	tid tenant.ID
	eff *effective
	at  time.Time
}

// maxAge bounds how long a set is used without being read again, in case
// an invalidation went missing all the same.
const maxAge = 5 * time.Minute

func newCache(size int) *cache {
	return &cache{size: size, maxAge: maxAge, now: time.Now, order: list.New(), entries: map[tenant.ID]*list.Element{}}
}

// enable turns the cache on, empty (invalidations arrive from now on).
func (c *cache) enable() {
	c.mu.Lock()
	c.on = true
	c.mu.Unlock()
	c.purge()
}

// disable turns the cache off and empties it (invalidations may be missed).
func (c *cache) disable() {
	c.mu.Lock()
	c.on = false
	c.mu.Unlock()
	c.purge()
}

func (c *cache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *cache) get(tid tenant.ID) (*effective, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[tid]
	if !ok {
		return nil, false
	}
	if e := el.Value.(*entry); c.now().Sub(e.at) >= c.maxAge {
		c.order.Remove(el)
		delete(c.entries, tid)
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*entry).eff, true
}

func (c *cache) put(tid tenant.ID, eff *effective, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || !c.on {
		return
	}
	if el, ok := c.entries[tid]; ok {
		e := el.Value.(*entry)
		e.eff, e.at = eff, c.now()
		c.order.MoveToFront(el)
		return
	}
	c.entries[tid] = c.order.PushFront(&entry{tid, eff, c.now()})
	for c.order.Len() > c.size {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.entries, last.Value.(*entry).tid)
	}
}

func (c *cache) getGlobals() (*globals, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.global == nil || c.now().Sub(c.globAt) >= c.maxAge {
		return nil, false
	}
	return c.global, true
}

func (c *cache) putGlobals(g *globals, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.gen && c.on {
		c.global, c.globAt = g, c.now()
	}
}

// evict drops tenant tid's set.
func (c *cache) evict(tid tenant.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if el, ok := c.entries[tid]; ok {
		c.order.Remove(el)
		delete(c.entries, tid)
	}
}

// purge drops everything (a global change, or a lost notification connection).
func (c *cache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.order.Init()
	clear(c.entries)
	c.global = nil
}

// len is the number of cached tenant sets.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
