package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// ledger is an append-only table: its component lets the serving role
// insert and read rows, nothing more.
var ledger = storage.Component{Name: "ledger", FS: fstest.MapFS{
	"sqlite/001_ledger.sql": {Data: []byte(`CREATE TABLE ledger (id INTEGER PRIMARY KEY, body TEXT NOT NULL);`)},
	"postgres/001_ledger.sql": {Data: []byte(`CREATE TABLE ledger (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE counters (id SERIAL PRIMARY KEY, n INTEGER NOT NULL);`)},
}, Privileges: map[string]string{"ledger": "SELECT, INSERT"}}

// later is a component whose second migration, not yet applied when a
// node first migrates, adds a table.
func later(versions int) storage.Component {
	fs := fstest.MapFS{"postgres/001_a.sql": {Data: []byte(`CREATE TABLE later_a (x INTEGER);`)}}
	if versions > 1 {
		fs["postgres/002_b.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE later_b (x INTEGER);`)}
	}
	return storage.Component{Name: "later", FS: fs}
}

// execAs runs q in the platform scope on db and returns its error.
func execAs(db *storage.DB, q string) error {
	ctx := context.Background()
	return db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, q)
		return err
	})
}

func isPermissionDenied(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}

func openRaw(t *testing.T, dsn string) *storage.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func roleOf(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.User.Username()
}

// TestGrantsAreExactAndReapplied: the serving role gets the privileges its
// components name and no more, on every migrate: a table added by a later
// migration is covered, and a privilege granted by hand is taken back.
func TestGrantsAreExactAndReapplied(t *testing.T) {
	serving, owner := storagetest.PostgresDSNs(t)
	db := storagetest.Open(t, serving, notes, ledger, later(1))
	allowed := []string{
		`INSERT INTO ledger (body) VALUES ('x')`, `SELECT * FROM ledger`,
		`INSERT INTO notes (tenant_id, body) VALUES ('a', 'x')`, `UPDATE notes SET body = 'y'`, `DELETE FROM notes`,
		`INSERT INTO counters (n) VALUES (1)`, // a serial column: USAGE on its sequence
		`SELECT * FROM schema_migrations`,
	}
	denied := []string{
		`UPDATE ledger SET body = 'y'`, `DELETE FROM ledger`, `TRUNCATE ledger`, `TRUNCATE notes`,
		`INSERT INTO schema_migrations VALUES ('x', 1, 'x', 0)`, `UPDATE schema_migrations SET applied_at = 0`, `DELETE FROM schema_migrations`,
		`ALTER TABLE notes DISABLE ROW LEVEL SECURITY`, `ALTER TABLE notes NO FORCE ROW LEVEL SECURITY`, `DROP POLICY tenant_scope ON notes`,
		`DROP TABLE notes`, `CREATE TABLE planted (x INTEGER)`, `CREATE TRIGGER t BEFORE INSERT ON notes FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()`,
	}
	check := func(when string) {
		t.Helper()
		for _, q := range allowed {
			if err := execAs(db, q); err != nil {
				t.Errorf("%s: %s: %v; want it allowed", when, q, err)
			}
		}
		for _, q := range denied {
			if err := execAs(db, q); !isPermissionDenied(err) {
				t.Errorf("%s: %s: err = %v; want permission denied", when, q, err)
			}
		}
	}
	check("first migrate")

	// A privilege granted by hand beyond what the component names is taken back by the next migrate.
	if err := execAs(openRaw(t, owner), `GRANT UPDATE, DELETE, TRUNCATE ON ledger TO `+roleOf(t, serving)); err != nil {
		t.Fatal(err)
	}
	if err := execAs(db, `DELETE FROM ledger`); err != nil {
		t.Fatalf("the hand-made grant did not take: %v", err)
	}
	db = storagetest.Open(t, serving, notes, ledger, later(2))
	check("second migrate")
	if err := execAs(db, `INSERT INTO later_b (x) VALUES (1)`); err != nil {
		t.Errorf("a table added by a later migration: %v; want the default privileges", err)
	}
}

// TestGrantRefusesUndeclaredTables: privileges named for a table the
// schema lacks (a typo) fail the migration instead of leaving the default.
func TestGrantRefusesUndeclaredTables(t *testing.T) {
	serving, owner := storagetest.PostgresDSNs(t)
	typo := notes
	typo.Privileges = map[string]string{"notez": "SELECT"}
	err := openRaw(t, owner).MigrateAndGrant(context.Background(), roleOf(t, serving), typo)
	if err == nil || !strings.Contains(err.Error(), "notez") {
		t.Fatalf("MigrateAndGrant with privileges of a missing table: err = %v; want it named", err)
	}
}

