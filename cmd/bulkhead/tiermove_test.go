package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// moveSchema is the application's schema of the migration crash tests.
var moveSchema = client.RegisterDataMigrations{Files: []client.DataMigrationFile{{Name: "001_items.sql", SQL: `CREATE TABLE items (
	tenant_id text NOT NULL DEFAULT current_setting('app.tenant_id'),
	id bigint NOT NULL,
	body text NOT NULL,
	PRIMARY KEY (tenant_id, id)
);`}}}

// TestMigrationSurvivesKill9 kills bulkhead with SIGKILL at each
// checkpoint of a tier migration's data move (target made but not
// recorded; rows copied but the step not recorded; source fenced,
// verified and marked moved but the placement not switched), restarts it,
// and shows the same end state every time: the tenant on the silo tier,
// its placement the one silo database, every row there. The tenant is
// then moved back with the CLI, whose progress goes to stderr.
func TestMigrationSurvivesKill9(t *testing.T) {
	for _, point := range []string{"provisioned", "copied", "fenced"} {
		t.Run(point, func(t *testing.T) {
			app := storagetest.App(t)
			dataDir := filepath.Join(t.TempDir(), "data")
			mark := filepath.Join(t.TempDir(), "paused")
			p := startServeBinary(t, hookBinaryFor(t), dataDir, "", "BULKHEAD_TEST_MOVE_PAUSE="+point, "BULKHEAD_TEST_MOVE_MARK="+mark)
			c := p.client()
			ctx := contextT(t)
			if _, err := c.CreateCluster(ctx, client.CreateDataCluster{Name: "app", DSN: app.ServingDSN, AdminDSN: app.AdminDSN, Prefix: app.Prefix}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.RegisterMigrations(ctx, "app", moveSchema); err != nil {
				t.Fatal(err)
			}
			runtest.Eventually(t, "the pool to be migrated", func() bool {
				st, err := c.MigrationStatus(ctx, "app")
				return err == nil && len(st.Places) == 1 && st.Places[0].Last == "001_items.sql"
			})
			if _, err := c.CreateTenant(ctx, client.CreateTenant{ID: "crash-mv", Tier: "basic"}, ""); err != nil {
				t.Fatal(err)
			}
			serving, err := pgx.Connect(ctx, app.ServingDSN)
			if err != nil {
				t.Fatal(err)
			}
			defer serving.Close(context.Background())
			err = pgx.BeginFunc(ctx, serving, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `SET LOCAL app.tenant_id = 'crash-mv'; INSERT INTO items (id, body) SELECT i, 'row ' || i FROM generate_series(1, 3000) i`)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}

			m, err := c.StartMigration(ctx, "crash-mv", "premium")
			if err != nil {
				t.Fatal(err)
			}
			runtest.Eventually(t, "the move to pause at "+point, func() bool {
				_, err := os.Stat(mark)
				return err == nil
			})
			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-p.exited

			p2 := startServeBinary(t, hookBinaryFor(t), dataDir, "", "BULKHEAD_PUBLIC_URL="+p.url)
			c2 := p2.client()
			runtest.Eventually(t, "the migration to end after the restart", func() bool {
				m, err = c2.GetMigration(ctx, "crash-mv", m.ID)
				return err == nil && m.Status != "running"
			})
			if m.Status != "done" || m.Data == nil || m.Data.Status != "switched" || m.Data.Verified["items"].Rows != 3000 {
				t.Fatalf("migration after the restart: %+v, data %+v", m, m.Data)
			}
			tn, err := c2.GetTenant(ctx, "crash-mv")
			if err != nil || tn.Tier != "premium" || tn.Isolation != "silo" {
				t.Fatalf("tenant: %+v %v", tn, err)
			}
			pl, err := c2.GetPlacement(ctx, "crash-mv")
			if err != nil || pl.Model != "silo" {
				t.Fatalf("placement: %+v %v", pl, err)
			}
			admin, err := pgx.Connect(ctx, app.AdminDSN)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close(context.Background())
			var dbs int
			if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname LIKE $1`, app.Prefix+"%").Scan(&dbs); err != nil || dbs != 1 {
				t.Errorf("silo databases under the prefix: %d %v; want 1", dbs, err)
			}
			siloAdmin := connectTo(t, app.AdminDSN, pl.Database)
			var rows int
			if err := siloAdmin.QueryRow(ctx, `SELECT count(*) FROM items WHERE tenant_id = 'crash-mv'`).Scan(&rows); err != nil || rows != 3000 {
				t.Errorf("rows in the silo: %d %v; want 3000", rows, err)
			}

			// Back to pool with the CLI, which follows the migration.
			out, errOut, code := runCLI(t, p2.url, "tenant", "migrate", "crash-mv", "--tier", "basic")
			if code != 0 || !strings.Contains(out, ": done") || !strings.Contains(out, "silo → pool") || !strings.Contains(errOut, "100%") {
				t.Fatalf("tenant migrate: exit %d\n%s%s", code, out, errOut)
			}
			err = pgx.BeginFunc(ctx, serving, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `SET LOCAL app.tenant_id = 'crash-mv'`)
				if err == nil {
					err = tx.QueryRow(ctx, `SELECT count(*) FROM items`).Scan(&rows)
				}
				return err
			})
			if err != nil || rows != 3000 {
				t.Errorf("rows in the pool after the move back: %d %v; want 3000", rows, err)
			}
		})
	}
}

// connectTo connects with dsn to database instead of its own; closed with the test.
func connectTo(t *testing.T, dsn, database string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = database
	conn, err := pgx.ConnectConfig(contextT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
