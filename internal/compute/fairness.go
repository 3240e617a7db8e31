package compute

import (
	"container/list"
	"context"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

// Fairness between tenants. A node measured before these bounds: a
// CPU-heavy function of one tenant (ten environments allowed) raised other
// tenants' p99 60 to 220 times, and twenty environments of one tenant took
// the node to 5.3 GB. Three bounds hold now:
//
//   - CPU: guest code is not preempted by the Go scheduler (a signal that
//     lands in compiled WebAssembly cannot stop it), so a running guest
//     holds one of the node's cores until it returns. At most GOMAXPROCS
//     guests run at once on a node and at most half of them (at least one)
//     for one tenant; the others wait in arrival order, skipping tenants at
//     their share, for up to MaxQueueWait, then get 429.
//   - Memory: each environment reserves its function's memory limit while
//     it runs and its actual size while idle; the node's reservations stay
//     within MemoryBudget and one tenant's within a share of it
//     (TenantMemoryShare). Idle environments are evicted, least recently
//     used first, to make room; past that, 429.
//   - Environments: a tenant's live environments, across functions, stay
//     within its tier's max_function_environments (Caller.MaxEnvironments);
//     its own idle ones are evicted first.

// Caller is who an invocation runs for and what its tier allows.
type Caller struct {
	Tenant string // "" for an operator's invocation of a shared function
	// MaxEnvironments bounds the tenant's live environments on this node,
	// across functions (its tier's max_function_environments); 0: no bound.
	MaxEnvironments int
}

// Defaults of the fairness bounds.
const (
	DefaultTenantMemoryShare = 0.25
	DefaultMaxQueueWait      = 10 * time.Second
)

// defaultMemoryBudget is a third of the machine's memory (1 GiB when it
// cannot be read).
func defaultMemoryBudget() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err == nil && si.Totalram > 0 {
		return int64(si.Totalram) * int64(si.Unit) / 3
	}
	return 1 << 30
}

// usage is one tenant's share of the node.
type usage struct {
	envs     int   // live environments of per-tenant functions
	reserved int64 // memory reserved by those environments
}

// cpuSlots is a fair semaphore: at most max holders, at most perKey of
// them for one key, waiters served in arrival order except that a waiter
// whose key is at its share lets later ones pass.
type cpuSlots struct {
	mu      sync.Mutex
	max     int
	perKey  int
	held    int
	byKey   map[string]int
	waiters list.List // of *slotWaiter
}

type slotWaiter struct {
	key   string
	ready chan struct{}
	done  bool // granted or abandoned
}

func newCPUSlots(total, perKey int) *cpuSlots {
	if total <= 0 {
		total = runtime.GOMAXPROCS(0)
	}
	if perKey <= 0 {
		perKey = max(1, total/2)
	}
	return &cpuSlots{max: total, perKey: perKey, byKey: map[string]int{}}
}

func (s *cpuSlots) fits(key string) bool { return s.held < s.max && s.byKey[key] < s.perKey }

func (s *cpuSlots) take(key string) {
	s.held++
	s.byKey[key]++
}

// acquire takes a slot for key, waiting at most wait.
func (s *cpuSlots) acquire(ctx context.Context, key string, wait time.Duration) error {
	s.mu.Lock()
	if s.waiters.Len() == 0 && s.fits(key) {
		s.take(key)
		s.mu.Unlock()
		return nil
	}
	w := &slotWaiter{key: key, ready: make(chan struct{})}
	el := s.waiters.PushBack(w)
	s.mu.Unlock()
	s.grant() // the queue may hold only tenants at their share
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	case <-t.C:
	}
	s.mu.Lock()
	if w.done { // granted meanwhile: give it back
		s.mu.Unlock()
		s.release(key)
	} else {
		w.done = true
		s.waiters.Remove(el)
		s.mu.Unlock()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &errs.Error{Kind: errs.Busy, Code: "functions_busy", RetryAfter: time.Second,
		Detail: "this node's function slots are taken (a tenant may use at most half of them); retry shortly"}
}

// release gives key's slot back and serves the waiters that fit.
func (s *cpuSlots) release(key string) {
	s.mu.Lock()
	s.held--
	if s.byKey[key]--; s.byKey[key] == 0 {
		delete(s.byKey, key)
	}
	s.mu.Unlock()
	s.grant()
}

func (s *cpuSlots) grant() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for el := s.waiters.Front(); el != nil && s.held < s.max; {
		next := el.Next()
		w := el.Value.(*slotWaiter)
		if s.fits(w.key) {
			s.take(w.key)
			w.done = true
			s.waiters.Remove(el)
			close(w.ready)
		}
		el = next
	}
}
