package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestClusterMigrate: cluster migrate registers a directory's files and
// waits until every placement has them; cluster migrations --check passes
// then, and fails (exit 1) once a file fails on a tenant's schema, which
// cluster migrate reports with exit 1 too.
func TestClusterMigrate(t *testing.T) {
	env := apitest.New(t, storagetest.DSN(t, "sqlite"), apitest.Options{})
	app := storagetest.App(t)
	ctx := contextT(t)
	if _, err := env.Admin.CreateCluster(ctx, client.CreateDataCluster{Name: "app", DSN: app.ServingDSN, AdminDSN: app.AdminDSN, Prefix: app.Prefix}); err != nil {
		t.Fatal(err)
	}
	for id, tier := range map[string]string{"cli-pool": "basic", "cli-bridge": "standard"} {
		if tn, err := env.Admin.CreateTenant(ctx, client.CreateTenant{ID: id, Tier: tier}, ""); err != nil || tn.Status != "active" {
			t.Fatalf("create %s: %+v %v", id, tn, err)
		}
	}
	dir := t.TempDir()
	write := func(name, sql string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sql), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("001_notes.sql", "CREATE TABLE notes (tenant_id text NOT NULL, body text);")
	write("002_tags.sql", "CREATE TABLE tags (tenant_id text NOT NULL, tag text);")
	write("README.md", "not a migration")
	cli := func(wantCode int, args ...string) (string, string) {
		t.Helper()
		code, out, errOut := runHere("", append(args, "--addr", env.URL, "--token", apitest.AdminToken)...)
		if code != wantCode {
			t.Fatalf("bulkhead %s: exit %d; want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out, errOut
	}

	out, errOut := cli(0, "cluster", "migrate", "app", "--dir", dir)
	for _, want := range []string{"registered 2 migration(s) on cluster app, newest 002_tags.sql", "2 of 2 place(s) at 002_tags.sql, 0 tenant(s) behind"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("cluster migrate does not say %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(out, "no tenant is behind") || !strings.Contains(out, app.Prefix+"cli_bridge") {
		t.Errorf("cluster migrate's status:\n%s", out)
	}
	out, _ = cli(0, "cluster", "migrations", "app", "--check")
	if !strings.Contains(out, "002_tags.sql") || !strings.Contains(out, "no tenant is behind") {
		t.Errorf("cluster migrations --check:\n%s", out)
	}
	out, _ = cli(0, "cluster", "migrations", "app", "--json")
	var st client.DataMigrationStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Newest != "002_tags.sql" || len(st.Places) != 2 || len(st.Behind) != 0 {
		t.Fatalf("cluster migrations --json: %v\n%s", err, out)
	}

	// A file that fails in every bridge schema (the pool takes it).
	write("003_fail.sql", "DO $$ BEGIN IF current_schema() <> 'public' THEN RAISE EXCEPTION 'no bridges here'; END IF; END $$;")
	_, errOut = cli(1, "cluster", "migrate", "app", "--dir", dir, "--timeout", "1m")
	if !strings.Contains(errOut, "the migration failed") || !strings.Contains(errOut, "no bridges here") {
		t.Errorf("cluster migrate of a failing file:\n%s", errOut)
	}
	out, errOut = cli(1, "cluster", "migrations", "app", "--check")
	if !strings.Contains(errOut, "1 tenant(s) behind 003_fail.sql") || !strings.Contains(out, "cli-bridge") {
		t.Errorf("cluster migrations --check with a tenant behind:\nstdout: %s\nstderr: %s", out, errOut)
	}

	// A changed file: refused, and named.
	write("001_notes.sql", "CREATE TABLE notes (tenant_id text NOT NULL, body text, extra text);")
	_, errOut = cli(1, "cluster", "migrate", "app", "--dir", dir, "--no-wait")
	if !strings.Contains(errOut, "migration_changed") || !strings.Contains(errOut, "001_notes.sql") {
		t.Errorf("cluster migrate of a changed file:\n%s", errOut)
	}
	_, errOut = cli(1, "cluster", "migrations", "nope")
	if !strings.Contains(errOut, "cluster_not_found") {
		t.Errorf("cluster migrations of an unknown cluster:\n%s", errOut)
	}
	cli(2, "cluster", "migrate", "app")
	_, errOut = cli(1, "cluster", "migrate", "app", "--dir", t.TempDir())
	if !strings.Contains(errOut, "no *.sql files") {
		t.Errorf("cluster migrate of an empty directory:\n%s", errOut)
	}
}
