// Package rlslint checks an application's PostgreSQL database for the
// defects that let one tenant's rows reach another in the pool model
// (shared tables, a tenant column, row-level security that compares it to
// a setting the transaction sets): `bulkhead rls lint`, in the spirit of
// Supabase's splinter.
//
// It reads the catalogs only (pg_class, pg_attribute, pg_policy, pg_index,
// pg_roles, pg_rewrite, pg_depend, pg_proc) and changes nothing, so it can
// run against production with the serving role's own DSN, which is also
// the role whose privileges it judges unless Options.Role names another.
//
// A tenant table is a table (or partitioned table, or partition: each can
// be queried on its own) of a checked schema with a column named
// Options.TenantColumn. Each Finding has a stable Code:
//
//	rls_disabled                   error    tenant table without row-level security
//	rls_not_forced                 error    RLS not FORCEd: the owner bypasses it
//	tenant_table_no_policy         warning  RLS on, no policy: every row hidden from everyone
//	policy_not_tenant_scoped       error    a permissive policy that does not restrict rows to the setting
//	role_superuser                 error    the serving role is a superuser (RLS does not bind it)
//	role_bypassrls                 error    the serving role has BYPASSRLS
//	role_createrole                error    the serving role has CREATEROLE (it can grant itself the owner's role)
//	role_owns_tenant_table         error    the serving role owns a tenant table, or can SET ROLE to its owner
//	view_not_security_invoker      error    a view over a tenant table that runs as its owner
//	materialized_view_over_tenant  error    a materialized view over a tenant table (holds every tenant's rows, no RLS)
//	security_definer_function      warning  a SECURITY DEFINER function in a checked schema
//	tenant_column_not_indexed      warning  no index begins with the tenant column
//	tenant_column_nullable         warning  the tenant column allows NULL
//
// A policy counts as tenant-scoped when its USING and WITH CHECK
// expressions (each one it has) are, at their top level, an AND of terms
// of which one is exactly tenant_column = current_setting('app.tenant_id'
// [, missing_ok]) — see restrictsToTenant. Restrictive policies are not
// judged: they can only take rows away.
package rlslint

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Codes of findings. They are stable: CI configurations and documentation
// name them.
const (
	CodeRLSDisabled            = "rls_disabled"
	CodeRLSNotForced           = "rls_not_forced"
	CodeNoPolicy               = "tenant_table_no_policy"
	CodePolicyNotTenantScoped  = "policy_not_tenant_scoped"
	CodeRoleSuperuser          = "role_superuser"
	CodeRoleBypassRLS          = "role_bypassrls"
	CodeRoleCreateRole         = "role_createrole"
	CodeRoleOwnsTable          = "role_owns_tenant_table"
	CodeViewNotSecurityInvoker = "view_not_security_invoker"
	CodeMaterializedView       = "materialized_view_over_tenant"
	CodeSecurityDefiner        = "security_definer_function"
	CodeColumnNotIndexed       = "tenant_column_not_indexed"
	CodeColumnNullable         = "tenant_column_nullable"
)

// Severity says how bad a finding is: an error can let a tenant read or
// write another's rows; a warning is a weakness or a cost.
type Severity string

const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Finding is one defect.
type Finding struct {
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`
	// Object is what the finding is about, its names quoted as SQL
	// identifiers: "public"."notes", "public"."notes" policy "p", role
	// "app", function "public"."f"(integer).
	Object string `json:"object"`
	Detail string `json:"detail"`
	// Remedy is what to do, usually a statement to run.
	Remedy string `json:"remedy"`
}

// Options say what to check.
type Options struct {
	// TenantColumn names the tenant column; "tenant_id" if empty.
	TenantColumn string
	// Setting is the setting the policies compare the column to;
	// "app.tenant_id" if empty.
	Setting string
	// Schemas are the schemas whose tables and functions are checked;
	// public if empty.
	Schemas []string
	// Role is the serving role to judge; the connection's current_user if
	// empty.
	Role string
}

// settingName is what a custom setting looks like: a prefix, a dot, a
// name (PostgreSQL needs the dot for a setting it does not know). It
// keeps the name safe to print inside a string literal in a remedy.
var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$`)

