package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// On PostgreSQL two roles take part. The owner role owns the database, the
// schema and every table: it runs the migrations (MigrateAndGrant) and
// nothing else. The serving role, which every node connects as, owns
// nothing and holds only the privileges grant gives it. A table's owner can
// switch its row-level security off, drop its policies or the table itself;
// so a leaked serving credential could otherwise rewrite the append-only
// audit trail, which the policies alone cannot prevent.

// ErrNotMigrated is wrapped by PrepareToServe's refusal of a PostgreSQL
// schema that is missing, out of the serving role's reach, or behind the
// migrations it was given.
var ErrNotMigrated = errors.New("database not migrated")

// ErrRoleTooPowerful is wrapped by the refusal of a PostgreSQL serving role
// that could act as the owner of Bulkhead's database objects, or as a role
// that row-level security does not bind.
var ErrRoleTooPowerful = errors.New("role too powerful to serve")

// defaultPrivileges are what the serving role may do with a table whose
// component names nothing narrower (Component.Privileges).
const defaultPrivileges = "SELECT, INSERT, UPDATE, DELETE"

// queryer is a *sql.DB, *sql.Conn or *sql.Tx.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// powers lists what would let role escape row-level security if it served
// Bulkhead. roles are the roles it can act as (itself included) that are
// superusers, bypass row-level security, or may create roles (up to
// PostgreSQL 15 that lets a role grant itself any other, the owner's
// included). owned are the objects it can act as the owner of: the current
// database (its owner can create schemas and, on PostgreSQL 15 and later,
// owns the public schema), the schema with OID schema (0: none yet) and
// every table and sequence in it. Acting as a role includes membership in
// it, since SET ROLE gets there.
func powers(ctx context.Context, q queryer, role string, schema uint32) (roles, owned []string, err error) {
	rows, err := q.QueryContext(ctx, `
		SELECT 1, CASE WHEN r.rolname = $1::name THEN 'is ' ELSE format('is a member of %I, which is ', r.rolname) END ||
			concat_ws(' and ', CASE WHEN r.rolsuper THEN 'a superuser' END,
				CASE WHEN r.rolbypassrls THEN 'exempt from row-level security (BYPASSRLS)' END,
				CASE WHEN r.rolcreaterole THEN 'allowed to create roles (CREATEROLE)' END)
		FROM pg_roles r
		WHERE (r.rolsuper OR r.rolbypassrls OR r.rolcreaterole) AND pg_has_role($1::name, r.oid, 'MEMBER')
		UNION ALL
		SELECT 2, format('database %I', d.datname) FROM pg_database d
		WHERE d.datname = current_database() AND pg_has_role($1::name, d.datdba, 'MEMBER')
		UNION ALL
		SELECT 3, format('schema %I', n.nspname) FROM pg_namespace n
		WHERE n.oid = $2::oid AND pg_has_role($1::name, n.nspowner, 'MEMBER')
		UNION ALL
		SELECT CASE WHEN c.relkind = 'S' THEN 5 ELSE 4 END,
			format('%s %I', CASE c.relkind WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'table' END, c.relname)
		FROM pg_class c
		WHERE c.relnamespace = $2::oid AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S') AND pg_has_role($1::name, c.relowner, 'MEMBER')
		ORDER BY 1, 2`, role, schema)
	if err != nil {
		return nil, nil, fmt.Errorf("storage: check the privileges of role %q: %w", role, err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind int
		var what string
		if err := rows.Scan(&kind, &what); err != nil {
			return nil, nil, fmt.Errorf("storage: check the privileges of role %q: %w", role, err)
		}
		if kind == 1 {
			roles = append(roles, what)
		} else {
			owned = append(owned, what)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("storage: check the privileges of role %q: %w", role, err)
	}
	return roles, owned, nil
}

// tooPowerful explains why role must not serve, or returns nil if powers
// found nothing.
func tooPowerful(role string, roles, owned []string) error {
	if len(roles) == 0 && len(owned) == 0 {
		return nil
	}
	var why []string
	if len(roles) > 0 {
		why = append(why, fmt.Sprintf("postgres role %q %s, so row-level security need not bind it", role, strings.Join(roles, " and ")))
	}
	if len(owned) > 0 {
		list := owned
		if len(list) > 5 {
			list = append(list[:5:5], fmt.Sprintf("and %d more", len(owned)-5))
		}
		why = append(why, fmt.Sprintf("postgres role %q can act as the owner of %s (directly or as a member of the owning role), "+
			"so it could switch row-level security off and rewrite the audit trail", role, strings.Join(list, ", ")))
	}
	return fmt.Errorf("storage: %w: %s. %s", ErrRoleTooPowerful, strings.Join(why, "; "), roleAdvice)
}

// roleAdvice says how to set the roles up.
const roleAdvice = "Serve as an ordinary role that owns nothing: create an owner role that owns the database, " +
	"run `bulkhead migrate --database <owner's URL> --grant-to <ordinary role>` as the owner, and serve with --database " +
	"as the ordinary role (an existing deployment first hands its objects to the owner role with REASSIGN OWNED; " +
	"see README, Running on PostgreSQL)"

// checkGrantee refuses to grant privileges to a role that could not serve:
// one that does not exist, the migrating role itself, or one that powers
// finds fault with in the schema being migrated.
func checkGrantee(ctx context.Context, conn *sql.Conn, grantee string) error {
	var exists, self bool
	var schema sql.NullInt64
	err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1::name), $1::name = current_user,
		(SELECT oid FROM pg_namespace WHERE nspname = current_schema())`, grantee).Scan(&exists, &self, &schema)
	if err != nil {
		return fmt.Errorf("storage: check role %q: %w", grantee, err)
	}
	if !exists {
		return fmt.Errorf("storage: role %q, to be granted the serving privileges, does not exist", grantee)
	}
	if self {
		return fmt.Errorf("storage: %w: postgres role %q migrates, so it owns the tables; grant the serving privileges to another role. %s",
			ErrRoleTooPowerful, grantee, roleAdvice)
	}
	roles, owned, err := powers(ctx, conn, grantee, uint32(schema.Int64))
	if err != nil {
		return err
	}
	return tooPowerful(grantee, roles, owned)
}

// grant sets, in one transaction, everything grantee may do in the schema
// that was just migrated (the migrating connection's current schema):
// USAGE on the schema; on each table the privileges its component names
// (Component.Privileges), SELECT alone on schema_migrations (a serving node
// only checks that the schema is current), and SELECT, INSERT, UPDATE,
// DELETE on the rest — never TRUNCATE, REFERENCES or TRIGGER; USAGE on
// sequences, except an identity column's, which inserts use without any
// privilege. It revokes grantee's other privileges on these objects first,
// so the result is exact whatever was granted before.
func grant(ctx context.Context, conn *sql.Conn, grantee string, components []Component) (err error) {
	privileges := map[string]string{}
	for _, c := range components {
		for table, p := range c.Privileges {
			privileges[table] = p
		}
	}
	privileges["schema_migrations"] = "SELECT"
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: grant: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	var schema string
	if err := tx.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("storage: grant: current schema: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `
		SELECT c.relname, c.relkind = 'S', EXISTS (SELECT 1 FROM pg_depend d
			WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'i')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'S')
		ORDER BY c.relname`)
	if err != nil {
		return fmt.Errorf("storage: grant: list tables: %w", err)
	}
	role := pgx.Identifier{grantee}.Sanitize()
	stmts := []string{
		"REVOKE ALL ON SCHEMA " + pgx.Identifier{schema}.Sanitize() + " FROM " + role,
		"GRANT USAGE ON SCHEMA " + pgx.Identifier{schema}.Sanitize() + " TO " + role,
	}
	found := map[string]bool{}
	for rows.Next() {
		var name string
		var sequence, identity bool
		if err := rows.Scan(&name, &sequence, &identity); err != nil {
			rows.Close()
			return fmt.Errorf("storage: grant: list tables: %w", err)
		}
		obj := pgx.Identifier{schema, name}.Sanitize()
		if sequence {
			stmts = append(stmts, "REVOKE ALL ON SEQUENCE "+obj+" FROM "+role)
			if !identity {
				stmts = append(stmts, "GRANT USAGE ON SEQUENCE "+obj+" TO "+role)
			}
			continue
		}
		found[name] = true
		p, ok := privileges[name]
		if !ok {
			p = defaultPrivileges
		}
		stmts = append(stmts, "REVOKE ALL ON TABLE "+obj+" FROM "+role, "GRANT "+p+" ON TABLE "+obj+" TO "+role)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("storage: grant: list tables: %w", err)
	}
	var missing []string
	for table := range privileges {
		if !found[table] {
			missing = append(missing, table)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("storage: grant: privileges are declared for %s, not tables of schema %s", strings.Join(missing, ", "), schema)
	}
	if _, err := tx.ExecContext(ctx, strings.Join(stmts, ";\n")); err != nil {
		return fmt.Errorf("storage: grant privileges to role %q: %w", grantee, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: grant: %w", err)
	}
	return nil
}

// PrepareToServe readies db, the connection Bulkhead serves from, for the
// services whose migrations are components (all of them).
//
// On SQLite it migrates db: one process owns the file. On PostgreSQL, when
// owner is not nil (a connection as the role that owns Bulkhead's tables),
// owner migrates the database and grants db's role its privileges first
// (MigrateAndGrant). Then PrepareToServe refuses a role that could act as
// the owner of the database, its schema or a table in it, or as a role
// that row-level security does not bind (ErrRoleTooPowerful), and a schema
// that is missing or behind the migrations (ErrNotMigrated).
func (db *DB) PrepareToServe(ctx context.Context, owner *DB, components ...Component) error {
	if db.dialect != Postgres {
		if owner != nil {
			return errors.New("storage: a migration database is for PostgreSQL; the node that serves an SQLite database migrates it itself")
		}
		return db.Migrate(ctx, components...)
	}
	if owner != nil {
		if owner.dialect != Postgres {
			return errors.New("storage: the migration database must be the PostgreSQL database that is served, as its owner role")
		}
		if owner.role == db.role {
			return fmt.Errorf("storage: %w: the migration and the serving connections are both postgres role %q. %s",
				ErrRoleTooPowerful, db.role, roleAdvice)
		}
		if err := owner.MigrateAndGrant(ctx, db.role, components...); err != nil {
			return err
		}
	}
	migrated, schema, err := db.schema(ctx)
	if err != nil {
		return err
	}
	roles, owned, err := powers(ctx, db.read, db.role, schema)
	if err != nil {
		return err
	}
	if err := tooPowerful(db.role, roles, owned); err != nil {
		return err
	}
	if !migrated {
		return fmt.Errorf("storage: %w: postgres role %q finds no schema_migrations table on its search_path "+
			"(the database was never migrated, or the role was not granted the use of its schema); "+
			"run `bulkhead migrate --database <owner's URL> --grant-to %s` as the role that owns the database, "+
			"or start serve with --migration-database <owner's URL>", ErrNotMigrated, db.role, db.role)
	}
	pending, err := db.pending(ctx, components)
	if err != nil {
		return fmt.Errorf("storage: %w: read schema_migrations as postgres role %q: %w; "+
			"run `bulkhead migrate --database <owner's URL> --grant-to %s`", ErrNotMigrated, db.role, err, db.role)
	}
	if len(pending) > 0 {
		if len(pending) > 5 {
			pending = append(pending[:5:5], fmt.Sprintf("and %d more", len(pending)-5))
		}
		return fmt.Errorf("storage: %w: migrations %s are not applied; run `bulkhead migrate --database <owner's URL> --grant-to %s` "+
			"with this version, or start serve with --migration-database <owner's URL>", ErrNotMigrated, strings.Join(pending, ", "), db.role)
	}
	db.migrated.Store(true)
	return nil
}

