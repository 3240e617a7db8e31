// Package runtest runs a service's background work (its Run method) for
// the length of a test, as internal/app does for the length of a node.
package runtest

import (
	"context"
	"sync"
	"testing"
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
