package storagetest

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/ids"
)

// AppCluster is an application's PostgreSQL cluster for a test: a new
// database made for it (dropped when the test ends), with the admin DSN
// that `bulkhead cluster add --admin-dsn` takes (a CREATEDB CREATEROLE
// role, not a superuser, that owns the database) and the serving DSN of
// the application's role (owns nothing). Prefix is unique to the test:
// give it to the cluster as its name prefix so that the roles and silo
// databases it provisions, which are global to the PostgreSQL server, do
// not meet another test's.
type AppCluster struct {
	AdminDSN, ServingDSN, Database, Prefix string
}

// App returns a new AppCluster. Its DSNs come from BULKHEAD_TEST_APP_ADMIN
// and BULKHEAD_TEST_APP, or else from BULKHEAD_TEST_POSTGRES with the roles
// bulkhead_app_admin and bulkhead_app that scripts/pg-setup creates; the
// database in them is replaced by the new one. Like PostgresDSNs, it fails
// the test without PostgreSQL when BULKHEAD_REQUIRE_POSTGRES=1.
func App(t testing.TB) AppCluster {
	t.Helper()
	base := os.Getenv("BULKHEAD_TEST_POSTGRES")
	admin, serving := os.Getenv("BULKHEAD_TEST_APP_ADMIN"), os.Getenv("BULKHEAD_TEST_APP")
	if base == "" && admin == "" {
		if os.Getenv("BULKHEAD_REQUIRE_POSTGRES") == "1" {
			t.Fatal("BULKHEAD_REQUIRE_POSTGRES=1 but BULKHEAD_TEST_POSTGRES is not set; run scripts/pg-setup")
		}
		t.Skip("PostgreSQL tests skipped: set BULKHEAD_TEST_POSTGRES (scripts/pg-setup prints it)")
	}
	if admin == "" {
		admin = withUser(t, base, "bulkhead_app_admin", "bulkhead_apptest")
	}
	if serving == "" {
		serving = withUser(t, admin, "bulkhead_app", "")
	}
	suffix := ids.New("a")[2:12]
	c := AppCluster{Database: "app_" + suffix, Prefix: "x" + suffix + "_"}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+c.Database); err != nil {
		t.Fatalf("application cluster admin role at BULKHEAD_TEST_APP_ADMIN (or derived from BULKHEAD_TEST_POSTGRES) is not usable "+
			"(run scripts/pg-setup): %v", err)
	}
	if _, err := db.ExecContext(ctx, "GRANT CONNECT ON DATABASE "+c.Database+" TO "+userOf(t, serving)); err != nil {
		t.Fatalf("grant connect: %v", err)
	}
	t.Cleanup(func() { dropAppCluster(t, admin, c) })
	c.AdminDSN, c.ServingDSN = withDatabase(t, admin, c.Database), withDatabase(t, serving, c.Database)
	return c
}

// dropAppCluster drops the test's database, the silo databases and the
// roles made under its prefix.
func dropAppCluster(t testing.TB, admin string, c AppCluster) {
	db, err := sql.Open("pgx", admin)
	if err != nil {
		return
	}
	defer db.Close()
	ctx := context.Background()
	drop := func(list, stmt string) {
		rows, err := db.QueryContext(ctx, list, c.Prefix+"%")
		if err != nil {
			return
		}
		var names []string
		for rows.Next() {
			var n string
			if rows.Scan(&n) == nil {
				names = append(names, n)
			}
		}
		rows.Close()
		for _, n := range names {
			db.ExecContext(ctx, stmt+` "`+n+`"`)
		}
	}
	drop(`SELECT datname FROM pg_database WHERE datname LIKE $1`, "DROP DATABASE IF EXISTS")
	db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+c.Database+" WITH (FORCE)")
	drop(`SELECT rolname FROM pg_roles WHERE rolname LIKE $1`, "DROP ROLE IF EXISTS")
}

func withUser(t testing.TB, dsn, user, database string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("postgres DSN: %v", err)
	}
	u.User = url.UserPassword(user, user)
	if database != "" {
		u.Path = "/" + database
	}
	q := u.Query()
	q.Del("search_path")
	u.RawQuery = q.Encode()
	return u.String()
}

func withDatabase(t testing.TB, dsn, database string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("postgres DSN: %v", err)
	}
	u.Path = "/" + database
	return u.String()
}

func userOf(t testing.TB, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		t.Fatalf("postgres DSN without a user")
	}
	return `"` + u.User.Username() + `"`
}
