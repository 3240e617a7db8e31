package migrate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestPoolRowSecurity: a pool table with a tenant_id column is protected
// in the transaction that made it, and stays protected when a later file
// switches its protection off.
func TestPoolRowSecurity(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	targets := []Target{
		{TenantID: "acme", Model: Pool, Database: c.Database, Schema: "public"},
		{TenantID: "globex", Model: Pool, Database: c.Database},
	}
	fs := files(t,
		"001_notes.sql", `
CREATE TABLE notes (id serial PRIMARY KEY, tenant_id text NOT NULL, body text);
CREATE TABLE plans (id int PRIMARY KEY, name text);   -- no tenant: rows of no one
INSERT INTO plans VALUES (1, 'basic');`,
		"002_more.sql", `
ALTER TABLE notes DISABLE ROW LEVEL SECURITY;
ALTER TABLE notes NO FORCE ROW LEVEL SECURITY;
CREATE TABLE tags (tenant_id text NOT NULL, tag text, id bigint GENERATED ALWAYS AS IDENTITY);`)
	rep, err := Run(ctx, c.Cluster, fs, targets, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Applied != 2 || rep.Places[0].Last != "002_more.sql" || len(rep.Behind()) != 0 {
		t.Fatalf("report = %+v", rep)
	}
	if got := strings.Join(rep.Places[0].Tenants, ","); got != "acme,globex" {
		t.Fatalf("pool tenants = %s", got)
	}
	for _, table := range []string{"notes", "tags"} {
		rls := query[string](t, c, c.Database, `SELECT relrowsecurity::text || relforcerowsecurity::text
			|| (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid AND polname = 'bulkhead_tenant')
			FROM pg_class c WHERE oid = ('public.' || $1)::regclass`, table)
		if rls != "truetrue1" {
			t.Errorf("%s: enabled, forced, policies = %s, want truetrue1", table, rls)
		}
	}
	if n := query[int](t, c, c.Database, `SELECT count(*) FROM pg_policy WHERE polrelid = 'public.plans'::regclass`); n != 0 {
		t.Errorf("plans (no tenant_id) got %d policies", n)
	}

	// The serving role, in acme's scope, as the SDK sets it.
	conn := c.serving(t)
	scoped := func(tenant string, fn func(tx pgx.Tx) error) error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `SELECT set_config('app.tenant_id', $1, true)`, tenant); err != nil {
			t.Fatal(err)
		}
		if err := fn(tx); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	if err := scoped("acme", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO notes (tenant_id, body) VALUES ('acme', 'a'); INSERT INTO tags (tenant_id, tag) VALUES ('acme', 't')`)
		return err
	}); err != nil {
		t.Fatalf("acme writes its own rows: %v", err)
	}
	// An attacker's writes: another tenant's row, from acme's scope.
	for _, sql := range []string{
		`INSERT INTO notes (tenant_id, body) VALUES ('globex', 'planted')`,
		`UPDATE notes SET tenant_id = 'globex'`,
		`INSERT INTO tags (tenant_id, tag) VALUES ('globex', 'x')`,
	} {
		err := scoped("acme", func(tx pgx.Tx) error { _, err := tx.Exec(ctx, sql); return err })
		if pgErr, ok := pgError(err); !ok || pgErr.Code != "42501" {
			t.Errorf("%s from acme's scope: %v, want a row-level security violation", sql, err)
		}
	}
	// Reads: globex sees none of acme's rows, nor does a transaction of no tenant.
	for _, tenant := range []string{"globex", ""} {
		if err := scoped(tenant, func(tx pgx.Tx) error {
			var n int
			if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM notes) + (SELECT count(*) FROM tags)`).Scan(&n); err != nil {
				return err
			}
			if n != 0 {
				t.Errorf("tenant %q sees %d of acme's rows", tenant, n)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	// The table owner (the admin) is bound too: FORCE.
	if n := query[int](t, c, c.Database, `SELECT count(*) FROM notes`); n != 0 {
		t.Errorf("the admin, owner of notes, sees %d rows outside any tenant's scope", n)
	}
	// What the serving role does not get: a table of no tenant, the ledger.
	for _, sql := range []string{`UPDATE plans SET name = 'free'`, `SELECT * FROM plans`, `DELETE FROM bulkhead_app_migrations`, `SELECT * FROM bulkhead_app_migrations`} {
		err := scoped("acme", func(tx pgx.Tx) error { _, err := tx.Exec(ctx, sql); return err })
		if pgErr, ok := pgError(err); !ok || pgErr.Code != "42501" {
			t.Errorf("serving role: %s: %v, want permission denied", sql, err)
		}
	}
}

// TestPoolKeepsRevokes: the serving role's privileges on a tenant table
// are granted once, when the table is new; a later file that takes one
// back is not undone.
func TestPoolKeepsRevokes(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	serving := pgx.Identifier{c.Cluster.ServingRole}.Sanitize()
	fs := files(t,
		"001_a.sql", `CREATE TABLE audit (tenant_id text, what text)`,
		"002_b.sql", `REVOKE UPDATE, DELETE ON audit FROM `+serving,
		"003_c.sql", `CREATE TABLE other (tenant_id text)`)
	if _, err := Run(ctx, c.Cluster, fs, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	got := query[string](t, c, c.Database, `SELECT has_table_privilege($1::text, 'audit', 'INSERT')::text || has_table_privilege($1::text, 'audit', 'DELETE')::text`, c.Cluster.ServingRole)
	if got != "truefalse" {
		t.Fatalf("serving role on audit: insert, delete = %s, want truefalse", got)
	}
}

// TestBridgeGrants: a bridge tenant's role gets DML on what the files
// make in its schema (tables there before too), not on the ledger, and
// nothing in another tenant's schema; the serving role gets it only
// through SET ROLE.
func TestBridgeGrants(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	targets := c.bridges(t, "acme", "globex")
	c.exec(t, c.Database, "CREATE TABLE "+pgx.Identifier{c.name("acme"), "legacy"}.Sanitize()+" (id int)") // adopted
	fs := files(t,
		"001_items.sql", `CREATE TABLE items (id serial PRIMARY KEY, body text)`,
		"002_more.sql", `CREATE TABLE more (id bigint GENERATED BY DEFAULT AS IDENTITY, n int); CREATE SEQUENCE counter`)
	// 001 in one Run, 002 in the next: the second sets the default
	// privileges again before its file.
	if _, err := Run(ctx, c.Cluster, fs[:1], targets, Options{}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	rep, err := Run(ctx, c.Cluster, fs, targets, Options{Progress: func(p Progress) {
		seen = append(seen, p.Place.Schema+"/"+p.File)
		if p.Total != 3 { // the pool too
			t.Errorf("progress total = %d, want 3", p.Total)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Applied != 3 || len(seen) != 3 || len(rep.Behind()) != 0 {
		t.Fatalf("applied %d, progress %v, behind %v", rep.Applied, seen, rep.Behind())
	}
	if got := ledgerNames(t, c, c.Database, c.name("globex")); got != "001_items.sql 002_more.sql" {
		t.Fatalf("globex's ledger: %q", got)
	}

	conn := c.serving(t)
	as := func(role, sql string) error {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if role != "" {
			if _, err := tx.Exec(ctx, `SELECT set_config('role', $1, true), set_config('search_path', $1, true)`, role); err != nil {
				t.Fatal(err)
			}
		}
		_, err = tx.Exec(ctx, sql)
		return err
	}
	acme, globex := c.name("acme"), c.name("globex")
	for _, sql := range []string{
		`INSERT INTO items (body) VALUES ('a')`, `SELECT * FROM items`, `UPDATE items SET body = 'b'`, `DELETE FROM items`,
		`INSERT INTO more (n) VALUES (1)`, `SELECT nextval('counter')`, `INSERT INTO legacy VALUES (1)`,
	} {
		if err := as(acme, sql); err != nil {
			t.Errorf("acme's role: %s: %v", sql, err)
		}
	}
	denied := []struct{ role, sql string }{
		{acme, `SELECT * FROM ` + pgx.Identifier{globex, "items"}.Sanitize()}, // another tenant's schema
		{acme, `INSERT INTO ` + pgx.Identifier{globex, "items"}.Sanitize() + ` (body) VALUES ('x')`},
		{acme, `SELECT * FROM bulkhead_app_migrations`}, // its own ledger
		{acme, `DELETE FROM bulkhead_app_migrations`},
		{acme, `CREATE TABLE planted (id int)`},                           // no CREATE on its schema
		{"", `SELECT * FROM ` + pgx.Identifier{acme, "items"}.Sanitize()}, // the serving role without SET ROLE (NOINHERIT)
	}
	for _, d := range denied {
		if pgErr, ok := pgError(as(d.role, d.sql)); !ok || pgErr.Code != "42501" {
			t.Errorf("role %q: %s: want permission denied, got %v", d.role, d.sql, as(d.role, d.sql))
		}
	}
}

// TestSilo: a silo database is migrated on a connection of its own, with
// its ledger in it and its tables the tenant role's.
func TestSilo(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	target := c.silo(t, "initech")
	fs := files(t, "001_items.sql", `CREATE TABLE items (id int, tenant_id text)`)
	rep, err := Run(ctx, c.Cluster, fs, []Target{target}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Applied != 2 { // the pool and the silo
		t.Fatalf("applied = %d, want 2", rep.Applied)
	}
	if got := ledgerNames(t, c, target.Database, "public"); got != "001_items.sql" {
		t.Fatalf("silo ledger = %q", got)
	}
	got := query[string](t, c, target.Database, `SELECT has_table_privilege($1::text, 'public.items', 'INSERT, SELECT')::text
		|| has_table_privilege($1::text, 'public.bulkhead_app_migrations', 'SELECT, INSERT, UPDATE, DELETE')::text
		|| (SELECT relrowsecurity::text FROM pg_class WHERE oid = 'public.items'::regclass)`, target.Role)
	if got != "truefalsefalse" { // a silo's tables are the tenant's alone: no pool policy
		t.Fatalf("tenant role on items, on the ledger; items' RLS = %s, want truefalsefalse", got)
	}
}

// TestFailingFileOnOnePlace: a file that fails on one place leaves it at
// the file before, the other places go on, and the next Run resumes it.
func TestFailingFileOnOnePlace(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	targets := c.bridges(t, "acme", "globex", "initech")
	fs := files(t,
		"001_a.sql", `CREATE TABLE a (id int)`,
		"002_b.sql", `CREATE TABLE b (id int)`,
		"003_c.sql", `CREATE TABLE c (id int)`)
	// globex has a table b already: 002 fails there only.
	c.exec(t, c.Database, "CREATE TABLE "+pgx.Identifier{c.name("globex"), "b"}.Sanitize()+" (x text)")
	rep, err := Run(ctx, c.Cluster, fs, targets, Options{})
	if !errs.Is(err, codeFailed) {
		t.Fatalf("Run = %v, want %s", err, codeFailed)
	}
	for _, want := range []string{"002_b.sql on bridge schema " + c.name("globex"), `relation "b" already exists`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	g := resultOf(t, rep, c.name("globex"))
	if g.Last != "001_a.sql" || g.Pending != 2 || g.Err == nil {
		t.Fatalf("globex: %+v", g)
	}
	if got := ledgerNames(t, c, c.Database, c.name("globex")); got != "001_a.sql" {
		t.Fatalf("globex's ledger = %q, want only 001", got)
	}
	if n := query[int](t, c, c.Database, `SELECT count(*) FROM pg_class WHERE relname = 'c' AND relnamespace = $1::regnamespace`, c.name("globex")); n != 0 {
		t.Fatal("003 ran on globex after 002 failed there")
	}
	for _, id := range []string{"acme", "initech"} {
		if r := resultOf(t, rep, c.name(id)); r.Last != "003_c.sql" || r.Err != nil {
			t.Errorf("%s: %+v, want at 003", id, r)
		}
	}
	if got := strings.Join(rep.Behind(), ","); got != "globex" {
		t.Fatalf("behind = %s", got)
	}
	st, err := Status(ctx, c.Cluster, fs, targets, Options{})
	if err != nil || strings.Join(st.Behind(), ",") != "globex" || resultOf(t, st, c.name("globex")).Last != "001_a.sql" {
		t.Fatalf("Status = %+v, %v", st, err)
	}

	c.exec(t, c.Database, "DROP TABLE "+pgx.Identifier{c.name("globex"), "b"}.Sanitize())
	rep, err = Run(ctx, c.Cluster, fs, targets, Options{})
	if err != nil || rep.Applied != 2 || len(rep.Behind()) != 0 {
		t.Fatalf("rerun: applied %d, behind %v, %v", rep.Applied, rep.Behind(), err)
	}
}

// TestFailingFileStopsAtPool: a file that fails in the pool (a syntax
// error fails everywhere) stops the run before any tenant's schema.
func TestFailingFileStopsAtPool(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	targets := c.bridges(t, "acme", "globex")
	good := files(t, "001_a.sql", `CREATE TABLE a (id int)`)
	if _, err := Run(ctx, c.Cluster, good, targets, Options{}); err != nil {
		t.Fatal(err)
	}
	bad := files(t, "001_a.sql", `CREATE TABLE a (id int)`, "002_bad.sql", "CREATE TABLE b (id int);\n\nCREAT TABLE c (id int);\n")
	rep, err := Run(ctx, c.Cluster, bad, targets, Options{})
	if !errs.Is(err, codeFailed) || !strings.Contains(err.Error(), "002_bad.sql line 3 on pool") {
		t.Fatalf("Run = %v, want %s at 002_bad.sql line 3 on the pool", err, codeFailed)
	}
	if rep.Applied != 0 || len(rep.Failed()) != 3 || len(rep.Behind()) != 2 {
		t.Fatalf("report: applied %d, failed %d, behind %v", rep.Applied, len(rep.Failed()), rep.Behind())
	}
	for _, schema := range []string{"public", c.name("acme"), c.name("globex")} {
		if got := ledgerNames(t, c, c.Database, schema); got != "001_a.sql" {
			t.Errorf("%s: ledger %q, want 001 only", schema, got)
		}
		if n := query[int](t, c, c.Database, `SELECT count(*) FROM pg_class WHERE relname = 'b' AND relnamespace = $1::regnamespace`, schema); n != 0 {
			t.Errorf("%s: half of the failed file is there", schema)
		}
	}
}

// TestChanged: a file changed after it was applied, one removed, or one
// added before an applied one stops the run with nothing applied anywhere.
func TestChanged(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	targets := c.bridges(t, "acme")
	if _, err := Run(ctx, c.Cluster, files(t, "001_a.sql", "CREATE TABLE a (id int)", "003_c.sql", "CREATE TABLE c (id int)"), targets, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files []File
		want  string
	}{
		{"changed", files(t, "001_a.sql", "CREATE TABLE a (id bigint)", "003_c.sql", "CREATE TABLE c (id int)", "004_d.sql", "CREATE TABLE d (id int)"),
			"migration 001_a.sql has changed since it was applied to pool database"},
		{"removed", files(t, "001_a.sql", "CREATE TABLE a (id int)", "004_d.sql", "CREATE TABLE d (id int)"),
			"has migration 003_c.sql applied, which is not among the files"},
		{"out of order", files(t, "001_a.sql", "CREATE TABLE a (id int)", "002_b.sql", "CREATE TABLE b (id int)", "003_c.sql", "CREATE TABLE c (id int)"),
			"migration 002_b.sql is not applied to pool database " + c.Database + " but 003_c.sql"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Run(ctx, c.Cluster, tc.files, targets, Options{})
			if !errs.Is(err, codeChanged) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want %s: %s", err, codeChanged, tc.want)
			}
			if rep.Applied != 0 {
				t.Fatalf("applied %d", rep.Applied)
			}
			for _, schema := range []string{"public", c.name("acme")} {
				if got := ledgerNames(t, c, c.Database, schema); got != "001_a.sql 003_c.sql" {
					t.Fatalf("%s: ledger %q", schema, got)
				}
			}
			st, err := Status(ctx, c.Cluster, tc.files, targets, Options{})
			if err != nil || !errs.Is(st.Places[1].Err, codeChanged) {
				t.Fatalf("Status: %v, place error %v", err, st.Places[1].Err)
			}
		})
	}
}

// TestTwoRunners: a second Run on the cluster fails at once while one runs,
// or waits for it with Wait.
func TestTwoRunners(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	targets := c.bridges(t, "acme", "globex")
	fs := files(t, "001_a.sql", "CREATE TABLE a (id int)")
	inside, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		var once bool
		_, err := Run(ctx, c.Cluster, fs, targets, Options{Progress: func(Progress) {
			if !once {
				once = true
				close(inside)
				<-release
			}
		}})
		first <- err
	}()
	select {
	case <-inside:
	case err := <-first:
		t.Fatalf("the first Run ended before its first file: %v", err)
	}
	if _, err := Run(ctx, c.Cluster, fs, targets, Options{}); !errs.Is(err, codeRunning) {
		t.Fatalf("second Run = %v, want %s", err, codeRunning)
	}
	if running, err := Running(ctx, c.Cluster); err != nil || !running {
		t.Fatalf("Running during a Run = %v, %v", running, err)
	}
	if _, err := Status(ctx, c.Cluster, fs, targets, Options{}); err != nil {
		t.Fatalf("Status during a Run: %v", err)
	}
	waited := make(chan Report, 1)
	go func() {
		rep, err := Run(ctx, c.Cluster, fs, targets, Options{Wait: true})
		if err != nil {
			t.Errorf("waiting Run: %v", err)
		}
		waited <- rep
	}()
	select {
	case <-waited:
		t.Fatal("a Run with Wait did not wait")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if rep := <-waited; rep.Applied != 0 || len(rep.Behind()) != 0 {
		t.Fatalf("waiting Run after the first: applied %d, behind %v", rep.Applied, rep.Behind())
	}
	if running, err := Running(ctx, c.Cluster); err != nil || running {
		t.Fatalf("Running after the runs = %v, %v", running, err)
	}
	// A Run waiting for a lock that is never released ends with its context.
	c.exec(t, c.Database, "SELECT 1") // the pool has room
	holder, err := pgx.Connect(ctx, c.AdminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockKey); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := Run(short, c.Cluster, fs, targets, Options{Wait: true}); err == nil {
		t.Fatal("Run waited past its context")
	}
}

// TestHostileTargets: placements that would make Run touch what is not a
// tenant's are refused before any SQL runs.
func TestHostileTargets(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	fs := files(t, "001_a.sql", "CREATE TABLE a (id int)")
	ok := c.bridges(t, "acme")[0]
	p := c.Prefix
	for _, tc := range []struct {
		name string
		t    Target
	}{
		{"bridge in public", Target{TenantID: "acme", Model: Bridge, Database: c.Database, Schema: "public", Role: ok.Role}},
		{"schema of no prefix", Target{TenantID: "acme", Model: Bridge, Database: c.Database, Schema: "pg_catalog", Role: ok.Role}},
		{"schema that is the prefix", Target{TenantID: "acme", Model: Bridge, Database: c.Database, Schema: p, Role: ok.Role}},
		{"quote in schema", Target{TenantID: "acme", Model: Bridge, Database: c.Database, Schema: p + `a"; DROP SCHEMA public; --`, Role: ok.Role}},
		{"upper case schema", Target{TenantID: "acme", Model: Bridge, Database: c.Database, Schema: strings.ToUpper(ok.Schema), Role: ok.Role}},
		{"bridge in another database", Target{TenantID: "acme", Model: Bridge, Database: "postgres", Schema: ok.Schema, Role: ok.Role}},
		{"role of no prefix", Target{TenantID: "acme", Model: Bridge, Database: c.Database, Schema: ok.Schema, Role: "postgres"}},
		{"no role", Target{TenantID: "acme", Model: Bridge, Database: c.Database, Schema: ok.Schema}},
		{"silo on the shared database", Target{TenantID: "acme", Model: Silo, Database: c.Database, Schema: "public", Role: ok.Role}},
		{"silo of no prefix", Target{TenantID: "acme", Model: Silo, Database: "postgres", Schema: "public", Role: ok.Role}},
		{"silo in a schema", Target{TenantID: "acme", Model: Silo, Database: p + "acme", Schema: ok.Schema, Role: ok.Role}},
		{"pool elsewhere", Target{TenantID: "acme", Model: Pool, Database: "postgres", Schema: "public"}},
		{"pool in a schema", Target{TenantID: "acme", Model: Pool, Database: c.Database, Schema: ok.Schema}},
		{"pool with a role", Target{TenantID: "acme", Model: Pool, Database: c.Database, Role: ok.Role}},
		{"bad tenant id", Target{TenantID: "Acme'", Model: Pool, Database: c.Database}},
		{"unknown model", Target{TenantID: "acme", Model: "shared", Database: c.Database}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(ctx, c.Cluster, fs, []Target{tc.t}, Options{})
			if !errs.Is(err, "invalid_migration") {
				t.Fatalf("Run = %v, want invalid_migration", err)
			}
		})
	}
	twice := []Target{ok, {TenantID: "globex", Model: Bridge, Database: c.Database, Schema: ok.Schema, Role: ok.Role}}
	if _, err := Run(ctx, c.Cluster, fs, twice, Options{}); !errs.Is(err, "invalid_migration") || !strings.Contains(err.Error(), "the same") {
		t.Fatalf("one schema, two tenants: %v", err)
	}
	if n := query[int](t, c, c.Database, `SELECT count(*) FROM pg_class WHERE relname IN ('a', 'bulkhead_app_migrations')`); n != 0 {
		t.Fatalf("a refused Run left %d tables", n)
	}
}

// TestMissingSchema: a placement whose schema is gone is a clear failure
// of that place only.
func TestMissingSchema(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	targets := c.bridges(t, "acme")
	targets = append(targets, Target{TenantID: "ghost", Model: Bridge, Database: c.Database, Schema: c.name("ghost"), Role: c.name("ghost")})
	rep, err := Run(ctx, c.Cluster, files(t, "001_a.sql", "CREATE TABLE a (id int)"), targets, Options{})
	if !errs.Is(err, codeFailed) || !strings.Contains(err.Error(), "schema does not exist") {
		t.Fatalf("Run = %v", err)
	}
	if got := strings.Join(rep.Behind(), ","); got != "ghost" {
		t.Fatalf("behind = %s", got)
	}
}

func pgError(err error) (*pgconn.PgError, bool) {
	var pgErr *pgconn.PgError
	return pgErr, errors.As(err, &pgErr)
}
