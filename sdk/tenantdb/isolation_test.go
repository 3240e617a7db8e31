package tenantdb_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/tenantdb"
)

// placements gives tenants a and b (ids with a hyphen, as tenant ids may
// have) the same model and returns a DB of one connection per pool, so
// that every transaction of a and b runs on the same connection.
func placements(t *testing.T, model string) (*env, *tenantdb.DB, string, string) {
	t.Helper()
	e := newEnv(t)
	a, b := "ten-a", "ten-b"
	for _, tid := range []string{a, b} {
		var p api.DataPlacement
		switch model {
		case tenantdb.ModelPool:
			p = e.cluster.Pool(t, tid)
		case tenantdb.ModelBridge:
			p = e.cluster.Bridge(t, tid)
		case tenantdb.ModelSilo:
			p = e.cluster.Silo(t, tid)
		}
		e.resolver.Set(p)
	}
	return e, e.open(t, tenantdb.Config{SiloMaxConns: 1}, "pool_max_conns=1"), a, b
}

var models = []string{tenantdb.ModelPool, tenantdb.ModelBridge, tenantdb.ModelSilo}

// eachModel runs test in each model, with placements of a and b that
// already hold a note each, "a" and "b".
func eachModel(t *testing.T, test func(t *testing.T, e *env, db *tenantdb.DB, model, a, b string)) {
	for _, model := range models {
		t.Run(model, func(t *testing.T) {
			e, db, a, b := placements(t, model)
			insert(t, db, a, "a")
			insert(t, db, b, "b")
			test(t, e, db, model, a, b)
		})
	}
}

// TestInterleavedTenants runs a's and b's transactions alternately on one
// connection (one per pool; pool and bridge share it): each sees its own
// notes only, with a query that has no WHERE clause, and runs as its own
// role.
func TestInterleavedTenants(t *testing.T) {
	for _, model := range models {
		t.Run(model, func(t *testing.T) {
			_, db, a, b := placements(t, model)
			var pids []uint32
			for i := range 3 {
				insert(t, db, a, "a"+string(rune('0'+i)))
				insert(t, db, b, "b"+string(rune('0'+i)))
				na, pa := bodies(t, db, a)
				nb, pb := bodies(t, db, b)
				if want := []string{"a0", "a1", "a2"}[:i+1]; !slices.Equal(na, want) {
					t.Fatalf("a sees %v, want %v", na, want)
				}
				if want := []string{"b0", "b1", "b2"}[:i+1]; !slices.Equal(nb, want) {
					t.Fatalf("b sees %v, want %v", nb, want)
				}
				pids = append(pids, pa, pb)
			}
			// One connection per pool: pool and bridge tenants share it;
			// each silo tenant has its own.
			if shared := []uint32{pids[0], pids[0]}; model == tenantdb.ModelSilo {
				shared[1] = pids[1]
				if pids[0] == pids[1] {
					t.Fatalf("silo tenants a and b share backend %d", pids[0])
				}
				for i, pid := range pids {
					if pid != shared[i%2] {
						t.Fatalf("transactions ran on backends %v, want one reused connection per tenant", pids)
					}
				}
			} else if len(slices.Compact(slices.Clone(pids))) != 1 {
				t.Fatalf("transactions ran on backends %v, want one reused connection", pids)
			}
			ua, ta, _ := settings(t, db, a)
			ub, tb, _ := settings(t, db, b)
			if ta != a || tb != b {
				t.Fatalf("app.tenant_id: %q and %q", ta, tb)
			}
			if model != tenantdb.ModelPool && (ua == ub) {
				t.Fatalf("a and b both run as %q", ua)
			}
		})
	}
}

