package app_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/app"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// TestEveryTableHasForcedRLS checks that on PostgreSQL every table the
// services create has row-level security enabled and forced, so a new
// table cannot quietly skip the database's tenant isolation.
func TestEveryTableHasForcedRLS(t *testing.T) {
	db := storagetest.Open(t, storagetest.PostgresDSN(t), app.Components()...)
	err := db.View(context.Background(), storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(context.Background(), `SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind = 'r' AND n.nspname = current_schema()`)
		if err != nil {
			return err
		}
		defer rows.Close()
		tables := 0
		for rows.Next() {
			var name string
			var rls, force bool
			if err := rows.Scan(&name, &rls, &force); err != nil {
				return err
			}
			tables++
			if name == "schema_migrations" {
				continue // holds no tenant or operator data
			}
			if !rls || !force {
				t.Errorf("table %s: row level security enabled=%v forced=%v; want both", name, rls, force)
			}
		}
		if tables < 8 {
			t.Errorf("found %d tables; the query is not looking at the migrated schema", tables)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUnfilteredTenantQueries shows the registry's own tables isolate tenants
// on PostgreSQL: SELECTs without WHERE clauses in tenant A's scope return
// only A's tenant row, domains, workflows and audit events.
func TestUnfilteredTenantQueries(t *testing.T) {
	dsn, owner := storagetest.PostgresDSNs(t)
	a, err := app.Open(context.Background(), app.Config{DataDir: t.TempDir(), Database: dsn, MigrationDatabase: owner, Notices: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Tenants.Start(context.Background(), 1e9); err != nil {
		t.Fatal(err)
	}
	defer a.Tenants.Shutdown(context.Background())
	for _, id := range []string{"tenant-a", "tenant-b", "tenant-c"} {
		if _, _, err := a.Tenants.Create(context.Background(), tenants.CreateRequest{ID: id, Domains: []string{id + ".example"}}, "", tenant.Actor{Principal: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range []struct{ name, col string }{
		{"tenants", "id"}, {"tenant_domains", "tenant_id"}, {"workflows", "tenant_id"}, {"workflow_steps", "tenant_id"}, {"audit_events", "chain"}, {"audit_heads", "chain"},
	} {
		err := a.DB.View(context.Background(), storage.TenantScope(tenant.ID("tenant-a")), func(tx *storage.Tx) error {
			rows, err := tx.Query(context.Background(), `SELECT `+table.col+` FROM `+table.name)
			if err != nil {
				return err
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				var v string
				if err := rows.Scan(&v); err != nil {
					return err
				}
				n++
				if v != "tenant-a" {
					t.Errorf("%s: tenant-a's unfiltered SELECT returned a row of %q", table.name, v)
				}
			}
			if n == 0 {
				t.Errorf("%s: tenant-a's unfiltered SELECT returned nothing; want its own rows", table.name)
			}
			return rows.Err()
		})
		if err != nil {
			t.Fatalf("%s: %v", table.name, err)
		}
	}
	// Operator-only tables are invisible in a tenant scope.
	for _, table := range []string{"admin_tokens", "tenant_idempotency"} {
		_ = a.DB.View(context.Background(), storage.TenantScope(tenant.ID("tenant-a")), func(tx *storage.Tx) error {
			var n int
			if err := tx.QueryRow(context.Background(), `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%s: %d rows visible in a tenant scope", table, n)
			}
			return nil
		})
	}
}

func TestOpenCreatesPrivateDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, err := app.Open(context.Background(), app.Config{DataDir: dir, Notices: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "root.key"): 0o600, filepath.Join(dir, "bulkhead.db"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v; want %v", path, fi.Mode().Perm(), want)
		}
	}
	// A second open reuses the key and the database.
	key1, _ := os.ReadFile(filepath.Join(dir, "root.key"))
	a, err = app.Open(context.Background(), app.Config{DataDir: dir, Notices: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	key2, _ := os.ReadFile(filepath.Join(dir, "root.key"))
	if string(key1) != string(key2) {
		t.Error("the root key changed on the second start")
	}
}
