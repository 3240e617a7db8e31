package compute_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/compute"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

// modules are the test functions, built for wasip1 in TestMain.
var modules = map[string][]byte{}

// cacheDir holds compiled code shared by the tests' engines, so each
// module is compiled once per test binary, as once per node.
var cacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bulkhead-compute-")
	if err != nil {
		panic(err)
	}
	for name, pkg := range map[string]string{
		"counter": "../../examples/functions/counter",
		"limits":  "./testdata/limits",
		"escape":  "./testdata/escape",
	} {
		out := filepath.Join(dir, name+".wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, b)
			os.Exit(1)
		}
		if modules[name], err = os.ReadFile(out); err != nil {
			panic(err)
		}
	}
	cacheDir = filepath.Join(dir, "compiled")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testCacheKey authenticates the shared compiled-code cache, as a key
// derived from the root key does on a node.
var testCacheKey = [32]byte{1, 2, 3}

func newEngine(t *testing.T, maxEnvs int) (*compute.Engine, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e, err := compute.New(compute.Options{Dir: t.TempDir(), CacheDir: cacheDir, CacheKey: testCacheKey, MaxEnvironments: maxEnvs, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e, clk
}

func deploy(t *testing.T, e *compute.Engine, fn compute.Function, module string) compute.Function {
	t.Helper()
	out, err := e.Deploy(context.Background(), fn, modules[module])
	if err != nil {
		t.Fatalf("deploy %s: %v", fn.Name, err)
	}
	return out
}

type counterAnswer struct {
	Count    int      `json:"count"`
	TenantID string   `json:"tenant_id"`
	TmpSeen  []string `json:"tmp_seen"`
}

func invokeCounter(t *testing.T, e *compute.Engine, name, tid string) (counterAnswer, compute.Result) {
	t.Helper()
	res, err := e.Invoke(context.Background(), name, compute.Caller{Tenant: tid}, "req-"+tid, []byte(`{"from":"`+tid+`"}`))
	if err != nil {
		t.Fatalf("invoke %s as %s: %v", name, tid, err)
	}
	var a counterAnswer
	if err := json.Unmarshal(res.Body, &a); err != nil {
		t.Fatalf("answer %q: %v", res.Body, err)
	}
	return a, res
}

// TestTenantIsolation is the heart of the functions issue: invoking the
// counter as A, A, B, A in per-tenant mode never shows A's state to B; the
// same function in shared mode shows the contrast.
func TestTenantIsolation(t *testing.T) {
	e, _ := newEngine(t, 100)
	deploy(t, e, compute.Function{Name: "counter-iso", TenancyMode: compute.PerTenant}, "counter")
	deploy(t, e, compute.Function{Name: "counter-shared", TenancyMode: compute.Shared}, "counter")
	type step struct {
		tenant string
		count  int
		seen   []string
		cold   bool
	}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"counter-iso", []step{
			{"tenant-a", 1, []string{}, true},
			{"tenant-a", 2, []string{"tenant-a"}, false},
			{"tenant-b", 1, []string{}, true}, // a fresh environment: no counter, no file of A
			{"tenant-a", 3, []string{"tenant-a"}, false},
		}},
		{"counter-shared", []step{
			{"tenant-a", 1, []string{}, true},
			{"tenant-a", 2, []string{"tenant-a"}, false},
			{"tenant-b", 3, []string{"tenant-a"}, false}, // shared: B sees A's counter and file
			{"tenant-a", 4, []string{"tenant-a", "tenant-b"}, false},
		}},
	} {
		for i, s := range c.steps {
			a, res := invokeCounter(t, e, c.name, s.tenant)
			if a.Count != s.count || a.TenantID != s.tenant || !slices.Equal(a.TmpSeen, s.seen) || res.Cold != s.cold {
				t.Errorf("%s step %d as %s: %+v cold=%v; want count %d, seen %v, cold %v", c.name, i, s.tenant, a, res.Cold, s.count, s.seen, s.cold)
			}
		}
	}
	envs, err := e.Environments("counter-iso")
	if err != nil || len(envs) != 2 {
		t.Errorf("per-tenant environments: %+v %v", envs, err)
	}
}