// TestNoWriteToAnotherTenant: a's transaction cannot write b's notes, by
// naming b in an INSERT or by an UPDATE or DELETE without a WHERE clause.
func TestNoWriteToAnotherTenant(t *testing.T) {
	eachModel(t, func(t *testing.T, _ *env, db *tenantdb.DB, model, a, b string) {
		err := db.Tx(as(a), func(tx pgx.Tx) error {
			_, err := tx.Exec(context.Background(), "INSERT INTO notes (tenant_id, body) VALUES ($1, 'planted')", b)
			return err
		})
		if model == tenantdb.ModelPool && pgCode(err) != "42501" { // new row violates row-level security policy
			t.Fatalf("pool: a inserting b's row: %v", err)
		}
		err = db.Tx(as(a), func(tx pgx.Tx) error {
			if _, err := tx.Exec(context.Background(), "UPDATE notes SET body = 'overwritten'"); err != nil {
				return err
			}
			_, err := tx.Exec(context.Background(), "DELETE FROM notes WHERE body <> 'planted'")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if nb, _ := bodies(t, db, b); !slices.Equal(nb, []string{"b"}) {
			t.Fatalf("b's notes after a's writes: %v", nb)
		}
	})
}

// TestAnotherTenantsSchemaByName: a bridge tenant's role cannot read b's
// schema or the pool's shared tables even by naming them.
func TestAnotherTenantsSchemaByName(t *testing.T) {
	e, db, a, b := placements(t, tenantdb.ModelBridge)
	insert(t, db, b, "b")
	for _, table := range []string{pgx.Identifier{e.resolverSchema(t, b), "notes"}.Sanitize(), "public.notes"} {
		err := db.Tx(as(a), func(tx pgx.Tx) error {
			var n int
			return tx.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n)
		})
		if pgCode(err) != "42501" { // permission denied
			t.Errorf("a reading %s: %v", table, err)
		}
	}
}

func (e *env) servingUser(t *testing.T) string {
	cfg, err := pgx.ParseConfig(e.app.ServingDSN)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.User
}

func (e *env) resolverSchema(t *testing.T, tid string) string {
	p, err := e.resolver.Placement(context.Background(), tid)
	if err != nil {
		t.Fatal(err)
	}
	return p.Schema
}

// TestPanicInTransaction: a panic in b's function rolls b's transaction
// back, and the connection then serves a with a's settings only.
func TestPanicInTransaction(t *testing.T) {
	eachModel(t, func(t *testing.T, _ *env, db *tenantdb.DB, model, a, b string) {
		func() {
			defer func() {
				if recover() != "boom" {
					t.Fatal("the panic did not reach the caller")
				}
			}()
			db.Tx(as(b), func(tx pgx.Tx) error {
				tx.Exec(context.Background(), "INSERT INTO notes (body) VALUES ('rolled back')")
				panic("boom")
			})
		}()
		if na, _ := bodies(t, db, a); !slices.Equal(na, []string{"a"}) {
			t.Fatalf("a after b's panic: %v", na)
		}
		if nb, _ := bodies(t, db, b); !slices.Equal(nb, []string{"b"}) {
			t.Fatalf("b after its panic: %v (the insert was not rolled back)", nb)
		}
	})
}

// TestHostileSessionSettings: b's transaction sets tenant settings for
// the session (SET, set_config(…, false), SET ROLE) or makes a temporary
// table, and commits; the next transaction (a's in pool and bridge, which
// share the connection; b's own in silo) does not run on that connection
// but on a new one, with its own settings only. Statements that only
// reset settings leave the connection usable.
func TestHostileSessionSettings(t *testing.T) {
	hostile := []string{
		"SELECT set_config('app.tenant_id', 'ten-b', false)",
		"SET app.tenant_id = 'ten-b'",
		"SET search_path = public, pg_catalog",
		"SET ROLE NONE",
		"RESET ALL",
		"SET SESSION ROLE %ROLE%",
		"SELECT set_config('role', '%NAME%', false)",
		"CREATE TEMPORARY TABLE notes (body text); INSERT INTO pg_temp.notes VALUES ('temp'); GRANT ALL ON pg_temp.notes TO PUBLIC",
	}
	eachModel(t, func(t *testing.T, e *env, db *tenantdb.DB, model, a, b string) {
		pb, _ := e.resolver.Placement(context.Background(), b)
		for _, q := range hostile {
			if pb.Role == "" && strings.Contains(q, "%") {
				continue // a pool tenant has no role of its own
			}
			q = replaceRole(q, pb.Role)
			var before uint32
			err := db.Tx(as(b), func(tx pgx.Tx) error {
				before = tx.Conn().PgConn().PID()
				_, err := tx.Exec(context.Background(), q)
				return err
			})
			if model == tenantdb.ModelSilo && strings.HasPrefix(q, "CREATE TEMPORARY") && pgCode(err) == "42501" {
				continue // a silo database grants no TEMPORARY
			}
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			victim, want := a, []string{"a"}
			if model == tenantdb.ModelSilo {
				victim, want = b, []string{"b"}
			}
			nv, pid := bodies(t, db, victim)
			if !slices.Equal(nv, want) {
				t.Fatalf("after b's %s, %s sees %v", q, victim, nv)
			}
			if dirty := leftTenantSettings(q); dirty == (pid == before) {
				t.Fatalf("after b's %s, %s ran on backend %d (b's was %d)", q, victim, pid, before)
			}
			if u, tid, _ := settings(t, db, victim); tid != victim || (model == tenantdb.ModelPool) != (u == e.servingUser(t)) {
				t.Fatalf("after b's %s, %s runs as %q with app.tenant_id %q", q, victim, u, tid)
			}
			if nb, _ := bodies(t, db, b); !slices.Equal(nb, []string{"b"}) {
				t.Fatalf("b after its own %s: %v", q, nb)
			}
		}
	})
}

// leftTenantSettings reports whether q leaves app.tenant_id or the role
// set for the session, or a temporary table (the statements that only
// reset settings do not).
func leftTenantSettings(q string) bool {
	return !slices.Contains([]string{"SET ROLE NONE", "RESET ALL", "SET search_path = public, pg_catalog"}, q)
}

// replaceRole puts role in q: quoted for %ROLE%, as a string's content
// for %NAME%.
func replaceRole(q, role string) string {
	return strings.NewReplacer("%ROLE%", pgx.Identifier{role}.Sanitize(), "%NAME%", role).Replace(q)
}

// TestResetInsideTransaction: a transaction that undoes its own scope
// (RESET ALL, SET ROLE NONE) is left with no tenant at all, not with
// every tenant: pool rows are invisible, bridge and silo tables out of
// reach.
func TestResetInsideTransaction(t *testing.T) {
	eachModel(t, func(t *testing.T, _ *env, db *tenantdb.DB, model, a, b string) {
		for _, reset := range []string{"RESET ALL", "SET LOCAL ROLE NONE", "SELECT set_config('app.tenant_id', '', true)"} {
			var n int
			err := db.Tx(as(a), func(tx pgx.Tx) error {
				if _, err := tx.Exec(context.Background(), reset); err != nil {
					return err
				}
				return tx.QueryRow(context.Background(), "SELECT count(*) FROM notes WHERE tenant_id <> 'ten-a'").Scan(&n)
			})
			if err == nil && n != 0 {
				t.Fatalf("after %s, a's transaction sees %d notes of another tenant", reset, n)
			}
		}
	})
}

// TestNoTenant: without a tenant in the context nothing is asked of the
// resolver or the database.
func TestNoTenant(t *testing.T) {
	e := newEnv(t)
	e.resolver.Set(e.cluster.Pool(t, "ten-a"))
	db := e.open(t, tenantdb.Config{}, "")
	called := false
	fn := func(pgx.Tx) error { called = true; return nil }
	for _, tc := range []struct {
		ctx  context.Context
		want error
	}{
		{context.Background(), tenantdb.ErrNoTenant},
		{tenantdb.WithTenant(context.Background(), ""), tenantdb.ErrNoTenant},
		{tenantdb.WithTenant(context.Background(), "Ten-A"), tenantdb.ErrInvalidTenant},
		{tenantdb.WithTenant(context.Background(), "ten-a'; --"), tenantdb.ErrInvalidTenant},
		{tenantdb.WithTenant(context.Background(), "-ten"), tenantdb.ErrInvalidTenant},
	} {
		if err := db.Tx(tc.ctx, fn); !errors.Is(err, tc.want) {
			t.Errorf("Tx: %v, want %v", err, tc.want)
		}
		if _, err := db.Warm(tc.ctx); !errors.Is(err, tc.want) {
			t.Errorf("Warm: %v, want %v", err, tc.want)
		}
	}
	if called || e.resolver.Calls() != 0 {
		t.Fatalf("fn called: %v; resolver asked %d times", called, e.resolver.Calls())
	}
}

// TestHeldCursorDoesNotCrossTenants: a cursor a's transaction DECLAREs
// WITH HOLD keeps a's rows on the connection past the commit; b's next
// transaction on that connection must not FETCH them by its name (an
// export job with a fixed cursor name, cut off before its CLOSE, and the
// next tenant's run of the same job).
func TestHeldCursorDoesNotCrossTenants(t *testing.T) {
	eachModel(t, func(t *testing.T, _ *env, db *tenantdb.DB, model, a, b string) {
		ctx := context.Background()
		err := db.Tx(as(a), func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "DECLARE export CURSOR WITH HOLD FOR SELECT body FROM notes")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		err = db.Tx(as(b), func(tx pgx.Tx) error {
			rows, _ := tx.Query(ctx, "FETCH ALL FROM export")
			var err error
			got, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		if slices.Contains(got, "a") {
			t.Fatalf("b fetched a's rows from a's held cursor: %v", got)
		}
		if pgCode(err) != "34000" { // invalid_cursor_name
			t.Fatalf("b fetching a cursor it did not declare: %v, %v", got, err)
		}
		// a's own later transactions do not find it either: a held
		// cursor lasts no longer than its transaction's settings.
		err = db.Tx(as(a), func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "FETCH ALL FROM export")
			return err
		})
		if pgCode(err) != "34000" {
			t.Fatalf("a fetching its cursor of an earlier transaction: %v", err)
		}
	})
}

// TestListenDoesNotCrossTenants: a LISTEN in a's transaction stays on the
// session past the commit; b's next transaction on that connection must
// not be listening to a's channel (its notifications would reach b).
func TestListenDoesNotCrossTenants(t *testing.T) {
	eachModel(t, func(t *testing.T, _ *env, db *tenantdb.DB, model, a, b string) {
		ctx := context.Background()
		if err := db.Tx(as(a), func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "LISTEN tenant_a_events")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		var channels []string
		if err := db.Tx(as(b), func(tx pgx.Tx) error {
			rows, _ := tx.Query(ctx, "SELECT pg_listening_channels()")
			var err error
			channels, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(channels) != 0 {
			t.Fatalf("b's transaction listens to %v, left by a's", channels)
		}
	})
}
