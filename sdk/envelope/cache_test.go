package envelope

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
)

// newTestClock is Bulkhead's fake clock, at a fixed time.
func newTestClock() *clock.Fake { return clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) }

func wrappedOf(t testing.TB, blob []byte) string { return string(headerOf(t, blob).wrapped) }

func TestCacheLimits(t *testing.T) {
	type step struct {
		advance time.Duration
		size    int
		newKey  bool // this message needs a new data key
	}
	tests := []struct {
		name  string
		cfg   CacheConfig
		steps []step
	}{
		{"age", CacheConfig{MaxAge: time.Minute}, []step{
			{0, 10, true}, {30 * time.Second, 10, false}, {29 * time.Second, 10, false},
			{time.Second, 10, true}, // 60 s after the key was made
			{59 * time.Second, 10, false}, {time.Second, 10, true},
		}},
		{"messages", CacheConfig{MaxMessages: 3}, []step{
			{0, 1, true}, {0, 1, false}, {0, 1, false},
			{0, 1, true}, {0, 1, false}, {0, 1, false},
			{0, 1, true},
		}},
		{"bytes", CacheConfig{MaxBytes: 1000}, []step{
			{0, 400, true}, {0, 400, false}, // 800
			{0, 400, true}, {0, 600, false}, // 1000: used up
			{0, 1, true},
			{0, 1001, true}, // bigger than the limit: a key of its own, the cached one stays
			{0, 998, false}, {0, 2, true},
			{0, 0, false}, // an empty message counts no bytes, one message
		}},
		{"one message per key", CacheConfig{MaxMessages: 1}, []step{
			{0, 5, true}, {0, 5, true}, {0, 5, true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newTestClock()
			tc.cfg.Now = clock.Now
			p := newLocalProvider("acme")
			cache := NewCache(tc.cfg)
			c := newCrypter(t, p, 0, cache)
			seen := map[string]bool{}
			var last, cached string // the previous message's wrapped key; the cached one
			wantCalls := int64(0)
			for i, s := range tc.steps {
				clock.Advance(s.advance)
				blob, err := c.Encrypt(testCtx, testKeyID, acmeEC(), testData(s.size))
				if err != nil {
					t.Fatal(err)
				}
				w := wrappedOf(t, blob)
				if s.newKey {
					wantCalls++
					if seen[w] {
						t.Fatalf("step %d: a new data key was wanted, got a used one", i)
					}
				} else if w != cached {
					t.Fatalf("step %d: the cached data key was wanted, got another (previous message's: %v)", i, w == last)
				}
				if s.newKey && uint64(s.size) <= cache.maxBytes {
					cached = w
				}
				seen[w], last = true, w
				if got := p.generates.Load(); got != wantCalls {
					t.Fatalf("step %d: %d provider calls, want %d", i, got, wantCalls)
				}
			}
		})
	}
}

func TestDecryptCacheAge(t *testing.T) {
	clock := newTestClock()
	p := newLocalProvider("acme")
	c := newCrypter(t, p, 0, NewCache(CacheConfig{MaxAge: time.Minute, Now: clock.Now}))
	blob, err := c.Encrypt(testCtx, testKeyID, acmeEC(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	for i, adv := range []time.Duration{0, 0, 59 * time.Second, time.Second, 0} {
		clock.Advance(adv)
		if _, err := c.Decrypt(testCtx, blob, acmeEC()); err != nil {
			t.Fatal(err)
		}
		want := int64(1)
		if i >= 3 {
			want = 2
		}
		if got := p.decrypts.Load(); got != want {
			t.Fatalf("decrypt %d: %d provider calls, want %d", i, got, want)
		}
	}
}

func TestCacheTenantIsolation(t *testing.T) {
	// Worst case: one provider acting for two tenants, one partition. The
	// contexts differ only in tenant_id; the key id is the same string.
	p := newLocalProvider("acme", "globex")
	cache := NewCache(CacheConfig{})
	c, err := New(Config{Provider: p, Cache: cache, Partition: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	ecA := map[string]string{"tenant_id": "acme", "table": "t"}
	ecB := map[string]string{"tenant_id": "globex", "table": "t"}
	ecA2 := map[string]string{"tenant_id": "acme", "table": "u"}
	keys := map[string]string{}
	for round := range 3 {
		for name, ec := range map[string]map[string]string{"A": ecA, "B": ecB, "A2": ecA2} {
			blob, err := c.Encrypt(testCtx, "alias/shared", ec, []byte(name))
			if err != nil {
				t.Fatal(err)
			}
			w := wrappedOf(t, blob)
			if round == 0 {
				keys[name] = w
			} else if keys[name] != w {
				t.Fatalf("round %d: context %s lost its cached key", round, name)
			}
		}
	}
	if keys["A"] == keys["B"] || keys["A"] == keys["A2"] || keys["B"] == keys["A2"] {
		t.Fatal("two contexts share a data key")
	}
	if n := p.generates.Load(); n != 3 {
		t.Fatalf("%d provider calls, want 3", n)
	}
	// The plaintext keys differ too.
	cache.mu.Lock()
	var dks [][]byte
	for _, e := range cache.enc.m {
		dks = append(dks, bytes.Clone(e.dataKey))
	}
	cache.mu.Unlock()
	if len(dks) != 3 || bytes.Equal(dks[0], dks[1]) || bytes.Equal(dks[0], dks[2]) || bytes.Equal(dks[1], dks[2]) {
		t.Fatalf("%d cached keys, not all different", len(dks))
	}
}

func TestCachePartitions(t *testing.T) {
	// Two tenants' Crypters share one Cache, each with its own provider
	// (its own token). A key acme's Crypter unwrapped is not handed to
	// globex's, which the provider would refuse.
	cache := NewCache(CacheConfig{})
	acme := newCrypter(t, newLocalProvider("acme"), 0, cache)
	pg := newLocalProvider("globex")
	globex := newCrypter(t, pg, 0, cache)
	blob, err := acme.Encrypt(testCtx, testKeyID, acmeEC(), []byte("acme's"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acme.Decrypt(testCtx, blob, acmeEC()); err != nil {
		t.Fatal(err)
	}
	if got, err := globex.Decrypt(testCtx, blob, acmeEC()); !errors.Is(err, errTenantMismatch) {
		t.Fatalf("globex's Crypter decrypted acme's message from the cache: %q, %v", got, err)
	}
	if _, err := globex.Encrypt(testCtx, testKeyID, acmeEC(), []byte("x")); !errors.Is(err, errTenantMismatch) {
		t.Fatalf("globex's Crypter encrypted with acme's cached key: %v", err)
	}
	if pg.decrypts.Load() != 1 || pg.generates.Load() != 1 {
		t.Fatal("globex's provider was not asked")
	}
}

func TestCacheZeroesEvictedKeys(t *testing.T) {
	cache := NewCache(CacheConfig{MaxEntries: 1})
	p := newLocalProvider("acme")
	c := newCrypter(t, p, 0, cache)
	held := func(side *lru) []byte {
		cache.mu.Lock()
		defer cache.mu.Unlock()
		if side.l.Len() != 1 {
			t.Fatalf("%d entries, want 1", side.l.Len())
		}
		return side.l.Front().Value.(*entry).dataKey
	}
	zero := func(b []byte) bool { return bytes.Equal(b, make([]byte, DataKeySize)) }
	ec2 := map[string]string{"tenant_id": "acme", "table": "other"}

	blob, err := c.Encrypt(testCtx, testKeyID, acmeEC(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	k1 := held(&cache.enc)
	if zero(k1) {
		t.Fatal("cached key is zero")
	}
	if _, err := c.Encrypt(testCtx, testKeyID, ec2, []byte("y")); err != nil {
		t.Fatal(err)
	}
	if !zero(k1) {
		t.Fatal("evicted encryption key not zeroed")
	}
	// Decryption side, and Purge.
	if _, err := c.Decrypt(testCtx, blob, acmeEC()); err != nil {
		t.Fatal(err)
	}
	d1 := held(&cache.dec)
	k2 := held(&cache.enc)
	cache.Purge()
	if !zero(d1) || !zero(k2) {
		t.Fatal("Purge did not zero the keys")
	}
	if s := cache.Stats(); s.EncryptEntries != 0 || s.DecryptEntries != 0 {
		t.Fatalf("after Purge: %+v", s)
	}
	// A key used up by its limit is zeroed too.
	cache = NewCache(CacheConfig{MaxMessages: 1})
	c = newCrypter(t, p, 0, cache)
	if _, err := c.Encrypt(testCtx, testKeyID, acmeEC(), nil); err != nil {
		t.Fatal(err)
	}
	if s := cache.Stats(); s.EncryptEntries != 0 {
		t.Fatalf("used-up key still cached: %+v", s)
	}
}

func TestCacheLRU(t *testing.T) {
	cache := NewCache(CacheConfig{MaxEntries: 2})
	p := newLocalProvider("acme")
	c := newCrypter(t, p, 0, cache)
	ec := func(i int) map[string]string {
		return map[string]string{"tenant_id": "acme", "n": string(rune('a' + i))}
	}
	for _, i := range []int{0, 1, 0, 2, 0, 1} { // 2 evicts 1 (0 was used since); 1 comes back
		if _, err := c.Encrypt(testCtx, testKeyID, ec(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.generates.Load(); n != 4 {
		t.Fatalf("%d provider calls, want 4", n)
	}
	if s := cache.Stats(); s.EncryptEntries != 2 || s.EncryptHits != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// waitFlights makes the cache report each miss that is about to join or
// start a provider call, and returns a function that waits for n of them.
func waitFlights(t *testing.T, cache *Cache) func(n int) {
	var arrived atomic.Int64
	cache.beforeFlight = func() { arrived.Add(1) }
	return func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for arrived.Load() < int64(n) {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d callers reached the provider call", arrived.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // from the hook into DoChan
	}
}

func TestSingleflight(t *testing.T) {
	const n = 64
	for _, side := range []string{"encrypt", "decrypt"} {
		t.Run(side, func(t *testing.T) {
			p := newLocalProvider("acme")
			cache := NewCache(CacheConfig{})
			c := newCrypter(t, p, 0, cache)
			blob, err := newCrypter(t, p, 0, nil).Encrypt(testCtx, testKeyID, acmeEC(), []byte("shared"))
			if err != nil {
				t.Fatal(err)
			}
			p.generates.Store(0)
			p.gate = make(chan struct{})
			wait := waitFlights(t, cache)
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for range n {
				wg.Go(func() {
					var err error
					if side == "encrypt" {
						_, err = c.Encrypt(testCtx, testKeyID, acmeEC(), []byte("x"))
					} else {
						_, err = c.Decrypt(testCtx, blob, acmeEC())
					}
					errs <- err
				})
			}
			wait(n)
			close(p.gate)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			calls := p.generates.Load()
			if side == "decrypt" {
				calls = p.decrypts.Load()
			}
			if calls != 1 {
				t.Fatalf("%d goroutines made %d provider calls, want 1", n, calls)
			}
		})
	}
}

func TestSingleflightKeepsMessageLimit(t *testing.T) {
	// Concurrent misses share a provider call, but a key still encrypts at
	// most MaxMessages messages.
	const n, limit = 40, 3
	p := newLocalProvider("acme")
	c := newCrypter(t, p, 0, NewCache(CacheConfig{MaxMessages: limit}))
	var mu sync.Mutex
	uses := map[string]int{}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			blob, err := c.Encrypt(testCtx, testKeyID, acmeEC(), []byte("x"))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			uses[wrappedOf(t, blob)]++
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, u := range uses {
		if u > limit {
			t.Fatalf("a data key encrypted %d messages, limit %d", u, limit)
		}
	}
	if got, min := p.generates.Load(), int64((n+limit-1)/limit); got < min {
		t.Fatalf("%d provider calls for %d messages of at most %d per key", got, n, limit)
	}
}

func TestSingleflightLeaderCancelled(t *testing.T) {
	// The caller whose context runs the shared call gives up; the others
	// try again instead of failing with its error.
	p := newLocalProvider("acme")
	cache := NewCache(CacheConfig{})
	c := newCrypter(t, p, 0, cache)
	p.gate = make(chan struct{})
	wait := waitFlights(t, cache)
	leaderCtx, cancel := context.WithCancel(testCtx)
	leaderErr := make(chan error, 1)
	go func() {
		_, err := c.Encrypt(leaderCtx, testKeyID, acmeEC(), []byte("x"))
		leaderErr <- err
	}()
	wait(1)
	followerErr := make(chan error, 1)
	go func() {
		_, err := c.Encrypt(testCtx, testKeyID, acmeEC(), []byte("y"))
		followerErr <- err
	}()
	wait(2)
	cancel()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: %v", err)
	}
	wait(3) // the follower tries again
	close(p.gate)
	if err := <-followerErr; err != nil {
		t.Fatalf("follower: %v", err)
	}
}

func TestStreamsAndCache(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxBytes  uint64
		wantCalls int64
	}{
		{"no byte limit: streams use the cache", 0, 1},
		{"byte limit: a stream gets its own key", 1 << 20, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newLocalProvider("acme")
			c := newCrypter(t, p, 0, NewCache(CacheConfig{MaxBytes: tc.maxBytes}))
			for range 3 {
				w, err := c.NewEncryptWriter(testCtx, io.Discard, testKeyID, acmeEC())
				if err != nil {
					t.Fatal(err)
				}
				w.Write([]byte("data"))
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if got := p.generates.Load(); got != tc.wantCalls {
				t.Fatalf("%d provider calls, want %d", got, tc.wantCalls)
			}
		})
	}
}
