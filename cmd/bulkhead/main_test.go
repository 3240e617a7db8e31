package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// binary is the bulkhead command built once for the tests that run it as a
// child process, as it ships (no build tags).
var binary string

// hookBinary is the bulkhead command built with -tags bulkheadtest, whose
// onboarding takes the crash tests' extra steps (testhook.go); built on
// first use, by hookBinaryFor.
var hookBinary struct {
	once sync.Once
	path string
	err  error
}

// hookBinaryFor returns the path of the bulkhead command built with
// -tags bulkheadtest.
func hookBinaryFor(t *testing.T) string {
	t.Helper()
	hookBinary.once.Do(func() {
		path := filepath.Join(filepath.Dir(binary), "bulkhead-hooks")
		out, err := exec.Command("go", "build", "-tags", "bulkheadtest", "-o", path, ".").CombinedOutput()
		if err != nil {
			hookBinary.err = fmt.Errorf("build bulkhead -tags bulkheadtest: %v\n%s", err, out)
			return
		}
		hookBinary.path = path
	})
	if hookBinary.err != nil {
		t.Fatal(hookBinary.err)
	}
	return hookBinary.path
}

func TestMain(m *testing.M) {
	// serve run in this process (TestServeLeavesNoGoroutine) starts its
	// password hashing children as /proc/self/exe hash-worker: this binary.
	if len(os.Args) == 2 && os.Args[1] == "hash-worker" {
		main()
	}
	// The embedded NATS server is off in every serve these tests run, in
	// this process or a child, unless a test asks for it (--nats-listen):
	// its default address is one for every node.
	os.Setenv("BULKHEAD_NATS_LISTEN", "off")
	dir, err := os.MkdirTemp("", "bulkhead-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "bulkhead")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build bulkhead: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testAdminToken = "cmd-test-admin-token-0123456789"

// proc is a running `bulkhead serve` child process.
type proc struct {
	cmd    *exec.Cmd
	url    string
	mu     sync.Mutex
	stderr bytes.Buffer
	exited chan error
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

var listening = regexp.MustCompile(`API listening on (http://\S+)`)

// startServe runs `bulkhead serve` on dataDir (and dsn, if not empty) with
// extra environment, and waits until it listens. On PostgreSQL the owner
// role migrates (--migration-database) and the node serves as the
// ordinary role.
func startServe(t *testing.T, dataDir, dsn string, env ...string) *proc {
	t.Helper()
	return startServeBinary(t, binary, dataDir, dsn, env...)
}

// startServeBinary is startServe with another build of the command (see
// hookBinaryFor).
func startServeBinary(t *testing.T, bin, dataDir, dsn string, env ...string) *proc {
	t.Helper()
	args := []string{"--data-dir", dataDir}
	if dsn != "" {
		args = append(args, "--database", dsn)
	}
	if m := storagetest.MigrationDSN(t, dsn); m != "" {
		args = append(args, "--migration-database", m)
	}
	return startServeBinaryArgs(t, bin, args, env...)
}

// startServeArgs runs `bulkhead serve` with args (after a free listen
// address and a short workflow retry) and extra environment, and waits
// until it listens.
func startServeArgs(t *testing.T, args []string, env ...string) *proc {
	t.Helper()
	return startServeBinaryArgs(t, binary, args, env...)
}

func startServeBinaryArgs(t *testing.T, bin string, args []string, env ...string) *proc {
	t.Helper()
	args = append([]string{"serve", "--listen", "127.0.0.1:0", "--workflow-retry", "200ms"}, args...)
	cmd := exec.Command(bin, args...)
	// The connections proxy listens on a free port, not the default 8090,
	// which another node (or another test binary) may hold.
	cmd.Env = append(os.Environ(), append([]string{"BULKHEAD_ADMIN_TOKEN=" + testAdminToken, "BULKHEAD_PROXY_LISTEN=127.0.0.1:0"}, env...)...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	p := &proc{cmd: cmd, exited: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listening.FindStringSubmatch(line); m != nil {
				urlc <- m[1]
			}
		}
	}()
	go func() { err := cmd.Wait(); pw.Close(); p.exited <- err }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.exited
		}
	})
	select {
	case p.url = <-urlc:
	case err := <-p.exited:
		t.Fatalf("bulkhead serve exited: %v\n%s", err, p.output())
	case <-time.After(30 * time.Second):
		t.Fatalf("bulkhead serve did not start\n%s", p.output())
	}
	return p
}

