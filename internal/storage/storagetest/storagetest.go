// Package storagetest runs tests against every database Bulkhead supports:
// a fresh SQLite file and, when BULKHEAD_TEST_POSTGRES names a PostgreSQL
// database, a fresh schema in it. With BULKHEAD_REQUIRE_POSTGRES=1 (as CI
// sets) a missing or unreachable PostgreSQL fails the test instead of
// skipping it.
package storagetest

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
)

// Dialects lists the databases ForEach runs on.
var Dialects = []storage.Dialect{storage.SQLite, storage.Postgres}

// ForEach runs fn as a subtest on a new, unmigrated database of each dialect.
func ForEach(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(string(d), func(t *testing.T) {
			fn(t, DSN(t, d))
		})
	}
}

// DSN returns the DSN of a new, empty database of dialect d, removed when
// the test ends.
func DSN(t testing.TB, d storage.Dialect) string {
	t.Helper()
	if d == storage.SQLite {
		return filepath.Join(t.TempDir(), "bulkhead.db")
	}
	return PostgresDSN(t)
}

// PostgresDSN returns a DSN whose search_path is a new schema in the test
// PostgreSQL database; the schema is dropped when the test ends.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("BULKHEAD_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("BULKHEAD_REQUIRE_POSTGRES") == "1" {
			t.Fatal("BULKHEAD_REQUIRE_POSTGRES=1 but BULKHEAD_TEST_POSTGRES is not set; run scripts/pg-setup")
		}
		t.Skip("PostgreSQL tests skipped: set BULKHEAD_TEST_POSTGRES (scripts/pg-setup prints it)")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	defer admin.Close()
	schema := "t_" + ids.New("s")[2:]
	if _, err := admin.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("postgres at BULKHEAD_TEST_POSTGRES is not usable: %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("BULKHEAD_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open opens and returns a database at dsn, closed when the test ends.
func Open(t testing.TB, dsn string, components ...storage.Component) *storage.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background(), components...); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

// ExecAsOwner runs query as the tables' owner would to tamper with them:
// on PostgreSQL with row-level security switched off for the named tables
// for the duration of the transaction (the policies deny Bulkhead itself
// some writes, such as changing audit events); on SQLite as it is.
func ExecAsOwner(t testing.TB, db *storage.DB, tables []string, query string) {
	t.Helper()
	ctx := context.Background()
	err := db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		if tx.Dialect() == storage.Postgres {
			for _, tb := range tables {
				if _, err := tx.Exec(ctx, "ALTER TABLE "+tb+" NO FORCE ROW LEVEL SECURITY"); err != nil {
					return err
				}
				defer tx.Exec(ctx, "ALTER TABLE "+tb+" FORCE ROW LEVEL SECURITY")
			}
		}
		_, err := tx.Exec(ctx, query)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}
