// Package clock provides the injectable source of time used by Bulkhead's
// services: the time of day, and the timers and tickers that drive their
// background work. Tests substitute a Fake, whose time moves only when the
// test advances it, so that they wait for an event rather than sleep.
//
// The shape is Tailscale's tstime.Clock: a timer or ticker is returned as
// an interface with its channel beside it.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time and makes timers that follow it.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer is time.NewTimer on this clock.
	NewTimer(d time.Duration) (Timer, <-chan time.Time)
	// NewTicker is time.NewTicker on this clock.
	NewTicker(d time.Duration) (Ticker, <-chan time.Time)
	// AfterFunc is time.AfterFunc on this clock: f runs in its own
	// goroutine once d has passed, unless the timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
	// Since returns the time elapsed since t.
	Since(t time.Time) time.Duration
}

// Timer is what a Clock's timer offers besides its channel, with the
// semantics of time.Timer's methods.
type Timer interface {
	Reset(d time.Duration) bool
	Stop() bool
}

// Ticker is what a Clock's ticker offers besides its channel, with the
// semantics of time.Ticker's methods.
type Ticker interface {
	Reset(d time.Duration)
	Stop()
}

// System is the real clock.
type System struct{}

// Now returns the current time in UTC.
func (System) Now() time.Time { return time.Now().UTC() }

// NewTimer calls time.NewTimer.
func (System) NewTimer(d time.Duration) (Timer, <-chan time.Time) {
	t := time.NewTimer(d)
	return t, t.C
}

// NewTicker calls time.NewTicker.
func (System) NewTicker(d time.Duration) (Ticker, <-chan time.Time) {
	t := time.NewTicker(d)
	return t, t.C
}

// AfterFunc calls time.AfterFunc.
func (System) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Since calls time.Since.
func (System) Since(t time.Time) time.Duration { return time.Since(t) }

// Fake is a clock for tests: its time moves only with Advance (or Set),
// which fires the timers and tickers that come due, in order of their
// deadlines, each seeing the clock at its own deadline. A ticker fires
// once however many of its periods the clock skips, as a time.Ticker
// whose reader is slow does.
type Fake struct {
	mu     sync.Mutex
	t      time.Time
	timers []*fakeTimer // pending, in no order
}

// NewFake returns a Fake clock set to t.
func NewFake(t time.Time) *Fake { return &Fake{t: t} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

// Since returns the fake time elapsed since t.
func (f *Fake) Since(t time.Time) time.Duration { return f.Now().Sub(t) }

// Advance moves the fake time forward by d, firing what comes due.
func (f *Fake) Advance(d time.Duration) { f.Set(f.Now().Add(d)) }

// Set moves the fake time to t (never back), firing what comes due.
func (f *Fake) Set(t time.Time) {
	for {
		f.mu.Lock()
		next := f.nextDue(t)
		if next == nil {
			if t.After(f.t) {
				f.t = t
			}
			f.mu.Unlock()
			return
		}
		if next.when.After(f.t) {
			f.t = next.when
		}
		fire := next.fire(f, t)
		f.mu.Unlock()
		fire()
	}
}

// Pending returns how many timers and tickers wait to fire: a test
// advances the clock once the code it tests has set its timer.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// nextDue returns the pending timer with the earliest deadline not after
// t, or nil. f.mu is held.
func (f *Fake) nextDue(t time.Time) *fakeTimer {
	var next *fakeTimer
	for _, ft := range f.timers {
		if !ft.when.After(t) && (next == nil || ft.when.Before(next.when)) {
			next = ft
		}
	}
	return next
}

// NewTimer returns a timer that fires when the fake time reaches d from now.
func (f *Fake) NewTimer(d time.Duration) (Timer, <-chan time.Time) {
	c := make(chan time.Time, 1)
	ft := &fakeTimer{clock: f, c: c}
	ft.Reset(d)
	return ft, c
}

// NewTicker returns a ticker that fires every d of fake time.
func (f *Fake) NewTicker(d time.Duration) (Ticker, <-chan time.Time) {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	c := make(chan time.Time, 1)
	ft := &fakeTimer{clock: f, c: c, period: d}
	ft.Reset(d)
	return fakeTicker{ft}, c
}

// AfterFunc runs fn in its own goroutine when the fake time reaches d from now.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	ft := &fakeTimer{clock: f, fn: fn}
	ft.Reset(d)
	return ft
}

// fakeTimer is a Fake's timer, ticker (period > 0) or AfterFunc (fn set).
type fakeTimer struct {
	clock  *Fake
	when   time.Time
	period time.Duration
	c      chan time.Time
	fn     func()
}

// fire takes the timer off the pending list (or, for a ticker, sets its
// next deadline: the first after until, as the ticks in between would find
// the channel full) and returns what to do once f.mu is released. f.mu is
// held.
func (ft *fakeTimer) fire(f *Fake, until time.Time) func() {
	now := f.t // the tick's value: its first deadline
	if ft.period > 0 {
		// One tick stands for every period up to until (a tick nobody
		// took is dropped), so the clock is at the last of them when it
		// is sent: a receiver that read the clock before Set had moved
		// on saw the first period's time, and then no tick came to show
		// it more (the data sweeper never reached a retention that had
		// ended).
		last := ft.when.Add(ft.period * (until.Sub(ft.when) / ft.period))
		if last.After(f.t) {
			f.t = last
		}
		ft.when = last.Add(ft.period)
	} else {
		f.remove(ft)
	}
	if ft.fn != nil {
		return func() { go ft.fn() }
	}
	return func() {
		select {
		case ft.c <- now:
		default: // as with time's channels, a tick nobody took is dropped
		}
	}
}

// Reset makes the timer fire d from now; it reports whether it was pending.
func (ft *fakeTimer) Reset(d time.Duration) bool {
	f := ft.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	pending := f.remove(ft)
	if ft.period > 0 {
		ft.period = d
	}
	ft.when = f.t.Add(d)
	f.timers = append(f.timers, ft)
	return pending
}

// Stop keeps the timer from firing; it reports whether it was pending.
func (ft *fakeTimer) Stop() bool {
	f := ft.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.remove(ft)
}

// remove takes ft off the pending list and reports whether it was there.
// f.mu is held.
func (f *Fake) remove(ft *fakeTimer) bool {
	for i, have := range f.timers {
		if have == ft {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			return true
		}
	}
	return false
}

// fakeTicker is a ticker's face of a fakeTimer.
type fakeTicker struct{ ft *fakeTimer }

func (t fakeTicker) Reset(d time.Duration) {
	if d <= 0 {
		panic("clock: non-positive interval for Ticker.Reset")
	}
	t.ft.Reset(d)
}

func (t fakeTicker) Stop() { t.ft.Stop() }
