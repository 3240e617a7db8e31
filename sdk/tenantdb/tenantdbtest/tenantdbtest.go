// Package tenantdbtest provisions tenants' placements on a test's
// PostgreSQL as Bulkhead does (the conventions of package tenantdb), so
// that code using tenantdb can be tested without a Bulkhead server, and
// answers them with a Resolver of its own.
//
//	c := tenantdbtest.New(t, tenantdbtest.Options{Name: "app", AdminDSN: admin, ServingDSN: serving,
//		Prefix: "t_", Schema: "CREATE TABLE notes (id bigserial PRIMARY KEY, tenant_id text NOT NULL, body text)"})
//	r := tenantdbtest.NewResolver(c.Pool(t, "acme"), c.Bridge(t, "globex"), c.Silo(t, "initech"))
package tenantdbtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/tenantdb"
)

// Options describe a test's application cluster.
type Options struct {
	Name string // the cluster's name in placements (and tenantdb.Config.Clusters)
	// AdminDSN is a role that owns the shared database and may create
	// roles and databases (not a superuser); ServingDSN the application's
	// serving role on the shared database.
	AdminDSN, ServingDSN string
	// Prefix begins every role, schema and database made: roles and
	// databases are global to the server, so it must be the test's own.
	Prefix string
	// Schema is the DDL of the application's tables, applied to the
	// shared database's public schema (pool), to every bridge schema and
	// to every silo database.
	Schema string
}

// Cluster is a test's application cluster.
type Cluster struct {
	Options
	database string // the shared database
	serving  string // the serving role
}

// New prepares the shared database: it applies o.Schema to its public
// schema, FORCEs row-level security with the policy bulkhead_tenant on
// every table that has a tenant_id column, and grants the serving role
// DML on the tables. What the Cluster makes is dropped when the test ends.
func New(tb testing.TB, o Options) *Cluster {
	tb.Helper()
	c := &Cluster{Options: o, database: dsnPart(tb, o.AdminDSN, "database"), serving: dsnPart(tb, o.ServingDSN, "user")}
	c.exec(tb, "", o.Schema)
	tables := c.query(tb, "", `SELECT table_name FROM information_schema.columns
		WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY 1`)
	for _, t := range tables {
		q := pgx.Identifier{"public", t}.Sanitize()
		c.exec(tb, "", "ALTER TABLE "+q+" ENABLE ROW LEVEL SECURITY",
			"ALTER TABLE "+q+" FORCE ROW LEVEL SECURITY",
			"CREATE POLICY bulkhead_tenant ON "+q+
				" USING (tenant_id = current_setting('app.tenant_id', true)) WITH CHECK (tenant_id = current_setting('app.tenant_id', true))")
	}
	c.grantDML(tb, "", "public", c.serving)
	return c
}

// Name is the name of tenant tid's schema, role or silo database under
// prefix: prefix + tid with '-' as '_', or, past 63 bytes, cut and ended
// with '_' and 10 hex digits of SHA-256(tid).
func Name(prefix, tid string) string {
	n := prefix + strings.ReplaceAll(tid, "-", "_")
	if len(n) <= 63 {
		return n
	}
	sum := sha256.Sum256([]byte(tid))
	return n[:52] + "_" + hex.EncodeToString(sum[:])[:10]
}

// Pool returns tenant tid's placement in the shared tables.
func (c *Cluster) Pool(tb testing.TB, tid string) api.DataPlacement {
	return c.placement(tid, tenantdb.ModelPool, c.database, "public", "")
}

// Bridge provisions tenant tid's schema in the shared database, with a
// role of its own that has USAGE on it and DML on its tables, granted to
// the serving role, and returns its placement.
func (c *Cluster) Bridge(tb testing.TB, tid string) api.DataPlacement {
	tb.Helper()
	name := Name(c.Prefix, tid)
	c.createRole(tb, name)
	q := pgx.Identifier{name}.Sanitize()
	c.exec(tb, "", "CREATE SCHEMA "+q, "SET search_path TO "+q+"; "+c.Schema, "RESET search_path")
	c.grantDML(tb, "", name, name)
	tb.Cleanup(func() { c.exec(tb, "", "DROP SCHEMA IF EXISTS "+q+" CASCADE", "DROP ROLE IF EXISTS "+q) })
	return c.placement(tid, tenantdb.ModelBridge, c.database, name, name)
}

// Silo provisions tenant tid's database, CONNECT revoked from PUBLIC and
// granted to its role and the serving role (which is NOINHERIT: it
// connects as itself), with the schema in its public schema and a role of
// its own with DML on it, granted to the serving role, and returns its
// placement.
func (c *Cluster) Silo(tb testing.TB, tid string) api.DataPlacement {
	tb.Helper()
	name := Name(c.Prefix, tid)
	c.createRole(tb, name)
	q := pgx.Identifier{name}.Sanitize()
	c.exec(tb, "", "CREATE DATABASE "+q, "REVOKE ALL ON DATABASE "+q+" FROM PUBLIC",
		"GRANT CONNECT ON DATABASE "+q+" TO "+q+", "+pgx.Identifier{c.serving}.Sanitize())
	tb.Cleanup(func() { c.exec(tb, "", "DROP DATABASE IF EXISTS "+q, "DROP ROLE IF EXISTS "+q) })
	c.exec(tb, name, "REVOKE ALL ON SCHEMA public FROM PUBLIC", c.Schema)
	c.grantDML(tb, name, "public", name)
	return c.placement(tid, tenantdb.ModelSilo, name, "public", name)
}