func TestTenantRequired(t *testing.T) {
	e, _ := newEngine(t, 10)
	deploy(t, e, compute.Function{Name: "counter-iso", TenancyMode: compute.PerTenant}, "counter")
	_, err := e.Invoke(context.Background(), "counter-iso", compute.Caller{Tenant: ""}, "req", nil)
	if !errs.Is(err, "tenant_id_required") || !strings.Contains(err.Error(), "function counter-iso uses per-tenant isolation; add a tenant id and try again") {
		t.Errorf("no tenant: %v", err)
	}
	_, err = e.Invoke(context.Background(), "nope", compute.Caller{Tenant: "tenant-a"}, "req", nil)
	if !errs.Is(err, "function_not_found") {
		t.Errorf("unknown function: %v", err)
	}
}

// TestLimits: a guest that loops forever is stopped by its timeout and one
// that grows its memory past the limit traps; both lose their environment,
// and other tenants' environments keep their state.
func TestLimits(t *testing.T) {
	e, _ := newEngine(t, 20)
	// One module, two functions: a short timeout, and a small memory limit
	// (with time to reach it).
	deploy(t, e, compute.Function{Name: "limits", TenancyMode: compute.PerTenant, Timeout: 500 * time.Millisecond}, "limits")
	deploy(t, e, compute.Function{Name: "limits-mem", TenancyMode: compute.PerTenant, Timeout: 30 * time.Second, MemoryMiB: 48}, "limits")
	ctx := context.Background()
	call := func(tid, event string) (compute.Result, error) {
		return e.Invoke(ctx, "limits", compute.Caller{Tenant: tid}, "r", []byte(event))
	}
	if res, err := call("tenant-b", "x"); err != nil || string(res.Body) != "1" {
		t.Fatalf("tenant-b: %q %v", res.Body, err)
	}
	start := time.Now()
	if _, err := call("tenant-a", "spin"); !errs.Is(err, "function_timeout") || time.Since(start) > 5*time.Second {
		t.Errorf("endless loop: %v after %v", err, time.Since(start))
	}
	if res, err := call("tenant-a", "x"); err != nil || !res.Cold || string(res.Body) != "1" {
		t.Errorf("after the timeout: %q cold=%v %v; want a new environment", res.Body, res.Cold, err)
	}
	if _, err := e.Invoke(ctx, "limits-mem", compute.Caller{Tenant: "tenant-a"}, "r", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Invoke(ctx, "limits-mem", compute.Caller{Tenant: "tenant-a"}, "r", []byte("hog")); !errs.Is(err, "function_failed") {
		t.Errorf("memory past the limit: %v", err)
	}
	if res, err := e.Invoke(ctx, "limits-mem", compute.Caller{Tenant: "tenant-a"}, "r", []byte("x")); err != nil || !res.Cold || string(res.Body) != "1" {
		t.Errorf("after the trap: %q cold=%v %v; want a new environment", res.Body, res.Cold, err)
	}
	// tenant-b's environment is untouched: warm, its state intact.
	if res, err := call("tenant-b", "x"); err != nil || res.Cold || string(res.Body) != "2" {
		t.Errorf("tenant-b after tenant-a's timeout and trap: %q cold=%v %v", res.Body, res.Cold, err)
	}
}

// TestEviction: idle environments past their TTL are destroyed with their
// /tmp; a node-wide cap evicts the least recently used.
func TestEviction(t *testing.T) {
	e, clk := newEngine(t, 2)
	deploy(t, e, compute.Function{Name: "counter-iso", TenancyMode: compute.PerTenant, IdleTTL: time.Minute}, "counter")
	invokeCounter(t, e, "counter-iso", "tenant-a")
	invokeCounter(t, e, "counter-iso", "tenant-a")
	clk.Advance(2 * time.Minute)
	if n := e.EvictIdle(context.Background()); n != 1 {
		t.Fatalf("evicted %d, want 1", n)
	}
	if a, res := invokeCounter(t, e, "counter-iso", "tenant-a"); a.Count != 1 || len(a.TmpSeen) != 0 || !res.Cold {
		t.Errorf("after eviction: %+v cold=%v; want a fresh environment with an empty /tmp", a, res.Cold)
	}
	// Node cap 2: a third tenant's environment evicts the least recently used idle one.
	invokeCounter(t, e, "counter-iso", "tenant-b")
	invokeCounter(t, e, "counter-iso", "tenant-c")
	if a, res := invokeCounter(t, e, "counter-iso", "tenant-a"); !res.Cold || a.Count != 1 {
		t.Errorf("tenant-a after the node cap evicted it: %+v cold=%v", a, res.Cold)
	}
	if envs, _ := e.Environments("counter-iso"); len(envs) > 2 {
		t.Errorf("%d environments live, cap 2", len(envs))
	}
}

// TestConcurrentTenants: many tenants at once (run with -race); every
// answer names its caller and never shows another tenant's file.
func TestConcurrentTenants(t *testing.T) {
	e, _ := newEngine(t, 200)
	deploy(t, e, compute.Function{Name: "counter-iso", TenancyMode: compute.PerTenant, MaxEnvsPerTenant: 3}, "counter")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for i := range 12 {
		tid := fmt.Sprintf("tenant-%02d", i)
		for range 3 {
			wg.Go(func() {
				for range 4 {
					res, err := e.Invoke(context.Background(), "counter-iso", compute.Caller{Tenant: tid}, "r", nil)
					if errs.Is(err, "too_many_environments") {
						continue
					}
					var a counterAnswer
					if err == nil {
						err = json.Unmarshal(res.Body, &a)
					}
					bad := err != nil || a.TenantID != tid
					for _, s := range a.TmpSeen {
						bad = bad || s != tid
					}
					if bad {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("%s: %+v %v", tid, a, err))
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d bad answers, e.g. %s", len(failures), failures[0])
	}
}

// TestDeployBadInput: clear errors for what is not a function.
func TestDeployBadInput(t *testing.T) {
	e, _ := newEngine(t, 10)
	// A module importing a host function Bulkhead does not offer (env.f).
	importsEnv := []byte{0, 'a', 's', 'm', 1, 0, 0, 0, 1, 4, 1, 0x60, 0, 0, 2, 9, 1, 3, 'e', 'n', 'v', 1, 'f', 0, 0}
	// A valid module without the ABI's exports.
	empty := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	for _, c := range []struct {
		name   string
		fn     compute.Function
		module []byte
		code   string
	}{
		{"not wasm", compute.Function{Name: "x", TenancyMode: compute.Shared}, []byte("#!/bin/sh\necho hi\n"), "invalid_module"},
		{"empty upload", compute.Function{Name: "x", TenancyMode: compute.Shared}, nil, "invalid_module_size"},
		{"60 MiB", compute.Function{Name: "x", TenancyMode: compute.Shared}, make([]byte, 60<<20), "invalid_module_size"},
		{"unknown import", compute.Function{Name: "x", TenancyMode: compute.Shared}, importsEnv, "unsupported_import"},
		{"no exports", compute.Function{Name: "x", TenancyMode: compute.Shared}, empty, "missing_export"},
		{"bad name", compute.Function{Name: "Bad Name", TenancyMode: compute.Shared}, modules["counter"], "invalid_name"},
		{"bad mode", compute.Function{Name: "x", TenancyMode: "pooled"}, modules["counter"], "invalid_tenancy_mode"},
		{"tiny memory", compute.Function{Name: "x", TenancyMode: compute.Shared, MemoryMiB: 1}, modules["counter"], "invalid_memory"},
	} {
		if _, err := e.Deploy(context.Background(), c.fn, c.module); !errs.Is(err, c.code) {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
	}
	// The tenancy mode is fixed at creation; a deleted function is gone.
	deploy(t, e, compute.Function{Name: "fixed", TenancyMode: compute.PerTenant}, "counter")
	if _, err := e.Deploy(context.Background(), compute.Function{Name: "fixed", TenancyMode: compute.Shared}, modules["counter"]); !errs.Is(err, "tenancy_mode_immutable") {
		t.Errorf("changing the tenancy mode: %v", err)
	}
	v2 := deploy(t, e, compute.Function{Name: "fixed", TenancyMode: compute.PerTenant}, "counter")
	if v2.Version != 2 {
		t.Errorf("second deploy: version %d", v2.Version)
	}
	if err := e.Delete(context.Background(), "fixed"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Invoke(context.Background(), "fixed", compute.Caller{Tenant: "tenant-a"}, "r", nil); !errs.Is(err, "function_not_found") {
		t.Errorf("invoking a deleted function: %v", err)
	}
}
