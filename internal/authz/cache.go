package authz

import (
	"container/list"
	"sync"

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
	gen     uint64
	order   *list.List // of *entry, most recent first
	entries map[tenant.ID]*list.Element
	global  *globals
}

type entry struct {
	tid tenant.ID
	eff *effective
}

func newCache(size int) *cache {
	return &cache{size: size, order: list.New(), entries: map[tenant.ID]*list.Element{}}
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
	c.order.MoveToFront(el)
	return el.Value.(*entry).eff, true
}

func (c *cache) put(tid tenant.ID, eff *effective, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if el, ok := c.entries[tid]; ok {
		el.Value.(*entry).eff = eff
		c.order.MoveToFront(el)
		return
	}
	c.entries[tid] = c.order.PushFront(&entry{tid, eff})
	for c.order.Len() > c.size {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.entries, last.Value.(*entry).tid)
	}
}

func (c *cache) getGlobals() (*globals, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.global, c.global != nil
}

func (c *cache) putGlobals(g *globals, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.gen {
		c.global = g
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
