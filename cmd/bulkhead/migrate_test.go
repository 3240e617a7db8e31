package main

import (
	"bytes"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// serveFails runs `bulkhead serve` with args, expects it to exit 1 before
// serving, and returns its stderr.
func serveFails(t *testing.T, args ...string) string {
	t.Helper()
	args = append([]string{"serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--proxy-listen", "off"}, args...)
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "BULKHEAD_ADMIN_TOKEN="+testAdminToken)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("bulkhead serve %v: %v; want exit status 1\n%s", args, err, errb.String())
	}
	return errb.String()
}

// TestMigrateThenServe: on PostgreSQL, serve refuses an unmigrated
// database and a connection as the owner role, each time saying what to
// run; `bulkhead migrate` as the owner role (repeatable) lets the ordinary
// role serve with no owner credential at all.
func TestMigrateThenServe(t *testing.T) {
	serving, owner := storagetest.PostgresDSNs(t)
	role := roleOf(t, serving)

	if out := serveFails(t, "--database", serving); !strings.Contains(out, "not migrated") || !strings.Contains(out, "bulkhead migrate") {
		t.Errorf("serve on an unmigrated database:\n%s", out)
	}
	if code, _, errOut := runHere("", "migrate", "--database", owner, "--grant-to", "no_such_role"); code != 1 || !strings.Contains(errOut, "does not exist") {
		t.Errorf("migrate --grant-to a missing role: exit %d\n%s", code, errOut)
	}
	for range 2 {
		code, out, errOut := runHere("", "migrate", "--database", owner, "--grant-to", role)
		if code != 0 || !strings.Contains(out, "granted role "+role) {
			t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
		}
	}
	out := serveFails(t, "--database", owner)
	for _, want := range []string{"role too powerful to serve", "table audit_events", "owns nothing", "bulkhead migrate"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve as the owner role does not say %q:\n%s", want, out)
		}
	}
	if code, _, errOut := runHere("", "migrate", "--database", owner, "--grant-to", roleOf(t, owner)); code != 1 || !strings.Contains(errOut, "too powerful") {
		t.Errorf("migrate --grant-to the owner itself: exit %d\n%s", code, errOut)
	}

	p := startServeArgs(t, []string{"--data-dir", filepath.Join(t.TempDir(), "data"), "--database", serving})
	if _, err := p.client().CreateTenant(contextT(t), client.CreateTenant{ID: "acme"}, ""); err != nil {
		t.Fatalf("create a tenant on a node serving as %s: %v\n%s", role, err, p.output())
	}
}

// roleOf returns the user of a postgres:// URL.
func roleOf(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.User.Username()
}

// TestMigrateSQLite: an SQLite database is migrated as it is.
func TestMigrateSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bulkhead.db")
	if code, out, errOut := runHere("", "migrate", "--database", path); code != 0 || !strings.Contains(out, "migrated") {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}
}
