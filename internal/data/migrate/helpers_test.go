package migrate

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/jackc/pgx/v5"
)

// testCluster is an application cluster for a test, with the admin's
// connections and the Cluster that Run takes.
type testCluster struct {
	storagetest.AppCluster
	Cluster Cluster
	conns   *AdminConns
}

func newCluster(t testing.TB) testCluster {
	t.Helper()
	app := storagetest.App(t)
	conns, err := NewAdminConns(app.AdminDSN, DefaultWorkers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conns.Close)
	u, err := url.Parse(app.ServingDSN)
	if err != nil {
		t.Fatal(err)
	}
	return testCluster{
		AppCluster: app,
		conns:      conns,
		Cluster: Cluster{Databases: conns, SharedDatabase: app.Database, Prefix: app.Prefix,
			ServingRole: u.User.Username()},
	}
}

// name is what the placements service calls a tenant's schema, role or
// silo database on this cluster.
func (c testCluster) name(tenant string) string {
	return c.Prefix + strings.ReplaceAll(tenant, "-", "_")
}

// bridges provisions a bridge schema for each tenant as the placements
// service does (a role that owns nothing, USAGE on its schema, the serving
// role a member), and returns their targets.
func (c testCluster) bridges(t testing.TB, tenants ...string) []Target {
	t.Helper()
	var stmts []string
	var targets []Target
	serving := pgx.Identifier{c.Cluster.ServingRole}.Sanitize()
	for _, id := range tenants {
		n := pgx.Identifier{c.name(id)}.Sanitize()
		stmts = append(stmts, "CREATE ROLE "+n+" NOLOGIN", "CREATE SCHEMA "+n,
			"GRANT USAGE ON SCHEMA "+n+" TO "+n, "GRANT "+n+" TO "+serving)
		targets = append(targets, Target{TenantID: id, Model: Bridge, Database: c.Database, Schema: c.name(id), Role: c.name(id)})
	}
	c.exec(t, c.Database, strings.Join(stmts, ";\n"))
	return targets
}

// silo provisions a silo database for tenant and returns its target.
func (c testCluster) silo(t testing.TB, tenant string) Target {
	t.Helper()
	n := pgx.Identifier{c.name(tenant)}.Sanitize()
	c.exec(t, c.Database, "CREATE ROLE "+n+" NOLOGIN")
	c.exec(t, c.Database, "CREATE DATABASE "+n)
	c.exec(t, c.Database, "REVOKE CONNECT ON DATABASE "+n+" FROM PUBLIC")
	return Target{TenantID: tenant, Model: Silo, Database: c.name(tenant), Schema: "public", Role: c.name(tenant)}
}

// exec runs sql on database as the admin.
func (c testCluster) exec(t testing.TB, database, sql string, args ...any) {
	t.Helper()
	conn, release, err := c.conns.Conn(context.Background(), database)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", firstLine(sql), err)
	}
}

// query returns the single value of sql on database as the admin.
func query[T any](t testing.TB, c testCluster, database, sql string, args ...any) T {
	t.Helper()
	conn, release, err := c.conns.Conn(context.Background(), database)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	var v T
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", firstLine(sql), err)
	}
	return v
}

// serving returns a connection to the shared database as the serving role.
func (c testCluster) serving(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), c.ServingDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// files loads migrations given as name, sql, name, sql, …
func files(t testing.TB, nameSQL ...string) []File {
	t.Helper()
	fsys := fstest.MapFS{}
	for i := 0; i < len(nameSQL); i += 2 {
		fsys[nameSQL[i]] = &fstest.MapFile{Data: []byte(nameSQL[i+1])}
	}
	fs, err := Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// ledgerNames returns the files applied to the schema of a place.
func ledgerNames(t testing.TB, c testCluster, database, schema string) string {
	t.Helper()
	return query[string](t, c, database, fmt.Sprintf(
		"SELECT coalesce(string_agg(name, ' ' ORDER BY name), '') FROM %s", pgx.Identifier{schema, ledger}.Sanitize()))
}

func resultOf(t testing.TB, rep Report, schemaOrDB string) Result {
	t.Helper()
	for _, r := range rep.Places {
		if r.Model == Bridge && r.Schema == schemaOrDB || r.Model != Bridge && r.Database == schemaOrDB {
			return r
		}
	}
	t.Fatalf("no place %s in the report", schemaOrDB)
	return Result{}
}