func (p *proc) client() *client.Client { return client.New(p.url, testAdminToken) }

// runCLI runs a bulkhead client command against url and returns its stdout,
// stderr and exit status.
func runCLI(t *testing.T, url string, args ...string) (string, string, int) {
	t.Helper()
	return runCLIInput(t, url, "", args...)
}

// runCLIInput is runCLI with stdin.
func runCLIInput(t *testing.T, url, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), "BULKHEAD_ADDR="+url, "BULKHEAD_TOKEN="+testAdminToken)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// runHere runs a command line in this process with stdin and returns its
// exit status, stdout and stderr.
func runHere(stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func contextT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestVersionAndUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"version"}, strings.NewReader(""), &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "bulkhead ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	for _, args := range [][]string{{}, {"nope"}, {"tenant"}, {"tenant", "fly"}, {"tenant", "get"}, {"tenant", "get", "a", "b"}, {"audit", "list", "--since", "yesterday"}, {"serve", "--listen"},
		{"migrate"}, {"migrate", "--database", "postgres://u@h/db"}, {"migrate", "--database", "x.db", "--grant-to", "bulkhead"}, {"migrate", "--database", "x.db", "extra"}} {
		out.Reset()
		errb.Reset()
		if code := run(context.Background(), args, strings.NewReader(""), &out, &errb); code != 2 {
			t.Errorf("bulkhead %v: exit %d; want 2 (usage)\n%s", args, code, errb.String())
		}
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"serve", "--help"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("serve --help: exit %d", code)
	}
	for _, flag := range []string{"-data-dir", "-database", "-migration-database", "-listen", "-tiers", "-log-level", "-shutdown-timeout", "BULKHEAD_ADMIN_TOKEN", "BULKHEAD_DATA_DIR", "BULKHEAD_DATABASE", "BULKHEAD_LISTEN"} {
		if !strings.Contains(errb.String(), flag) {
			t.Errorf("serve --help does not document %s", flag)
		}
	}
}

// TestUsageNeverPrintsTheToken: flag usage prints defaults, so the token
// from the environment must not be one.
func TestUsageNeverPrintsTheToken(t *testing.T) {
	const secret = "env-secret-token-0123456789abcdef"
	t.Setenv("BULKHEAD_TOKEN", secret)
	t.Setenv("BULKHEAD_ADMIN_TOKEN", secret)
	for _, args := range [][]string{{"tenant", "list", "--bogus"}, {"tenant", "list", "-h"}, {"audit", "verify", "--help"}, {"tenant", "create", "-x", "y"}} {
		var out, errb bytes.Buffer
		run(context.Background(), args, strings.NewReader(""), &out, &errb)
		if strings.Contains(out.String()+errb.String(), secret) {
			t.Errorf("bulkhead %v printed the token:\n%s%s", args, out.String(), errb.String())
		}
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:secret@h/db":                        "postgres://u:xxxxx@h/db",
		"postgresql://u:s@cret@h:5432/db?sslmode=require": "postgresql://u:xxxxx@h:5432/db?sslmode=require",
		"postgres://u@h/db":                               "postgres://u@h/db",
		"postgres://u:se%zzcret@h/db":                     "postgres://(a URL that does not parse)",
		"/var/lib/bulkhead/data.db":                       "/var/lib/bulkhead/data.db",
		"/var/lib/bulk%head/data.db":                      "/var/lib/bulk%head/data.db",
	} {
		if got := redactDSN(in); got != want {
			t.Errorf("redactDSN(%q) = %q; want %q", in, got, want)
		}
	}
}