// ErrInvalidOptions wraps an Options error.
var ErrInvalidOptions = errors.New("rlslint: invalid options")

func (o Options) withDefaults() (Options, error) {
	if o.TenantColumn == "" {
		o.TenantColumn = "tenant_id"
	}
	if o.Setting == "" {
		o.Setting = "app.tenant_id"
	}
	if len(o.Schemas) == 0 {
		o.Schemas = []string{"public"}
	}
	switch {
	case !validName(o.TenantColumn):
		return o, fmt.Errorf("%w: tenant column %q: 1 to 63 bytes, no NUL", ErrInvalidOptions, o.TenantColumn)
	case !settingName.MatchString(o.Setting):
		return o, fmt.Errorf("%w: setting %q is not a custom setting name (prefix.name)", ErrInvalidOptions, o.Setting)
	case o.Role != "" && !validName(o.Role):
		return o, fmt.Errorf("%w: role %q: 1 to 63 bytes, no NUL", ErrInvalidOptions, o.Role)
	}
	for _, s := range o.Schemas {
		if !validName(s) {
			return o, fmt.Errorf("%w: schema %q: 1 to 63 bytes, no NUL", ErrInvalidOptions, s)
		}
	}
	return o, nil
}

// validName reports whether s can be a PostgreSQL identifier.
func validName(s string) bool {
	return s != "" && len(s) <= 63 && !strings.ContainsRune(s, 0)
}

// Querier is what Lint reads the catalogs through: a *pgx.Conn, a
// *pgxpool.Pool or a pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// tenantTable is a table with the tenant column, as the catalogs say.
type tenantTable struct {
	oid                         uint32
	schema, name, owner         string
	rls, forced                 bool
	notNull, indexed, roleOwner bool
}

func (t tenantTable) ident() string { return pgx.Identifier{t.schema, t.name}.Sanitize() }

// Lint checks the database q is connected to and returns its findings,
// sorted by object and code (an empty slice when there are none).
func Lint(ctx context.Context, q Querier, opts Options) ([]Finding, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	var fs []Finding
	role, err := checkRole(ctx, q, opts, &fs)
	if err != nil {
		return nil, err
	}
	tables, err := tenantTables(ctx, q, opts, role)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		fs = append(fs, tableFindings(t, role, opts)...)
	}
	if err := checkPolicies(ctx, q, opts, tables, &fs); err != nil {
		return nil, err
	}
	if err := checkViews(ctx, q, tables, &fs); err != nil {
		return nil, err
	}
	if err := checkFunctions(ctx, q, opts, &fs); err != nil {
		return nil, err
	}
	slices.SortStableFunc(fs, func(a, b Finding) int {
		if c := strings.Compare(a.Object, b.Object); c != 0 {
			return c
		}
		return strings.Compare(a.Code, b.Code)
	})
	return fs, nil
}

