package usage_test

import (
	"context"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/usage"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// TestOffboardingDeletesUsage: offboarding a tenant through the registry's
// workflow deletes its plan override, quota counters and usage rows, the
// flushed ones and those still held in memory, and leaves another
// tenant's alone.
func TestOffboardingDeletesUsage(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn, audit.Migrations(), tenants.Migrations(), usage.Migrations())
		fc := clock.NewFake(start)
		log := audit.New(db, audit.Options{Clock: fc})
		t.Cleanup(func() { log.Close() })
		s := usage.New(usage.Config{DB: db, Audit: log, Tiers: tiers(), Clock: fc, QuotaBatch: 5, FlushEvery: time.Hour})
		reg := tenants.NewRegistry(db, log, tenants.Options{Clock: fc, Tiers: tiers()})
		reg.AddOffboardingStep(s.OffboardingStep())
		runtest.Go(t, func(ctx context.Context) error { return reg.Run(ctx, 50*time.Millisecond) })
		run(t, s)
		runtest.Eventually(t, "the plan cache listening", func() bool { return usage.PlansCached(s) })
		ctx := context.Background()
		op := tenant.Actor{Principal: "operator"}
		for _, id := range []tenant.ID{"acme", "globex"} {
			if _, _, err := reg.Create(ctx, tenants.CreateRequest{ID: string(id)}, "", op); err != nil {
				t.Fatal(err)
			}
			waitStatus(t, reg, id, tenants.Active)
			if err := s.SetOverride(ctx, id, usage.Plan{Quota: 100, QuotaPeriod: usage.Day}, op); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if d, err := s.Admit(ctx, id, "basic"); err != nil || !d.Allowed {
					t.Fatalf("admit %s: %+v %v", id, d, err)
				}
				s.Record(ctx, usage.Usage{Tenant: id, Tier: "basic", Status: 200})
			}
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		// Counted after the flush: held in memory when acme leaves.
		if _, err := s.Admit(ctx, "acme", "basic"); err != nil {
			t.Fatal(err)
		}
		s.Record(ctx, usage.Usage{Tenant: "acme", Tier: "basic", Status: 200})
		if _, err := s.Override(ctx, "acme"); err != nil { // cached now
			t.Fatal(err)
		}

		if _, err := reg.Delete(ctx, "acme", op); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, reg, "acme", tenants.Deleted)
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}

		if _, err := s.Override(ctx, "acme"); !errs.Is(err, "usage_plan_not_found") {
			t.Errorf("acme's override after offboarding: %v", err)
		}
		for table, want := range map[string][2]int{"gateway_usage_plans": {0, 1}, "gateway_quota_counters": {0, 1}, "gateway_usage": {0, 1}} {
			for i, id := range []string{"acme", "globex"} {
				var n int
				err := db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
					return tx.QueryRow(ctx, `SELECT COUNT(*) FROM `+table+` WHERE tenant_id = ?`, id).Scan(&n)
				})
				if err != nil {
					t.Fatal(err)
				}
				if n != want[i] {
					t.Errorf("%s rows of %s: %d, want %d", table, id, n, want[i])
				}
			}
		}
		recs, err := s.Usage(ctx, "globex", start.Add(-time.Hour), start.Add(time.Hour))
		if err != nil || len(recs) != 1 || recs[0].Requests != 3 {
			t.Errorf("globex's usage: %+v %v", recs, err)
		}
	})
}

func waitStatus(t *testing.T, reg *tenants.Registry, id tenant.ID, want tenants.Status) {
	t.Helper()
	runtest.Eventually(t, "tenant "+string(id)+" "+string(want), func() bool {
		tn, err := reg.Get(context.Background(), id)
		return err == nil && tn.Status == want
	})
}
