package data_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"

	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// withUser is dsn with another user and password.
func withUser(t *testing.T, dsn, user, password string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestClusterRegistrationHostile sends the registrations an attacker, or a
// careless operator, would: each is refused with its code, its detail
// quotes no DSN or password, and nothing is registered.
func TestClusterRegistrationHostile(t *testing.T) {
	ctx := t.Context()
	n := start(t, storagetest.DSN(t, "sqlite"))
	admin := mustConnect(t, n.app.AdminDSN, "")
	role := func(name, attrs string) string {
		full := n.app.Prefix + name
		if _, err := admin.Exec(ctx, `CREATE ROLE `+pgx.Identifier{full}.Sanitize()+` LOGIN PASSWORD 'pw-`+name+`' `+attrs); err != nil {
			t.Fatalf("create role %s: %v", full, err)
		}
		return withUser(t, n.app.ServingDSN, full, "pw-"+name)
	}
	inherit := role("inherit", "INHERIT")
	creator := role("creator", "NOINHERIT CREATEROLE")
	weakAdmin := role("weak", "NOINHERIT")
	closed := closedPort(t)
	u, _ := url.Parse(n.app.ServingDSN)
	host := u.Host
	u.Host = closed
	closedDSN := u.String()
	// A role the server does not know (the test server may trust loopback,
	// so a wrong password alone may pass).
	wrongPassword := withUser(t, n.app.ServingDSN, n.app.Prefix+"nobody", "not-the-password")
	otherDB, _ := url.Parse(n.app.AdminDSN)
	otherDB.Path = "/postgres"
	// A DSN whose URL names one role and whose query connects as another:
	// the checks would judge the safe one, and every tenant's role would
	// be granted to the other (an INHERIT one here, reading them all).
	twoUsers, _ := url.Parse(n.app.ServingDSN)
	pw, _ := twoUsers.User.Password()
	twoUsers.User = url.UserPassword(n.app.Prefix+"inherit", pw)
	q := twoUsers.Query()
	q.Set("user", "bulkhead_app")
	twoUsers.RawQuery = q.Encode()
	twoDBs, _ := url.Parse(n.app.ServingDSN)
	q = twoDBs.Query()
	q.Set("dbname", "postgres")
	twoDBs.RawQuery = q.Encode()
	// A serving DSN that connects as one role and sets another, which it
	// is a member of: the checks would judge the one set.
	member := n.app.Prefix + "member"
	if _, err := admin.Exec(ctx, `CREATE ROLE `+pgx.Identifier{member}.Sanitize()+` NOLOGIN NOINHERIT; GRANT `+
		pgx.Identifier{member}.Sanitize()+` TO bulkhead_app`); err != nil {
		t.Fatal(err)
	}
	setsRole, _ := url.Parse(n.app.ServingDSN)
	setsRole.RawQuery += "&options=-c%20role%3D" + member

	ok := client.CreateDataCluster{Name: "app", DSN: n.app.ServingDSN, AdminDSN: n.app.AdminDSN, Prefix: n.app.Prefix}
	cases := []struct {
		what   string
		edit   func(*client.CreateDataCluster)
		status int
		code   string
		detail string // a word the detail must hold
	}{
		{"unreachable serving DSN", func(c *client.CreateDataCluster) { c.DSN = closedDSN }, 503, "cluster_unreachable", "dsn"},
		{"unreachable admin DSN", func(c *client.CreateDataCluster) { c.AdminDSN = strings.Replace(c.AdminDSN, host, closed, 1) }, 503, "cluster_unreachable", "admin_dsn"},
		{"unknown role", func(c *client.CreateDataCluster) { c.DSN = wrongPassword }, 503, "cluster_unreachable", "refused"},
		{"INHERIT serving role", func(c *client.CreateDataCluster) { c.DSN = inherit }, 400, "unsafe_serving_role", "INHERIT"},
		{"CREATEROLE serving role", func(c *client.CreateDataCluster) { c.DSN = creator }, 400, "unsafe_serving_role", "CREATEROLE"},
		{"admin as serving role", func(c *client.CreateDataCluster) { c.DSN = c.AdminDSN }, 400, "unsafe_serving_role", "INHERIT"},
		{"serving role as admin", func(c *client.CreateDataCluster) { c.AdminDSN = c.DSN }, 400, "unsafe_serving_role", "same role"},
		{"admin without CREATEDB", func(c *client.CreateDataCluster) { c.AdminDSN = weakAdmin }, 400, "admin_role_lacks_privileges", "CREATEDB"},
		{"admin on another database", func(c *client.CreateDataCluster) { c.AdminDSN = otherDB.String() }, 400, "admin_role_lacks_privileges", "ownership"},
		{"URL user and query user", func(c *client.CreateDataCluster) { c.DSN = twoUsers.String() }, 400, "invalid_dsn", "user"},
		{"path and query database", func(c *client.CreateDataCluster) { c.DSN = twoDBs.String() }, 400, "invalid_dsn", "database"},
		{"role set in the options", func(c *client.CreateDataCluster) { c.DSN = setsRole.String() }, 400, "unsafe_serving_role", "role"},
		{"not a URL", func(c *client.CreateDataCluster) { c.DSN = "host=127.0.0.1 user=x password=secret-kv" }, 400, "invalid_dsn", "postgres://"},
		{"no database", func(c *client.CreateDataCluster) { c.AdminDSN = "postgres://a:secret-nodb@127.0.0.1:5432" }, 400, "invalid_dsn", "database"},
		{"other scheme", func(c *client.CreateDataCluster) { c.DSN = "mysql://a:secret-mysql@127.0.0.1/app" }, 400, "invalid_dsn", "postgres://"},
		{"injection in the name", func(c *client.CreateDataCluster) { c.Name = `app"; DROP DATABASE postgres; --` }, 400, "invalid_cluster_name", ""},
		{"upper-case name", func(c *client.CreateDataCluster) { c.Name = "App" }, 400, "invalid_cluster_name", ""},
		{"injection in the prefix", func(c *client.CreateDataCluster) { c.Prefix = `t_"; DROP ROLE bulkhead_app; --` }, 400, "invalid_prefix", ""},
		{"prefix with a quote", func(c *client.CreateDataCluster) { c.Prefix = `t"` }, 400, "invalid_prefix", ""},
		{"long prefix", func(c *client.CreateDataCluster) { c.Prefix = "p" + strings.Repeat("x", 16) }, 400, "invalid_prefix", ""},
	}
	for _, c := range cases {
		in := ok
		c.edit(&in)
		body, _ := json.Marshal(in)
		req, _ := http.NewRequestWithContext(ctx, "POST", n.URL+"/v1/clusters", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+apitest.AdminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := n.rec.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var p client.Error
		json.Unmarshal(raw, &p)
		if resp.StatusCode != c.status || p.Code != c.code || !strings.Contains(p.Detail, c.detail) {
			t.Errorf("%s: %d %s; want %d %s with %q in the detail", c.what, resp.StatusCode, raw, c.status, c.code, c.detail)
		}
		for _, s := range []string{in.DSN, in.AdminDSN, "secret-", "pw-", "not-the-password", ":bulkhead_app@", ":bulkhead_app_admin@"} {
			if strings.Contains(string(raw), s) {
				t.Errorf("%s: the answer quotes %q: %s", c.what, s, raw)
			}
		}
	}
	if list, err := n.op.ListClusters(ctx); err != nil || len(list.Clusters) != 0 {
		t.Errorf("after refused registrations: %+v %v", list, err)
	}

	// A BYPASSRLS serving role, which only a superuser can make.
	if su, err := superuser(t, n.app.AdminDSN); err != nil {
		t.Logf("no superuser connection (%v): the BYPASSRLS case is left out", err)
	} else {
		name := n.app.Prefix + "bypass"
		if _, err := su.Exec(ctx, `CREATE ROLE `+pgx.Identifier{name}.Sanitize()+` LOGIN NOINHERIT BYPASSRLS PASSWORD 'pw-bypass'`); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { su.Exec(context.Background(), `DROP ROLE IF EXISTS `+pgx.Identifier{name}.Sanitize()) })
		in := ok
		in.DSN = withUser(t, n.app.ServingDSN, name, "pw-bypass")
		_, err := n.op.CreateCluster(ctx, in)
		var p *client.Error
		if !errors.As(err, &p) || p.Code != "unsafe_serving_role" || !strings.Contains(p.Detail, "BYPASSRLS") || strings.Contains(p.Detail, "pw-bypass") {
			t.Errorf("BYPASSRLS serving role: %v", err)
		}
	}

	// The good registration; then the same name again.
	n.addCluster(t)
	_, err := n.op.CreateCluster(ctx, ok)
	wantCode(t, "the same name again", err, "cluster_exists")
	// Cluster paths that are no cluster's name answer 404, and never reach SQL as text.
	for _, name := range []string{"nope", "APP", "a%22b", "app%27%3B%20DROP%20TABLE%20data_clusters%3B--"} {
		_, err := n.op.GetCluster(ctx, name)
		wantCode(t, "get cluster "+name, err, "cluster_not_found")
	}
	if _, err := n.op.GetCluster(ctx, "app"); err != nil {
		t.Errorf("the cluster is gone after the probes: %v", err)
	}
	noSecrets(t, n, "")
}

// superuser connects to the application cluster's server as postgres, if
// the server lets it in (scripts/pg-setup's local trust); cleanup closes it.
func superuser(t *testing.T, dsn string) (*pgx.Conn, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, err
	}
	u.User = url.User("postgres")
	c, err := pgx.Connect(t.Context(), u.String())
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	var super bool
	if err := c.QueryRow(t.Context(), `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil || !super {
		return nil, errors.New("postgres is not a superuser here")
	}
	return c, nil
}

// TestPlacementCrossTenant: tenant A's credential asking for B's placement
// gets the very answer it gets for a tenant that does not exist, and A's
// own; the operator gets B's.
func TestPlacementCrossTenant(t *testing.T) {
	ctx := t.Context()
	n := start(t, storagetest.DSN(t, "sqlite"), "tenant-a")
	n.addCluster(t)
	n.onboard(t, "tenant-a", "standard")
	n.onboard(t, "tenant-b", "premium")
	get := func(token, id string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, "GET", n.URL+"/v1/tenants/"+id+"/placement", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		// The request id differs; so does the tenant id in the detail.
		b = regexp.MustCompile(`"request_id":"[^"]*"`).ReplaceAll(b, nil)
		return resp.StatusCode, strings.ReplaceAll(string(b), id, "<id>")
	}
	bStatus, bBody := get("tok-tenant-a", "tenant-b")
	noneStatus, noneBody := get("tok-tenant-a", "tenant-zzz")
	if bStatus != 404 || bStatus != noneStatus || bBody != noneBody {
		t.Errorf("A asks for B's placement: %d %s; for no tenant's: %d %s", bStatus, bBody, noneStatus, noneBody)
	}
	if strings.Contains(bBody, "silo") || strings.Contains(bBody, n.app.Prefix) {
		t.Errorf("the refusal reveals B's placement: %s", bBody)
	}
	if status, body := get("tok-tenant-a", "tenant-a"); status != 200 || !strings.Contains(body, `"model":"bridge"`) {
		t.Errorf("A reads its own placement: %d %s", status, body)
	}
	if p, err := n.op.GetPlacement(ctx, "tenant-b"); err != nil || p.Model != "silo" {
		t.Errorf("the operator reads B's placement: %+v %v", p, err)
	}
	_, err := n.op.GetPlacement(ctx, "tenant-zzz")
	wantCode(t, "the operator asks for a tenant that does not exist", err, "tenant_not_found")
}

