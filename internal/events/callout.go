package events

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bulkhead-dev/bulkhead/internal/ratelimit"
)

// The auth callout answers requests concurrently, on at most
// calloutWorkers at once (a token's check, a first connection's stream),
// with at most calloutPending waiting: past that a request is dropped and
// the server times its connection out. An address whose connections were
// refused more than refusalBurst times, faster than refusalRate a second,
// is refused at once, before any token is checked, until it slows down: a
// flood of bad tokens costs the others a queue, not the callout.
const (
	calloutWorkers = 16
	calloutPending = 4096
	calloutWait    = 3 * time.Second // a request waits this long for a worker (the server's timeout is 5 s)
	refusalRate    = 2.0
	refusalBurst   = 20
	refusalHosts   = 100_000
)

type calloutLimits struct {
	workers  chan struct{}
	pending  atomic.Int64
	refusals *ratelimit.Limiter
}

func newCalloutLimits() calloutLimits {
	return calloutLimits{workers: make(chan struct{}, calloutWorkers), refusals: ratelimit.New(refusalRate, refusalBurst, refusalHosts)}
}

// work waits for a worker, at most calloutWait.
func (c *calloutLimits) work(ctx context.Context) (func(), bool) {
	t := time.NewTimer(calloutWait)
	defer t.Stop()
	select {
	case c.workers <- struct{}{}:
		return func() { <-c.workers }, true
	case <-t.C:
		return nil, false
	case <-ctx.Done():
		return nil, false
	}
}

// dispatch answers m on a goroutine of its own, unless too many wait.
func (s *Server) dispatch(ctx context.Context, m *nats.Msg) {
	if s.callout.pending.Add(1) > calloutPending {
		s.callout.pending.Add(-1)
		return
	}
	go func() {
		defer s.callout.pending.Add(-1)
		s.answer(ctx, m)
	}()
}
