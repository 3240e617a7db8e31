package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestServeLeavesNoGoroutine runs bulkhead serve in this process, onboards
// and offboards a tenant, and stops it as SIGTERM does (its context ends):
// once serve has returned, no goroutine of the node is left.
func TestServeLeavesNoGoroutine(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		t.Setenv("BULKHEAD_ADMIN_TOKEN", testAdminToken)
		args := []string{"--listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--database", dsn}
		if m := storagetest.MigrationDSN(t, dsn); m != "" {
			args = append(args, "--migration-database", m)
		}
		before := goleak.IgnoreCurrent()
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		out := &serveOutput{url: make(chan string, 1)}
		served := make(chan error, 1)
		go func() { served <- serve(ctx, stdio{out: io.Discard, err: out}, args) }()
		var url string
		select {
		case url = <-out.url:
		case err := <-served:
			t.Fatalf("serve returned before listening: %v\n%s", err, out)
		case <-time.After(30 * time.Second):
			t.Fatalf("serve did not listen\n%s", out)
		}
		c := client.New(url, testAdminToken)
		if _, err := c.CreateTenant(ctx, client.CreateTenant{ID: "leak-co"}, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := c.DeleteTenant(ctx, "leak-co"); err != nil {
			t.Fatal(err)
		}
		stop()
		if err := <-served; err != nil {
			t.Fatalf("serve: %v\n%s", err, out)
		}
		goleak.VerifyNone(t, before)
	})
}

// serveOutput is serve's stderr: it sends the API's URL once serve says
// it listens.
type serveOutput struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	url  chan string
	sent bool
}

func (o *serveOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if m := listening.FindSubmatch(o.buf.Bytes()); m != nil && !o.sent {
		o.sent = true
		o.url <- string(m[1])
	}
	return len(p), nil
}

func (o *serveOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// TestServeHashesInChildren: serve hashes passwords in a child process at
// nice 10 (identity.ServeHashing), which dies with the server, even with
// SIGKILL.
func TestServeHashesInChildren(t *testing.T) {
	p := startServe(t, t.TempDir(), "")
	var child int
	runtest.Eventually(t, "a hash-worker child at nice 10", func() bool {
		child = 0
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range dirs {
			b, err := os.ReadFile(d + "/stat")
			cmdline, _ := os.ReadFile(d + "/cmdline")
			if err != nil || !bytes.Contains(cmdline, []byte("hash-worker")) {
				continue
			}
			st := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
			if len(st) > 16 && st[1] == strconv.Itoa(p.cmd.Process.Pid) && st[16] == "10" {
				child, _ = strconv.Atoi(filepath.Base(d))
			}
		}
		return child != 0
	})
	p.cmd.Process.Kill()
	<-p.exited
	runtest.Eventually(t, "the child gone with its server", func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		return err != nil || bytes.Contains(b, []byte(") Z "))
	})
}

// TestServeDebugListen: --debug-listen serves Go's profiles on loopback,
// without the command line (a DSN may hold a password), and refuses any
// other address unless --debug-listen-remote.
func TestServeDebugListen(t *testing.T) {
	err := serve(context.Background(), stdio{out: io.Discard, err: io.Discard},
		[]string{"--listen", "127.0.0.1:0", "--proxy-listen", "off", "--data-dir", t.TempDir(), "--debug-listen", "0.0.0.0:0"})
	if err == nil || !strings.Contains(err.Error(), "--debug-listen-remote") {
		t.Errorf("--debug-listen on every address: %v", err)
	}
	p := startServeArgs(t, []string{"--data-dir", t.TempDir(), "--debug-listen", "127.0.0.1:0"})
	var m []string
	runtest.Eventually(t, "the profiling address", func() bool {
		m = regexp.MustCompile(`profiling listening on (http://\S+)`).FindStringSubmatch(p.output())
		return m != nil
	})
	get := func(path string) (int, string) {
		resp, err := http.Get(m[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Errorf("goroutine profile: %d %.200s", code, body)
	}
	if code, body := get("cmdline"); strings.Contains(body, "--data-dir") {
		t.Errorf("cmdline served: %d %q", code, body)
	}
	// Not on the API listener.
	resp, err := http.Get(p.url + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Error("the API listener serves profiles")
	}
}
