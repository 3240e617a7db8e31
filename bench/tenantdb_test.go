package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/tenantdb"
	"github.com/bulkhead-dev/bulkhead/sdk/tenantdb/tenantdbtest"
)

// Scoped application-database transactions (DESIGN: ≤ 10 % over a raw
// pgx transaction in pool and bridge; the warm silo pool lookup < 5 µs).
//
// Each iteration runs one indexed single-row SELECT (by primary key, in a
// table of 1,000 rows per tenant, two tenants) in a transaction twice,
// one after the other: through tenantdb.Tx, scoped to the tenant (its
// placement cached; BEGIN and the scoping statement in one round trip),
// and through a raw pgxpool transaction (BEGIN, the same SELECT, COMMIT)
// on the same database, whose connection carries the tenant's settings
// from its start (as the tables' owner, which FORCEd row-level security
// binds too, so pool pays the same policy). Interleaving keeps the ratio
// honest when the machine's load changes during the run. overhead_% is
// the scoped transaction's extra time over the raw one's.

const tenantdbSchema = `
CREATE TABLE items (
	id bigint PRIMARY KEY,
	tenant_id text NOT NULL DEFAULT current_setting('app.tenant_id', true),
	body text NOT NULL
);`

// tenantdbRig is an application cluster with two tenants in one model,
// tenantdb over it, and a raw pool as the first tenant.
type tenantdbRig struct {
	db  *tenantdb.DB
	raw *pgxpool.Pool
	ctx context.Context // the first tenant's
	ids []int64         // the first tenant's item ids
}

func newTenantDBRig(tb testing.TB, model string) *tenantdbRig {
	tb.Helper()
	app := storagetest.App(tb) // fails or skips without PostgreSQL
	c := tenantdbtest.New(tb, tenantdbtest.Options{Name: "app", AdminDSN: app.AdminDSN, ServingDSN: app.ServingDSN,
		Prefix: app.Prefix, Schema: tenantdbSchema})
	r := tenantdbtest.NewResolver()
	tids := []string{fmt.Sprintf("bench-%06d", seq.Add(1)), fmt.Sprintf("bench-%06d", seq.Add(1))}
	for _, tid := range tids {
		switch model {
		case tenantdb.ModelPool:
			r.Set(c.Pool(tb, tid))
		case tenantdb.ModelBridge:
			r.Set(c.Bridge(tb, tid))
		case tenantdb.ModelSilo:
			r.Set(c.Silo(tb, tid))
		}
	}
	db, err := tenantdb.Open(tenantdb.Config{Clusters: map[string]string{"app": app.ServingDSN}, Resolver: r})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(db.Close)
	ctx := context.Background()
	for i, tid := range tids {
		err := db.Tx(tenantdb.WithTenant(ctx, tid), func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO items (id, body) SELECT $1::bigint + g, 'item ' || g FROM generate_series(1, 1000) g",
				int64(i)*1_000_000)
			return err
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	p, _ := r.Placement(ctx, tids[0])
	c.Exec(tb, p.Database, "ANALYZE")
	if model != tenantdb.ModelSilo {
		p.Database = ""
	}
	rig := &tenantdbRig{db: db, ctx: tenantdb.WithTenant(ctx, tids[0])}
	for i := range int64(1000) {
		rig.ids = append(rig.ids, i+1)
	}
	rig.raw = rawTenantPool(tb, app.AdminDSN, p.Database, tids[0], p.Schema)
	return rig
}

// rawTenantPool is a pool on database ("" for the shared one) as the
// admin role, whose connections start with the tenant's app.tenant_id and
// search_path.
func rawTenantPool(tb testing.TB, adminDSN, database, tid, schema string) *pgxpool.Pool {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(adminDSN)
	if err != nil {
		tb.Fatal(err)
	}
	if database != "" {
		cfg.ConnConfig.Database = database
	}
	cfg.ConnConfig.RuntimeParams["app.tenant_id"] = tid
	cfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{schema}.Sanitize()
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

const itemSQL = "SELECT body FROM items WHERE id = $1"

func (r *tenantdbRig) scoped(id int64) (string, error) {
	var body string
	err := r.db.Tx(r.ctx, func(tx pgx.Tx) error { return tx.QueryRow(r.ctx, itemSQL, id).Scan(&body) })
	return body, err
}

func (r *tenantdbRig) rawTx(id int64) (string, error) {
	var body string
	err := pgx.BeginFunc(r.ctx, r.raw, func(tx pgx.Tx) error { return tx.QueryRow(r.ctx, itemSQL, id).Scan(&body) })
	return body, err
}

// BenchmarkTenantDBTx: scoped against raw transactions, per placement.
func BenchmarkTenantDBTx(b *testing.B) {
	for _, model := range []string{tenantdb.ModelPool, tenantdb.ModelBridge, tenantdb.ModelSilo} {
		b.Run(model, func(b *testing.B) {
			r := newTenantDBRig(b, model)
			for _, id := range r.ids[:10] { // warm both pools and check
				s, err1 := r.scoped(id)
				w, err2 := r.rawTx(id)
				if err1 != nil || err2 != nil || s != w || s == "" {
					b.Fatalf("scoped %q %v; raw %q %v", s, err1, w, err2)
				}
			}
			// Medians, not means: on a 2-core machine shared with the
			// database, a scheduling hiccup in either half of an
			// iteration moved the mean's ratio by ±10 points between runs.
			var raw, scoped []time.Duration
			i := 0
			for b.Loop() {
				id := r.ids[i%len(r.ids)]
				i++
				t0 := time.Now()
				if _, err := r.rawTx(id); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if _, err := r.scoped(id); err != nil {
					b.Fatal(err)
				}
				raw = append(raw, t1.Sub(t0))
				scoped = append(scoped, time.Since(t1))
			}
			mRaw, mScoped := median(raw), median(scoped)
			b.ReportMetric(mRaw.Seconds()*1e6, "raw_µs")
			b.ReportMetric(mScoped.Seconds()*1e6, "scoped_µs")
			b.ReportMetric(100*(mScoped.Seconds()/mRaw.Seconds()-1), "overhead_%")
		})
	}
}

// BenchmarkTenantDBSiloLookup: what a silo tenant's transaction does
// before it talks to the database, warm (Warm: the tenant from the
// context, its cached placement, its open pool in the LRU).
func BenchmarkTenantDBSiloLookup(b *testing.B) {
	r := newTenantDBRig(b, tenantdb.ModelSilo)
	if _, err := r.db.Warm(r.ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.db.Warm(r.ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTenantDBSmoke keeps the benchmarks' rigs honest in a plain go test
// run: one scoped and one raw transaction per placement.
func TestTenantDBSmoke(t *testing.T) {
	for _, model := range []string{tenantdb.ModelPool, tenantdb.ModelBridge, tenantdb.ModelSilo} {
		t.Run(model, func(t *testing.T) {
			r := newTenantDBRig(t, model)
			s, err1 := r.scoped(r.ids[7])
			w, err2 := r.rawTx(r.ids[7])
			if err1 != nil || err2 != nil || s != w || !strings.HasPrefix(s, "item ") {
				t.Fatalf("scoped %q %v; raw %q %v", s, err1, w, err2)
			}
		})
	}
}

// median returns the middle of ds (sorting it).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}
