package migrate

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/jackc/pgx/v5"
)

// The environment of TestHelperMigrateChild, set by TestCrashResume.
const (
	childEnv      = "BULKHEAD_MIGRATE_CHILD" // "1" in the child
	childDSNEnv   = "BULKHEAD_MIGRATE_CHILD_ADMIN_DSN"
	childServeEnv = "BULKHEAD_MIGRATE_CHILD_SERVING_ROLE"
	childPrefEnv  = "BULKHEAD_MIGRATE_CHILD_PREFIX"
	childCountEnv = "BULKHEAD_MIGRATE_CHILD_TENANTS"
)

// crashFiles are three files each of which inserts a row into the
// per-schema table applied: a file applied twice shows as a second row.
func crashFiles(t testing.TB) []File {
	return files(t,
		"001_init.sql", `
CREATE TABLE applied (file text NOT NULL);
INSERT INTO applied VALUES ('001');
CREATE TABLE items (id serial PRIMARY KEY, body text);`,
		"002_count.sql", `
ALTER TABLE items ADD COLUMN n int NOT NULL DEFAULT 0;
INSERT INTO applied VALUES ('002');`,
		"003_index.sql", `
CREATE INDEX items_n ON items (n);
INSERT INTO applied VALUES ('003');`)
}

func crashTenants(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("t-%04d", i)
	}
	return ids
}

// crashTargets are the bridge targets of TestCrashResume's tenants, named
// as testCluster.bridges names them.
func crashTargets(database, prefix string, n int) []Target {
	var out []Target
	for _, id := range crashTenants(n) {
		s := prefix + strings.ReplaceAll(id, "-", "_")
		out = append(out, Target{TenantID: id, Model: Bridge, Database: database, Schema: s, Role: s})
	}
	return out
}

// TestHelperMigrateChild is the process that TestCrashResume kills: it
// migrates the bridge schemas it is given until it is killed.
func TestHelperMigrateChild(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		t.Skip("the child process of TestCrashResume")
	}
	n, err := strconv.Atoi(os.Getenv(childCountEnv))
	if err != nil {
		t.Fatal(err)
	}
	conns, err := NewAdminConns(os.Getenv(childDSNEnv), DefaultWorkers)
	if err != nil {
		t.Fatal(err)
	}
	defer conns.Close()
	c := Cluster{Databases: conns, SharedDatabase: conns.SharedDatabase(), Prefix: os.Getenv(childPrefEnv), ServingRole: os.Getenv(childServeEnv)}
	if _, err := Run(context.Background(), c, crashFiles(t), crashTargets(c.SharedDatabase, c.Prefix, n), Options{}); err != nil {
		t.Fatal(err)
	}
}

// TestCrashResume kills (SIGKILL) a process in the middle of migrating 200
// bridge schemas, then resumes in this one: every schema ends at the
// newest file with each file applied exactly once.
func TestCrashResume(t *testing.T) {
	const tenants = 200
	c := newCluster(t)
	ctx := context.Background()
	targets := c.bridges(t, crashTenants(tenants)...)
	fs := crashFiles(t)
	const total = (tenants + 1) * 3 // the pool too

	// The child's sessions are named, to see them end after the kill.
	dsn, err := url.Parse(c.AdminDSN)
	if err != nil {
		t.Fatal(err)
	}
	appName := "migrate-child-" + c.Prefix
	q := dsn.Query()
	q.Set("application_name", appName)
	dsn.RawQuery = q.Encode()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperMigrateChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1", childDSNEnv+"="+dsn.String(), childServeEnv+"="+c.Cluster.ServingRole,
		childPrefEnv+"="+c.Prefix, childCountEnv+"="+strconv.Itoa(tenants))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	runtest.Eventually(t, "the child to apply a quarter of the files", func() bool {
		return ledgerRows(t, c) >= total/4
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v (it finished before it was killed?)\n%s", err, out.String())
	}
	// A COMMIT the child sent before it died may still land: count once
	// its sessions are gone.
	runtest.Eventually(t, "the child's sessions to end", func() bool {
		return query[int](t, c, c.Database, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, appName) == 0
	})
	before := ledgerRows(t, c)
	if before >= total {
		t.Fatalf("the child applied all %d files before it was killed: nothing to resume", total)
	}
	t.Logf("killed the child after %d of %d file applications", before, total)

	rep, err := Run(ctx, c.Cluster, fs, targets, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Applied != total-before {
		t.Errorf("the resumed Run applied %d files, want %d (%d were applied before the kill)", rep.Applied, total-before, before)
	}
	if b := rep.Behind(); len(b) != 0 {
		t.Fatalf("behind after the resumed Run: %v", b)
	}
	// Every place: each file in the ledger and in applied exactly once.
	var parts []string
	for _, schema := range append([]string{"public"}, schemas(targets)...) {
		parts = append(parts, "SELECT tableoid AS s, 'l' AS k, name AS f FROM "+pgx.Identifier{schema, ledger}.Sanitize()+
			" UNION ALL SELECT tableoid, 'a', file FROM "+pgx.Identifier{schema, "applied"}.Sanitize())
	}
	got := query[string](t, c, c.Database, `SELECT count(*)::text || ' ' || count(DISTINCT (s, k, f))::text || ' ' ||
		count(*) FILTER (WHERE k = 'a')::text FROM (`+strings.Join(parts, " UNION ALL ")+`) x`)
	if want := fmt.Sprintf("%d %d %d", 2*total, 2*total, total); got != want {
		t.Fatalf("rows, distinct rows, applied rows = %s, want %s", got, want)
	}
}

func schemas(targets []Target) []string {
	out := make([]string, len(targets))
	for i, t := range targets {
		out[i] = t.Schema
	}
	return out
}

// ledgerRows counts the ledger rows of the cluster's places.
func ledgerRows(t testing.TB, c testCluster) int {
	t.Helper()
	names := query[[]string](t, c, c.Database, `SELECT coalesce(array_agg(n.nspname), '{}') FROM pg_class r
		JOIN pg_namespace n ON n.oid = r.relnamespace WHERE r.relname = $1`, ledger)
	if len(names) == 0 {
		return 0
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = "SELECT count(*) AS n FROM " + pgx.Identifier{n, ledger}.Sanitize()
	}
	return query[int](t, c, c.Database, `SELECT coalesce(sum(n), 0)::int FROM (`+strings.Join(parts, " UNION ALL ")+`) x`)
}
