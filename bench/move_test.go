package bench

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
	"github.com/bulkhead-dev/bulkhead/sdk/tenantdb"
)

// Tier migrations (issue: a tenant with 100k rows over 5 tables moved
// between pool and silo; the write pause at the cutover, p50 and max; the
// replication lag during the copy under load; other tenants' latency
// during a move within 20 % of before).
//
// One node (SQLite) with an application cluster; the moving tenant has
// 20,000 rows in each of 5 tables. Each iteration moves it to the other
// model (pool → silo, silo → pool, …) while 4 goroutines write to it
// through sdk/tenantdb (upserts into one table, a row per transaction,
// 100/s each) and a bystander pool tenant reads one of its rows by key in
// a loop.
// lag_max is the most pending changes the migration reported during the
// copy; bystander_% is the bystander's median latency during the moves
// over its median in the 2 s before them, the writers running in both (an
// interleaved baseline would stop the moves).

const moveTables = 5

func moveSchema() string {
	s := ""
	for i := range moveTables {
		s += fmt.Sprintf(`CREATE TABLE t%d (
	tenant_id text NOT NULL DEFAULT current_setting('app.tenant_id'),
	id bigint NOT NULL,
	body text NOT NULL,
	n int NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, id)
);
`, i)
	}
	return s
}

func BenchmarkTenantMove(b *testing.B) {
	ctx := context.Background()
	appc := storagetest.App(b)
	env := apitest.New(b, storagetest.DSN(b, storage.SQLite), apitest.Options{Logger: benchLogger(b)})
	op := env.Admin
	if _, err := op.CreateCluster(ctx, client.CreateDataCluster{Name: "app", DSN: appc.ServingDSN, AdminDSN: appc.AdminDSN, Prefix: appc.Prefix}); err != nil {
		b.Fatal(err)
	}
	if _, err := op.RegisterMigrations(ctx, "app", client.RegisterDataMigrations{Files: []client.DataMigrationFile{{Name: "001_tables.sql", SQL: moveSchema()}}}); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		st, err := op.MigrationStatus(ctx, "app")
		if err == nil && len(st.Places) == 1 && st.Places[0].Pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the pool is not migrated: %+v %v", st, err)
		}
	}
	for _, tid := range []string{"mover", "bystander"} {
		if _, err := op.CreateTenant(ctx, client.CreateTenant{ID: tid, Tier: "basic"}, ""); err != nil {
			b.Fatal(err)
		}
	}
	db, err := tenantdb.Open(tenantdb.Config{Clusters: map[string]string{"app": appc.ServingDSN}, Resolver: tenantdb.ClientResolver{Client: op}})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() { defer close(ran); db.Run(runCtx) }()
	defer func() { stopRun(); <-ran; db.Close() }()
	mover, bystander := tenantdb.WithTenant(ctx, "mover"), tenantdb.WithTenant(ctx, "bystander")
	for _, c := range []context.Context{mover, bystander} {
		err := db.Tx(c, func(tx pgx.Tx) error {
			for i := range moveTables {
				if _, err := tx.Exec(c, fmt.Sprintf(`INSERT INTO t%d (id, body) SELECT g, repeat('x', 60) || g FROM generate_series(1, 20000) g`, i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	var writes, failed atomic.Int64
	// Paced, so that the machine is not saturated by the writers alone and
	// the bystander's latency shows what the move costs it.
	const writeRate = 100 // per writer, per second
	for k := range 4 {
		wg.Go(func() {
			tick := time.NewTicker(time.Second / writeRate)
			defer tick.Stop()
			for i := 0; !stop.Load(); i++ {
				<-tick.C
				id := int64(k*1_000_000 + i%5000)
				err := db.Tx(mover, func(tx pgx.Tx) error {
					_, err := tx.Exec(mover, `INSERT INTO t0 (id, body) VALUES ($1, 'w') ON CONFLICT (tenant_id, id) DO UPDATE SET n = t0.n + 1`, id)
					return err
				})
				writes.Add(1)
				if err != nil {
					failed.Add(1)
				}
			}
		})
	}
	var mu sync.Mutex
	var during atomic.Bool
	lat := [2][]time.Duration{}
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			start := time.Now()
			var body string
			err := db.ReadTx(bystander, func(tx pgx.Tx) error {
				return tx.QueryRow(bystander, `SELECT body FROM t1 WHERE id = $1`, int64(i%20000+1)).Scan(&body)
			})
			d := time.Since(start)
			if err != nil {
				failed.Add(1)
			}
			phase := 0
			if during.Load() {
				phase = 1
			}
			mu.Lock()
			lat[phase] = append(lat[phase], d)
			mu.Unlock()
		}
	})
	// The baseline: the bystander's second second (the first warms its
	// connections up), with the mover's writers running.
	time.Sleep(time.Second)
	mu.Lock()
	lat[0] = lat[0][:0]
	mu.Unlock()
	time.Sleep(2 * time.Second)
	during.Store(true)

	tiers := []string{"premium", "basic"}
	var moves, pauses []time.Duration
	var lagMax int64
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		m, err := op.StartMigration(ctx, "mover", tiers[i%2])
		if err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Minute)
		for m.Status == "running" {
			if time.Now().After(deadline) {
				b.Fatalf("migration still running: %+v, data %+v", m, m.Data)
			}
			time.Sleep(20 * time.Millisecond)
			if m, err = op.GetMigration(ctx, "mover", m.ID); err != nil {
				b.Fatal(err)
			}
			if m.Data != nil && m.Data.Status == "copying" {
				lagMax = max(lagMax, m.Data.Lag)
			}
		}
		moves = append(moves, time.Since(start))
		if m.Status != "done" || m.Data == nil {
			b.Fatalf("migration: %+v, data %+v", m, m.Data)
		}
		pause, _ := strconv.ParseFloat(m.Data.WritePauseMS, 64)
		pauses = append(pauses, time.Duration(pause*float64(time.Millisecond)))
	}
	b.StopTimer()
	stop.Store(true)
	wg.Wait()
	if failed.Load() > 0 {
		b.Fatalf("%d of %d transactions failed during the moves", failed.Load(), writes.Load())
	}
	slices.Sort(pauses)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(mean(moves).Seconds(), "s/move")
	b.ReportMetric(float64(pauses[len(pauses)/2])/float64(time.Millisecond), "pause_p50_ms")
	b.ReportMetric(float64(pauses[len(pauses)-1])/float64(time.Millisecond), "pause_max_ms")
	b.ReportMetric(float64(lagMax), "lag_max")
	b.ReportMetric(float64(writes.Load())/time.Duration(sum(moves)).Seconds(), "writes/s")
	b.ReportMetric(100*(float64(median(lat[1]))/float64(median(lat[0]))-1), "bystander_%")
}

func sum(ds []time.Duration) time.Duration {
	var s time.Duration
	for _, d := range ds {
		s += d
	}
	return s
}

func mean(ds []time.Duration) time.Duration { return sum(ds) / time.Duration(len(ds)) }

// benchLogger keeps a node's warnings and errors for the benchmark's log.
func benchLogger(b *testing.B) *slog.Logger {
	return slog.New(slog.NewTextHandler(benchLog{b}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type benchLog struct{ b *testing.B }

func (l benchLog) Write(p []byte) (int, error) { l.b.Log(string(p)); return len(p), nil }
