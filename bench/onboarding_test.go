package bench

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/app"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// parallelism multiplies GOMAXPROCS to give the number of goroutines of the
// concurrent variant: 8 per core, 16 on the 2-core bench machine, the same
// order as the HTTP load test's connections.
const parallelism = 8

// openNode wires a whole node (as bulkhead serve does, without the HTTP
// listener) on the database at dsn (storagetest.DSN: fresh and empty) and
// stops it when the benchmark round ends.
func openNode(tb testing.TB, dsn string) *app.App {
	tb.Helper()
	return openNodeConfig(tb, app.Config{Database: dsn})
}

// openNodeConfig is openNode with more of the node's configuration; it
// sets the data directory, version and notices itself.
func openNodeConfig(tb testing.TB, c app.Config) *app.App {
	tb.Helper()
	ctx := context.Background()
	c.DataDir, c.Version, c.Notices = tb.TempDir(), "bench", io.Discard
	c.MigrationDatabase = storagetest.MigrationDSN(tb, c.Database)
	a, err := app.Open(ctx, c)
	if err != nil {
		tb.Fatalf("open node: %v", err)
	}
	tb.Cleanup(a.Close) // after the workflows' Run has returned
	// A long retry interval: the benchmark measures the synchronous
	// onboarding path, not the background retry loop.
	runtest.Go(tb, func(ctx context.Context) error { return a.Tenants.Run(ctx, time.Hour) })
	tb.Cleanup(func() {
		sctx, c := context.WithTimeout(ctx, 30*time.Second)
		defer c()
		if err := a.Tenants.Shutdown(sctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
	})
	return a
}

var seq atomic.Int64

// onboard creates one tenant and checks that onboarding left it active.
func onboard(ctx context.Context, a *app.App) error {
	id := fmt.Sprintf("t-%08d", seq.Add(1))
	t, created, err := a.Tenants.Create(ctx, tenants.CreateRequest{ID: id, Name: "Bench " + id}, "", tenant.Actor{Principal: "bench"})
	switch {
	case err != nil:
		return fmt.Errorf("create %s: %w", id, err)
	case !created:
		return fmt.Errorf("create %s: not created", id)
	case t.Status != tenants.Active:
		return fmt.Errorf("create %s: status %s after onboarding, want active", id, t.Status)
	}
	return nil
}

func reportRate(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "tenants/s")
	}
}

// BenchmarkOnboarding measures tenant onboarding: Registry.Create, which
// inserts the tenant and its workflow and runs the onboarding workflow to
// active before it returns, as POST /v1/tenants does.
//
//	serial:   one caller at a time (latency-bound: the design target's row)
//	parallel: GOMAXPROCS×8 concurrent callers (the HTTP path is concurrent)
func BenchmarkOnboarding(b *testing.B) {
	for _, d := range storagetest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			b.Run("serial", func(b *testing.B) {
				a := openNode(b, storagetest.DSN(b, d)) // skips PostgreSQL without BULKHEAD_TEST_POSTGRES
				ctx := context.Background()
				for b.Loop() {
					if err := onboard(ctx, a); err != nil {
						b.Fatal(err)
					}
				}
				reportRate(b)
			})
			b.Run("parallel", func(b *testing.B) {
				a := openNode(b, storagetest.DSN(b, d)) // skips PostgreSQL without BULKHEAD_TEST_POSTGRES
				ctx := context.Background()
				b.SetParallelism(parallelism)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := onboard(ctx, a); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				reportRate(b)
			})
		})
	}
}

// TestOnboardingSmoke keeps the benchmark's harness honest in a plain
// go test run: one tenant onboarded on each available database.
func TestOnboardingSmoke(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		a := openNode(t, dsn)
		if err := onboard(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	})
}
