package bench

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/bulkhead-dev/bulkhead/internal/data/migrate"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/jackc/pgx/v5"
)

// migrateFiles are an application's three migrations of the kind a SaaS
// ships (a table, a column, an index), which every benchmark applies to
// fresh bridge schemas.
func migrateFiles() fstest.MapFS {
	return fstest.MapFS{
		"001_notes.sql": {Data: []byte(`
CREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, author text NOT NULL, body text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX notes_author ON notes (author);`)},
		"002_tags.sql": {Data: []byte(`
CREATE TABLE tags (note_id bigint NOT NULL REFERENCES notes ON DELETE CASCADE, tag text NOT NULL, PRIMARY KEY (note_id, tag));`)},
		"003_pinned.sql": {Data: []byte(`
ALTER TABLE notes ADD COLUMN pinned boolean NOT NULL DEFAULT false;
CREATE INDEX notes_pinned ON notes (author) WHERE pinned;`)},
	}
}

// migrateCluster is an application cluster with its admin's connections.
type migrateCluster struct {
	app     storagetest.AppCluster
	cluster migrate.Cluster
	files   []migrate.File
	next    int // the next tenant number
}

func newMigrateCluster(tb testing.TB, workers int) *migrateCluster {
	tb.Helper()
	app := storagetest.App(tb) // skips without PostgreSQL
	conns, err := migrate.NewAdminConns(app.AdminDSN, workers)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(conns.Close)
	u, err := url.Parse(app.ServingDSN)
	if err != nil {
		tb.Fatal(err)
	}
	files, err := migrate.Load(migrateFiles())
	if err != nil {
		tb.Fatal(err)
	}
	return &migrateCluster{app: app, files: files, cluster: migrate.Cluster{
		Databases: conns, SharedDatabase: app.Database, Prefix: app.Prefix, ServingRole: u.User.Username()}}
}

// bridges provisions n new bridge schemas (as the placements service
// does: a role, a schema it may use, the serving role a member) and
// returns their targets.
func (m *migrateCluster) bridges(tb testing.TB, n int) []migrate.Target {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, m.app.AdminDSN)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	serving := pgx.Identifier{m.cluster.ServingRole}.Sanitize()
	var targets []migrate.Target
	for chunk := 0; chunk < n; chunk += 500 {
		var stmts []string
		for range min(500, n-chunk) {
			id := fmt.Sprintf("t-%07d", m.next)
			m.next++
			name := m.app.Prefix + strings.ReplaceAll(id, "-", "_")
			q := pgx.Identifier{name}.Sanitize()
			stmts = append(stmts, "CREATE ROLE "+q+" NOLOGIN", "CREATE SCHEMA "+q, "GRANT USAGE ON SCHEMA "+q+" TO "+q, "GRANT "+q+" TO "+serving)
			targets = append(targets, migrate.Target{TenantID: id, Model: migrate.Bridge, Database: m.app.Database, Schema: name, Role: name})
		}
		if _, err := conn.Exec(ctx, strings.Join(stmts, ";\n")); err != nil {
			tb.Fatal(err)
		}
	}
	return targets
}

func (m *migrateCluster) run(tb testing.TB, targets []migrate.Target, workers int) {
	tb.Helper()
	rep, err := migrate.Run(context.Background(), m.cluster, m.files, targets, migrate.Options{Workers: workers})
	if err != nil {
		tb.Fatal(err)
	}
	if b := rep.Behind(); len(b) != 0 {
		tb.Fatalf("%d tenants behind after Run", len(b))
	}
}

// migrateSchemas is the size of the "across" benchmark: 1,000 bridge
// schemas, or BENCH_MIGRATE_SCHEMAS.
func migrateSchemas(tb testing.TB) int {
	if s := os.Getenv("BENCH_MIGRATE_SCHEMAS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			tb.Fatalf("BENCH_MIGRATE_SCHEMAS=%q: want a positive number", s)
		}
		return n
	}
	return 1000
}

// BenchmarkMigrate measures the application's migrations (three files)
// over bridge schemas, on PostgreSQL:
//
//	per-schema/raw:       the files alone over b.N fresh schemas, one
//	                      connection: the floor that workers=1 compares to
//	per-schema/workers=N: one Run over b.N fresh schemas; ns/op is the
//	                      time per schema (workers=1: its latency, all
//	                      round trips; workers=4: the default's throughput)
//	across/schemas=1000:  one Run over 1,000 fresh schemas (BENCH_MIGRATE_SCHEMAS)
//	                      per op; s/run is the whole run
//
// Provisioning the schemas is outside the timer.
func BenchmarkMigrate(b *testing.B) {
	for _, workers := range []int{1, migrate.DefaultWorkers} {
		b.Run(fmt.Sprintf("per-schema/workers=%d", workers), func(b *testing.B) {
			m := newMigrateCluster(b, workers)
			targets := m.bridges(b, b.N)
			b.ResetTimer()
			m.run(b, targets, workers)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "schemas/s")
		})
	}
	// The floor: the same files on one connection, each in a transaction
	// with the schema as search_path, and nothing else (no ledger, no lock,
	// no grants): what a hand-written loop over the schemas costs.
	b.Run("per-schema/raw", func(b *testing.B) {
		m := newMigrateCluster(b, 1)
		targets := m.bridges(b, b.N)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, m.app.AdminDSN)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		b.ResetTimer()
		for _, t := range targets {
			for _, f := range m.files {
				if _, err := conn.Exec(ctx, "BEGIN; SET LOCAL search_path TO "+pgx.Identifier{t.Schema}.Sanitize()+";\n"+f.SQL+";\nCOMMIT"); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "schemas/s")
	})
	n := migrateSchemas(b)
	b.Run(fmt.Sprintf("across/schemas=%d", n), func(b *testing.B) {
		m := newMigrateCluster(b, migrate.DefaultWorkers)
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			targets := m.bridges(b, n)
			b.StartTimer()
			m.run(b, targets, migrate.DefaultWorkers)
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/run")
	})
}

// TestMigrateSmoke keeps the benchmark's harness honest in a plain go test
// run: a few schemas migrated, then nothing left to do.
func TestMigrateSmoke(t *testing.T) {
	m := newMigrateCluster(t, migrate.DefaultWorkers)
	targets := m.bridges(t, 3)
	m.run(t, targets, migrate.DefaultWorkers)
	rep, err := migrate.Run(context.Background(), m.cluster, m.files, targets, migrate.Options{})
	if err != nil || rep.Applied != 0 {
		t.Fatalf("second Run: applied %d, %v", rep.Applied, err)
	}
}