// checkRole judges the serving role's attributes and returns its name.
func checkRole(ctx context.Context, q Querier, opts Options, fs *[]Finding) (string, error) {
	var (
		name                      string
		super, bypass, createRole bool
	)
	err := q.QueryRow(ctx, `SELECT r.rolname, r.rolsuper, r.rolbypassrls, r.rolcreaterole FROM pg_catalog.pg_roles r
		WHERE r.rolname = coalesce(nullif($1, ''), current_user)`, opts.Role).Scan(&name, &super, &bypass, &createRole)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("rlslint: role %q does not exist", opts.Role)
	}
	if err != nil {
		return "", fmt.Errorf("rlslint: read the serving role: %w", err)
	}
	obj := "role " + pgx.Identifier{name}.Sanitize()
	if super {
		*fs = append(*fs, Finding{CodeRoleSuperuser, Error, obj,
			"the serving role is a superuser: row-level security never applies to it",
			"serve as an ordinary role: ALTER ROLE " + pgx.Identifier{name}.Sanitize() + " NOSUPERUSER;"})
	}
	if bypass {
		*fs = append(*fs, Finding{CodeRoleBypassRLS, Error, obj,
			"the serving role has BYPASSRLS: row-level security never applies to it",
			"ALTER ROLE " + pgx.Identifier{name}.Sanitize() + " NOBYPASSRLS;"})
	}
	if createRole && !super {
		*fs = append(*fs, Finding{CodeRoleCreateRole, Error, obj,
			"the serving role has CREATEROLE: it can grant itself membership in a tenant table's owner and switch row-level security off",
			"provision roles with another role: ALTER ROLE " + pgx.Identifier{name}.Sanitize() + " NOCREATEROLE;"})
	}
	return name, nil
}

// tenantTables lists the tables of the checked schemas that have the
// tenant column.
func tenantTables(ctx context.Context, q Querier, opts Options, role string) ([]tenantTable, error) {
	rows, err := q.Query(ctx, `
		SELECT c.oid, n.nspname, c.relname, pg_catalog.pg_get_userbyid(c.relowner),
		       c.relrowsecurity, c.relforcerowsecurity, a.attnotnull,
		       EXISTS (SELECT 1 FROM pg_catalog.pg_index i
		               WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum AND i.indisvalid AND i.indpred IS NULL),
		       pg_catalog.pg_has_role($3, c.relowner, 'MEMBER')
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped
		WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1)
		ORDER BY n.nspname, c.relname`, opts.Schemas, opts.TenantColumn, role)
	if err != nil {
		return nil, fmt.Errorf("rlslint: list tenant tables: %w", err)
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tenantTable, error) {
		var t tenantTable
		err := r.Scan(&t.oid, &t.schema, &t.name, &t.owner, &t.rls, &t.forced, &t.notNull, &t.indexed, &t.roleOwner)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("rlslint: list tenant tables: %w", err)
	}
	return ts, nil
}

// tableFindings judges a tenant table's own flags.
func tableFindings(t tenantTable, role string, opts Options) []Finding {
	var fs []Finding
	id, col := t.ident(), pgx.Identifier{opts.TenantColumn}.Sanitize()
	if !t.rls {
		fs = append(fs, Finding{CodeRLSDisabled, Error, id,
			"the table has a tenant column but row-level security is disabled: every query sees every tenant's rows",
			"ALTER TABLE " + id + " ENABLE ROW LEVEL SECURITY;"})
	}
	if !t.forced {
		fs = append(fs, Finding{CodeRLSNotForced, Error, id,
			"row-level security is not FORCEd: the table's owner (and whoever can become it) bypasses it",
			"ALTER TABLE " + id + " FORCE ROW LEVEL SECURITY;"})
	}
	if t.roleOwner {
		fs = append(fs, Finding{CodeRoleOwnsTable, Error, id,
			fmt.Sprintf("the serving role %s owns the table or can SET ROLE to its owner %s: it can switch row-level security off",
				pgx.Identifier{role}.Sanitize(), pgx.Identifier{t.owner}.Sanitize()),
			"give the table to a migration role the serving role is not a member of: ALTER TABLE " + id + " OWNER TO <migration role>;"})
	}
	if !t.indexed {
		fs = append(fs, Finding{CodeColumnNotIndexed, Warning, id,
			"no index begins with the tenant column: every tenant's query, and the policy's filter, scans the table",
			"CREATE INDEX ON " + id + " (" + col + ");"})
	}
	if !t.notNull {
		fs = append(fs, Finding{CodeColumnNullable, Warning, id,
			"the tenant column allows NULL: a row without a tenant belongs to no one and hides from every policy",
			"ALTER TABLE " + id + " ALTER COLUMN " + col + " SET NOT NULL;"})
	}
	return fs
}

