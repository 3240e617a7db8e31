package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A migration file is named NNN_description.sql and lives in the owning
// service's embedded file system. Each service owns its tables and migrates
// them under its own component name; versions are per component.
//
// A migration is written once, at the top of that file system, and runs on
// both dialects. Only where the dialects' SQL really differs (a column type:
// BLOB and BYTEA, INTEGER and BOOLEAN; AUTOINCREMENT and identity columns) is
// a version written twice instead, as sqlite/NNN_x.sql and
// postgres/NNN_x.sql; a version is never both shared and a dialect's own.
// The row-level security that every table has on PostgreSQL is not written
// in the migrations but declared in Component.RowSecurity (see Rows).

const migrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	component  TEXT NOT NULL,
	version    INTEGER NOT NULL,
	name       TEXT NOT NULL,
	applied_at BIGINT NOT NULL,
	PRIMARY KEY (component, version)
)`

// Component is one service's set of migrations.
type Component struct {
	Name string // e.g. "tenant", "audit"
	FS   fs.FS  // holds NNN_x.sql, and sqlite/NNN_x.sql and postgres/NNN_x.sql

	// RowSecurity says, for each of the component's tables, whose its rows
	// are; on PostgreSQL the migration that creates the table (CREATE TABLE
	// name, at the start of a line) enables and forces row-level security
	// on it and creates the policies that follow (Rows), in the same
	// transaction. A table whose policies are none of those is left out and
	// has its statements written in a postgres/ migration.
	//
	// It is declared here, beside Privileges, rather than marked in the SQL,
	// so that the SQL files hold only SQL that runs as written and the
	// tables' isolation is read in one place. An existing table cannot be
	// added here later: the migration that created it does not run again
	// on a database that has it. It gets a new postgres/ migration with
	// the statements written out instead.
	RowSecurity map[string]Rows

	// Privileges names, for those of the component's tables that the
	// serving role must not change freely, the privileges it gets on
	// PostgreSQL, in GRANT's syntax ("SELECT, INSERT", "UPDATE (seq, hash)").
	// Every other table gets SELECT, INSERT, UPDATE, DELETE. The grants are
	// a lock beside the policies that the serving role cannot switch off: a
	// service that never changes or removes some rows says so here, and
	// the database refuses the serving role those statements outright.
	Privileges map[string]string
}

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the component's migrations for dialect d in order of
// version: the shared files and d's own, each followed on PostgreSQL by the
// row-level security of the tables it creates.
func (c Component) migrations(d Dialect) ([]migration, error) {
	shared, err := c.read(".")
	if err != nil {
		return nil, err
	}
	own, err := c.read(string(d))
	if err != nil {
		return nil, err
	}
	if len(shared) == 0 && len(own) == 0 {
		return nil, fmt.Errorf("storage: migrations of %s: none for %s", c.Name, d)
	}
	ms := own
	for _, m := range shared {
		if i := slices.IndexFunc(own, func(o migration) bool { return o.version == m.version }); i >= 0 {
			return nil, fmt.Errorf("storage: migration %s: version %d is both shared (%s) and %s's own (%s/%s); write it once or once per dialect",
				c.Name, m.version, m.name, d, d, own[i].name)
		}
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	if d == Postgres {
		if err := c.addRowSecurity(ms); err != nil {
			return nil, err
		}
	}
	return ms, nil
}

// read returns the migrations in directory dir of c.FS, none if it does
// not exist.
func (c Component) read(dir string) ([]migration, error) {
	entries, err := fs.ReadDir(c.FS, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storage: migrations of %s: %w", c.Name, err)
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("storage: migration %s/%s: name must be NNN_description.sql", c.Name, e.Name())
		}
		b, err := fs.ReadFile(c.FS, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("storage: read migration %s/%s: %w", c.Name, e.Name(), err)
		}
		if i := slices.IndexFunc(ms, func(m migration) bool { return m.version == v }); i >= 0 {
			return nil, fmt.Errorf("storage: migration %s: version %d appears twice (%s, %s)", c.Name, v, ms[i].name, e.Name())
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	return ms, nil
}

// Migrate applies every pending migration of the components, in order, each
// in its own transaction. On PostgreSQL an advisory lock keeps nodes that
// start together from migrating at once.
func (db *DB) Migrate(ctx context.Context, components ...Component) error {
	return db.migrate(ctx, "", components)
}

// MigrateAndGrant is Migrate on PostgreSQL, run as the role that owns
// Bulkhead's tables, followed by setting what grantee, the role that
// serves, may do with them (see grant). It sets the privileges every
// time, under the same lock, so tables added by later migrations are
// covered and privileges granted by hand beyond them are taken back.
// components must be every component whose tables are in the schema
// (a table whose component is missing gets the default privileges).
//
// It refuses a grantee that is the migrating role or could act as the
// owner of the database, its schema or its tables: that role could
// switch row-level security off.
func (db *DB) MigrateAndGrant(ctx context.Context, grantee string, components ...Component) error {
	if db.dialect != Postgres {
		return errors.New("storage: privileges are granted on PostgreSQL only; SQLite has no roles")
	}
	if grantee == "" {
		return errors.New("storage: no role to grant privileges to")
	}
	return db.migrate(ctx, grantee, components)
}

func (db *DB) migrate(ctx context.Context, grantee string, components []Component) error {
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("storage: migrate: %w", err)
	}
	defer conn.Close()
	if db.dialect == Postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(7262846553)`); err != nil {
			return fmt.Errorf("storage: migrate lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7262846553)`)
	}
	if grantee != "" {
		if err := checkGrantee(ctx, conn, grantee); err != nil {
			return err
		}
	}
	if _, err := conn.ExecContext(ctx, migrationsTable); err != nil {
		return fmt.Errorf("storage: create schema_migrations: %w", err)
	}
	for _, c := range components {
		ms, err := c.migrations(db.dialect)
		if err != nil {
			return err
		}
		applied := map[int]bool{}
		rows, err := conn.QueryContext(ctx, Rebind(`SELECT version FROM schema_migrations WHERE component = ?`), c.Name)
		if err != nil {
			return fmt.Errorf("storage: read schema_migrations: %w", err)
		}
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return fmt.Errorf("storage: read schema_migrations: %w", err)
			}
			applied[v] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("storage: read schema_migrations: %w", err)
		}
		for _, m := range ms {
			if applied[m.version] {
				continue
			}
			tx, err := conn.BeginTx(ctx, nil)
			if err != nil {
				return fmt.Errorf("storage: migrate %s/%s: %w", c.Name, m.name, err)
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				tx.Rollback()
				return fmt.Errorf("storage: migrate %s/%s: %w", c.Name, m.name, err)
			}
			if _, err := tx.ExecContext(ctx,
				Rebind(`INSERT INTO schema_migrations (component, version, name, applied_at) VALUES (?, ?, ?, ?)`),
				c.Name, m.version, m.name, time.Now().UnixMicro()); err != nil {
				tx.Rollback()
				return fmt.Errorf("storage: record migration %s/%s: %w", c.Name, m.name, err)
			}
			if err := tx.Commit(); err != nil {
				return fmt.Errorf("storage: migrate %s/%s: %w", c.Name, m.name, err)
			}
		}
	}
	if grantee != "" {
		if err := grant(ctx, conn, grantee, components); err != nil {
			return err
		}
	}
	db.migrated.Store(true)
	return nil
}

// Embedded returns the component name whose migrations are in the
// "migrations" directory of fsys (a service's //go:embed migrations).
func Embedded(name string, fsys fs.FS) Component {
	sub, err := fs.Sub(fsys, "migrations")
	if err != nil {
		panic(err) // the embedded directory is part of the binary
	}
	return Component{Name: name, FS: sub}
}

// AppliedAt returns when migration version of component was applied to
// this database, the zero time if it was not. A service whose migration
// began to record something (the last use of a credential) reads from it
// since when its records are complete. Any scope may read it: the serving
// role may read schema_migrations, which has no row-level security.
func (tx *Tx) AppliedAt(ctx context.Context, component string, version int) (time.Time, error) {
	var at int64
	err := tx.QueryRow(ctx, `SELECT applied_at FROM schema_migrations WHERE component = ? AND version = ?`, component, version).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("storage: read schema_migrations: %w", err)
	}
	return time.UnixMicro(at).UTC(), nil
}
