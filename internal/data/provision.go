package data

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// Everything here runs on a cluster as its admin role, idempotently: a
// step cut off anywhere (kill -9 included) runs again from the start and
// finds what the first run made. Each object Bulkhead makes for a tenant
// is marked with a comment naming the tenant, written in the transaction
// that creates it (CREATE DATABASE, which no transaction may hold, is
// marked just after and recognised by its owner in between); an object of
// the same name without the mark is someone else's and is never used,
// changed or dropped.

// marker is the comment on what Bulkhead makes for tenant id.
func marker(id tenant.ID) string { return "bulkhead placement of tenant " + string(id) }

// The kinds of object Bulkhead makes for a tenant.
const (
	kindRole     = "role"
	kindSchema   = "schema"
	kindDatabase = "database"
)

// lookups read, by name, an object's comment and whether it is fit to be
// a tenant's: a schema or database owned by the admin role, a role with
// no power.
var lookups = map[string]string{
	kindRole: `SELECT COALESCE(shobj_description(oid, 'pg_authid'), ''),
		NOT (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication) FROM pg_roles WHERE rolname = $1`,
	kindSchema: `SELECT COALESCE(obj_description(oid, 'pg_namespace'), ''),
		nspowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) FROM pg_namespace WHERE nspname = $1`,
	kindDatabase: `SELECT COALESCE(shobj_description(oid, 'pg_database'), ''),
		datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user) FROM pg_database WHERE datname = $1`,
}

// object is what lookup found.
type object struct {
	exists  bool
	comment string
	fit     bool // owned by the admin role (schema, database), powerless (role)
}

// ours reports whether the object exists and bears tenant id's mark.
func (o object) ours(id tenant.ID) bool { return o.exists && o.fit && o.comment == marker(id) }

func lookup(ctx context.Context, conn *pgx.Conn, kind, name string) (object, error) {
	o := object{exists: true}
	err := conn.QueryRow(ctx, lookups[kind], name).Scan(&o.comment, &o.fit)
	if errors.Is(err, pgx.ErrNoRows) {
		return object{}, nil
	}
	if err != nil {
		return object{}, fmt.Errorf("data: read %s %s: %w", kind, name, err)
	}
	return o, nil
}

// dml is what a tenant's role may do to its tables and sequences.
const (
	tableDML    = "SELECT, INSERT, UPDATE, DELETE"
	sequenceUse = "USAGE, SELECT, UPDATE"
)

// provision makes the role and the schema (bridge) or database (silo)
// name for tenant id, with the password, and grants exactly: the role
// USAGE on its schema and DML on its tables (and those made later by the
// admin role); the serving role membership in the role; CONNECT on a silo
// database to the role and the serving role only.
func (s *Service) provision(ctx context.Context, c cluster, model string, id tenant.ID, name, password string) error {
	conn, err := dial(ctx, c.Name, adminDSN, c.adminDSN, "")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	admin, err := currentRole(ctx, conn)
	if err != nil {
		return err
	}
	if name == c.servingRole || name == admin.name || name == c.database {
		return nameTaken(c.Name, name)
	}
	if err := ensureRole(ctx, conn, c, id, name, password); err != nil {
		return err
	}
	role := ident(name)
	if model == Bridge {
		if err := ensureSchema(ctx, conn, c, id, name); err != nil {
			return err
		}
		return execAll(ctx, conn, grantsIn(role, role, admin.name)...)
	}
	if err := ensureDatabase(ctx, conn, c, id, name); err != nil {
		return err
	}
	if err := execAll(ctx, conn,
		`REVOKE ALL ON DATABASE `+role+` FROM PUBLIC`,
		`GRANT CONNECT ON DATABASE `+role+` TO `+role+`, `+ident(c.servingRole)); err != nil {
		return err
	}
	silo, err := dial(ctx, c.Name, adminDSN, c.adminDSN, name)
	if err != nil {
		return err
	}
	defer silo.Close(context.WithoutCancel(ctx))
	return execAll(ctx, silo, append([]string{`REVOKE ALL ON SCHEMA public FROM PUBLIC`},
		grantsIn(ident("public"), role, admin.name)...)...)
}

// grantsIn are the grants to role in schema: USAGE, DML on its tables and
// sequences, and the same on those the admin role makes there later.
func grantsIn(schema, role, admin string) []string {
	return []string{
		`GRANT USAGE ON SCHEMA ` + schema + ` TO ` + role,
		`GRANT ` + tableDML + ` ON ALL TABLES IN SCHEMA ` + schema + ` TO ` + role,
		`GRANT ` + sequenceUse + ` ON ALL SEQUENCES IN SCHEMA ` + schema + ` TO ` + role,
		`ALTER DEFAULT PRIVILEGES FOR ROLE ` + ident(admin) + ` IN SCHEMA ` + schema + ` GRANT ` + tableDML + ` ON TABLES TO ` + role,
		`ALTER DEFAULT PRIVILEGES FOR ROLE ` + ident(admin) + ` IN SCHEMA ` + schema + ` GRANT ` + sequenceUse + ` ON SEQUENCES TO ` + role,
	}
}

func execAll(ctx context.Context, conn *pgx.Conn, stmts ...string) error {
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("data: provision: %w", err)
		}
	}
	return nil
}

