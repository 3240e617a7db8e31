package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// migratePlace applies todo to p in order, on one connection, and stops at
// the first file that fails.
func migratePlace(ctx context.Context, c Cluster, r *Result, todo []File, prog *progress) {
	if len(todo) == 0 || r.Err != nil {
		return
	}
	conn, release, err := c.Databases.Conn(ctx, r.Database)
	if err != nil {
		r.Err = fmt.Errorf("migrate: %s: %w", r.Place, err)
		return
	}
	defer release()
	for i, f := range todo {
		if err := ctx.Err(); err != nil {
			r.Err = fmt.Errorf("migrate: %s: stopped before %s: %w", r.Place, f.Name, err)
			return
		}
		if err := apply(ctx, conn, r.Place, f, r.Last == "", i == 0); err != nil {
			r.Err = err
			return
		}
		r.Last, r.Pending, r.Applied = f.Name, r.Pending-1, append(r.Applied, f.Name)
		prog.step(r.Place, f.Name)
	}
}

// apply runs f on p in one transaction with its ledger row, in two round
// trips: the transaction's start and the file, as one simple query (a file
// has many statements, which only the simple protocol takes), then the
// ledger row and the commit. In the pool a third and maybe a fourth, to
// protect the tables the file made, come between.
func apply(ctx context.Context, conn *pgx.Conn, p Place, f File, first, defaults bool) (err error) {
	pc := conn.PgConn()
	defer func() {
		if err != nil {
			rollback(ctx, conn)
		}
	}()
	pre := prelude(p, first, defaults)
	if _, err := pc.Exec(ctx, pre+f.SQL).ReadAll(); err != nil {
		return fileError(p, f, pre, err)
	}
	if p.Model == Pool {
		if err := protectPool(ctx, conn, p); err != nil {
			return fmt.Errorf("migrate: %s on %s: protect the tenant tables: %w", f.Name, p, err)
		}
	}
	var b pgconn.Batch
	b.ExecParams(`INSERT INTO `+ledgerOf(p)+` (name, checksum, applied_at) VALUES ($1, $2, now())`,
		[][]byte{[]byte(f.Name), []byte(f.Checksum)}, nil, nil, nil)
	b.ExecParams(`COMMIT`, nil, nil, nil, nil)
	res, err := pc.ExecBatch(ctx, &b).ReadAll()
	if err != nil {
		return fmt.Errorf("migrate: %s on %s: record it: %w", f.Name, p, err)
	}
	if tag := res[len(res)-1].CommandTag.String(); tag != "COMMIT" {
		// COMMIT of a transaction that failed answers ROLLBACK.
		return fmt.Errorf("migrate: %s on %s: the transaction did not commit (%s)", f.Name, p, tag)
	}
	return nil
}

// prelude begins a file's transaction: the place's schema as search_path
// (the file's unqualified names are the place's) and, with defaults, the
// place's role's privileges on what the admin role creates in it (default
// privileges are the admin role's own: set by the first file of each Run,
// they follow a change of the cluster's admin role). The first file
// applied to a place also creates its ledger, which the role may not
// touch, and gives the role what is already in the schema (a place
// adopted with tables in it).
//
// In the pool, whose schema is shared by every tenant, only the tenant
// tables are the serving role's (protectPool): a table without tenant_id
// holds rows of no tenant, which a tenant's request must not write.
func prelude(p Place, first, defaults bool) string {
	schema, role := pgx.Identifier{p.Schema}.Sanitize(), pgx.Identifier{p.Role}.Sanitize()
	var b strings.Builder
	b.WriteString("BEGIN;\nSET LOCAL search_path TO " + schema + ";\n")
	if first {
		b.WriteString("CREATE TABLE IF NOT EXISTS " + ledgerOf(p) +
			" (name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL);\n")
		if p.Model != Pool {
			b.WriteString("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA " + schema + " TO " + role + ";\n")
			b.WriteString("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA " + schema + " TO " + role + ";\n")
		}
		b.WriteString("REVOKE ALL ON " + ledgerOf(p) + " FROM PUBLIC, " + role + ";\n")
	}
	if p.Model != Pool && defaults {
		b.WriteString("ALTER DEFAULT PRIVILEGES IN SCHEMA " + schema + " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO " + role + ";\n")
		b.WriteString("ALTER DEFAULT PRIVILEGES IN SCHEMA " + schema + " GRANT USAGE, SELECT ON SEQUENCES TO " + role + ";\n")
	}
	return b.String()
}

