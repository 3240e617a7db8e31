package lru_test

import (
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/lru"
)

func TestCache(t *testing.T) {
	now := time.Unix(1000, 0)
	var evicted []int
	c := lru.New[string, int](lru.Options[int]{Size: 2, MaxAge: time.Minute, Now: func() time.Time { return now },
		OnEvict: func(v int) { evicted = append(evicted, v) }})
	put := func(k string, v int) bool { return c.Put(k, v, c.Generation()) }
	put("a", 1)
	put("b", 2)
	c.Get("a") // a is now the most recent
	put("c", 3)
	if _, ok := c.Get("b"); ok || c.Len() != 2 {
		t.Errorf("b not evicted as least recent: len %d", c.Len())
	}
	if len(evicted) != 1 || evicted[0] != 2 {
		t.Errorf("evicted %v, want [2]", evicted)
	}
	// A load that started before an invalidation is not kept.
	gen := c.Generation()
	c.Evict("zzz")
	if c.Put("d", 4, gen) {
		t.Error("a stale load was kept")
	}
	// Too old entries are gone.
	now = now.Add(time.Minute)
	if _, ok := c.Get("a"); ok {
		t.Error("an entry older than MaxAge was served")
	}
	// Off: nothing is kept; Enable empties.
	c.Disable()
	if put("e", 5) || c.Len() != 0 {
		t.Errorf("a disabled cache kept a value (len %d)", c.Len())
	}
	c.Enable()
	if !put("e", 5) {
		t.Error("an enabled cache refused a value")
	}
	c.EvictFunc(func(k string) bool { return k == "e" })
	if _, ok := c.Get("e"); ok {
		t.Error("EvictFunc left a matching entry")
	}
	// Replacing a value hands the old one to OnEvict.
	evicted = nil
	put("f", 6)
	put("f", 7)
	if v, _ := c.Get("f"); v != 7 || len(evicted) != 1 || evicted[0] != 6 {
		t.Errorf("replace: got %d, evicted %v", v, evicted)
	}
}

// TestExpiredDroppedOnPut: entries past their age leave as new ones come,
// so a cache fed a stream of distinct keys holds about rate × age of them,
// not its whole size (the API's checked-token cache grew for ten minutes).
func TestExpiredDroppedOnPut(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := lru.New[int, int](lru.Options[int]{Size: 100000, MaxAge: time.Second, Now: func() time.Time { return now }})
	for i := range 10000 {
		c.Put(i, i, c.Generation())
		now = now.Add(time.Millisecond) // 1,000 keys a second
	}
	if n := c.Len(); n > 1001 {
		t.Errorf("%d entries kept with a one-second age at 1,000 keys a second", n)
	}
}