// ensureRole makes role name for tenant id, or finds the one an earlier
// run made, and sets its password; then makes the serving role a member.
func ensureRole(ctx context.Context, conn *pgx.Conn, c cluster, id tenant.ID, name, password string) error {
	verifier, err := scramVerifier(password)
	if err != nil {
		return err
	}
	pw, err := literal(ctx, conn, verifier)
	if err != nil {
		return err
	}
	o, err := lookup(ctx, conn, kindRole, name)
	if err != nil {
		return err
	}
	role := ident(name)
	switch {
	case !o.exists:
		mark, err := literal(ctx, conn, marker(id))
		if err != nil {
			return err
		}
		if err := inTx(ctx, conn,
			`CREATE ROLE `+role+` LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION PASSWORD `+pw,
			`COMMENT ON ROLE `+role+` IS `+mark); err != nil {
			return err
		}
	case !o.ours(id):
		return nameTaken(c.Name, name)
	default:
		if _, err := conn.Exec(ctx, `ALTER ROLE `+role+` PASSWORD `+pw); err != nil {
			return fmt.Errorf("data: set role password: %w", err)
		}
	}
	if _, err := conn.Exec(ctx, `GRANT `+role+` TO `+ident(c.servingRole)); err != nil {
		return fmt.Errorf("data: grant the serving role: %w", err)
	}
	return nil
}

// ensureSchema makes schema name in the shared database, or finds the one
// an earlier run made.
func ensureSchema(ctx context.Context, conn *pgx.Conn, c cluster, id tenant.ID, name string) error {
	o, err := lookup(ctx, conn, kindSchema, name)
	switch {
	case err != nil:
		return err
	case o.exists && !o.ours(id):
		return nameTaken(c.Name, name)
	case o.exists:
		return nil
	}
	mark, err := literal(ctx, conn, marker(id))
	if err != nil {
		return err
	}
	schema := ident(name)
	return inTx(ctx, conn, `CREATE SCHEMA `+schema, `REVOKE ALL ON SCHEMA `+schema+` FROM PUBLIC`, `COMMENT ON SCHEMA `+schema+` IS `+mark)
}

// ensureDatabase makes database name, or finds the one an earlier run
// made: marked, or cut off between CREATE DATABASE and its comment. The
// latter is told from someone else's database of the same name (another
// cluster's shared database on the server, an application's other
// database, owned by the same admin role) by what no database in use has:
// Bulkhead creates it with ALLOW_CONNECTIONS false, and allows them only
// once it is marked. An unmarked database that accepts connections is
// never taken, granted or, later, dropped.
func ensureDatabase(ctx context.Context, conn *pgx.Conn, c cluster, id tenant.ID, name string) error {
	o, err := lookup(ctx, conn, kindDatabase, name)
	if err != nil {
		return err
	}
	db := ident(name)
	switch {
	case !o.exists:
		// Not in a transaction: CREATE DATABASE may not be.
		if _, err := conn.Exec(ctx, `CREATE DATABASE `+db+` WITH ALLOW_CONNECTIONS false`); err != nil {
			return fmt.Errorf("data: create database: %w", err)
		}
	case !o.fit || (o.comment != "" && o.comment != marker(id)):
		return nameTaken(c.Name, name)
	case o.comment == "":
		var unused bool
		if err := conn.QueryRow(ctx, `SELECT NOT datallowconn AND NOT datistemplate FROM pg_database WHERE datname = $1`,
			name).Scan(&unused); err != nil {
			return fmt.Errorf("data: read database %s: %w", name, err)
		}
		if !unused {
			return nameTaken(c.Name, name)
		}
	}
	mark, err := literal(ctx, conn, marker(id))
	if err != nil {
		return err
	}
	return execAll(ctx, conn, `COMMENT ON DATABASE `+db+` IS `+mark, `ALTER DATABASE `+db+` WITH ALLOW_CONNECTIONS true`)
}

// inTx runs stmts in one transaction: what they make exists marked, or
// not at all.
func inTx(ctx context.Context, conn *pgx.Conn, stmts ...string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, q := range stmts {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("data: provision: %w", err)
			}
		}
		return nil
	})
}

// revokeAccess takes the serving role's way to a tenant's role away: its
// membership, and for a silo its CONNECT. The role's own grants stay, for
// the data to be intact until it is dropped.
func revokeAccess(ctx context.Context, c cluster, model, name string) error {
	conn, err := dial(ctx, c.Name, adminDSN, c.adminDSN, "")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	role, serving := ident(name), ident(c.servingRole)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("data: read role: %w", err)
	}
	if exists {
		if _, err := conn.Exec(ctx, `REVOKE `+role+` FROM `+serving); err != nil {
			return fmt.Errorf("data: revoke the serving role's membership: %w", err)
		}
	}
	if model == Silo {
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
			return fmt.Errorf("data: read database: %w", err)
		}
		if exists {
			if _, err := conn.Exec(ctx, `REVOKE CONNECT ON DATABASE `+role+` FROM `+serving); err != nil {
				return fmt.Errorf("data: revoke the serving role's CONNECT: %w", err)
			}
		}
	}
	return nil
}