// TestPrepareToServeRefuses: a node refuses to serve from an unmigrated or
// outdated schema, and as a role that could act as the tables' owner; a
// migration refuses to grant the serving privileges to the owner itself.
func TestPrepareToServeRefuses(t *testing.T) {
	ctx := context.Background()
	serving, owner := storagetest.PostgresDSNs(t)
	servingDB, ownerDB := openRaw(t, serving), openRaw(t, owner)

	err := servingDB.PrepareToServe(ctx, nil, notes)
	if !errors.Is(err, storage.ErrNotMigrated) || !strings.Contains(err.Error(), "bulkhead migrate") {
		t.Errorf("serving an unmigrated schema: err = %v; want ErrNotMigrated naming bulkhead migrate", err)
	}
	if err := ownerDB.PrepareToServe(ctx, nil, notes); !errors.Is(err, storage.ErrRoleTooPowerful) {
		t.Errorf("serving as the owner of the database and schema: err = %v; want ErrRoleTooPowerful", err)
	}
	if err := ownerDB.MigrateAndGrant(ctx, ownerDB.Role(), notes); !errors.Is(err, storage.ErrRoleTooPowerful) {
		t.Errorf("granting the serving privileges to the migrating role: err = %v; want ErrRoleTooPowerful", err)
	}
	if err := ownerDB.MigrateAndGrant(ctx, "no_such_role_"+ids.New("r")[2:], notes); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("granting to a missing role: err = %v", err)
	}
	if err := ownerDB.PrepareToServe(ctx, ownerDB, notes); !errors.Is(err, storage.ErrRoleTooPowerful) {
		t.Errorf("migrating and serving as one role: err = %v; want ErrRoleTooPowerful", err)
	}

	if err := servingDB.PrepareToServe(ctx, ownerDB, notes); err != nil {
		t.Fatalf("migrate as the owner, serve as the serving role: %v", err)
	}
	if !servingDB.Migrated() {
		t.Error("Migrated() = false after PrepareToServe")
	}
	err = ownerDB.PrepareToServe(ctx, nil, notes)
	if !errors.Is(err, storage.ErrRoleTooPowerful) || !strings.Contains(err.Error(), "table notes") ||
		!strings.Contains(err.Error(), "bulkhead migrate") || !strings.Contains(err.Error(), "owns nothing") {
		t.Errorf("serving as the tables' owner: err = %v; want ErrRoleTooPowerful naming the table and the remedy", err)
	}
	// A node of a newer version, whose migrations were not applied, refuses to serve.
	if err := openRaw(t, owner).MigrateAndGrant(ctx, roleOf(t, serving), notes, later(1)); err != nil {
		t.Fatal(err)
	}
	err = openRaw(t, serving).PrepareToServe(ctx, nil, notes, later(2))
	if !errors.Is(err, storage.ErrNotMigrated) || !strings.Contains(err.Error(), "later/002_b.sql") {
		t.Errorf("serving with a pending migration: err = %v; want ErrNotMigrated naming it", err)
	}
	if err := openRaw(t, serving).PrepareToServe(ctx, nil, notes, later(1)); err != nil {
		t.Errorf("serving a current schema without a migration connection: %v", err)
	}
}

// TestPrepareToServeRefusesOwnersByMembership: a serving role that is a
// member of the owner role (it could SET ROLE to it), or that may create
// roles (and so grant itself the owner's), is refused too. The roles are
// made by a superuser.
func TestPrepareToServeRefusesOwnersByMembership(t *testing.T) {
	ctx := context.Background()
	serving, owner := storagetest.PostgresDSNs(t)
	storagetest.Open(t, serving, notes)
	super, err := sql.Open("pgx", superuserDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close()
	for _, tc := range []struct {
		name, grant, want string
	}{
		{"member of the owner", "GRANT " + roleOf(t, owner) + " TO %s", "table notes"},
		{"createrole", "ALTER ROLE %s CREATEROLE", "CREATEROLE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			role := "bulkhead_test_" + strings.ToLower(ids.New("r")[2:12])
			if _, err := super.ExecContext(ctx, "CREATE ROLE "+role+" LOGIN PASSWORD 'x'"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { super.ExecContext(ctx, "DROP ROLE "+role) })
			if _, err := super.ExecContext(ctx, strings.ReplaceAll(tc.grant, "%s", role)); err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(serving)
			u.User = url.UserPassword(role, "x")
			db := openRaw(t, u.String())
			if err := db.PrepareToServe(ctx, nil, notes); !errors.Is(err, storage.ErrRoleTooPowerful) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("PrepareToServe: err = %v; want ErrRoleTooPowerful naming %q", err, tc.want)
			}
			if err := openRaw(t, owner).MigrateAndGrant(ctx, role, notes); !errors.Is(err, storage.ErrRoleTooPowerful) {
				t.Errorf("MigrateAndGrant to it: err = %v; want ErrRoleTooPowerful", err)
			}
		})
	}
}

// TestSQLiteNeedsNoMigrationDatabase: SQLite is migrated by the node that
// serves it, and takes no owner connection.
func TestSQLiteNeedsNoMigrationDatabase(t *testing.T) {
	ctx := context.Background()
	db := openRaw(t, storagetest.DSN(t, storage.SQLite))
	if err := db.PrepareToServe(ctx, db, notes); err == nil {
		t.Error("PrepareToServe on SQLite with a migration connection: no error")
	}
	if err := db.PrepareToServe(ctx, nil, notes); err != nil || !db.Migrated() {
		t.Errorf("PrepareToServe on SQLite: %v (migrated %v)", err, db.Migrated())
	}
	if err := db.MigrateAndGrant(ctx, "bulkhead", notes); err == nil {
		t.Error("MigrateAndGrant on SQLite: no error")
	}
}
