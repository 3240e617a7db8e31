package bench

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// BenchmarkGet measures Registry.Get, the service call behind
// GET /v1/tenants/{id}, without HTTP: GOMAXPROCS×8 concurrent readers
// round-robin over 1,000 active tenants.
func BenchmarkGet(b *testing.B) {
	const n = 1000
	for _, d := range storagetest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			a := openNode(b, storagetest.DSN(b, d))
			ctx := context.Background()
			ids := make([]tenant.ID, n)
			var g errgroup
			for w := range 8 { // create concurrently: on PostgreSQL a serial setup takes seconds per round
				g.Go(func() error {
					for i := w; i < n; i += 8 {
						ids[i] = tenant.ID(fmt.Sprintf("g-%05d", i))
						if _, _, err := a.Tenants.Create(ctx, tenants.CreateRequest{ID: string(ids[i])}, "", tenant.Actor{Principal: "bench"}); err != nil {
							return err
						}
					}
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(parallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if _, err := a.Tenants.Get(ctx, ids[i%n]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if s := b.Elapsed().Seconds(); s > 0 {
				b.ReportMetric(float64(b.N)/s, "gets/s")
			}
		})
	}
}

// errgroup runs functions concurrently and keeps the first error.
type errgroup struct {
	wg   sync.WaitGroup
	once sync.Once
	err  error
}

func (g *errgroup) Go(fn func() error) {
	g.wg.Go(func() {
		if err := fn(); err != nil {
			g.once.Do(func() { g.err = err })
		}
	})
}

func (g *errgroup) Wait() error {
	g.wg.Wait()
	return g.err
}
