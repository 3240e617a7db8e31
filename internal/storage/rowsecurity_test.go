package storage_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// TestRowSecurityKinds shows, on PostgreSQL, who sees the rows of a table
// of each kind of Rows: a table of tenants' rows, one that also holds the
// platform's rows (an empty tenant), and the platform's own table. A
// table of tenants' rows shows its rows with an empty tenant to a
// transaction of no tenant: that is why a table that has such rows is
// TenantOrPlatformRows.
func TestRowSecurityKinds(t *testing.T) {
	kinds := storage.Component{Name: "kinds", FS: fstest.MapFS{
		"001_kinds.sql": {Data: []byte(`CREATE TABLE tenant_rows (tenant TEXT NOT NULL);
CREATE TABLE mixed_rows (tenant TEXT NOT NULL);`)},
		"sqlite/002_platform.sql":   {Data: []byte(`CREATE TABLE platform_rows (tenant TEXT NOT NULL, b BLOB);`)},
		"postgres/002_platform.sql": {Data: []byte(`CREATE TABLE platform_rows (tenant TEXT NOT NULL, b BYTEA);`)},
	}, RowSecurity: map[string]storage.Rows{
		"tenant_rows":   storage.TenantRows("tenant"),
		"mixed_rows":    storage.TenantOrPlatformRows("tenant"),
		"platform_rows": storage.PlatformRows(),
	}}
	db := storagetest.Open(t, storagetest.PostgresDSN(t), kinds)
	ctx := context.Background()
	tables := []string{"tenant_rows", "mixed_rows", "platform_rows"}
	err := db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		for _, table := range tables {
			if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (tenant) VALUES ('a'), ('b'), ('')`); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][3][]string{ // in the scopes of tenant a, of no tenant, of the platform
		"tenant_rows":   {{"a"}, {""}, {"", "a", "b"}},
		"mixed_rows":    {{"a"}, nil, {"", "a", "b"}},
		"platform_rows": {nil, nil, {"", "a", "b"}},
	}
	for _, table := range tables {
		w := want[table]
		for i, scope := range []storage.Scope{storage.TenantScope("a"), storage.TenantScope(""), storage.PlatformScope()} {
			if got := unfilteredOf(t, db, scope, table, "tenant"); !slices.Equal(got, w[i]) {
				t.Errorf("%s in scope %d: saw %q; want %q", table, i, got, w[i])
			}
		}
	}
}

// TestRowSecurityErrorsAreReported: a RowSecurity that names a table no
// migration creates (a typo), or that two create, or that is no plain SQL
// name, fails the migration on PostgreSQL instead of leaving a table
// unguarded.
func TestRowSecurityErrorsAreReported(t *testing.T) {
	create := fstest.MapFS{"001_a.sql": {Data: []byte("CREATE TABLE a (tenant_id TEXT);\nCREATE TABLE IF NOT EXISTS b (x TEXT);")}}
	bad := []struct {
		name string
		fs   fstest.MapFS
		rows map[string]storage.Rows
		want []string
	}{
		{"typo", create, map[string]storage.Rows{"a": storage.TenantRows("tenant_id"), "c": storage.PlatformRows()}, []string{"table c", "none"}},
		{"twice", fstest.MapFS{"001_a.sql": create["001_a.sql"], "postgres/002_a.sql": {Data: []byte(" create table a (y TEXT);")}},
			map[string]storage.Rows{"a": storage.TenantRows("tenant_id")}, []string{"table a", "001_a.sql", "002_a.sql"}},
		{"not a name", create, map[string]storage.Rows{"a": storage.TenantRows("tenant_id; DROP TABLE b")}, []string{"SQL identifiers"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, owner := storagetest.PostgresDSNs(t)
			db := openRaw(t, owner)
			err := db.Migrate(context.Background(), storage.Component{Name: "bad", FS: tc.fs, RowSecurity: tc.rows})
			if err == nil || slices.ContainsFunc(tc.want, func(w string) bool { return !strings.Contains(err.Error(), w) }) {
				t.Fatalf("Migrate: err = %v; want it to mention %q", err, tc.want)
			}
		})
	}
}
