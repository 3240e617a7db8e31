package app_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/app"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// TestEveryTableHasForcedRLS checks that on PostgreSQL every table the
// services create has row-level security enabled and forced, with the
// policies its rows call for: a table with a tenant_id column the standard
// pair (tenant_scope on tenant_id, platform_scope), any other the platform
// scope alone, unless it is one of the few whose policies are written out
// by hand. So a new table cannot quietly skip the database's tenant
// isolation, whether its migration forgets to declare its row security
// (storage.Component.RowSecurity) or declares the wrong kind.
func TestEveryTableHasForcedRLS(t *testing.T) {
	const (
		platform      = "ALL (current_setting('bulkhead.platform'::text, true) = 'on'::text)"
		tenantRows    = "ALL (tenant_id = current_setting('bulkhead.tenant_id'::text, true))"
		tenantOrEmpty = "ALL ((tenant_id <> ''::text) AND (tenant_id = current_setting('bulkhead.tenant_id'::text, true)))"
	)
	// special are the tables whose policies are not those above.
	special := map[string]map[string]string{
		// A tenant sees its own record, keyed by id.
		"tenants": {"tenant_scope": "ALL (id = current_setting('bulkhead.tenant_id'::text, true))", "platform_scope": platform},
		// The operator's idempotency keys are the platform's alone, though
		// each names the tenant it created.
		"tenant_idempotency": {"platform_scope": platform},
		// Append-only, per chain: internal/audit's tests and
		// TestServingRoleCannotRewriteTheAuditTrail show what they allow.
		"audit_events": nil,
		"audit_heads":  nil,
	}
	db := storagetest.Open(t, storagetest.PostgresDSN(t), app.Components()...)
	type table struct {
		rls, force, tenantID bool
		policies             map[string]string
	}
	tables := map[string]*table{}
	err := db.View(context.Background(), storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(context.Background(), `SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
				EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind = 'r' AND n.nspname = current_schema()`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			tb := &table{policies: map[string]string{}}
			if err := rows.Scan(&name, &tb.rls, &tb.force, &tb.tenantID); err != nil {
				return err
			}
			tables[name] = tb
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(context.Background(), `SELECT tablename, policyname, cmd || ' ' || coalesce(qual, '') || coalesce(' CHECK ' || with_check, '')
			FROM pg_policies WHERE schemaname = current_schema() AND permissive = 'PERMISSIVE' AND roles = '{public}'`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var tb, name, def string
			if err := rows.Scan(&tb, &name, &def); err != nil {
				return err
			}
			if tables[tb] == nil {
				return fmt.Errorf("policy %s on %s, not a table", name, tb)
			}
			tables[tb].policies[name] = def
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) < 8 {
		t.Fatalf("found %d tables; the query is not looking at the migrated schema", len(tables))
	}
	for name, tb := range tables {
		if name == "schema_migrations" {
			continue // holds no tenant or operator data
		}
		if !tb.rls || !tb.force {
			t.Errorf("table %s: row level security enabled=%v forced=%v; want both", name, tb.rls, tb.force)
		}
		want, ok := special[name]
		switch {
		case ok && want == nil:
			continue
		case ok:
		case tb.tenantID && tb.policies["tenant_scope"] == tenantOrEmpty:
			want = map[string]string{"tenant_scope": tenantOrEmpty, "platform_scope": platform}
		case tb.tenantID:
			want = map[string]string{"tenant_scope": tenantRows, "platform_scope": platform}
		default:
			want = map[string]string{"platform_scope": platform}
		}
		if !maps.Equal(tb.policies, want) {
			t.Errorf("table %s: policies %v; want %v", name, tb.policies, want)
		}
	}
	for name := range special {
		if tables[name] == nil {
			t.Errorf("table %s, whose policies are special, is gone; remove it from the list", name)
		}
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
	t.Cleanup(a.Close)
	runtest.Go(t, func(ctx context.Context) error { return a.Tenants.Run(ctx, time.Second) })
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
