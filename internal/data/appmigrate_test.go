package data_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// The application's migrations in these tests: a pool table (with
// tenant_id, so protected by Bulkhead), then one more, then a change.
var (
	file1 = client.DataMigrationFile{Name: "001_notes.sql", SQL: `CREATE TABLE notes (id bigserial PRIMARY KEY, tenant_id text NOT NULL, body text);
-- a comment; and 'a string with COMMIT in it'
CREATE INDEX notes_tenant ON notes (tenant_id);`}
	file2 = client.DataMigrationFile{Name: "002_tags.sql", SQL: `CREATE TABLE tags (tenant_id text NOT NULL, tag text NOT NULL);`}
	file3 = client.DataMigrationFile{Name: "003_note_title.sql", SQL: `ALTER TABLE notes ADD COLUMN title text NOT NULL DEFAULT '';`}
)

func register(files ...client.DataMigrationFile) client.RegisterDataMigrations {
	return client.RegisterDataMigrations{Files: files}
}

// converged waits until no tenant of the cluster is behind newest and
// every place is at it, and returns the status.
func (n *node) converged(t *testing.T, newest string, places int) client.DataMigrationStatus {
	t.Helper()
	var st client.DataMigrationStatus
	var err error
	runtest.Eventually(t, "every place at "+newest, func() bool {
		st, err = n.op.MigrationStatus(t.Context(), "app")
		if err != nil || st.Newest != newest || len(st.Behind) != 0 || len(st.Places) != places {
			return false
		}
		for _, p := range st.Places {
			if p.Last != newest || p.Pending != 0 || p.Error != "" {
				return false
			}
		}
		return true
	})
	return st
}

// ledger returns how many times each file is in a place's ledger.
func ledger(t *testing.T, admin *pgx.Conn, schema string) map[string]int {
	t.Helper()
	rows, err := admin.Query(t.Context(), `SELECT name FROM `+pgx.Identifier{schema, "bulkhead_app_migrations"}.Sanitize())
	if err != nil {
		t.Fatalf("ledger of %s: %v", schema, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, name := range names {
		out[name]++
	}
	return out
}

// wantLedger fails t unless each file is in the ledger exactly once.
func wantLedger(t *testing.T, admin *pgx.Conn, schema string, files ...client.DataMigrationFile) {
	t.Helper()
	got := ledger(t, admin, schema)
	want := map[string]int{}
	for _, f := range files {
		want[f.Name] = 1
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ledger of %s = %v; want %v", schema, got, want)
	}
}

// scoped runs fn in a transaction of the serving connection conn scoped to
// tenant as the SDK scopes it (role and search_path for bridge and silo).
func scoped(t *testing.T, conn *pgx.Conn, tenantID, role, schema string, fn func(tx pgx.Tx) error) error {
	t.Helper()
	return pgx.BeginFunc(t.Context(), conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(t.Context(), `SELECT set_config('app.tenant_id', $1, true), set_config('role', $2, true), set_config('search_path', $3, true)`,
			tenantID, role, schema); err != nil {
			return err
		}
		return fn(tx)
	})
}

// useNotes writes a note as the tenant and reads it back.
func useNotes(t *testing.T, conn *pgx.Conn, tenantID, role, schema string) error {
	t.Helper()
	if role == "" {
		role, schema = "none", "public"
	}
	return scoped(t, conn, tenantID, role, schema, func(tx pgx.Tx) error {
		if _, err := tx.Exec(t.Context(), `INSERT INTO notes (tenant_id, body) VALUES ($1, 'hello')`, tenantID); err != nil {
			return err
		}
		if _, err := tx.Exec(t.Context(), `INSERT INTO tags VALUES ($1, 't')`, tenantID); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(t.Context(), `SELECT count(*) FROM notes`).Scan(&n); err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("%s sees %d notes, want its 1", tenantID, n)
		}
		return nil
	})
}

