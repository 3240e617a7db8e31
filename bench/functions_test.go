package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/compute"
)

// wasmModules builds the example functions once per benchmark binary.
var wasmModules = sync.OnceValues(func() (map[string][]byte, error) {
	dir, err := os.MkdirTemp("", "bulkhead-bench-fn-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := map[string][]byte{}
	// The examples sit beside this file's package, wherever the binary runs.
	_, self, _, _ := runtime.Caller(0)
	examples := filepath.Join(filepath.Dir(self), "..", "examples", "functions")
	for _, name := range []string{"counter", "noop"} {
		file := filepath.Join(dir, name+".wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", file, "./"+name)
		cmd.Dir = examples
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %v: %s", name, err, b)
		}
		if out[name], err = os.ReadFile(file); err != nil {
			return nil, err
		}
	}
	return out, nil
})

func newFunctionEngine(b *testing.B, cacheDir string, maxEnvs int) *compute.Engine {
	b.Helper()
	e, err := compute.New(compute.Options{Dir: b.TempDir(), CacheDir: cacheDir, MaxEnvironments: maxEnvs})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close(context.Background()) })
	return e
}

// BenchmarkFunctions measures the function runtime in-process (no HTTP)
// with the Go-built example modules:
//
//   - compile: publishing a module to a node whose compiled-code cache is
//     empty (the once-per-node cost), per op;
//   - cold: the first invocation of a per_tenant function for a new tenant
//     (module compiled and cached): a new environment, the Go runtime's
//     start inside it, and the call; p50/p99;
//   - warm: an invocation of the no-op function in a warm environment;
//     p50/p99: the platform's overhead;
//   - tenants100, tenants1000: invocations/s of the counter in per_tenant
//     mode, GOMAXPROCS×8 callers round-robin over that many tenants (one
//     warm environment each, after a warm-up);
//   - idle: memory per idle environment (Go heap in use, after a
//     collection, over 200 idle environments of the no-op function: their
//     linear memories and instances live there).
func BenchmarkFunctions(b *testing.B) {
	mods, err := wasmModules()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	cache := b.TempDir()
	b.Run("compile", func(b *testing.B) {
		for i := range b.N {
			e := newFunctionEngine(b, filepath.Join(b.TempDir(), strconv.Itoa(i)), 10)
			if _, err := e.Deploy(ctx, compute.Function{Name: "counter", TenancyMode: compute.PerTenant}, mods["counter"]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/compile")
	})
	b.Run("cold", func(b *testing.B) {
		e := newFunctionEngine(b, cache, 200) // the node cap keeps memory bounded; evicting is part of the cost
		if _, err := e.Deploy(ctx, compute.Function{Name: "counter", TenancyMode: compute.PerTenant}, mods["counter"]); err != nil {
			b.Fatal(err)
		}
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			t0 := time.Now()
			res, err := e.Invoke(ctx, "counter", compute.Caller{Tenant: fmt.Sprintf("cold-%07d", i)}, "r", nil)
			lat = append(lat, time.Since(t0))
			if err != nil || !res.Cold {
				b.Fatalf("cold invocation: %v cold=%v", err, res.Cold)
			}
		}
		b.StopTimer()
		reportLatency(b, lat)
	})
	b.Run("warm", func(b *testing.B) {
		e := newFunctionEngine(b, cache, 10)
		if _, err := e.Deploy(ctx, compute.Function{Name: "noop", TenancyMode: compute.PerTenant}, mods["noop"]); err != nil {
			b.Fatal(err)
		}
		e.Invoke(ctx, "noop", compute.Caller{Tenant: "warm-tenant"}, "r", nil)
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			if _, err := e.Invoke(ctx, "noop", compute.Caller{Tenant: "warm-tenant"}, "r", []byte("{}")); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		b.StopTimer()
		reportLatency(b, lat)
	})
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("tenants%d", n), func(b *testing.B) {
			e := newFunctionEngine(b, cache, n*2)
			if _, err := e.Deploy(ctx, compute.Function{Name: "counter", TenancyMode: compute.PerTenant, MaxEnvsPerTenant: 4}, mods["counter"]); err != nil {
				b.Fatal(err)
			}
			for i := range n {
				if _, err := e.Invoke(ctx, "counter", compute.Caller{Tenant: fmt.Sprintf("t-%05d", i)}, "r", nil); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.SetParallelism(parallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tid := fmt.Sprintf("t-%05d", next.Add(1)%int64(n))
					if _, err := e.Invoke(ctx, "counter", compute.Caller{Tenant: tid}, "r", nil); err != nil && !strings.Contains(err.Error(), "too_many_environments") {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if s := b.Elapsed().Seconds(); s > 0 {
				b.ReportMetric(float64(b.N)/s, "invocations/s")
			}
		})
	}
	b.Run("idle", func(b *testing.B) {
		const envs = 200
		for range b.N {
			e := newFunctionEngine(b, cache, envs+10)
			if _, err := e.Deploy(ctx, compute.Function{Name: "noop", TenancyMode: compute.PerTenant}, mods["noop"]); err != nil {
				b.Fatal(err)
			}
			e.Invoke(ctx, "noop", compute.Caller{Tenant: "first"}, "r", nil)
			before := heapInUse()
			for i := range envs {
				if _, err := e.Invoke(ctx, "noop", compute.Caller{Tenant: fmt.Sprintf("idle-%d", i)}, "r", nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(heapInUse()-before)/envs/(1<<20), "MiB/env")
			e.Close(ctx)
		}
	})
}

// heapInUse is the Go heap in use after a collection: wazero keeps each
// environment's linear memory and instance there.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}
