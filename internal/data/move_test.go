package data_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
	"github.com/bulkhead-dev/bulkhead/sdk/tenantdb"
)

// The application schema of the move tests: a parent and a child table
// (foreign key, ON DELETE CASCADE: a catch-up that deleted and re-inserted
// a parent would lose its children), a serial id, and a timestamp in a
// key (whose text differs between to_jsonb and ::text).
var moveFiles = []client.DataMigrationFile{
	{Name: "001_items.sql", SQL: `CREATE TABLE items (
	tenant_id text NOT NULL DEFAULT current_setting('app.tenant_id'),
	id bigint NOT NULL,
	body text NOT NULL,
	version int NOT NULL DEFAULT 1,
	PRIMARY KEY (tenant_id, id)
);
CREATE TABLE events (
	tenant_id text NOT NULL DEFAULT current_setting('app.tenant_id'),
	seq bigserial,
	item bigint NOT NULL,
	at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, seq, at),
	FOREIGN KEY (tenant_id, item) REFERENCES items (tenant_id, id) ON DELETE CASCADE
);`},
}

// moveDB is an sdk/tenantdb DB on the node's cluster, following placement
// changes.
func (n *node) moveDB(t *testing.T) *tenantdb.DB {
	t.Helper()
	db, err := tenantdb.Open(tenantdb.Config{Clusters: map[string]string{"app": n.app.ServingDSN},
		Resolver: tenantdb.ClientResolver{Client: n.op}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); db.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; db.Close() })
	return db
}

// migrate starts moving tenant id to tier and waits for the migration to end.
func (n *node) migrate(t *testing.T, id, tier string) client.TenantMigration {
	t.Helper()
	m, err := n.op.StartMigration(t.Context(), id, tier)
	if err != nil {
		t.Fatalf("start migration of %s to %s: %v", id, tier, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		m, err = n.op.GetMigration(t.Context(), id, m.ID)
		if err == nil && m.Status != "running" {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("migration of %s to %s still running: %+v %v; data %+v\n%s", id, tier, m, err, m.Data, n.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writer is one client of a tenant's data: it owns the item ids i ≡ k
// (mod writers) and remembers what it was told had committed.
type writer struct {
	k, writers int
	want       map[int64]string // acknowledged state; "" deleted
	failures   []error
	maxLatency time.Duration
}

func (w *writer) step(ctx context.Context, db *tenantdb.DB, rng *rand.Rand) {
	id := int64(rng.IntN(200)*w.writers + w.k)
	body := strconv.FormatInt(rng.Int64(), 36)
	start := time.Now()
	var err error
	deleted := false
	switch op := rng.IntN(10); {
	case op < 7:
		err = db.Tx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO items (id, body) VALUES ($1, $2)
				ON CONFLICT (tenant_id, id) DO UPDATE SET body = EXCLUDED.body, version = items.version + 1`, id, body); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO events (item) VALUES ($1)`, id)
			return err
		})
	case op < 9:
		deleted = true
		err = db.Tx(ctx, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `DELETE FROM items WHERE id = $1`, id)
			return err
		})
	default:
		err = db.ReadTx(ctx, func(tx pgx.Tx) error {
			var n int
			return tx.QueryRow(ctx, `SELECT count(*) FROM items`).Scan(&n)
		})
		w.maxLatency = max(w.maxLatency, time.Since(start))
		if err != nil {
			w.failures = append(w.failures, err)
		}
		return
	}
	w.maxLatency = max(w.maxLatency, time.Since(start))
	if err != nil {
		w.failures = append(w.failures, err)
		return
	}
	if deleted {
		w.want[id] = ""
	} else {
		w.want[id] = body
	}
}

