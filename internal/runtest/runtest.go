// Package runtest helps the tests of code that works in the background:
// Go runs a service's Run for the length of a test, as internal/app does
// for the length of a node, and Eventually waits for what such work makes
// true, instead of a sleep that guesses how long it takes.
package runtest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// Go calls run in a goroutine of its own with a context that ends when the
// test does; the test's cleanup waits for run to return and fails the test
// if run returned an error. Calling stop ends run's context earlier and
// waits for run to return; it returns what run returned. Register what
// run uses (a database, an audit log) for cleanup before calling Go, so
// that it is closed after run has returned.
func Go(t testing.TB, run func(ctx context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("background work: %v", err)
		}
	})
	return stop
}

// Eventually waits until cond holds, calling it every few milliseconds,
// and fails the test if it does not within a generous deadline: what a
// test waits for is an event (a commit, a notification, a step), and a
// loaded machine only delays it.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(eventuallyWithin)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", eventuallyWithin, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventuallyWithin is Eventually's deadline.
const eventuallyWithin = time.Minute

// Log is a log sink for a test: background work writes to it from many
// goroutines (as a slog handler's io.Writer) and the test reads it all
// back with String.
type Log struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
