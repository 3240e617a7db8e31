package identity

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/fairshare"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// hasher runs the node's password hashing and verification: argon2id
// takes its memory (64 MiB by default) and a core for every call, so
// unbounded concurrency let 20 concurrent tenant creations take a node
// from 29 MB to 1.35 GB, and a tenant creating users took every core from
// the others. A few workers hash at a time (half the cores, at least one),
// one tenant's hashes at most half of those (at least one), waiters are
// served in arrival order skipping tenants at their share, the queue is
// short, and past it a caller gets 503 with Retry-After at once. Callers
// hash before their write transaction, never inside it (a hash held the
// one SQLite writer for its whole duration, and every other tenant's token
// waited behind it).
type hasher struct {
	params  Argon2Params
	procs   *hashProcs // nil: hash in the server (see hashproc.go)
	slots   *fairshare.Slots
	waiting atomic.Int64
	queue   int64
	maxWait time.Duration
}

func newHasher(p Argon2Params, workers, queue int, command []string, clk clock.Clock, log *slog.Logger) *hasher {
	if workers <= 0 {
		workers = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if queue <= 0 {
		queue = 16 * workers
	}
	h := &hasher{params: p, slots: fairshare.New(workers, max(1, workers/2)), queue: int64(queue), maxWait: 10 * time.Second}
	if len(command) > 0 {
		h.procs = newHashProcs(command, workers, clk, log)
	}
	return h
}

func (h *hasher) busy() error {
	return &errs.Error{Kind: errs.Unavailable, Code: "password_hashing_busy",
		Detail: "the node is busy checking passwords; retry in a moment", RetryAfter: time.Second}
}

// acquire takes a worker for tenant tid, waiting in the queue if there is room.
func (h *hasher) acquire(ctx context.Context, tid tenant.ID) error {
	if h.waiting.Add(1) > h.queue {
		h.waiting.Add(-1)
		return h.busy()
	}
	defer h.waiting.Add(-1)
	err := h.slots.Acquire(ctx, string(tid), h.maxWait)
	if errors.Is(err, fairshare.ErrBusy) {
		return h.busy()
	}
	return err
}

// hash returns the PHC hash of password, for tenant tid.
func (h *hasher) hash(ctx context.Context, tid tenant.ID, password string) (string, error) {
	if err := h.acquire(ctx, tid); err != nil {
		return "", err
	}
	defer h.slots.Release(string(tid))
	if resp, ok := h.inChild(hashRequest{Params: h.params}, password); ok && resp.Hash != "" {
		return resp.Hash, nil
	}
	return HashPassword(password, h.params), nil
}

// verify reports whether password matches encoded, for tenant tid.
func (h *hasher) verify(ctx context.Context, tid tenant.ID, encoded, password string) (bool, error) {
	if err := h.acquire(ctx, tid); err != nil {
		return false, err
	}
	defer h.slots.Release(string(tid))
	if resp, ok := h.inChild(hashRequest{Encoded: encoded}, password); ok {
		return resp.OK, nil
	}
	return VerifyPassword(encoded, password), nil
}

// inChild runs req with password in an idle child, if there is one; ok
// is false when there was none or it failed (the caller then hashes in
// the server).
func (h *hasher) inChild(req hashRequest, password string) (resp hashResponse, ok bool) {
	c := h.procs.take()
	if c == nil {
		return resp, false
	}
	req.Password = []byte(password)
	defer clear(req.Password)
	resp, err := c.do(req)
	h.procs.put(c, err)
	return resp, err == nil
}