// TestMoveUnderLoad moves a pool tenant to silo and back while clients
// write to it through sdk/tenantdb: no transaction fails, every write
// acknowledged is where the tenant's data ends up, each table verified,
// the fence shorter than a second, and another pool tenant's rows never
// touched.
func TestMoveUnderLoad(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		n := start(t, dsn)
		n.addCluster(t)
		if _, err := n.op.RegisterMigrations(ctx, "app", register(moveFiles...)); err != nil {
			t.Fatal(err)
		}
		n.converged(t, moveFiles[0].Name, 1)
		n.onboard(t, "mover", "basic")
		n.onboard(t, "bystander", "basic")
		db := n.moveDB(t)
		mover, bystander := tenantdb.WithTenant(ctx, "mover"), tenantdb.WithTenant(ctx, "bystander")

		// Rows to copy: 2,000 items, half with events.
		for _, c := range []context.Context{mover, bystander} {
			err := db.Tx(c, func(tx pgx.Tx) error {
				_, err := tx.Exec(c, `INSERT INTO items (id, body) SELECT i, 'seed' || i FROM generate_series(100000, 101999) i;
					INSERT INTO events (item) SELECT i FROM generate_series(100000, 101999, 2) i`)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}

		const writers = 4
		ws := make([]*writer, writers)
		var stop atomic.Bool
		var wg sync.WaitGroup
		for k := range ws {
			ws[k] = &writer{k: k, writers: writers, want: map[int64]string{}}
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(k), 7))
				for !stop.Load() {
					ws[k].step(mover, db, rng)
				}
			})
		}
		var bystanderFailures atomic.Int64
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				err := db.Tx(bystander, func(tx pgx.Tx) error {
					_, err := tx.Exec(bystander, `INSERT INTO items (id, body) VALUES ($1, 'b') ON CONFLICT DO NOTHING`, i)
					return err
				})
				if err != nil {
					bystanderFailures.Add(1)
				}
			}
		})

		time.Sleep(200 * time.Millisecond)
		toSilo := n.migrate(t, "mover", "premium")
		time.Sleep(200 * time.Millisecond)
		back := n.migrate(t, "mover", "basic")
		time.Sleep(200 * time.Millisecond)
		stop.Store(true)
		wg.Wait()

		for _, m := range []client.TenantMigration{toSilo, back} {
			if m.Status != "done" || m.Data == nil || m.Data.Status != "switched" {
				t.Fatalf("migration %s → %s: %+v (data %+v)", m.FromTier, m.ToTier, m, m.Data)
			}
			pause, _ := strconv.ParseFloat(m.Data.WritePauseMS, 64)
			t.Logf("%s → %s: %d rows, write pause %.1f ms, verified %v", m.FromIsolation, m.ToIsolation, m.Data.RowsTotal, pause, m.Data.Verified)
			if pause <= 0 || pause >= 1000 {
				t.Errorf("write pause %v ms; want (0, 1000)", m.Data.WritePauseMS)
			}
			if len(m.Data.Verified) != 2 {
				t.Errorf("verified tables: %v", m.Data.Verified)
			}
		}
		tn, err := n.op.GetTenant(ctx, "mover")
		if err != nil || tn.Tier != "basic" || tn.Isolation != "pool" {
			t.Fatalf("tenant after the moves: %+v %v", tn, err)
		}
		p, err := n.op.GetPlacement(ctx, "mover")
		if err != nil || p.Model != "pool" || p.Version < 3 {
			t.Fatalf("placement after the moves: %+v %v", p, err)
		}

		acknowledged := 0
		var maxLatency time.Duration
		for _, w := range ws {
			if len(w.failures) > 0 {
				t.Errorf("writer %d: %d failed transactions, the first: %v", w.k, len(w.failures), w.failures[0])
			}
			maxLatency = max(maxLatency, w.maxLatency)
			for id, body := range w.want {
				acknowledged++
				var got string
				err := db.Tx(mover, func(tx pgx.Tx) error {
					return tx.QueryRow(mover, `SELECT body FROM items WHERE id = $1`, id).Scan(&got)
				})
				if errors.Is(err, pgx.ErrNoRows) {
					got, err = "", nil
				}
				if err != nil || got != body {
					t.Errorf("item %d: %q %v; the last acknowledged write left %q", id, got, err, body)
				}
			}
		}
		t.Logf("%d items written by %d clients; slowest transaction %v", acknowledged, writers, maxLatency)
		if bystanderFailures.Load() != 0 {
			t.Errorf("the bystander had %d failed writes", bystanderFailures.Load())
		}
		var seeds int
		err = db.Tx(bystander, func(tx pgx.Tx) error {
			return tx.QueryRow(bystander, `SELECT count(*) FROM items WHERE body LIKE 'seed%'`).Scan(&seeds)
		})
		if err != nil || seeds != 2000 {
			t.Errorf("the bystander's seed rows: %d %v", seeds, err)
		}
		// The silo the tenant left is retained, not yet dropped.
		admin := mustConnect(t, n.app.AdminDSN, "")
		var silos int
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname LIKE $1`, n.app.Prefix+"%mover").Scan(&silos); err != nil || silos != 1 {
			t.Errorf("silo databases of mover: %d %v; want the retained one", silos, err)
		}
	})
}

// TestMoveOldSnapshotWriter: a SERIALIZABLE (or REPEATABLE READ)
// transaction whose snapshot was taken before the cutover, and whose first
// write comes after it, would not see the source marked moved and would
// commit to the source, lost. The fence reads the mark FOR SHARE: the write
// fails with a serialization failure, sdk/tenantdb sees the placement has
// changed and runs the function again on the new one, where the row lands.
func TestMoveOldSnapshotWriter(t *testing.T) {
	for _, iso := range []pgx.TxIsoLevel{pgx.Serializable, pgx.RepeatableRead} {
		t.Run(string(iso), func(t *testing.T) {
			ctx := t.Context()
			n := start(t, storagetest.DSN(t, storage.SQLite))
			n.addCluster(t)
			if _, err := n.op.RegisterMigrations(ctx, "app", register(moveFiles...)); err != nil {
				t.Fatal(err)
			}
			n.converged(t, moveFiles[0].Name, 1)
			n.onboard(t, "mover", "basic")
			db := n.moveDB(t)
			mover := tenantdb.WithTenant(ctx, "mover")

			snapshot, moved := make(chan struct{}), make(chan struct{})
			var runs atomic.Int32
			done := make(chan error, 1)
			go func() {
				done <- db.TxWithOptions(mover, pgx.TxOptions{IsoLevel: iso}, func(tx pgx.Tx) error {
					var n int
					if err := tx.QueryRow(mover, `SELECT count(*) FROM items`).Scan(&n); err != nil { // the snapshot
						return err
					}
					if runs.Add(1) == 1 {
						close(snapshot)
					}
					<-moved
					_, err := tx.Exec(mover, `INSERT INTO items (id, body) VALUES (1, 'late')`)
					return err
				})
			}()
			<-snapshot
			m := n.migrate(t, "mover", "premium")
			if m.Status != "done" {
				t.Fatalf("migration: %+v", m)
			}
			close(moved)
			if err := <-done; err != nil {
				t.Fatalf("the old snapshot's transaction: %v", err)
			}
			if runs.Load() < 2 {
				t.Errorf("the function ran %d times; want a retry on the new placement", runs.Load())
			}
			var body string
			err := db.Tx(mover, func(tx pgx.Tx) error {
				return tx.QueryRow(mover, `SELECT body FROM items WHERE id = 1`).Scan(&body)
			})
			if err != nil || body != "late" {
				t.Fatalf("the late write on the new placement: %q %v", body, err)
			}
			p, _ := n.op.GetPlacement(ctx, "mover")
			admin := mustConnect(t, n.app.AdminDSN, "")
			if _, err := admin.Exec(ctx, `SELECT set_config('app.tenant_id', 'mover', false)`); err != nil {
				t.Fatal(err)
			}
			if c := queryInt(t, admin, `SELECT count(*) FROM public.items WHERE id = 1`); c != 0 || p.Model != "silo" {
				t.Errorf("the late write reached the source the tenant left (%d rows; placement %s)", c, p.Model)
			}
		})
	}
}

// TestMoveRefusals: moves the placements cannot take end failed, the
// tenant where it was with every row, writes going on there. A target
// that changes rows as they arrive (a trigger only the silo database
// has) fails the verification: rolled back. A pool table whose key lacks
// tenant_id is refused as a pool target (a silo's rows could take other
// tenants' keys there).
func TestMoveRefusals(t *testing.T) {
	ctx := t.Context()
	n := start(t, storagetest.DSN(t, storage.SQLite))
	n.addCluster(t)
	files := []client.DataMigrationFile{{Name: "001_docs.sql", SQL: `CREATE TABLE docs (
	tenant_id text NOT NULL DEFAULT current_setting('app.tenant_id'),
	id bigint NOT NULL,
	body text NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
CREATE TABLE counters (
	id bigserial PRIMARY KEY,
	tenant_id text NOT NULL DEFAULT current_setting('app.tenant_id'),
	n int NOT NULL DEFAULT 0
);
-- Only in a silo database of the tenant "drifty": rows change as they arrive.
DO $$ BEGIN
	IF current_database() LIKE '%drifty' THEN
		CREATE FUNCTION drift() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN NEW.body := upper(NEW.body); RETURN NEW; END $f$;
		CREATE TRIGGER drift BEFORE INSERT OR UPDATE ON docs FOR EACH ROW EXECUTE FUNCTION drift();
	END IF;
END $$;`}}
	if _, err := n.op.RegisterMigrations(ctx, "app", register(files...)); err != nil {
		t.Fatal(err)
	}
	n.converged(t, files[0].Name, 1)
	n.onboard(t, "drifty", "basic")
	n.onboard(t, "keyless", "premium")
	db := n.moveDB(t)
	for _, tid := range []string{"drifty", "keyless"} {
		c := tenantdb.WithTenant(ctx, tid)
		if err := db.Tx(c, func(tx pgx.Tx) error {
			_, err := tx.Exec(c, `INSERT INTO docs (id, body) SELECT g, 'doc ' || g FROM generate_series(1, 500) g; INSERT INTO counters (n) VALUES (1), (2)`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}

	for _, c := range []struct{ tid, tier, model, want string }{
		{"drifty", "premium", "pool", "verification failed for table docs"},
		{"keyless", "basic", "silo", "primary key does not include tenant_id"},
	} {
		m := n.migrate(t, c.tid, c.tier)
		if m.Status != "failed" || m.Data == nil || m.Data.Status != "rolled_back" || !strings.Contains(m.Data.Error, c.want) {
			t.Errorf("%s: %+v, data %+v; want failed, rolled back: %s", c.tid, m, m.Data, c.want)
		}
		tn, err := n.op.GetTenant(ctx, c.tid)
		p, perr := n.op.GetPlacement(ctx, c.tid)
		if err != nil || perr != nil || p.Model != c.model || tn.Isolation != c.model {
			t.Errorf("%s after the refusal: %+v %+v %v %v", c.tid, tn, p, err, perr)
		}
		// Its data is whole and takes writes where it is.
		tc := tenantdb.WithTenant(ctx, c.tid)
		var docs int
		err = db.Tx(tc, func(tx pgx.Tx) error {
			if _, err := tx.Exec(tc, `INSERT INTO docs (id, body) VALUES (1000, 'after')`); err != nil {
				return err
			}
			return tx.QueryRow(tc, `SELECT count(*) FROM docs`).Scan(&docs)
		})
		if err != nil || docs != 501 {
			t.Errorf("%s's docs after the refusal: %d %v", c.tid, docs, err)
		}
	}
}
