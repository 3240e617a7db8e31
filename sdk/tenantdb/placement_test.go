package tenantdb_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/tenantdb"
)

// TestMixedPlacementsOneConnection: a bridge tenant and a pool tenant
// share the shared database's one connection; the bridge tenant's
// transaction points the session at its own schema and role, and the
// pool tenant's next transaction still reads the shared table, as the
// serving role, its own rows only.
func TestMixedPlacementsOneConnection(t *testing.T) {
	e := newEnv(t)
	pc := e.cluster.Bridge(t, "ten-c")
	e.resolver.Set(e.cluster.Pool(t, "ten-a"), pc)
	db := e.open(t, tenantdb.Config{}, "pool_max_conns=1")
	insert(t, db, "ten-a", "a")
	insert(t, db, "ten-c", "c")
	q := pgx.Identifier{pc.Role}.Sanitize()
	err := db.Tx(as("ten-c"), func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), "SET SESSION ROLE "+q+"; SET SESSION search_path = "+q+"; SELECT set_config('app.tenant_id', 'ten-c', false)")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if na, _ := bodies(t, db, "ten-a"); !slices.Equal(na, []string{"a"}) {
		t.Fatalf("pool tenant after the bridge tenant's session settings sees %v", na)
	}
	// SET renders the path as PostgreSQL does: identifiers quoted only
	// where they need it.
	unquote := func(s string) string { return strings.ReplaceAll(s, `"`, "") }
	if u, _, path := settings(t, db, "ten-a"); u != e.servingUser(t) || path != "public, pg_temp" {
		t.Fatalf("pool tenant runs as %q with search_path %q", u, path)
	}
	wantPath := pgx.Identifier{pc.Schema}.Sanitize() + ", pg_temp"
	if u, _, path := settings(t, db, "ten-c"); u != pc.Role || unquote(path) != unquote(wantPath) {
		t.Fatalf("bridge tenant runs as %q with search_path %q", u, path)
	}
}

// TestPlacementRefused: a placement that is not ready, is another
// tenant's, or names what the DB does not know fails before the database
// is touched.
func TestPlacementRefused(t *testing.T) {
	e := newEnv(t)
	a := e.cluster.Bridge(t, "ten-a")
	db := e.open(t, tenantdb.Config{}, "")
	for _, tc := range []struct {
		name string
		edit func(p *api.DataPlacement)
		want error
	}{
		{"provisioning", func(p *api.DataPlacement) { p.Status = "provisioning" }, tenantdb.ErrPlacementNotReady},
		{"dropping", func(p *api.DataPlacement) { p.Status = "dropping" }, tenantdb.ErrPlacementNotReady},
		{"no status", func(p *api.DataPlacement) { p.Status = "" }, tenantdb.ErrPlacementNotReady},
		{"another tenant's", func(p *api.DataPlacement) { p.TenantID = "ten-b" }, tenantdb.ErrBadPlacement},
		{"unknown cluster", func(p *api.DataPlacement) { p.Cluster = "other" }, tenantdb.ErrBadPlacement},
		{"unknown model", func(p *api.DataPlacement) { p.Model = "shared" }, tenantdb.ErrBadPlacement},
		{"bridge without role", func(p *api.DataPlacement) { p.Role = "" }, tenantdb.ErrBadPlacement},
		{"bridge as role none", func(p *api.DataPlacement) { p.Role = "NONE" }, tenantdb.ErrBadPlacement},
		{"bridge without schema", func(p *api.DataPlacement) { p.Schema = "" }, tenantdb.ErrBadPlacement},
		{"bridge in pg_catalog", func(p *api.DataPlacement) { p.Schema = "pg_catalog" }, tenantdb.ErrBadPlacement},
		{"bridge in another database", func(p *api.DataPlacement) { p.Database = "postgres" }, tenantdb.ErrBadPlacement},
		{"silo without database", func(p *api.DataPlacement) { p.Model, p.Database = tenantdb.ModelSilo, "" }, tenantdb.ErrBadPlacement},
		{"name with NUL", func(p *api.DataPlacement) { p.Role = "t_a\x00" }, tenantdb.ErrBadPlacement},
		{"name too long", func(p *api.DataPlacement) { p.Schema = strings.Repeat("s", 64) }, tenantdb.ErrBadPlacement},
	} {
		p := a
		tc.edit(&p)
		e.resolver.SetAs("ten-a", p)
		err := db.Tx(as("ten-a"), func(pgx.Tx) error { t.Fatalf("%s: the transaction ran", tc.name); return nil })
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	e.resolver.SetAs("ten-a", a)
	if _, err := db.Warm(as("ten-a")); err != nil {
		t.Fatalf("the placement itself: %v", err)
	}
}

// TestMissingSchema: a bridge placement whose schema is gone fails the
// query; it does not fall back to public (which has a notes table of its
// own) or to a temporary table. One whose role is gone fails to begin.
func TestMissingSchema(t *testing.T) {
	e := newEnv(t)
	pb := e.cluster.Bridge(t, "ten-b")
	e.resolver.Set(e.cluster.Pool(t, "ten-a"), pb)
	db := e.open(t, tenantdb.Config{}, "pool_max_conns=1")
	insert(t, db, "ten-a", "a")
	insert(t, db, "ten-b", "b")
	// A temporary notes table on the one connection, made by the pool
	// tenant (which may create temporary tables, as PUBLIC may) and
	// readable by all, then b's schema is dropped.
	err := db.Tx(as("ten-a"), func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), "CREATE TEMPORARY TABLE notes (body text); INSERT INTO pg_temp.notes VALUES ('temp'); GRANT ALL ON pg_temp.notes TO PUBLIC")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.cluster.Exec(t, "", "DROP SCHEMA "+pgx.Identifier{pb.Schema}.Sanitize()+" CASCADE")
	err = db.Tx(as("ten-b"), func(tx pgx.Tx) error {
		rows, _ := tx.Query(context.Background(), "SELECT body FROM notes")
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err == nil {
			t.Errorf("with its schema dropped, b reads %v", got)
		}
		return err
	})
	if pgCode(err) != "42P01" { // undefined_table
		t.Fatalf("with its schema dropped: %v, want relation does not exist", err)
	}

	pb.Role = pb.Role + "_gone"
	e.resolver.Set(pb)
	db.Invalidate("ten-b")
	err = db.Tx(as("ten-b"), func(pgx.Tx) error { t.Fatal("the transaction ran"); return nil })
	if pgCode(err) != "22023" { // invalid_parameter_value: role does not exist
		t.Fatalf("with its role gone: %v", err)
	}
	if na, _ := bodies(t, db, "ten-a"); !slices.Equal(na, []string{"a"}) {
		t.Fatalf("after b's failures, a reads %v", na)
	}
}