func (c *Cluster) placement(tid, model, database, schema, role string) api.DataPlacement {
	return api.DataPlacement{TenantID: tid, Model: model, Cluster: c.Name, Database: database, Schema: schema,
		Role: role, Status: tenantdb.StatusReady, Version: 1, UpdatedAt: time.Now().UTC()}
}

// createRole creates a tenant's role: LOGIN with a random password that
// no one keeps, a member of nothing, granted to the serving role.
func (c *Cluster) createRole(tb testing.TB, name string) {
	tb.Helper()
	var pw [16]byte
	rand.Read(pw[:])
	// CREATE ROLE takes no parameters: the server quotes both (format).
	ddl := c.query(tb, "", "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)", name, hex.EncodeToString(pw[:]))
	c.exec(tb, "", ddl[0], "GRANT "+pgx.Identifier{name}.Sanitize()+" TO "+pgx.Identifier{c.serving}.Sanitize())
}

// grantDML grants role USAGE on schema and DML on its tables and
// sequences, in database ("" for the shared one).
func (c *Cluster) grantDML(tb testing.TB, database, schema, role string) {
	s, r := pgx.Identifier{schema}.Sanitize(), pgx.Identifier{role}.Sanitize()
	c.exec(tb, database, "GRANT USAGE ON SCHEMA "+s+" TO "+r,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "+s+" TO "+r,
		"GRANT USAGE ON ALL SEQUENCES IN SCHEMA "+s+" TO "+r)
}

// Exec runs statements as the admin role in database ("" for the shared
// one): a test's way to look behind the application's back.
func (c *Cluster) Exec(tb testing.TB, database string, stmts ...string) {
	tb.Helper()
	c.exec(tb, database, stmts...)
}

func (c *Cluster) exec(tb testing.TB, database string, stmts ...string) {
	tb.Helper()
	conn := c.connect(tb, database)
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			tb.Fatalf("tenantdbtest: %s: %v", s, err)
		}
	}
}

// Query runs a query of one text column as the admin role in database
// ("" for the shared one).
func (c *Cluster) Query(tb testing.TB, database, sql string, args ...any) []string {
	tb.Helper()
	return c.query(tb, database, sql, args...)
}

func (c *Cluster) query(tb testing.TB, database, sql string, args ...any) []string {
	tb.Helper()
	conn := c.connect(tb, database)
	defer conn.Close(context.Background())
	rows, _ := conn.Query(context.Background(), sql, args...)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatalf("tenantdbtest: %s: %v", sql, err)
	}
	return out
}

func (c *Cluster) connect(tb testing.TB, database string) *pgx.Conn {
	tb.Helper()
	cfg, err := pgx.ParseConfig(c.AdminDSN)
	if err != nil {
		tb.Fatalf("tenantdbtest: admin DSN does not parse")
	}
	if database != "" {
		cfg.Database = database
	}
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("tenantdbtest: connect to %q as admin: %v", cfg.Database, err)
	}
	return conn
}

// dsnPart returns the database or user of a DSN.
func dsnPart(tb testing.TB, dsn, part string) string {
	tb.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		tb.Fatalf("tenantdbtest: a DSN does not parse")
	}
	if part == "user" {
		return cfg.User
	}
	return cfg.Database
}

// Resolver answers the placements it was given, and counts the questions.
type Resolver struct {
	mu    sync.Mutex
	m     map[string]api.DataPlacement
	calls atomic.Int64
}

// NewResolver returns a Resolver that answers ps.
func NewResolver(ps ...api.DataPlacement) *Resolver {
	r := &Resolver{m: map[string]api.DataPlacement{}}
	r.Set(ps...)
	return r
}

// Set makes each of ps the answer for its tenant.
func (r *Resolver) Set(ps ...api.DataPlacement) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range ps {
		r.m[p.TenantID] = p
	}
}

// SetAs makes p the answer for tenant tid, whatever tenant p names.
func (r *Resolver) SetAs(tid string, p api.DataPlacement) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[tid] = p
}

// Placement implements tenantdb.Resolver.
func (r *Resolver) Placement(_ context.Context, tid string) (api.DataPlacement, error) {
	r.calls.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.m[tid]
	if !ok {
		return api.DataPlacement{}, fmt.Errorf("tenantdbtest: no placement for tenant %q", tid)
	}
	return p, nil
}

// Calls is how many placements were asked for.
func (r *Resolver) Calls() int { return int(r.calls.Load()) }
