package statecache_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/statecache"
)

var errMissing = errors.New("missing")

// TestReadsFollowTheRule: a read is used within TTL and until this
// node's next change, a change during the read makes it stale, an answer
// is kept only when keep says so, and TTL 0 keeps nothing.
func TestReadsFollowTheRule(t *testing.T) {
	ctx := context.Background()
	fc := clock.NewFake(time.Unix(1_800_000_000, 0))
	var changes atomic.Uint64
	var loads int
	value := "v1"
	var during func()
	load := func(context.Context) (string, error) {
		loads++
		if during != nil {
			during()
		}
		if value == "" {
			return "", errMissing
		}
		return value, nil
	}
	keepValues := func(_ string, err error) bool { return err == nil }
	r := statecache.New[string, string](statecache.Config{TTL: time.Second, Changes: changes.Load, Now: fc.Now})
	get := func() (string, error) { return r.Get(ctx, "k", load, keepValues) }

	for range 3 {
		if v, err := get(); v != "v1" || err != nil {
			t.Fatalf("get = %q, %v", v, err)
		}
	}
	if loads != 1 {
		t.Fatalf("%d loads for three gets within TTL", loads)
	}
	value = "v2"
	fc.Advance(time.Second)
	if v, _ := get(); v != "v2" || loads != 2 {
		t.Fatalf("after TTL: %q after %d loads", v, loads)
	}
	value = "v3"
	changes.Add(1)
	if v, _ := get(); v != "v3" || loads != 3 {
		t.Fatalf("after a change: %q after %d loads", v, loads)
	}
	// A change while reading: the read answers its own request only.
	value, during = "v4", func() { changes.Add(1) }
	changes.Add(1)
	get()
	during = nil
	if v, _ := get(); v != "v4" || loads != 5 {
		t.Fatalf("a read that a change overtook was used again (%d loads)", loads)
	}
	// An answer keep refuses is read again every time.
	value = ""
	changes.Add(1)
	for range 2 {
		if _, err := get(); !errors.Is(err, errMissing) {
			t.Fatalf("missing: %v", err)
		}
	}
	if loads != 7 {
		t.Fatalf("a refused answer was kept (%d loads)", loads)
	}
	// keep may keep an answer like a value (a not-found).
	keptErr := statecache.New[string, string](statecache.Config{TTL: time.Second, Now: fc.Now})
	n := 0
	for range 3 {
		_, err := keptErr.Get(ctx, "x", func(context.Context) (string, error) { n++; return "", errMissing },
			func(_ string, err error) bool { return errors.Is(err, errMissing) })
		if !errors.Is(err, errMissing) {
			t.Fatal(err)
		}
	}
	if n != 1 {
		t.Fatalf("a kept answer was read %d times", n)
	}
	// TTL 0: no cache.
	off := statecache.New[string, string](statecache.Config{})
	n = 0
	for range 3 {
		off.Get(ctx, "k", func(context.Context) (string, error) { n++; return "v", nil }, keepValues)
	}
	if n != 3 {
		t.Fatalf("TTL 0 kept a read (%d loads)", n)
	}
}

// TestReadsAreBounded: past Size the least recently used reads go.
func TestReadsAreBounded(t *testing.T) {
	ctx := context.Background()
	r := statecache.New[int, int](statecache.Config{TTL: time.Hour, Size: 10})
	loads := 0
	load := func(k int) func(context.Context) (int, error) {
		return func(context.Context) (int, error) { loads++; return k, nil }
	}
	keep := func(int, error) bool { return true }
	for k := range 100 {
		r.Get(ctx, k, load(k), keep)
	}
	loads = 0
	for k := 90; k < 100; k++ {
		r.Get(ctx, k, load(k), keep)
	}
	if loads != 0 {
		t.Fatalf("the last ten were read again (%d loads)", loads)
	}
	r.Get(ctx, 0, load(0), keep)
	if loads != 1 {
		t.Fatal("the first of a hundred was still kept with Size 10")
	}
}