// TestSiloDoesNotAdoptAnotherDatabase: a database the admin role owns that
// Bulkhead did not make (another cluster's shared database on the same
// server, an application's other database) and whose name is what a silo
// tenant would get is never taken for that tenant's: whoever can choose a
// tenant id would otherwise be handed DML on it, cut everyone else's
// CONNECT, and have the sweeper DROP it WITH (FORCE) after offboarding.
func TestSiloDoesNotAdoptAnotherDatabase(t *testing.T) {
	ctx := t.Context()
	n := start(t, storagetest.DSN(t, "sqlite"))
	n.addCluster(t)
	admin := mustConnect(t, n.app.AdminDSN, "")
	victim := n.app.Prefix + "main"
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{victim}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	other := mustConnect(t, n.app.AdminDSN, victim)
	if _, err := other.Exec(ctx, `CREATE TABLE accounts (tenant_id text, secret text); INSERT INTO accounts VALUES ('x', 'x-secret')`); err != nil {
		t.Fatal(err)
	}
	other.Close(ctx)

	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	n.op.CreateTenant(wctx, client.CreateTenant{ID: "main", Tier: "premium"}, "")
	cancel()
	refused := false
	runtest.Eventually(t, "the onboarding of main to end or fail", func() bool {
		wfs, err := n.op.TenantWorkflows(ctx, "main")
		if err != nil || len(wfs) == 0 {
			return false
		}
		refused = strings.Contains(wfs[0].LastError, "placement_name_taken")
		return refused || wfs[0].Status == "done"
	})
	if p, err := n.op.GetPlacement(ctx, "main"); err == nil || !refused {
		t.Errorf("main was placed in a database Bulkhead did not make: %+v", p)
	}
	if queryBool(t, admin, `SELECT shobj_description(oid, 'pg_database') IS NOT NULL FROM pg_database WHERE datname = $1`, victim) {
		t.Error("the database was marked as main's")
	}
	if !queryBool(t, admin, `SELECT has_database_privilege('public', $1, 'CONNECT')`, victim) {
		t.Error("the database's CONNECT was taken from PUBLIC")
	}
	if queryBool(t, admin, `SELECT EXISTS (SELECT 1 FROM pg_database d, aclexplode(d.datacl) a
		WHERE d.datname = $1 AND a.grantee IN (SELECT oid FROM pg_roles WHERE rolname IN ($1, 'bulkhead_app')))`, victim) {
		t.Error("the database was granted to main's role or to the serving role")
	}
}

// TestSiloResumesItsOwnDatabase: a silo database cut off between its
// CREATE DATABASE and its mark (as Bulkhead creates it: accepting no
// connections) is taken up by the step run again, marked and opened.
func TestSiloResumesItsOwnDatabase(t *testing.T) {
	ctx := t.Context()
	n := start(t, storagetest.DSN(t, "sqlite"))
	n.addCluster(t)
	admin := mustConnect(t, n.app.AdminDSN, "")
	name := n.app.Prefix + "resumed"
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()+` WITH ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	n.onboard(t, "resumed", "premium")
	if p, err := n.op.GetPlacement(ctx, "resumed"); err != nil || p.Database != name || p.Status != "ready" {
		t.Fatalf("placement: %+v %v", p, err)
	}
	if !queryBool(t, admin, `SELECT datallowconn AND shobj_description(oid, 'pg_database') = 'bulkhead placement of tenant resumed'
		FROM pg_database WHERE datname = $1`, name) {
		t.Error("the database cut off is not marked and open")
	}
	mustConnect(t, n.app.ServingDSN, name)
}
