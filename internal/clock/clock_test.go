package clock_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
)

var start = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// received returns what c holds now, if anything.
func received(c <-chan time.Time) (time.Time, bool) {
	select {
	case t := <-c:
		return t, true
	default:
		return time.Time{}, false
	}
}

func TestFakeTimer(t *testing.T) {
	f := clock.NewFake(start)
	tm, c := f.NewTimer(time.Minute)
	f.Advance(59 * time.Second)
	if _, ok := received(c); ok {
		t.Fatal("fired before its deadline")
	}
	f.Advance(2 * time.Second)
	if got, ok := received(c); !ok || !got.Equal(start.Add(time.Minute)) {
		t.Fatalf("fired %v %v; want at its deadline", got, ok)
	}
	if f.Pending() != 0 || tm.Stop() {
		t.Error("a fired timer is still pending")
	}
	if tm.Reset(time.Second) {
		t.Error("Reset of a fired timer says it was pending")
	}
	if !tm.Stop() {
		t.Error("Stop of a reset timer says it was not pending")
	}
	f.Advance(time.Hour)
	if _, ok := received(c); ok {
		t.Error("a stopped timer fired")
	}
}

func TestFakeTicker(t *testing.T) {
	f := clock.NewFake(start)
	tk, c := f.NewTicker(10 * time.Second)
	for i := 1; i <= 3; i++ {
		f.Advance(10 * time.Second)
		if got, ok := received(c); !ok || !got.Equal(start.Add(time.Duration(i)*10*time.Second)) {
			t.Fatalf("tick %d: %v %v", i, got, ok)
		}
	}
	// Ticks nobody takes are dropped, as with time.Ticker: one waits.
	f.Advance(time.Minute)
	if _, ok := received(c); !ok {
		t.Fatal("no tick after a minute")
	}
	if _, ok := received(c); ok {
		t.Fatal("more than one tick waits")
	}
	tk.Stop()
	f.Advance(time.Minute)
	if _, ok := received(c); ok || f.Pending() != 0 {
		t.Error("a stopped ticker ticked")
	}
}

func TestFakeAfterFunc(t *testing.T) {
	f := clock.NewFake(start)
	ran := make(chan time.Time, 1)
	f.AfterFunc(time.Second, func() { ran <- f.Now() })
	var stopped atomic.Bool
	tm := f.AfterFunc(time.Second, func() { stopped.Store(true) })
	tm.Stop()
	f.Advance(time.Hour)
	select {
	case at := <-ran:
		if !at.Equal(start.Add(time.Hour)) && !at.Equal(start.Add(time.Second)) {
			t.Errorf("ran at %v", at)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the function did not run")
	}
	if stopped.Load() {
		t.Error("a stopped AfterFunc ran")
	}
}

// TestFakeFiresInOrder: one Advance past several deadlines fires each at
// its own time, earliest first.
func TestFakeFiresInOrder(t *testing.T) {
	f := clock.NewFake(start)
	_, late := f.NewTimer(2 * time.Second)
	_, early := f.NewTimer(time.Second)
	f.Advance(5 * time.Second)
	e, _ := received(early)
	l, _ := received(late)
	if !e.Equal(start.Add(time.Second)) || !l.Equal(start.Add(2*time.Second)) {
		t.Errorf("early %v, late %v", e, l)
	}
	if !f.Now().Equal(start.Add(5 * time.Second)) {
		t.Errorf("now %v", f.Now())
	}
}

func TestSystemSince(t *testing.T) {
	var c clock.Clock = clock.System{}
	if d := c.Since(c.Now().Add(-time.Minute)); d < time.Minute {
		t.Errorf("Since a minute ago: %v", d)
	}
}

// TestFakeSkipsMissedTicks: advancing a year past a short ticker fires it
// once, at once, and it goes on from there.
func TestFakeSkipsMissedTicks(t *testing.T) {
	f := clock.NewFake(start)
	_, c := f.NewTicker(50 * time.Millisecond)
	f.Advance(365 * 24 * time.Hour)
	if got, ok := received(c); !ok || !got.Equal(start.Add(50*time.Millisecond)) {
		t.Fatalf("tick %v %v; want one at the first deadline", got, ok)
	}
	f.Advance(50 * time.Millisecond)
	if _, ok := received(c); !ok {
		t.Fatal("no tick one period later")
	}
}

// TestFakeTickSeesTheClockMovedOn: a receiver that reads the clock when
// a collapsed tick arrives sees the last period it stands for, not the
// first (it may read before Advance returns).
func TestFakeTickSeesTheClockMovedOn(t *testing.T) {
	f := clock.NewFake(start)
	_, c := f.NewTicker(time.Minute)
	seen := make(chan time.Time, 1)
	go func() { <-c; seen <- f.Now() }()
	f.Advance(time.Hour + 30*time.Second)
	if got := <-seen; got.Before(start.Add(time.Hour)) {
		t.Errorf("the receiver read %v; want the last tick's time, %v, or later", got, start.Add(time.Hour))
	}
}