// poolTables finds, in schema $1, the tables with a tenant_id column and
// what they lack of their protection, and the sequences of their columns
// that the serving role ($2) may not use. A table on which the serving role
// holds any of the four privileges keeps what it has: a file that revoked
// one meant it.
const poolTables = `
SELECT 'table', c.relname, c.relrowsecurity, c.relforcerowsecurity,
       EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'bulkhead_tenant'),
       has_table_privilege($2::text, c.oid, 'SELECT, INSERT, UPDATE, DELETE')
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
 WHERE n.nspname = $1::text AND c.relkind IN ('r', 'p')
UNION ALL
SELECT 'sequence', s.relname, true, true, true, false
  FROM pg_class s
  JOIN pg_namespace n ON n.oid = s.relnamespace
  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attname = 'tenant_id' AND NOT a.attisdropped
 WHERE n.nspname = $1::text AND s.relkind = 'S'
   AND CASE WHEN s.relkind = 'S' THEN NOT has_sequence_privilege($2::text, s.oid, 'USAGE') END -- not called on what is no sequence
 ORDER BY 1, 2`

// tenantPolicy is the pool's row-level security policy (DESIGN: data
// placements), which the SDK's scoped transaction satisfies.
const tenantPolicy = ` USING (tenant_id = current_setting('app.tenant_id', true))` +
	` WITH CHECK (tenant_id = current_setting('app.tenant_id', true))`

// protectPool gives every tenant table in the pool's schema what it lacks
// of its row-level security (enabled, forced, the policy bulkhead_tenant)
// and, if the serving role has no privilege on it yet, DML for the serving
// role, in the transaction of the file that made it.
func protectPool(ctx context.Context, conn *pgx.Conn, p Place) error {
	rows, err := conn.Query(ctx, poolTables, pgx.QueryExecModeExec, p.Schema, p.Role)
	if err != nil {
		return err
	}
	var stmts []string
	role := pgx.Identifier{p.Role}.Sanitize()
	for rows.Next() {
		var (
			kind, name                 string
			rls, force, policy, served bool
		)
		if err := rows.Scan(&kind, &name, &rls, &force, &policy, &served); err != nil {
			rows.Close()
			return err
		}
		obj := pgx.Identifier{p.Schema, name}.Sanitize()
		if kind == "sequence" {
			stmts = append(stmts, "GRANT USAGE, SELECT ON SEQUENCE "+obj+" TO "+role)
			continue
		}
		if !rls {
			stmts = append(stmts, "ALTER TABLE "+obj+" ENABLE ROW LEVEL SECURITY")
		}
		if !force {
			stmts = append(stmts, "ALTER TABLE "+obj+" FORCE ROW LEVEL SECURITY")
		}
		if !policy {
			stmts = append(stmts, "CREATE POLICY bulkhead_tenant ON "+obj+tenantPolicy)
		}
		if !served {
			stmts = append(stmts, "GRANT SELECT, INSERT, UPDATE, DELETE ON "+obj+" TO "+role)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(stmts) == 0 {
		return nil
	}
	_, err = conn.PgConn().Exec(ctx, strings.Join(stmts, ";\n")).ReadAll()
	return err
}

// rollback ends a file's failed transaction, or closes the connection if
// it cannot, so that it never goes back to a pool inside one.
func rollback(ctx context.Context, conn *pgx.Conn) {
	pc := conn.PgConn()
	if pc.IsClosed() || pc.TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := pc.Exec(ctx, "ROLLBACK").ReadAll(); err != nil || pc.TxStatus() != 'I' {
		conn.Close(ctx)
	}
}

// fileError says which file failed on which place and, when PostgreSQL
// gives the position, on which line of the file.
func fileError(p Place, f File, prelude string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Position > 0 {
		if at := int(pgErr.Position) - 1 - utf8.RuneCountInString(prelude); at >= 0 {
			line := 1
			for i := range f.SQL { // i is a byte offset; at counts characters
				if at == 0 {
					break
				}
				if f.SQL[i] == '\n' {
					line++
				}
				at--
			}
			return fmt.Errorf("migrate: %s line %d on %s: %w", f.Name, line, p, err)
		}
	}
	return fmt.Errorf("migrate: %s on %s: %w", f.Name, p, err)
}
