package tenantdb

import "container/list"

// lru is a bounded map that forgets its least recently used entries. It is
// not safe for concurrent use: its owner holds a lock around it. (sdk
// packages do not import Bulkhead's internal ones, so this is a small
// cache of the SDK's own rather than internal/lru.)
type lru[K comparable, V any] struct {
	max   int
	order *list.List // of *lruEntry[K, V], most recent first
	items map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	return &lru[K, V]{max: max, order: list.New(), items: map[K]*list.Element{}}
}

// get returns k's value and makes it the most recently used.
func (c *lru[K, V]) get(k K) (V, bool) {
	el, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*lruEntry[K, V]).val, true
}

// put sets k's value, most recently used, and returns the values it
// dropped to stay within its bound (k's previous value included).
func (c *lru[K, V]) put(k K, v V) (dropped []V) {
	if old, ok := c.remove(k); ok {
		dropped = append(dropped, old)
	}
	c.items[k] = c.order.PushFront(&lruEntry[K, V]{key: k, val: v})
	for c.order.Len() > c.max {
		_, old, _ := c.removeOldest()
		dropped = append(dropped, old)
	}
	return dropped
}

// remove drops k and returns its value.
func (c *lru[K, V]) remove(k K) (V, bool) {
	el, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.Remove(el)
	delete(c.items, k)
	return el.Value.(*lruEntry[K, V]).val, true
}

// oldest returns the least recently used entry.
func (c *lru[K, V]) oldest() (K, V, bool) {
	el := c.order.Back()
	if el == nil {
		var (
			k K
			v V
		)
		return k, v, false
	}
	e := el.Value.(*lruEntry[K, V])
	return e.key, e.val, true
}

// removeOldest drops the least recently used entry and returns it.
func (c *lru[K, V]) removeOldest() (K, V, bool) {
	k, v, ok := c.oldest()
	if ok {
		c.remove(k)
	}
	return k, v, ok
}

// removeIf drops the entries whose value matches and returns them.
func (c *lru[K, V]) removeIf(match func(V) bool) (dropped []V) {
	for el := c.order.Front(); el != nil; {
		next := el.Next()
		if e := el.Value.(*lruEntry[K, V]); match(e.val) {
			c.order.Remove(el)
			delete(c.items, e.key)
			dropped = append(dropped, e.val)
		}
		el = next
	}
	return dropped
}

// clear drops every entry and returns their values.
func (c *lru[K, V]) clear() []V {
	vals := make([]V, 0, c.order.Len())
	for el := c.order.Front(); el != nil; el = el.Next() {
		vals = append(vals, el.Value.(*lruEntry[K, V]).val)
	}
	c.order.Init()
	clear(c.items)
	return vals
}

func (c *lru[K, V]) len() int { return c.order.Len() }