// checkPolicies judges the policies of the tenant tables.
func checkPolicies(ctx context.Context, q Querier, opts Options, tables []tenantTable, fs *[]Finding) error {
	if len(tables) == 0 {
		return nil
	}
	oids := oidsOf(tables)
	rows, err := q.Query(ctx, `
		SELECT p.polrelid, p.polname, p.polpermissive,
		       pg_catalog.pg_get_expr(p.polqual, p.polrelid), pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)
		FROM pg_catalog.pg_policy p WHERE p.polrelid = ANY($1)
		ORDER BY p.polrelid, p.polname`, oids)
	if err != nil {
		return fmt.Errorf("rlslint: list policies: %w", err)
	}
	type policy struct {
		table            uint32
		name             string
		permissive       bool
		using, withCheck *string
	}
	ps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (policy, error) {
		var p policy
		err := r.Scan(&p.table, &p.name, &p.permissive, &p.using, &p.withCheck)
		return p, err
	})
	if err != nil {
		return fmt.Errorf("rlslint: list policies: %w", err)
	}
	has := make(map[uint32]bool)
	for _, p := range ps {
		has[p.table] = true
	}
	byOID := make(map[uint32]tenantTable, len(tables))
	for _, t := range tables {
		byOID[t.oid] = t
		if !has[t.oid] {
			*fs = append(*fs, Finding{CodeNoPolicy, Warning, t.ident(),
				"the table has a tenant column and no policy: with row-level security on, no tenant sees any row",
				createPolicy(t, opts)})
		}
	}
	for _, p := range ps {
		if !p.permissive {
			continue
		}
		var bad []string
		if p.using != nil && !restrictsToTenant(*p.using, opts.TenantColumn, opts.Setting) {
			bad = append(bad, "USING ("+*p.using+")")
		}
		if p.withCheck != nil && !restrictsToTenant(*p.withCheck, opts.TenantColumn, opts.Setting) {
			bad = append(bad, "WITH CHECK ("+*p.withCheck+")")
		}
		if len(bad) == 0 {
			continue
		}
		t := byOID[p.table]
		*fs = append(*fs, Finding{CodePolicyNotTenantScoped, Error, t.ident() + " policy " + pgx.Identifier{p.name}.Sanitize(),
			fmt.Sprintf("the permissive policy's %s does not limit rows to %s = current_setting('%s'): permissive policies add up, so it opens the rows it admits to every tenant",
				strings.Join(bad, " and "), pgx.Identifier{opts.TenantColumn}.Sanitize(), opts.Setting),
			"DROP POLICY " + pgx.Identifier{p.name}.Sanitize() + " ON " + t.ident() + "; " + createPolicy(t, opts)})
	}
	return nil
}

// oidsOf returns the tables' oids, the parameter of the queries about them.
func oidsOf(tables []tenantTable) []uint32 {
	oids := make([]uint32, len(tables))
	for i, t := range tables {
		oids[i] = t.oid
	}
	return oids
}

// createPolicy is the statement that makes a table's tenant policy
// (opts.Setting is a checked setting name: safe in a literal).
func createPolicy(t tenantTable, opts Options) string {
	cond := pgx.Identifier{opts.TenantColumn}.Sanitize() + " = current_setting('" + opts.Setting + "', true)"
	return "CREATE POLICY bulkhead_tenant ON " + t.ident() + " USING (" + cond + ") WITH CHECK (" + cond + ");"
}

