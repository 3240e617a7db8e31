package compute_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/compute"
)

// nodeDir lays out a data directory as a node has it (root key, database,
// the functions directory the engine works in) with recognisable secrets,
// and returns it with the engine's directory.
func nodeDir(t *testing.T) (data, engineDir string) {
	t.Helper()
	data = t.TempDir()
	for name, content := range map[string]string{
		"root.key":    "ROOT-KEY-SECRET-0123456789",
		"bulkhead.db": "SQLITE-DATABASE-SECRET",
	} {
		if err := os.WriteFile(filepath.Join(data, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return data, filepath.Join(data, "functions")
}

// snapshot hashes every file under dir.
func snapshot(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			out[p] = sha256.Sum256([]byte("symlink"))
			return nil
		}
		b, err := os.ReadFile(p)
		out[p] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func invokeJSON(t *testing.T, e *compute.Engine, name, tid string, req any, out any) {
	t.Helper()
	ev, _ := json.Marshal(req)
	res, err := e.Invoke(context.Background(), name, compute.Caller{Tenant: tid}, "r", ev)
	if err != nil {
		t.Fatalf("invoke %s %s: %v", name, ev, err)
	}
	if err := json.Unmarshal(res.Body, out); err != nil {
		t.Fatalf("answer %q: %v", res.Body, err)
	}
}

// TestSandboxEscape is the hostile module of the hardening issue: links,
// "..", absolute paths, renames and a changed working directory get a
// guest nothing outside its /tmp, nothing of another tenant's /tmp, and
// leave the node's files as they were.
func TestSandboxEscape(t *testing.T) {
	data, dir := nodeDir(t)
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e, err := compute.New(compute.Options{Dir: dir, CacheDir: cacheDir, CacheKey: testCacheKey, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	deploy(t, e, compute.Function{Name: "escape", TenancyMode: compute.PerTenant}, "escape")
	before := snapshot(t, data)

	var put string
	invokeJSON(t, e, "escape", "tenant-a", map[string]string{"op": "put", "path": "/tmp/a-secret", "data": "TENANT-A-SECRET"}, &put)
	if put != "ok: " {
		t.Fatalf("writing its own /tmp: %q", put)
	}
	for _, tid := range []string{"tenant-a", "tenant-b"} {
		var got map[string]string
		invokeJSON(t, e, "escape", tid, map[string]string{"op": "battery"}, &got)
		if len(got) < 30 {
			t.Fatalf("%s: only %d attempts reported: %v", tid, len(got), got)
		}
		for name, r := range got {
			if name == "own" {
				if r != "ok: mine" {
					t.Errorf("%s: its own file: %q", tid, r)
				}
				continue
			}
			if !strings.HasPrefix(r, "error: ") {
				t.Errorf("%s: %s succeeded: %q", tid, name, r)
			}
			for _, secret := range []string{"ROOT-KEY", "SQLITE", "root:x:0", "TENANT-A", "PATH="} {
				if strings.Contains(r, secret) {
					t.Errorf("%s: %s read %s: %q", tid, name, secret, r)
				}
			}
		}
		var names []string
		invokeJSON(t, e, "escape", tid, map[string]string{"op": "list"}, &names)
		sawA := strings.Contains(strings.Join(names, " "), "a-secret")
		if sawA != (tid == "tenant-a") {
			t.Errorf("%s lists %v", tid, names)
		}
	}
	after := snapshot(t, data)
	for p, h := range before {
		if after[p] != h {
			t.Errorf("%s changed", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok && !strings.HasPrefix(p, cacheDir) {
			t.Errorf("%s appeared", p)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the engine's directory holds %v; guests' files belong in memory", names)
	}
}

type fillAnswer struct {
	Written int    `json:"written"`
	Created int    `json:"created"`
	Error   string `json:"error"`
	ENOSPC  bool   `json:"enospc"`
}

// TestTmpQuota: a guest cannot write more than its function's /tmp quota,
// in bytes or in entries, and sees ENOSPC; the node-wide bound holds across
// tenants and is given back when an environment goes.
func TestTmpQuota(t *testing.T) {
	clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	e, err := compute.New(compute.Options{Dir: t.TempDir(), CacheDir: cacheDir, CacheKey: testCacheKey, Now: clk.Now,
		TmpBytes: 3 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	deploy(t, e, compute.Function{Name: "fill", TenancyMode: compute.PerTenant, TmpMiB: 2, IdleTTL: time.Minute}, "escape")

	var a fillAnswer
	invokeJSON(t, e, "fill", "tenant-a", map[string]any{"op": "write", "path": "/tmp/big", "bytes": 200 << 20}, &a)
	if !a.ENOSPC || a.Written > 2<<20 || a.Written < 1<<20 {
		t.Errorf("200 MiB into a 2 MiB /tmp: %+v", a)
	}
	if used := e.TmpBytes(); used > 2<<20 {
		t.Errorf("node holds %d bytes of /tmp", used)
	}
	// The node's bound (3 MiB) stops tenant-b before its own 2 MiB.
	var b fillAnswer
	invokeJSON(t, e, "fill", "tenant-b", map[string]any{"op": "write", "path": "/tmp/big", "bytes": 2 << 20}, &b)
	if !b.ENOSPC || b.Written >= 2<<20 {
		t.Errorf("tenant-b past the node's bound: %+v", b)
	}
	// Entries count too: a flood of empty files stops.
	var c fillAnswer
	invokeJSON(t, e, "fill", "tenant-c", map[string]any{"op": "files", "count": 1 << 20}, &c)
	if !c.ENOSPC || c.Created == 0 || c.Created >= 1<<20 {
		t.Errorf("a million empty files: %+v", c)
	}
	// Environments gone, bytes back: tenant-b can fill its quota now.
	clk.Advance(2 * time.Minute)
	e.EvictIdle(context.Background())
	if used := e.TmpBytes(); used != 0 {
		t.Errorf("after eviction the node holds %d bytes of /tmp", used)
	}
	b = fillAnswer{}
	invokeJSON(t, e, "fill", "tenant-b", map[string]any{"op": "write", "path": "/tmp/big", "bytes": 1 << 20}, &b)
	if b.Error != "" || b.Written != 1<<20 {
		t.Errorf("tenant-b after the others left: %+v", b)
	}
	if _, err := e.Deploy(context.Background(), compute.Function{Name: "huge", TenancyMode: compute.Shared, TmpMiB: 4096}, modules["escape"]); err == nil {
		t.Error("a 4 GiB /tmp quota was accepted")
	}
}

// TestCompiledCodeTampered: a compiled-code file changed on disk, or one
// the node never wrote, is not loaded: it is removed and the module is
// compiled again.
func TestCompiledCodeTampered(t *testing.T) {
	cache := t.TempDir()
	open := func() *compute.Engine {
		e, err := compute.New(compute.Options{Dir: t.TempDir(), CacheDir: cache, CacheKey: testCacheKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close(context.Background()) })
		return e
	}
	e := open()
	deploy(t, e, compute.Function{Name: "limits", TenancyMode: compute.Shared}, "limits")
	var files []string
	filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(p) != "manifest.json" {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 1 {
		t.Fatalf("compiled files: %v", files)
	}
	orig, _ := os.ReadFile(files[0])
	tampered := bytes.Clone(orig)
	tampered[len(tampered)/2] ^= 0xff
	if err := os.WriteFile(files[0], tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(filepath.Dir(files[0]), strings.Repeat("ab", 32))
	os.WriteFile(planted, orig, 0o600)
	os.Symlink("/etc/passwd", filepath.Join(filepath.Dir(files[0]), strings.Repeat("cd", 32)))

	// The running engine checks before it compiles again (it has the
	// module in memory, so it removes the file and writes none); a new
	// engine checks at start.
	deploy(t, e, compute.Function{Name: "limits", TenancyMode: compute.Shared}, "limits")
	if got, _ := os.ReadFile(files[0]); bytes.Equal(got, tampered) {
		t.Error("the tampered file is still there after a deploy")
	}
	if _, err := os.Lstat(planted); err == nil {
		t.Error("a file the node never wrote survived")
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(files[0]), strings.Repeat("cd", 32))); err == nil {
		t.Error("a symlink in the cache survived")
	}
	os.WriteFile(files[0], tampered, 0o600)
	e2 := open()
	if got, _ := os.ReadFile(files[0]); bytes.Equal(got, tampered) {
		t.Error("a new engine kept the tampered file")
	}
	deploy(t, e2, compute.Function{Name: "limits", TenancyMode: compute.Shared}, "limits")
	if res, err := e2.Invoke(context.Background(), "limits", compute.Caller{Tenant: ""}, "r", []byte("x")); err != nil || string(res.Body) != "1" {
		t.Errorf("after recompiling: %q %v", res.Body, err)
	}
	if got, _ := os.ReadFile(files[0]); !bytes.Equal(got, orig) {
		t.Error("the recompiled file differs from the first compilation")
	}
}