// TestMigrations registers the application's migrations for a cluster
// with a tenant of each model, and follows them: every place migrated
// (the pool's table protected by forced row-level security, the bridge
// and silo tables the tenant role's to use), a tenant onboarded afterwards
// migrated before it is active, a file added later applied everywhere,
// and the registrations an attacker or a careless operator would send
// refused with nothing stored.
func TestMigrations(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		n := start(t, dsn, "bridge-a")
		n.addCluster(t)
		n.onboard(t, "pool-co", "basic")
		n.onboard(t, "bridge-a", "standard")
		n.onboard(t, "silo-a", "premium")
		name := func(id string) string { return n.app.Prefix + strings.ReplaceAll(id, "-", "_") }
		ra, sa := name("bridge-a"), name("silo-a")

		// Nothing registered yet.
		st, err := n.op.MigrationStatus(ctx, "app")
		if err != nil || len(st.Files) != 0 || len(st.Places) != 0 || st.Newest != "" {
			t.Fatalf("status before any registration: %+v %v", st, err)
		}

		st, err = n.op.RegisterMigrations(ctx, "app", register(file1, file2))
		if err != nil {
			t.Fatalf("register: %v", err)
		}
		if st.Cluster != "app" || len(st.Files) != 2 || st.Newest != file2.Name || st.Files[0].Name != file1.Name ||
			len(st.Files[0].Checksum) != 64 || st.Files[1].CreatedAt.IsZero() {
			t.Fatalf("status answered by the registration: %+v", st)
		}
		st = n.converged(t, file2.Name, 3)
		runtest.Eventually(t, "the run to be recorded", func() bool {
			st, err = n.op.MigrationStatus(ctx, "app")
			return err == nil && st.LastRunAt != nil && !st.Running
		})
		if st.LastRunError != "" {
			t.Errorf("last run: %+v", st)
		}
		if st.Places[0].Model != "pool" || !slices.Equal(st.Places[0].Tenants, []string{"pool-co"}) {
			t.Errorf("the pool place: %+v", st.Places[0])
		}

		admin := mustConnect(t, n.app.AdminDSN, "")
		siloAdmin := mustConnect(t, n.app.AdminDSN, sa)
		for _, table := range []string{"notes", "tags"} {
			if !queryBool(t, admin, `SELECT relrowsecurity AND relforcerowsecurity AND EXISTS (SELECT 1 FROM pg_policy
				WHERE polrelid = c.oid AND polname = 'bulkhead_tenant') FROM pg_class c WHERE oid = ('public.' || $1)::regclass`, table) {
				t.Errorf("pool table %s is not under forced row-level security with bulkhead_tenant", table)
			}
		}
		wantLedger(t, admin, "public", file1, file2)
		wantLedger(t, admin, ra, file1, file2)
		wantLedger(t, siloAdmin, "public", file1, file2)

		app := mustConnect(t, n.app.ServingDSN, "")
		siloApp := mustConnect(t, n.app.ServingDSN, sa)
		if err := useNotes(t, app, "pool-co", "", ""); err != nil {
			t.Errorf("pool-co uses its tables: %v", err)
		}
		if err := useNotes(t, app, "bridge-a", ra, ra); err != nil {
			t.Errorf("bridge-a uses its tables: %v", err)
		}
		if err := useNotes(t, siloApp, "silo-a", sa, "public"); err != nil {
			t.Errorf("silo-a uses its tables: %v", err)
		}
		// The serving role without the tenant's role reaches neither.
		for _, c := range []struct {
			conn   *pgx.Conn
			schema string
		}{{app, ra}, {siloApp, "public"}} {
			err := scoped(t, c.conn, "bridge-a", "none", c.schema, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, `SELECT count(*) FROM `+pgx.Identifier{c.schema, "notes"}.Sanitize())
				return err
			})
			if sqlState(err) != "42501" {
				t.Errorf("the serving role, as no tenant, reads notes in %s: %v; want permission denied", c.schema, err)
			}
		}

		// A bridge tenant onboarded now has the tables once it is active.
		n.onboard(t, "bridge-b", "standard")
		rb := name("bridge-b")
		wantLedger(t, admin, rb, file1, file2)
		if err := useNotes(t, app, "bridge-b", rb, rb); err != nil {
			t.Errorf("bridge-b, just onboarded, uses its tables: %v", err)
		}

		// A third file: applied everywhere, bridge-b included.
		if _, err := n.op.RegisterMigrations(ctx, "app", register(file1, file2, file3)); err != nil {
			t.Fatalf("register a third file: %v", err)
		}
		n.converged(t, file3.Name, 4)
		for _, s := range []string{"public", ra, rb} {
			wantLedger(t, admin, s, file1, file2, file3)
		}
		wantLedger(t, siloAdmin, "public", file1, file2, file3)
		if !queryBool(t, siloAdmin, `SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'notes' AND column_name = 'title')`) {
			t.Error("silo-a's notes have no title after 003")
		}
		// The same files again: nothing new, nothing applied twice.
		if _, err := n.op.RegisterMigrations(ctx, "app", register(file1, file2, file3)); err != nil {
			t.Fatalf("register the same files again: %v", err)
		}

		// Refused, with nothing stored.
		changed := file1
		changed.SQL += "\nDROP TABLE tags;"
		withCommit := client.DataMigrationFile{Name: "004_commit.sql", SQL: "CREATE TABLE x (id int);\n\nCOMMIT;\nCREATE TABLE y (id int);"}
		setRole := client.DataMigrationFile{Name: "004_role.sql", SQL: "SET ROLE " + n.app.Prefix + "bridge_b;\nDELETE FROM notes;"}
		early := client.DataMigrationFile{Name: "000_early.sql", SQL: "CREATE TABLE z (id int);"}
		good4 := client.DataMigrationFile{Name: "004_ok.sql", SQL: "CREATE TABLE ok4 (id int);"}
		for _, c := range []struct {
			what   string
			files  []client.DataMigrationFile
			status int
			code   string
			detail string
		}{
			{"001 changed", []client.DataMigrationFile{changed, file2, file3}, 409, "migration_changed", "001_notes.sql"},
			{"003 left out", []client.DataMigrationFile{file1, file2}, 409, "migration_changed", "003_note_title.sql"},
			{"a new file before 001", []client.DataMigrationFile{early, file1, file2, file3}, 409, "migration_changed", "000_early.sql"},
			{"a file with COMMIT", []client.DataMigrationFile{file1, file2, file3, withCommit}, 400, "invalid_migration", "line 3"},
			{"a file with SET ROLE", []client.DataMigrationFile{file1, file2, file3, setRole}, 400, "invalid_migration", "line 1"},
			{"no files", nil, 400, "invalid_migration", ""},
			{"a name with a path", []client.DataMigrationFile{file1, file2, file3, {Name: "../004_x.sql", SQL: "SELECT 1"}}, 400, "invalid_migration", ""},
			{"a name not .sql", []client.DataMigrationFile{file1, file2, file3, {Name: "004_x.txt", SQL: "SELECT 1"}}, 400, "invalid_migration", ""},
			{"a file twice", []client.DataMigrationFile{file1, file2, file3, good4, good4}, 400, "invalid_migration", "twice"},
			{"an unclosed string", []client.DataMigrationFile{file1, file2, file3, {Name: "004_x.sql", SQL: "SELECT 'x"}}, 400, "invalid_migration", ""},
			{"a NUL byte", []client.DataMigrationFile{file1, file2, file3, {Name: "004_x.sql", SQL: "SELECT '\x00'"}}, 400, "invalid_migration", ""},
		} {
			_, err := n.op.RegisterMigrations(ctx, "app", register(c.files...))
			var ae *client.Error
			if !asProblem(err, &ae) || ae.Status != c.status || ae.Code != c.code || !strings.Contains(ae.Detail, c.detail) {
				t.Errorf("%s: %v; want %d %s naming %q", c.what, err, c.status, c.code, c.detail)
			}
		}
		st, err = n.op.MigrationStatus(ctx, "app")
		if err != nil || len(st.Files) != 3 || st.Newest != file3.Name || len(st.Behind) != 0 {
			t.Errorf("after the refused registrations: %+v %v", st, err)
		}
		if n := queryInt(t, admin, `SELECT count(*) FROM pg_class WHERE relname IN ('x', 'y', 'z', 'ok4')`); n != 0 {
			t.Errorf("a refused file's tables exist: %d", n)
		}

		// Unknown clusters, and a tenant's credential.
		for _, cluster := range []string{"nope", "Bad_Name", "app%00", strings.Repeat("a", 40)} {
			_, err := n.op.MigrationStatus(ctx, cluster)
			wantCode(t, "status of "+cluster, err, "cluster_not_found")
			_, err = n.op.RegisterMigrations(ctx, cluster, register(file1))
			if cluster == "nope" {
				wantCode(t, "register on "+cluster, err, "cluster_not_found")
			} else if err == nil {
				t.Errorf("register on %q succeeded", cluster)
			}
		}
		tenantClient := n.as("tok-bridge-a")
		_, err = tenantClient.MigrationStatus(ctx, "app")
		wantStatus(t, "a tenant credential reads the status", err, http.StatusForbidden, "operator_required")
		_, err = tenantClient.RegisterMigrations(ctx, "app", register(file1, file2, file3, good4))
		wantStatus(t, "a tenant credential registers", err, http.StatusForbidden, "operator_required")
		if st, err := n.op.MigrationStatus(ctx, "app"); err != nil || len(st.Files) != 3 {
			t.Errorf("after a tenant's registration: %+v %v", st, err)
		}

		// The audit tells each registration by name and checksum, never the SQL.
		page, err := n.op.ListAudit(ctx, client.AuditQuery{Tenant: "-", Action: "data.migrations_registered"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 2 {
			t.Fatalf("%d data.migrations_registered events; want 2 (the same files again adds none): %+v", len(page.Items), page.Items)
		}
		b, _ := json.Marshal(page.Items)
		trail := string(b)
		for _, f := range []client.DataMigrationFile{file1, file2, file3} {
			if !strings.Contains(trail, f.Name) {
				t.Errorf("the audit does not name %s", f.Name)
			}
			if strings.Contains(trail, f.SQL[:20]) {
				t.Errorf("the audit holds the SQL of %s", f.Name)
			}
		}
		noSecrets(t, n, trail)
	})
}

