package compute_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/compute"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

func fairEngine(t *testing.T, opts compute.Options) *compute.Engine {
	t.Helper()
	opts.Dir, opts.CacheDir, opts.CacheKey = t.TempDir(), cacheDir, testCacheKey
	e, err := compute.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

// TestCPUShare: a tenant running CPU-bound guests holds at most its share
// of the node's slots; another tenant's invocation runs beside them
// instead of queueing behind them.
func TestCPUShare(t *testing.T) {
	e := fairEngine(t, compute.Options{CPUSlots: 2, TenantCPUSlots: 1})
	deploy(t, e, compute.Function{Name: "spin", TenancyMode: compute.PerTenant, Timeout: 400 * time.Millisecond}, "limits")
	deploy(t, e, compute.Function{Name: "quick", TenancyMode: compute.PerTenant}, "limits")
	invokeOnce(t, e, "quick", "tenant-b") // warm
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			_, err := e.Invoke(context.Background(), "spin", compute.Caller{Tenant: "tenant-a"}, "r", []byte("spin"))
			if !errs.Is(err, "function_timeout") {
				t.Errorf("spin: %v", err)
			}
		})
	}
	time.Sleep(100 * time.Millisecond) // tenant-a's guests are spinning, or queued behind each other
	start := time.Now()
	invokeOnce(t, e, "quick", "tenant-b")
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Errorf("tenant-b waited %v behind tenant-a's spinning guests", d)
	}
	wg.Wait()
}

func invokeOnce(t *testing.T, e *compute.Engine, fn, tid string) compute.Result {
	t.Helper()
	res, err := e.Invoke(context.Background(), fn, compute.Caller{Tenant: tid}, "r", []byte("x"))
	if err != nil {
		t.Fatalf("%s as %s: %v", fn, tid, err)
	}
	return res
}

// TestQueueWaitBounded: past its wait an invocation gets 429
// functions_busy with Retry-After, not an endless queue.
func TestQueueWaitBounded(t *testing.T) {
	e := fairEngine(t, compute.Options{CPUSlots: 1, TenantCPUSlots: 1, MaxQueueWait: 50 * time.Millisecond})
	deploy(t, e, compute.Function{Name: "spin", TenancyMode: compute.PerTenant, Timeout: 500 * time.Millisecond}, "limits")
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Invoke(context.Background(), "spin", compute.Caller{Tenant: "tenant-a"}, "r", []byte("spin"))
	}()
	time.Sleep(100 * time.Millisecond)
	_, err := e.Invoke(context.Background(), "spin", compute.Caller{Tenant: "tenant-b"}, "r", []byte("x"))
	if e, ok := errs.As(err); !ok || e.Code != "functions_busy" || e.RetryAfter <= 0 {
		t.Errorf("waiting past the bound: %v", err)
	}
	<-done
}

// TestTenantEnvironmentBound: a tenant's environments across functions
// stay within its tier's bound; its own idle ones make room, others' are
// untouched.
func TestTenantEnvironmentBound(t *testing.T) {
	e := fairEngine(t, compute.Options{})
	for _, name := range []string{"f1", "f2", "f3"} {
		deploy(t, e, compute.Function{Name: name, TenancyMode: compute.PerTenant}, "limits")
	}
	a := compute.Caller{Tenant: "tenant-a", MaxEnvironments: 2}
	b := compute.Caller{Tenant: "tenant-b", MaxEnvironments: 2}
	for _, fn := range []string{"f1", "f2"} {
		if _, err := e.Invoke(context.Background(), fn, b, "r", nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, fn := range []string{"f1", "f2", "f3", "f1"} {
		if _, err := e.Invoke(context.Background(), fn, a, "r", nil); err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
	}
	count := func(tid string) int {
		n := 0
		for _, fn := range []string{"f1", "f2", "f3"} {
			envs, _ := e.Environments(fn)
			for _, env := range envs {
				if env.TenantID == tid {
					n++
				}
			}
		}
		return n
	}
	if n := count("tenant-a"); n != 2 {
		t.Errorf("tenant-a has %d environments, its tier allows 2", n)
	}
	if n := count("tenant-b"); n != 2 {
		t.Errorf("tenant-b's environments were taken: %d left", n)
	}
}

// TestMemoryShare: a busy environment reserves its function's memory
// limit; one tenant cannot reserve more than its share of the node's
// budget, and another tenant still gets its environment.
func TestMemoryShare(t *testing.T) {
	e := fairEngine(t, compute.Options{MemoryBudget: 256 << 20, TenantMemoryShare: 0.4, CPUSlots: 8, TenantCPUSlots: 8})
	deploy(t, e, compute.Function{Name: "spin", TenancyMode: compute.PerTenant, MemoryMiB: 64, Timeout: 400 * time.Millisecond}, "limits")
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for range 3 { // 3 × 64 MiB > 40 % of 256 MiB
		wg.Go(func() {
			_, err := e.Invoke(context.Background(), "spin", compute.Caller{Tenant: "tenant-a"}, "r", []byte("spin"))
			code := "ok"
			if e, ok := errs.As(err); ok {
				code = e.Code
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	time.Sleep(100 * time.Millisecond)
	if r := e.Reserved(); r > 256<<20 {
		t.Errorf("reserved %d MiB of a 256 MiB budget", r>>20)
	}
	if _, err := e.Invoke(context.Background(), "spin", compute.Caller{Tenant: "tenant-b"}, "r", []byte("x")); err != nil {
		t.Errorf("tenant-b beside tenant-a's environments: %v", err)
	}
	wg.Wait()
	if codes["tenant_memory_limit"] == 0 {
		t.Errorf("three 64 MiB environments within a 102 MiB share: %v", codes)
	}
	e.EvictIdle(context.Background())
}
