// Package storagetest runs tests against every database Bulkhead supports:
// a fresh SQLite file and, when BULKHEAD_TEST_POSTGRES names a PostgreSQL
// database, a fresh schema in it. With BULKHEAD_REQUIRE_POSTGRES=1 (as CI
// sets) a missing or unreachable PostgreSQL fails the test instead of
// skipping it.
//
// On PostgreSQL the tests use two roles, as a deployment does: the owner
// role creates each schema, migrates it and owns its tables; the serving
// role, which BULKHEAD_TEST_POSTGRES names, owns nothing. The owner's DSN is
// BULKHEAD_TEST_POSTGRES_OWNER, or else BULKHEAD_TEST_POSTGRES with user and
// password bulkhead_owner (the role scripts/pg-setup creates).
package storagetest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
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

// PostgresDSN returns the serving role's DSN of a new schema in the test
// PostgreSQL database (see PostgresDSNs).
func PostgresDSN(t testing.TB) string {
	t.Helper()
	serving, _ := PostgresDSNs(t)
	return serving
}

// PostgresDSNs creates a new schema, owned by the owner role, in the test
// PostgreSQL database and returns two DSNs whose search_path is that
// schema: the serving role's and the owner role's. The schema is dropped
// when the test ends.
func PostgresDSNs(t testing.TB) (serving, owner string) {
	t.Helper()
	base := os.Getenv("BULKHEAD_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("BULKHEAD_REQUIRE_POSTGRES") == "1" {
			t.Fatal("BULKHEAD_REQUIRE_POSTGRES=1 but BULKHEAD_TEST_POSTGRES is not set; run scripts/pg-setup")
		}
		t.Skip("PostgreSQL tests skipped: set BULKHEAD_TEST_POSTGRES (scripts/pg-setup prints it)")
	}
	ownerBase := ownerDSN(t, base)
	admin, err := sql.Open("pgx", ownerBase)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	defer admin.Close()
	schema := "t_" + ids.New("s")[2:]
	if _, err := admin.ExecContext(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("postgres owner role at BULKHEAD_TEST_POSTGRES_OWNER (or derived from BULKHEAD_TEST_POSTGRES) is not usable "+
			"(run scripts/pg-setup): %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", ownerBase)
		if err != nil {
			return
		}
		defer db.Close()
		db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	return withSearchPath(t, base, schema), withSearchPath(t, ownerBase, schema)
}

// MigrationDSN returns the owner role's DSN for the database at dsn (from
// DSN or PostgresDSN: same schema), which migrates it; "" for SQLite,
// which the serving node migrates itself. It goes where app.Config's
// MigrationDatabase and serve's --migration-database go.
func MigrationDSN(t testing.TB, dsn string) string {
	t.Helper()
	if !storage.IsPostgres(dsn) {
		return ""
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("postgres DSN: %v", err)
	}
	owner := ownerDSN(t, os.Getenv("BULKHEAD_TEST_POSTGRES"))
	if schema := u.Query().Get("search_path"); schema != "" {
		owner = withSearchPath(t, owner, schema)
	}
	return owner
}

// defaultOwner is the owner role (user and password) that scripts/pg-setup
// creates.
const defaultOwner = "bulkhead_owner"

// ownerDSN returns BULKHEAD_TEST_POSTGRES_OWNER, or else base as the
// default owner role.
func ownerDSN(t testing.TB, base string) string {
	t.Helper()
	if o := os.Getenv("BULKHEAD_TEST_POSTGRES_OWNER"); o != "" {
		return o
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("BULKHEAD_TEST_POSTGRES: %v", err)
	}
	u.User = url.UserPassword(defaultOwner, defaultOwner)
	return u.String()
}

func withSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("postgres DSN: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open opens the database at dsn as Bulkhead serves it, closed when the
// test ends: on PostgreSQL it migrates with the owner role (MigrationDSN),
// grants the serving role its privileges and checks that role, as a node
// started with --migration-database does.
func Open(t testing.TB, dsn string, components ...storage.Component) *storage.DB {
	t.Helper()
	ctx := context.Background()
	db, err := storage.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { db.Close() })
	var owner *storage.DB
	if m := MigrationDSN(t, dsn); m != "" {
		if owner, err = storage.Open(ctx, m); err != nil {
			t.Fatalf("open %s: %v", m, err)
		}
		defer owner.Close()
	}
	if err := db.PrepareToServe(ctx, owner, components...); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

// ExecAsOwner runs query as the tables' owner would to tamper with them, in
// the database at dsn (from DSN or PostgresDSN). On PostgreSQL it connects
// as the owner role, the only one allowed to, and switches row-level
// security off for the named tables for the duration of the transaction
// (FORCE binds the owner too, and the policies deny everyone some writes,
// such as changing audit events); on SQLite it runs query as it is.
func ExecAsOwner(t testing.TB, dsn string, tables []string, query string) {
	t.Helper()
	ctx := context.Background()
	if m := MigrationDSN(t, dsn); m != "" {
		dsn = m
	}
	db, err := storage.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	defer db.Close()
	err = db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
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

// Schema describes the schema db's migrations built, as sorted text: on
// SQLite every object in sqlite_schema with the statement that made it; on
// PostgreSQL, in the current schema, every relation with whether row-level
// security is enabled and forced, every column (type, NOT NULL, default,
// identity), constraint, index and policy. Both end with the migrations
// schema_migrations records (component, version, file). Two databases with
// the same Schema have the same tables for Bulkhead's purposes, so a test
// can pin the schema down or compare two ways of building it.
func Schema(t testing.TB, db *storage.DB) string {
	t.Helper()
	queries := []string{`SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name`}
	if db.Dialect() == storage.Postgres {
		queries = []string{
			`SELECT 'relation', c.relname, c.relkind::text, c.relrowsecurity::text, c.relforcerowsecurity::text
			FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind NOT IN ('i', 'I', 't', 'c')
			ORDER BY 2`,
			`SELECT 'column', c.relname, a.attnum::text, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull::text,
				coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity::text, a.attgenerated::text
			FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
			LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
			WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
			ORDER BY 2, a.attnum`,
			`SELECT 'constraint', c.relname, k.conname, k.contype::text, replace(pg_get_constraintdef(k.oid), current_schema() || '.', '')
			FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
			WHERE c.relnamespace = current_schema()::regnamespace
			ORDER BY 2, 3`,
			`SELECT 'index', tablename, indexname, replace(indexdef, current_schema() || '.', '')
			FROM pg_indexes WHERE schemaname = current_schema()
			ORDER BY 2, 3`,
			`SELECT 'policy', tablename, policyname, permissive, array_to_string(roles, ','), cmd, coalesce(qual, ''), coalesce(with_check, '')
			FROM pg_policies WHERE schemaname = current_schema()
			ORDER BY 2, 3`,
		}
	}
	queries = append(queries, `SELECT 'migration', component, version, name FROM schema_migrations ORDER BY component, version`)
	var b strings.Builder
	err := db.View(context.Background(), storage.PlatformScope(), func(tx *storage.Tx) error {
		for _, q := range queries {
			rows, err := tx.Query(context.Background(), q)
			if err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
			cols, err := rows.Columns()
			if err != nil {
				rows.Close()
				return err
			}
			vals := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			for rows.Next() {
				if err := rows.Scan(ptrs...); err != nil {
					rows.Close()
					return err
				}
				for i, v := range vals {
					if i > 0 {
						b.WriteByte('\t')
					}
					b.WriteString(v.String)
				}
				b.WriteByte('\n')
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("describe the schema: %v", err)
	}
	return b.String()
}
