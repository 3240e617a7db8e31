package httpapi

import (
	"testing"
	"time"
)

func TestFailureLimiter(t *testing.T) {
	l := newFailureLimiter()
	l.max = 3
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 20 {
		if ok, _ := l.allow("10.0.0.1", t0); !ok {
			t.Fatalf("failure %d within the burst was not allowed", i)
		}
	}
	for range 5 {
		if ok, _ := l.allow("10.0.0.1", t0); ok {
			t.Fatal("a failure over the burst was allowed")
		}
	}
	if ok, _ := l.allow("10.0.0.2", t0); !ok {
		t.Fatal("another IP shares the first one's bucket")
	}
	// Six seconds refill one token; the audited failure reports the 5 suppressed.
	ok, suppressed := l.allow("10.0.0.1", t0.Add(6*time.Second))
	if !ok || suppressed != 5 {
		t.Fatalf("after refill: ok=%v suppressed=%d; want true, 5", ok, suppressed)
	}
	// The table is bounded.
	l.allow("10.0.0.3", t0)
	l.allow("10.0.0.4", t0)
	if len(l.buckets) > l.max {
		t.Fatalf("%d buckets tracked; max %d", len(l.buckets), l.max)
	}
}
