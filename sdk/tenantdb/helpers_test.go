package tenantdb_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/tenantdb"
	"github.com/bulkhead-dev/bulkhead/sdk/tenantdb/tenantdbtest"
)

// schema is the application's tables in the tests: notes carry their
// tenant (filled in from the setting by default), secrets do not.
const schema = `
CREATE TABLE notes (
	id bigserial PRIMARY KEY,
	tenant_id text NOT NULL DEFAULT current_setting('app.tenant_id', true),
	body text NOT NULL
);
CREATE INDEX notes_tenant_id ON notes (tenant_id);`

// env is an application cluster with tenantdb over it.
type env struct {
	cluster  *tenantdbtest.Cluster
	resolver *tenantdbtest.Resolver
	app      storagetest.AppCluster
}

// newEnv makes a test's application cluster; dsnParams are added to the
// serving DSN (pool_max_conns=1, say).
func newEnv(t *testing.T) *env {
	t.Helper()
	app := storagetest.App(t)
	c := tenantdbtest.New(t, tenantdbtest.Options{Name: "app", AdminDSN: app.AdminDSN, ServingDSN: app.ServingDSN,
		Prefix: app.Prefix, Schema: schema})
	return &env{cluster: c, resolver: tenantdbtest.NewResolver(), app: app}
}

// open opens a DB on the cluster with the serving DSN plus dsnParams (as
// "pool_max_conns=1"), closed when the test ends (before the cluster's
// silos are dropped: open it after provisioning them).
func (e *env) open(t *testing.T, cfg tenantdb.Config, dsnParams string) *tenantdb.DB {
	t.Helper()
	dsn := e.app.ServingDSN
	if dsnParams != "" {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + dsnParams
	}
	cfg.Clusters = map[string]string{"app": dsn}
	if cfg.Resolver == nil {
		cfg.Resolver = e.resolver
	}
	db, err := tenantdb.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// as is a context of tenant tid.
func as(tid string) context.Context { return tenantdb.WithTenant(context.Background(), tid) }

// insert adds a note as tenant tid.
func insert(t *testing.T, db *tenantdb.DB, tid, body string) {
	t.Helper()
	err := db.Tx(as(tid), func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), "INSERT INTO notes (body) VALUES ($1)", body)
		return err
	})
	if err != nil {
		t.Fatalf("insert as %s: %v", tid, err)
	}
}

// bodies returns every note tenant tid's query without a WHERE clause
// sees, and the backend that served it.
func bodies(t *testing.T, db *tenantdb.DB, tid string) (notes []string, pid uint32) {
	t.Helper()
	err := db.ReadTx(as(tid), func(tx pgx.Tx) error {
		pid = tx.Conn().PgConn().PID()
		rows, _ := tx.Query(context.Background(), "SELECT body FROM notes ORDER BY id")
		var err error
		notes, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		t.Fatalf("notes of %s: %v", tid, err)
	}
	return notes, pid
}

// settings returns what tenant tid's transaction runs as.
func settings(t *testing.T, db *tenantdb.DB, tid string) (user, tenant, path string) {
	t.Helper()
	err := db.Tx(as(tid), func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(),
			"SELECT current_user::text, current_setting('app.tenant_id', true), current_setting('search_path')").Scan(&user, &tenant, &path)
	})
	if err != nil {
		t.Fatalf("settings of %s: %v", tid, err)
	}
	return user, tenant, path
}

// pgCode returns the SQLSTATE of err, if it is a PostgreSQL error.
func pgCode(err error) string {
	var pe interface{ SQLState() string }
	if errors.As(err, &pe) {
		return pe.SQLState()
	}
	return ""
}