// wantStatus fails t unless err is an API error with status and code.
func wantStatus(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var ae *client.Error
	if !asProblem(err, &ae) || ae.Status != status || ae.Code != code {
		t.Errorf("%s: %v; want %d %s", what, err, status, code)
	}
}

// TestMigrationsTwoNodes: two nodes on one PostgreSQL database converge on
// the files registered on either, and no file is applied twice to a place
// (its ledger holds it once, and a counter the file bumps was bumped
// once).
func TestMigrationsTwoNodes(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	n1 := start(t, dsn)
	// Its own clock: node 1's sweeps alone are driven by the test.
	n2 := apitest.New(t, dsn, apitest.Options{PublicURL: n1.URL, RootKey: n1.rootKey})
	op2 := n2.Client(apitest.AdminToken)
	ctx := t.Context()
	n1.addCluster(t)
	for _, id := range []string{"pool-a", "pool-b"} {
		n1.onboard(t, id, "basic")
	}
	for i := range 6 {
		n1.onboard(t, fmt.Sprintf("bridge-%d", i), "standard")
	}
	n1.onboard(t, "silo-x", "premium")
	// Each file bumps a counter of its own in its place, once per apply.
	counting := func(name, sql string) client.DataMigrationFile {
		return client.DataMigrationFile{Name: name, SQL: sql + "\nCREATE TABLE IF NOT EXISTS applied (file text PRIMARY KEY, n int NOT NULL);\n" +
			"INSERT INTO applied VALUES ('" + name + "', 1) ON CONFLICT (file) DO UPDATE SET n = applied.n + 1;"}
	}
	f1 := counting("001_a.sql", "CREATE TABLE a (tenant_id text NOT NULL, v int);")
	f2 := counting("002_b.sql", "CREATE TABLE b (tenant_id text NOT NULL, v int);")
	// Registered on node 1, then on node 2: both wake; the lock lets one work.
	if _, err := n1.op.RegisterMigrations(ctx, "app", register(f1)); err != nil {
		t.Fatal(err)
	}
	if _, err := op2.RegisterMigrations(ctx, "app", register(f1, f2)); err != nil {
		t.Fatal(err)
	}
	n1.converged(t, f2.Name, 8)
	runtest.Eventually(t, "node 2 to see every place at "+f2.Name, func() bool {
		st, err := op2.MigrationStatus(ctx, "app")
		return err == nil && len(st.Behind) == 0 && len(st.Places) == 8 && st.Newest == f2.Name
	})
	admin := mustConnect(t, n1.app.AdminDSN, "")
	siloDB := n1.app.Prefix + "silo_x"
	siloAdmin := mustConnect(t, n1.app.AdminDSN, siloDB)
	schemas := []string{"public"}
	for i := range 6 {
		schemas = append(schemas, fmt.Sprintf("%sbridge_%d", n1.app.Prefix, i))
	}
	count := func(conn *pgx.Conn, schema string) string {
		rows, err := conn.Query(ctx, `SELECT file, n FROM `+pgx.Identifier{schema, "applied"}.Sanitize()+` ORDER BY file`)
		if err != nil {
			t.Fatalf("counters of %s: %v", schema, err)
		}
		var parts []string
		for rows.Next() {
			var f string
			var k int
			if err := rows.Scan(&f, &k); err != nil {
				t.Fatal(err)
			}
			parts = append(parts, fmt.Sprintf("%s=%d", f, k))
		}
		return strings.Join(parts, " ")
	}
	for _, s := range schemas {
		wantLedger(t, admin, s, f1, f2)
		if got := count(admin, s); got != "001_a.sql=1 002_b.sql=1" {
			t.Errorf("counters in %s: %s; want each file applied once", s, got)
		}
	}
	wantLedger(t, siloAdmin, "public", f1, f2)
	if got := count(siloAdmin, "public"); got != "001_a.sql=1 002_b.sql=1" {
		t.Errorf("counters in the silo: %s", got)
	}
	// Node 1's sweep wakes its runner again: nothing more is applied.
	before := n1.converged(t, f2.Name, 8).LastRunAt
	n1.clock.Advance(2 * time.Minute)
	runtest.Eventually(t, "node 1's runner to pass again", func() bool {
		st, err := n1.op.MigrationStatus(ctx, "app")
		return err == nil && st.LastRunAt != nil && (before == nil || st.LastRunAt.After(*before))
	})
	for _, s := range schemas {
		if got := count(admin, s); got != "001_a.sql=1 002_b.sql=1" {
			t.Errorf("counters in %s after another pass: %s", s, got)
		}
	}
}
