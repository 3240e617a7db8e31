package compute

import (
	"runtime"
	"syscall"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/fairshare"
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

// newCPUSlots is the node's guest slots: total (default GOMAXPROCS), at
// most perKey for one tenant (default half, at least one).
func newCPUSlots(total, perKey int) *fairshare.Slots {
	if total <= 0 {
		total = runtime.GOMAXPROCS(0)
	}
	if perKey <= 0 {
		perKey = max(1, total/2)
	}
	return fairshare.New(total, perKey)
}