// checkViews finds the views and materialized views, in any schema, over
// tenant tables, directly or through other views.
func checkViews(ctx context.Context, q Querier, tables []tenantTable, fs *[]Finding) error {
	if len(tables) == 0 {
		return nil
	}
	oids := oidsOf(tables)
	rows, err := q.Query(ctx, `
		WITH RECURSIVE over(relid) AS (
			SELECT r.ev_class FROM pg_catalog.pg_depend d
			JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
			WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
			  AND d.refobjid = ANY($1) AND r.ev_class <> d.refobjid
			UNION
			SELECT r.ev_class FROM over
			JOIN pg_catalog.pg_depend d ON d.refobjid = over.relid
			  AND d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
			JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid AND r.ev_class <> over.relid
		)
		SELECT n.nspname, c.relname, c.relkind = 'm', coalesce(c.reloptions, '{}')
		FROM over JOIN pg_catalog.pg_class c ON c.oid = over.relid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('v', 'm')
		ORDER BY 1, 2`, oids)
	if err != nil {
		return fmt.Errorf("rlslint: list views: %w", err)
	}
	type view struct {
		schema, name string
		materialized bool
		options      []string
	}
	vs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (view, error) {
		var v view
		err := r.Scan(&v.schema, &v.name, &v.materialized, &v.options)
		return v, err
	})
	if err != nil {
		return fmt.Errorf("rlslint: list views: %w", err)
	}
	for _, v := range vs {
		id := pgx.Identifier{v.schema, v.name}.Sanitize()
		switch {
		case v.materialized:
			*fs = append(*fs, Finding{CodeMaterializedView, Error, id,
				"a materialized view over a tenant table holds every tenant's rows and has no row-level security",
				"DROP MATERIALIZED VIEW " + id + "; keep per-tenant aggregates in a table with the tenant column and a policy"})
		case !securityInvoker(v.options):
			*fs = append(*fs, Finding{CodeViewNotSecurityInvoker, Error, id,
				"the view reads a tenant table as the view's owner, so the owner's row-level security applies, not the caller's",
				"ALTER VIEW " + id + " SET (security_invoker = true);"})
		}
	}
	return nil
}

// securityInvoker reports whether a view's reloptions set
// security_invoker to a true value, as PostgreSQL reads booleans.
func securityInvoker(options []string) bool {
	on := false
	for _, o := range options {
		k, v, _ := strings.Cut(o, "=")
		if asciiEqualFold(k, "security_invoker") {
			on = parseBool(v)
		}
	}
	return on
}

// parseBool is PostgreSQL's parse_bool for true: true, yes, on, 1 and the
// unambiguous prefixes of true and yes, in any case.
func parseBool(v string) bool {
	v = strings.ToLower(strings.TrimSpace(v))
	switch {
	case v == "":
		return false
	case strings.HasPrefix("true", v), strings.HasPrefix("yes", v):
		return true
	case v == "on", v == "1":
		return true
	}
	return false
}

// checkFunctions finds SECURITY DEFINER functions in the checked schemas.
func checkFunctions(ctx context.Context, q Querier, opts Options, fs *[]Finding) error {
	rows, err := q.Query(ctx, `
		SELECT n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid), pg_catalog.pg_get_userbyid(p.proowner)
		FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
		WHERE p.prosecdef AND n.nspname = ANY($1)
		ORDER BY 1, 2, 3`, opts.Schemas)
	if err != nil {
		return fmt.Errorf("rlslint: list functions: %w", err)
	}
	for rows.Next() {
		var schema, name, args, owner string
		if err := rows.Scan(&schema, &name, &args, &owner); err != nil {
			rows.Close()
			return fmt.Errorf("rlslint: list functions: %w", err)
		}
		id := pgx.Identifier{schema, name}.Sanitize() + "(" + args + ")"
		*fs = append(*fs, Finding{CodeSecurityDefiner, Warning, "function " + id,
			fmt.Sprintf("the function runs as its owner %s: what it reads is subject to the owner's row-level security, not the caller's tenant",
				pgx.Identifier{owner}.Sanitize()),
			"ALTER FUNCTION " + id + " SECURITY INVOKER; (or make sure it filters on the tenant setting itself)"})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("rlslint: list functions: %w", err)
	}
	return nil
}
