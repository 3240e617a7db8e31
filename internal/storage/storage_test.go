package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// notes is a tenant-owned table used only by these tests, with the same
// row-level security policies every Bulkhead table of tenants' rows has.
var notes = storage.Component{Name: "notes", FS: fstest.MapFS{
	"001_notes.sql": {Data: []byte(`CREATE TABLE notes (tenant_id TEXT NOT NULL, body TEXT NOT NULL);`)},
	"002_index.sql": {Data: []byte(`CREATE INDEX notes_tenant ON notes(tenant_id);`)},
}, RowSecurity: map[string]storage.Rows{"notes": storage.TenantRows("tenant_id")}}

func insertNote(t *testing.T, db *storage.DB, tid, body string) {
	t.Helper()
	err := db.Update(context.Background(), storage.TenantScope(tenant.ID(tid)), func(tx *storage.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO notes (tenant_id, body) VALUES (?, ?)`, tx.TenantID(), body)
		return err
	})
	if err != nil {
		t.Fatalf("insert note for %s: %v", tid, err)
	}
}

// unfiltered runs a SELECT of notes with no WHERE clause in scope and returns the tenant ids it saw.
func unfiltered(t *testing.T, db *storage.DB, scope storage.Scope) []string {
	t.Helper()
	return unfilteredOf(t, db, scope, "notes", "tenant_id")
}

// unfilteredOf runs SELECT column FROM table, with no WHERE clause, in
// scope and returns the values it saw, sorted.
func unfilteredOf(t *testing.T, db *storage.DB, scope storage.Scope, table, column string) []string {
	t.Helper()
	var seen []string
	err := db.View(context.Background(), scope, func(tx *storage.Tx) error {
		rows, err := tx.Query(context.Background(), `SELECT `+column+` FROM `+table+` ORDER BY `+column)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return err
			}
			seen = append(seen, s)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatalf("select %s: %v", table, err)
	}
	return seen
}

// TestRowLevelSecurity shows that on PostgreSQL a query that forgets its
// WHERE clause, run in tenant A's scope, sees only tenant A's rows; that a
// transaction with no scope sees nothing; and that a tenant scope cannot
// write another tenant's row.
func TestRowLevelSecurity(t *testing.T) {
	db := storagetest.Open(t, storagetest.PostgresDSN(t), notes)
	ctx := context.Background()
	insertNote(t, db, "tenant-a", "a1")
	insertNote(t, db, "tenant-a", "a2")
	insertNote(t, db, "tenant-b", "b1")

	if got := unfiltered(t, db, storage.TenantScope("tenant-a")); !slices.Equal(got, []string{"tenant-a", "tenant-a"}) {
		t.Errorf("unfiltered SELECT in tenant-a's scope saw %v; want only tenant-a's two rows", got)
	}
	if got := unfiltered(t, db, storage.TenantScope("tenant-b")); !slices.Equal(got, []string{"tenant-b"}) {
		t.Errorf("unfiltered SELECT in tenant-b's scope saw %v; want only tenant-b's row", got)
	}
	if got := unfiltered(t, db, storage.TenantScope("")); len(got) != 0 {
		t.Errorf("a transaction without a tenant saw %v; want nothing", got)
	}
	if got := unfiltered(t, db, storage.PlatformScope()); len(got) != 3 {
		t.Errorf("platform scope saw %v; want all 3 rows", got)
	}

	// Writing a row of tenant-b from tenant-a's scope is refused by the policy's check.
	err := db.Update(ctx, storage.TenantScope("tenant-a"), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO notes (tenant_id, body) VALUES ('tenant-b', 'planted')`)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "row-level security") {
		t.Errorf("insert of tenant-b's row in tenant-a's scope: err = %v; want a row-level security violation", err)
	}
	// An unfiltered UPDATE or DELETE in tenant-a's scope touches only tenant-a's rows.
	err = db.Update(ctx, storage.TenantScope("tenant-a"), func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM notes`)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 2 {
			t.Errorf("unfiltered DELETE in tenant-a's scope removed %d rows; want 2", n)
		}
		return errors.New("rollback")
	})
	if err == nil || err.Error() != "rollback" {
		t.Fatalf("delete: %v", err)
	}
	if got := unfiltered(t, db, storage.PlatformScope()); len(got) != 3 {
		t.Errorf("after a rolled-back delete the platform sees %v; want 3 rows", got)
	}
	// The scope does not leak to the next transaction on the same pooled connection.
	if got := unfiltered(t, db, storage.TenantScope("")); len(got) != 0 {
		t.Errorf("after scoped transactions, an unscoped one saw %v; want nothing", got)
	}
}

// superuserDSN returns BULKHEAD_TEST_POSTGRES_SUPERUSER, or a local
// superuser's DSN, after checking that it is one.
func superuserDSN(t *testing.T) string {
	t.Helper()
	superDSN := os.Getenv("BULKHEAD_TEST_POSTGRES_SUPERUSER")
	if superDSN == "" {
		superDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	probe, err := sql.Open("pgx", superDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	var super bool
	if err := probe.QueryRow(`SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil || !super {
		if os.Getenv("BULKHEAD_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("no superuser connection at %s to test with (err %v); set BULKHEAD_TEST_POSTGRES_SUPERUSER", superDSN, err)
		}
		t.Skip("no PostgreSQL superuser connection to test with")
	}
	return superDSN
}

// TestOpenRefusesRLSBypass shows that Bulkhead will not run as a role that
// row-level security does not bind.
func TestOpenRefusesRLSBypass(t *testing.T) {
	superDSN := superuserDSN(t)
	_, err := storage.Open(context.Background(), superDSN)
	if err == nil || !strings.Contains(err.Error(), "bypasses row-level security") {
		t.Fatalf("Open as a superuser: err = %v; want a refusal naming row-level security", err)
	}
}

func TestMigrateIsIdempotentAndScopesWork(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		storagetest.Open(t, dsn, notes)
		db := storagetest.Open(t, dsn, notes) // migrates (and on PostgreSQL grants) again
		if !db.Migrated() {
			t.Error("Migrated() = false after Migrate")
		}
		insertNote(t, db, "tenant-a", "x")
		// Repositories filter by Tx.TenantID(); the scope, not a caller's string, names the tenant.
		err := db.View(context.Background(), storage.TenantScope("tenant-b"), func(tx *storage.Tx) error {
			var n int
			if err := tx.QueryRow(context.Background(), `SELECT COUNT(*) FROM notes WHERE tenant_id = ?`, tx.TenantID()).Scan(&n); err != nil {
				return err
			}
			if n != 0 {
				t.Errorf("tenant-b's scope counted %d of tenant-a's notes", n)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestMigrationErrorsAreReported(t *testing.T) {
	bad := []struct {
		name string
		fs   fstest.MapFS
		want string
	}{
		{"bad name", fstest.MapFS{"sqlite/x.sql": {Data: []byte("SELECT 1")}}, "NNN_description.sql"},
		{"bad shared name", fstest.MapFS{"x.sql": {Data: []byte("SELECT 1")}}, "NNN_description.sql"},
		{"duplicate version", fstest.MapFS{"sqlite/001_a.sql": {Data: []byte("SELECT 1")}, "sqlite/001_b.sql": {Data: []byte("SELECT 1")}}, "appears twice"},
		{"shared and own", fstest.MapFS{"001_a.sql": {Data: []byte("SELECT 1")}, "sqlite/001_a.sql": {Data: []byte("SELECT 1")}}, "both shared"},
		{"bad sql", fstest.MapFS{"sqlite/001_a.sql": {Data: []byte("CREATE TABLEX")}}, "001_a.sql"},
		{"bad shared sql", fstest.MapFS{"001_a.sql": {Data: []byte("CREATE TABLEX")}}, "001_a.sql"},
		{"no dialect dir", fstest.MapFS{"postgres/001_a.sql": {Data: []byte("SELECT 1")}}, "migrations of bad"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			db, err := storage.Open(context.Background(), storagetest.DSN(t, storage.SQLite))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			err = db.Migrate(context.Background(), storage.Component{Name: "bad", FS: tc.fs})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Migrate: err = %v; want it to mention %q", err, tc.want)
			}
			if db.Migrated() {
				t.Error("Migrated() = true after a failed migration")
			}
		})
	}
}

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT 1`:                              `SELECT 1`,
		`SELECT ? , ?`:                          `SELECT $1 , $2`,
		`SELECT '?' , ?`:                        `SELECT '?' , $1`,
		`SELECT "a?b", ? WHERE x = 'it''s ?' ?`: `SELECT "a?b", $1 WHERE x = 'it''s ?' $2`,
	} {
		if got := storage.Rebind(in); got != want {
			t.Errorf("Rebind(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestIsUniqueViolation(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		u := storage.Component{Name: "u", FS: fstest.MapFS{
			"sqlite/001_u.sql":   {Data: []byte(`CREATE TABLE u (k TEXT PRIMARY KEY)`)},
			"postgres/001_u.sql": {Data: []byte(`CREATE TABLE u (k TEXT PRIMARY KEY)`)},
		}}
		db := storagetest.Open(t, dsn, u)
		ins := func() error {
			return db.Update(context.Background(), storage.PlatformScope(), func(tx *storage.Tx) error {
				_, err := tx.Exec(context.Background(), `INSERT INTO u (k) VALUES ('x')`)
				return err
			})
		}
		if err := ins(); err != nil {
			t.Fatal(err)
		}
		if err := ins(); !storage.IsUniqueViolation(err) {
			t.Fatalf("second insert: IsUniqueViolation(%v) = false", err)
		}
		if storage.IsUniqueViolation(errors.New("UNIQUE constraint failed")) {
			t.Error("a plain error matched by text")
		}
	})
}

// TestLocksAreThisSchemas: a named lock excludes the transactions of its
// own schema only. Deployments (and tests) that share a PostgreSQL
// database in schemas of their own do not take each other's locks, which
// a held lock elsewhere once made an outbox relay skip its round.
func TestLocksAreThisSchemas(t *testing.T) {
	a := storagetest.Open(t, storagetest.DSN(t, storage.Postgres))
	b := storagetest.Open(t, storagetest.DSN(t, storage.Postgres))
	ctx := context.Background()
	try := func(db *storage.DB) bool {
		var ok bool
		if err := db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
			var err error
			ok, err = tx.TryLock(ctx, "outbox-relay")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	err := a.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		if ok, err := tx.TryLock(ctx, "outbox-relay"); err != nil || !ok {
			t.Fatalf("the first lock: %v %v", ok, err)
		}
		if try(a) {
			t.Error("a second transaction of the same schema took the held lock")
		}
		if !try(b) {
			t.Error("another schema's transaction could not take its own lock")
		}
		return tx.Lock(ctx, "another")
	})
	if err != nil {
		t.Fatal(err)
	}
	if !try(a) {
		t.Error("the lock was not released at commit")
	}
}
