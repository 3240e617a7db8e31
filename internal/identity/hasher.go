package identity

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

// hasher runs the node's password hashing and verification: argon2id
// takes its memory (64 MiB by default) for every call, so unbounded
// concurrency let 20 concurrent tenant creations take a node from 29 MB to
// 1.35 GB. A few workers hash at a time, a short queue waits for them, and
// past the queue a caller gets 503 with Retry-After at once. Callers hash
// before their write transaction, never inside it (a hash held the one
// SQLite writer for its whole duration, and every other tenant's token
// waited behind it).
type hasher struct {
	params  Argon2Params
	workers chan struct{}
	waiting atomic.Int64
	queue   int64
	maxWait time.Duration
}

func newHasher(p Argon2Params, workers, queue int) *hasher {
	if workers <= 0 {
		workers = max(2, runtime.GOMAXPROCS(0))
	}
	if queue <= 0 {
		queue = 16 * workers
	}
	return &hasher{params: p, workers: make(chan struct{}, workers), queue: int64(queue), maxWait: 10 * time.Second}
}

func (h *hasher) busy() error {
	return &errs.Error{Kind: errs.Unavailable, Code: "password_hashing_busy",
		Detail: "the node is busy checking passwords; retry in a moment", RetryAfter: time.Second}
}

// acquire takes a worker, waiting in the queue if there is room.
func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.workers <- struct{}{}:
		return nil
	default:
	}
	if h.waiting.Add(1) > h.queue {
		h.waiting.Add(-1)
		return h.busy()
	}
	defer h.waiting.Add(-1)
	t := time.NewTimer(h.maxWait)
	defer t.Stop()
	select {
	case h.workers <- struct{}{}:
		return nil
	case <-t.C:
		return h.busy()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *hasher) release() { <-h.workers }

// hash returns the PHC hash of password.
func (h *hasher) hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return HashPassword(password, h.params), nil
}

// verify reports whether password matches encoded.
func (h *hasher) verify(ctx context.Context, encoded, password string) (bool, error) {
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	return VerifyPassword(encoded, password), nil
}
