package data_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/internal/data"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestPlacements onboards a tenant of each model (and a second bridge and
// silo tenant), checks in the cluster's catalogs exactly the access
// promised, offboards them, and drops them once their retention has
// passed on the node's clock. No answer, log line or audit event holds a
// DSN or a role's password.
func TestPlacements(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		n := start(t, dsn, "bridge-a", "bridge-b")
		// Before any cluster: no placement, and onboarding still works.
		n.onboard(t, "early-co", "standard")
		_, err := n.op.GetPlacement(ctx, "early-co")
		wantCode(t, "placement before any cluster", err, "no_placement")

		c := n.addCluster(t)
		if list, err := n.op.ListClusters(ctx); err != nil || list.Default != "app" || len(list.Clusters) != 1 || list.Clusters[0] != c {
			t.Fatalf("clusters: %+v %v", list, err)
		}
		admin := mustConnect(t, n.app.AdminDSN, "")
		// The application's pool table, migrated as the preamble says.
		for _, q := range []string{
			`CREATE TABLE notes (tenant_id text NOT NULL, body text)`,
			`ALTER TABLE notes ENABLE ROW LEVEL SECURITY`, `ALTER TABLE notes FORCE ROW LEVEL SECURITY`,
			`CREATE POLICY bulkhead_tenant ON notes USING (tenant_id = current_setting('app.tenant_id', true)) WITH CHECK (tenant_id = current_setting('app.tenant_id', true))`,
		} {
			if _, err := admin.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		listener := mustConnect(t, n.app.ServingDSN, "")
		if _, err := listener.Exec(ctx, "LISTEN "+data.PlacementChannel); err != nil {
			t.Fatal(err)
		}

		n.onboard(t, "pool-co", "basic")
		n.onboard(t, "other-pool", "basic")
		n.onboard(t, "bridge-a", "standard")
		n.onboard(t, "bridge-b", "standard")
		n.onboard(t, "silo-a", "premium")
		n.onboard(t, "silo-b", "premium")
		heard := map[string]bool{}
		for len(heard) < 6 {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			note, err := listener.WaitForNotification(wctx)
			cancel()
			if err != nil {
				t.Fatalf("NOTIFY %s: heard %v, then %v", data.PlacementChannel, heard, err)
			}
			heard[note.Payload] = true
		}

		p := map[string]client.DataPlacement{}
		for _, id := range []string{"pool-co", "other-pool", "bridge-a", "bridge-b", "silo-a", "silo-b"} {
			got, err := n.op.GetPlacement(ctx, id)
			if err != nil {
				t.Fatalf("placement of %s: %v", id, err)
			}
			p[id] = got
		}
		name := func(id string) string { return n.app.Prefix + strings.ReplaceAll(id, "-", "_") }
		for id, want := range map[string]client.DataPlacement{
			"pool-co":  {Model: "pool", Database: n.app.Database, Schema: "public"},
			"bridge-a": {Model: "bridge", Database: n.app.Database, Schema: name("bridge-a"), Role: name("bridge-a")},
			"silo-a":   {Model: "silo", Database: name("silo-a"), Schema: "public", Role: name("silo-a")},
		} {
			got := p[id]
			if got.TenantID != id || got.Model != want.Model || got.Cluster != "app" || got.Database != want.Database ||
				got.Schema != want.Schema || got.Role != want.Role || got.Status != "ready" || got.Version != 1 {
				t.Errorf("placement of %s = %+v; want %+v", id, got, want)
			}
		}
		// The tenant's own service reads its placement.
		if own, err := n.as("tok-bridge-a").GetPlacement(ctx, "bridge-a"); err != nil || own != p["bridge-a"] {
			t.Errorf("bridge-a's own placement: %+v %v", own, err)
		}

		serving := "bulkhead_app"
		ra, rb, sa, sb := name("bridge-a"), name("bridge-b"), name("silo-a"), name("silo-b")
		// Tenant roles: LOGIN, no power, own nothing.
		for _, r := range []string{ra, rb, sa, sb} {
			if queryBool(t, admin, `SELECT rolsuper OR rolbypassrls OR rolcreatedb OR rolcreaterole OR NOT rolcanlogin FROM pg_roles WHERE rolname = $1`, r) {
				t.Errorf("role %s has powers or cannot log in", r)
			}
			if n := queryInt(t, admin, `SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = $1)`, r) +
				queryInt(t, admin, `SELECT count(*) FROM pg_namespace WHERE nspowner = (SELECT oid FROM pg_roles WHERE rolname = $1)`, r); n != 0 {
				t.Errorf("role %s owns %d objects", r, n)
			}
			// The serving role is a member, but without SET ROLE uses nothing of it (NOINHERIT).
			if !queryBool(t, admin, `SELECT pg_has_role($1, $2, 'MEMBER') AND NOT pg_has_role($1, $2, 'USAGE')`, serving, r) {
				t.Errorf("the serving role's membership in %s is not MEMBER without USAGE", r)
			}
		}
		for _, c := range []struct {
			role, schema string
			want         bool
		}{{ra, ra, true}, {rb, rb, true}, {ra, rb, false}, {rb, ra, false}, {serving, ra, false}, {serving, rb, false}, {sa, ra, false}} {
			if got := queryBool(t, admin, `SELECT has_schema_privilege($1, $2, 'USAGE')`, c.role, c.schema); got != c.want {
				t.Errorf("USAGE of %s on schema %s = %v; want %v", c.role, c.schema, got, c.want)
			}
		}
		// No PUBLIC grant on a silo database; CONNECT for its role and the serving role only.
		for _, db := range []string{sa, sb} {
			if queryBool(t, admin, `SELECT EXISTS (SELECT 1 FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = $1 AND a.grantee = 0)`, db) {
				t.Errorf("PUBLIC has a privilege on silo database %s", db)
			}
		}
		for _, c := range []struct {
			role, db string
			want     bool
		}{{sa, sa, true}, {sb, sb, true}, {sa, sb, false}, {sb, sa, false}, {ra, sa, false}, {serving, sa, true}} {
			if got := queryBool(t, admin, `SELECT has_database_privilege($1, $2, 'CONNECT')`, c.role, c.db); got != c.want {
				t.Errorf("CONNECT of %s on %s = %v; want %v", c.role, c.db, got, c.want)
			}
		}

		// The data itself, as the application reaches it.
		for _, q := range []string{
			fmt.Sprintf(`CREATE TABLE %s (body text)`, pgx.Identifier{ra, "notes"}.Sanitize()),
			fmt.Sprintf(`CREATE TABLE %s (body text)`, pgx.Identifier{rb, "notes"}.Sanitize()),
			fmt.Sprintf(`INSERT INTO %s VALUES ('a secret of bridge-a')`, pgx.Identifier{ra, "notes"}.Sanitize()),
		} {
			if _, err := admin.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		app := mustConnect(t, n.app.ServingDSN, "")
		readA := func(role string) (string, error) {
			var body string
			err := pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
				if role != "" {
					if _, err := tx.Exec(ctx, `SELECT set_config('role', $1, true)`, role); err != nil {
						return err
					}
				}
				return tx.QueryRow(ctx, fmt.Sprintf(`SELECT body FROM %s`, pgx.Identifier{ra, "notes"}.Sanitize())).Scan(&body)
			})
			return body, err
		}
		if body, err := readA(ra); err != nil || body != "a secret of bridge-a" {
			t.Errorf("bridge-a's role reads its notes: %q %v", body, err)
		}
		for _, role := range []string{"", rb, sa} {
			if body, err := readA(role); sqlState(err) != "42501" {
				t.Errorf("as %q the serving role reads bridge-a's notes: %q %v; want permission denied", role, body, err)
			}
		}
		// A role of no tenant, that can log in, cannot connect to a silo database.
		outsider := n.app.Prefix + "outsider"
		if _, err := admin.Exec(ctx, `CREATE ROLE `+pgx.Identifier{outsider}.Sanitize()+` LOGIN PASSWORD 'outsider-pw'`); err != nil {
			t.Fatal(err)
		}
		if conn, err := connect(t, n.app.ServingDSN, sa, outsider, "outsider-pw"); sqlState(err) != "42501" {
			if conn != nil {
				conn.Close(ctx)
			}
			t.Errorf("a role of no tenant connects to silo-a's database: %v", err)
		}
		// The serving role connects to a silo database, and reads there only as the tenant.
		silo := mustConnect(t, n.app.ServingDSN, sa)
		if _, err := silo.Exec(ctx, `CREATE TABLE public.t (x int)`); sqlState(err) != "42501" {
			t.Errorf("the serving role creates a table in silo-a's database: %v", err)
		}

		// Pool rows of two tenants.
		for _, id := range []string{"pool-co", "other-pool"} {
			err := pgx.BeginFunc(ctx, admin, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `SELECT set_config('app.tenant_id', $1, true)`, id); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO notes VALUES ($1, 'note')`, id)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}

		// The cluster cannot go while it holds placements.
		wantCode(t, "remove a cluster in use", n.op.RemoveCluster(ctx, "app"), "cluster_in_use")

		// Offboarding: the application loses access at once; the data stays.
		for _, id := range []string{"pool-co", "bridge-a", "silo-a"} {
			n.offboard(t, id)
			got, err := n.op.GetPlacement(ctx, id)
			if err != nil || got.Status != data.Retained || got.Version != 2 {
				t.Errorf("placement of offboarded %s: %+v %v; want retained, version 2", id, got, err)
			}
		}
		if queryBool(t, admin, `SELECT pg_has_role($1, $2, 'MEMBER')`, serving, ra) || queryBool(t, admin, `SELECT pg_has_role($1, $2, 'MEMBER')`, serving, sa) {
			t.Error("the serving role is still a member of an offboarded tenant's role")
		}
		if queryBool(t, admin, `SELECT has_database_privilege($1, $2, 'CONNECT')`, serving, sa) {
			t.Error("the serving role may still connect to an offboarded silo's database")
		}
		if body, err := readA(ra); sqlState(err) != "42501" {
			t.Errorf("the serving role reads offboarded bridge-a's notes: %q %v", body, err)
		}
		if !queryBool(t, admin, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, ra) {
			t.Error("bridge-a's schema is gone before its retention ended")
		}

		// Retention ends on the node's clock: the sweeper drops them. An
		// application connection still open to silo-a's database (the
		// admin role may not end it) holds that drop, marked dropping,
		// until a later sweep after it closed.
		n.clock.Advance(data.DefaultRetention + 2*data.DefaultSweepInterval)
		runtest.Eventually(t, "silo-a's drop to be held by an open connection", func() bool {
			got, err := n.op.GetPlacement(ctx, "silo-a")
			return err == nil && got.Status == data.Dropping && strings.Contains(n.log.String(), "sweep retained placements")
		})
		silo.Close(ctx)
		n.clock.Advance(2 * data.DefaultSweepInterval)
		for _, id := range []string{"pool-co", "bridge-a", "silo-a"} {
			runtest.Eventually(t, id+"'s placement to be dropped", func() bool {
				// A drop that failed again (the closed pool's server
				// backend still ending, on a loaded machine) waits for the
				// next sweep: make it come.
				n.clock.Advance(data.DefaultSweepInterval)
				_, err := n.op.GetPlacement(ctx, id)
				var ae *client.Error
				return err != nil && asProblem(err, &ae) && ae.Code == "no_placement"
			})
		}
		for _, c := range []struct{ q, name string }{
			{`SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, ra},
			{`SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, ra},
			{`SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, sa},
			{`SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, sa},
		} {
			if queryBool(t, admin, c.q, c.name) {
				t.Errorf("%s still exists after the drop (%s)", c.name, c.q)
			}
		}
		owners := func() map[string]int {
			out := map[string]int{}
			err := pgx.BeginFunc(ctx, admin, func(tx pgx.Tx) error {
				for _, id := range []string{"pool-co", "other-pool"} {
					var k int
					if _, err := tx.Exec(ctx, `SELECT set_config('app.tenant_id', $1, true)`, id); err != nil {
						return err
					}
					if err := tx.QueryRow(ctx, `SELECT count(*) FROM notes`).Scan(&k); err != nil {
						return err
					}
					out[id] = k
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}()
		if owners["pool-co"] != 0 || owners["other-pool"] != 1 {
			t.Errorf("pool rows after pool-co's drop: %v; want pool-co 0, other-pool 1", owners)
		}
		// The others are untouched.
		for _, id := range []string{"bridge-b", "silo-b", "other-pool"} {
			if got, err := n.op.GetPlacement(ctx, id); err != nil || got != p[id] {
				t.Errorf("placement of %s changed: %+v %v", id, got, err)
			}
		}

		// The audit trail tells each act, and no secret.
		actions := map[string]int{}
		var trail []string
		for _, q := range []client.AuditQuery{{Tenant: "-"}, {Tenant: "bridge-a"}, {Tenant: "silo-a"}, {Tenant: "pool-co"}} {
			page, err := n.op.ListAudit(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page.Items {
				actions[e.Action]++
				b, _ := json.Marshal(e)
				trail = append(trail, string(b))
			}
		}
		for action, want := range map[string]int{"data.cluster_created": 1, "data.placement_ready": 3, "data.placement_retained": 3, "data.placement_dropped": 3} {
			if actions[action] != want {
				t.Errorf("%d %s events; want %d (%v)", actions[action], action, want, actions)
			}
		}
		for _, id := range []string{"bridge-a", "silo-a"} {
			wfs, err := n.op.TenantWorkflows(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(wfs)
			trail = append(trail, string(b))
		}
		noSecrets(t, n, strings.Join(trail, "\n"))
	})
}

func asProblem(err error, target **client.Error) bool { return errors.As(err, target) }

// noSecrets fails t if the node's answers, its log or extra hold a DSN, a
// password of the cluster's roles, or a sealed secret.
func noSecrets(t *testing.T, n *node, extra string) {
	t.Helper()
	var secrets []string
	for _, dsn := range []string{n.app.ServingDSN, n.app.AdminDSN} {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		pw, _ := u.User.Password()
		secrets = append(secrets, dsn, u.User.String()+"@", ":"+pw+"@", u.Redacted())
	}
	for where, text := range map[string]string{"answers": n.rec.all(), "log": n.log.String(), "audit and workflows": extra} {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("the %s hold %q", where, s)
			}
		}
		for _, s := range []string{"SCRAM-SHA-256$", "role_password", "admin_dsn\":\"postgres", "dsn\":\"postgres"} {
			if strings.Contains(text, s) {
				t.Errorf("the %s hold %q", where, s)
			}
		}
	}
	if n.log.String() == "" {
		t.Error("nothing was logged: is the logger captured?")
	}
}
