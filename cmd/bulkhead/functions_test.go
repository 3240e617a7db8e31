package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIFunctions builds the counter example, publishes it per_tenant
// with the CLI and invokes it for two tenants: each sees only its own
// counter and files; a missing tenant, a deleted function and usage
// errors are reported clearly.
func TestCLIFunctions(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "counter.wasm")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", wasm, "../../examples/functions/counter")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the example: %v\n%s", err, out)
	}
	p := startServe(t, filepath.Join(dir, "data"), "")
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, p.url, args...)
		if code != wantCode {
			t.Fatalf("bulkhead %s: exit %d; want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out + errOut
	}
	cli(0, "tenant", "create", "acme")
	cli(0, "tenant", "create", "globex")
	if out := cli(0, "function", "create", "counter", "--module", wasm, "--mode", "per_tenant", "--timeout", "5s"); !strings.Contains(out, "per_tenant") {
		t.Errorf("create:\n%s", out)
	}
	type answer struct {
		Count    int      `json:"count"`
		TenantID string   `json:"tenant_id"`
		TmpSeen  []string `json:"tmp_seen"`
	}
	invoke := func(tenant string) answer {
		t.Helper()
		out := cli(0, "function", "invoke", "counter", "--tenant", tenant)
		var a answer
		if err := json.Unmarshal([]byte(out), &a); err != nil {
			t.Fatalf("invoke for %s: %q", tenant, out)
		}
		return a
	}
	for i, c := range []struct {
		tenant string
		count  int
		seen   int
	}{{"acme", 1, 0}, {"acme", 2, 1}, {"globex", 1, 0}, {"acme", 3, 1}} {
		a := invoke(c.tenant)
		if a.TenantID != c.tenant || a.Count != c.count || len(a.TmpSeen) != c.seen {
			t.Errorf("invocation %d for %s: %+v", i, c.tenant, a)
		}
		for _, s := range a.TmpSeen {
			if s != c.tenant {
				t.Errorf("invocation %d for %s saw %s's file", i, c.tenant, s)
			}
		}
	}
	if out := cli(1, "function", "invoke", "counter"); !strings.Contains(out, "tenant_id_required") || !strings.Contains(out, "add a tenant id and try again") {
		t.Errorf("invoke without a tenant:\n%s", out)
	}
	if out := cli(0, "function", "list"); !strings.Contains(out, "counter") {
		t.Errorf("list:\n%s", out)
	}
	cli(0, "function", "delete", "counter")
	if out := cli(1, "function", "invoke", "counter", "--tenant", "acme"); !strings.Contains(out, "function_not_found") {
		t.Errorf("invoke a deleted function:\n%s", out)
	}
	cli(2, "function", "create", "counter")     // no --module
	cli(2, "function", "invoke")                // no name
	cli(2, "function", "frobnicate", "counter") // no such command
}
