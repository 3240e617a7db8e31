package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := New(1.0/6, 20, 3)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 20 {
		if ok, _ := l.Allow("10.0.0.1", t0); !ok {
			t.Fatalf("request %d within the burst was refused", i)
		}
	}
	for range 5 {
		if ok, _ := l.Allow("10.0.0.1", t0); ok {
			t.Fatal("a request over the burst was allowed")
		}
	}
	if ok, _ := l.Allow("10.0.0.2", t0); !ok {
		t.Fatal("another key shares the first one's bucket")
	}
	ok, refused := l.Allow("10.0.0.1", t0.Add(6*time.Second))
	if !ok || refused != 5 {
		t.Fatalf("after refill: ok=%v refused=%d; want true, 5", ok, refused)
	}
	l.Allow("10.0.0.3", t0)
	l.Allow("10.0.0.4", t0)
	if l.Tracked() > 3 {
		t.Fatalf("%d keys tracked; max 3", l.Tracked())
	}
}

// TestLeastRecentlyUsedIsForgotten: at the bound the oldest key goes, and a
// busy key keeps its (empty) bucket.
func TestLeastRecentlyUsedIsForgotten(t *testing.T) {
	l := New(0, 1, 3)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.Allow("victim", t0) // uses its one token
	for i := range 10 {
		l.Allow(fmt.Sprint("flood-", i), t0)
		if ok, _ := l.Allow("victim", t0); ok {
			t.Fatalf("after %d flood keys the victim's bucket was reset", i+1)
		}
	}
	if l.Tracked() != 3 {
		t.Fatalf("tracked %d; want 3", l.Tracked())
	}
}

// TestTakeN: a request that costs n takes n tokens or none, waits for all
// n, and a cost over the burst is charged as the burst.
func TestTakeN(t *testing.T) {
	l := New(10, 100, 10)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if ok, _ := l.TakeN("a", 60, t0); !ok {
		t.Fatal("60 of a full bucket of 100 refused")
	}
	ok, wait := l.TakeN("a", 60, t0)
	if ok || wait != 2*time.Second {
		t.Fatalf("60 more: ok=%v wait=%v; want refused, 2s (20 missing at 10/s)", ok, wait)
	}
	if ok, _ := l.TakeN("a", 40, t0); !ok {
		t.Fatal("the refused 60 took tokens: 40 left should pass")
	}
	if ok, _ := l.TakeN("b", 1000, t0); !ok {
		t.Fatal("a cost over the burst is never satisfiable unless charged as the burst")
	}
	if ok, wait := l.Take("b", t0); ok || wait != 100*time.Millisecond {
		t.Fatalf("after a burst-sized cost: ok=%v wait=%v; want refused, 100ms", ok, wait)
	}
}

func TestTokensDoesNotTake(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(2, 4, 10)
	if got := l.Tokens("a", now); got != 4 {
		t.Fatalf("unknown key: %v tokens, want a full bucket of 4", got)
	}
	l.TakeN("a", 3, now)
	for range 2 {
		if got := l.Tokens("a", now); got != 1 {
			t.Fatalf("after taking 3 of 4: %v tokens", got)
		}
	}
	if got := l.Tokens("a", now.Add(500*time.Millisecond)); got != 2 {
		t.Fatalf("half a second later at 2/s: %v tokens, want 2", got)
	}
	if got := l.Tokens("a", now.Add(time.Hour)); got != 4 {
		t.Fatalf("an hour later: %v tokens, want the burst", got)
	}
}
