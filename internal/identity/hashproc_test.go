package identity_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// hashWorkerArg makes the test binary a hashing child (as `bulkhead
// hash-worker` is for the server).
const hashWorkerArg = "bulkhead-test-hash-worker"

func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == hashWorkerArg {
		if err := identity.ServeHashing(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// proc is a process's /proc/PID/stat fields after the command name, from
// state (index 0) on.
func procStat(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
}

// hashChildren lists this process's hashing children.
func hashChildren(t *testing.T) []int {
	t.Helper()
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		st := procStat(t, d+"/stat")
		if len(st) < 2 || st[1] != strconv.Itoa(os.Getpid()) || st[0] == "Z" {
			continue
		}
		cmdline, _ := os.ReadFile(d + "/cmdline")
		if bytes.Contains(cmdline, []byte(hashWorkerArg)) {
			pid, _ := strconv.Atoi(filepath.Base(d))
			pids = append(pids, pid)
		}
	}
	return pids
}

// cpuTicks is the user and system CPU of pid, in clock ticks.
func cpuTicks(t *testing.T, pid int) int {
	st := procStat(t, fmt.Sprintf("/proc/%d/stat", pid))
	if len(st) < 13 {
		return 0
	}
	u, _ := strconv.Atoi(st[11])
	s, _ := strconv.Atoi(st[12])
	return u + s
}

// TestHashingInChildProcesses: with a hash command, passwords are hashed
// and checked in child processes at nice 10 that hold none of the
// server's environment; a child killed with SIGKILL costs no sign-in and
// is replaced; the children end with Run.
func TestHashingInChildProcesses(t *testing.T) {
	os.Setenv("BULKHEAD_TEST_SECRET_IN_PARENT", "do-not-inherit")
	defer os.Unsetenv("BULKHEAD_TEST_SECRET_IN_PARENT")
	dsn := storagetest.DSN(t, storage.SQLite)
	db := storagetest.Open(t, dsn, audit.Migrations(), tenants.Migrations(), identity.Migrations())
	l := audit.New(db, audit.Options{})
	t.Cleanup(func() { l.Close() })
	reg := tenants.NewRegistry(db, l, tenants.Options{})
	// 32 MiB and 3 passes: long enough that the children's CPU shows.
	argon := identity.Argon2Params{Memory: 32 << 10, Time: 3, Threads: 1, KeyLen: 32, SaltLen: 16}
	dir := identity.NewDirectory(db, l, identity.Options{Argon2: argon, HashWorkers: 2,
		HashCommand: []string{os.Args[0], hashWorkerArg}})
	reg.AddOnboardingStep(dir.OnboardingStep())
	ctx := context.Background()
	runtest.Go(t, func(ctx context.Context) error { return reg.Run(ctx, 50*time.Millisecond) })
	stopHashing := runtest.Go(t, dir.Run)
	if _, _, err := reg.Create(ctx, tenants.CreateRequest{ID: "acme"}, "", op); err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, "acme active", func() bool {
		tn, _ := reg.Get(ctx, "acme")
		return tn.Status == tenants.Active
	})
	runtest.Eventually(t, "two hashing children", func() bool { return len(hashChildren(t)) == 2 })
	children := hashChildren(t)
	for _, pid := range children {
		// A child lowers its priority first thing.
		runtest.Eventually(t, "every thread of the child at nice 10", func() bool {
			tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
			for _, task := range tasks {
				if st := procStat(t, task); len(st) > 16 && st[16] != "10" {
					return false
				}
			}
			return len(tasks) > 0
		})
		environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			t.Fatal(err)
		}
		if string(environ) != "GOMAXPROCS=1\x00" {
			t.Errorf("child %d inherited an environment: %q", pid, environ)
		}
	}

	before := 0
	for _, pid := range children {
		before += cpuTicks(t, pid)
	}
	// Every character of a password reaches the child as it is.
	password := "pass\x00wörd\u2028☃ \"\\long enough"
	_, err := dir.CreateUser(ctx, "acme", identity.CreateUserRequest{Email: "ada@acme.example", Password: password}, op)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := dir.Authenticate(ctx, "acme", "ada@acme.example", password); err != nil {
			t.Fatalf("sign in with the password: %v", err)
		}
	}
	if _, err := dir.Authenticate(ctx, "acme", "ada@acme.example", "pass\x00word\u2028☃ \"\\long enough"); err == nil {
		t.Error("a password with its bad bytes replaced signed in")
	}
	after := 0
	for _, pid := range children {
		after += cpuTicks(t, pid)
	}
	if after-before < 5 {
		t.Errorf("the children used %d ticks of CPU for five hashes: they did not hash", after-before)
	}

	// A child killed mid-life: sign-ins go on, and it is replaced.
	if err := syscall.Kill(children[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := dir.Authenticate(ctx, "acme", "ada@acme.example", password); err != nil {
			t.Fatalf("sign in after a child was killed: %v", err)
		}
	}
	runtest.Eventually(t, "the killed child replaced", func() bool {
		pids := hashChildren(t)
		return len(pids) == 2 && pids[0] != children[0] && pids[1] != children[0]
	})

	if err := stopHashing(); err != nil {
		t.Fatal(err)
	}
	if pids := hashChildren(t); len(pids) != 0 {
		t.Errorf("children left after Run returned: %v", pids)
	}
	// Without children, the server hashes.
	if _, err := dir.Authenticate(ctx, "acme", "ada@acme.example", password); err != nil {
		t.Fatalf("sign in after Run: %v", err)
	}
}