// pending lists the migrations of components that schema_migrations does
// not record, as component/file.
func (db *DB) pending(ctx context.Context, components []Component) ([]string, error) {
	applied := map[string]map[int]bool{}
	rows, err := db.read.QueryContext(ctx, `SELECT component, version FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		var v int
		if err := rows.Scan(&c, &v); err != nil {
			return nil, err
		}
		if applied[c] == nil {
			applied[c] = map[int]bool{}
		}
		applied[c][v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var pending []string
	for _, c := range components {
		ms, err := c.migrations(db.dialect)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if !applied[c.Name][m.version] {
				pending = append(pending, c.Name+"/"+m.name)
			}
		}
	}
	return pending, nil
}

// schema finds the schema Bulkhead's tables are in: schema_migrations', or
// before the first migration the one it would be created in.
func (db *DB) schema(ctx context.Context) (migrated bool, oid uint32, err error) {
	var schema sql.NullInt64
	err = db.read.QueryRowContext(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL, COALESCE(
		(SELECT relnamespace FROM pg_class WHERE oid = to_regclass('schema_migrations')),
		(SELECT oid FROM pg_namespace WHERE nspname = current_schema()))`).Scan(&migrated, &schema)
	if err != nil {
		return false, 0, fmt.Errorf("storage: find schema_migrations: %w", err)
	}
	return migrated, uint32(schema.Int64), nil
}

// ServingPowers lists, now, what would let the serving role escape
// row-level security — what PrepareToServe refused at the start, which a
// later GRANT or ALTER … OWNER may have given it since — and whether it
// may create objects in Bulkhead's schema. Nothing on SQLite.
func (db *DB) ServingPowers(ctx context.Context) (role string, found []string, err error) {
	if db.dialect != Postgres {
		return "", nil, nil
	}
	_, schema, err := db.schema(ctx)
	if err != nil {
		return db.role, nil, err
	}
	roles, owned, err := powers(ctx, db.read, db.role, schema)
	if err != nil {
		return db.role, nil, err
	}
	found = append(roles, owned...)
	var create bool
	if err := db.read.QueryRowContext(ctx, `SELECT has_schema_privilege($1::name, $2::oid, 'CREATE')`, db.role, schema).Scan(&create); err != nil {
		return db.role, nil, fmt.Errorf("storage: check the privileges of role %q: %w", db.role, err)
	}
	if create {
		found = append(found, "may create objects in Bulkhead's schema")
	}
	return db.role, found, nil
}
