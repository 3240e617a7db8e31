package tenants_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// migrationEnv is a registry whose migrations run a step that waits at a
// gate (so a migration can be caught running) and then, when abort is
// set, aborts.
type migrationEnv struct {
	*env
	gate  chan struct{}
	abort atomic.Bool
	saw   atomic.Value // the Migration the step saw
}

func newMigrationEnv(t *testing.T, dsn string) *migrationEnv {
	t.Helper()
	db := storagetest.Open(t, dsn, audit.Migrations(), tenants.Migrations())
	l := audit.New(db, audit.Options{})
	t.Cleanup(func() { l.Close() })
	reg := tenants.NewRegistry(db, l, tenants.Options{Tiers: tenants.Tiers{
		"basic":   {Name: "basic", Isolation: tenants.Pool},
		"plus":    {Name: "plus", Isolation: tenants.Pool},
		"premium": {Name: "premium", Isolation: tenants.Silo},
	}})
	m := &migrationEnv{env: &env{db: db, log: l, reg: reg}, gate: make(chan struct{}, 100)}
	reg.AddMigrationStep(tenants.Step{Name: "test-gate",
		Work: func(ctx context.Context, t tenants.Tenant) (func(bool), error) {
			mig, _ := tenants.MigrationOf(ctx)
			m.saw.Store(mig)
			select {
			case <-m.gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if m.abort.Load() {
				return nil, tenants.Abort(errors.New("verification failed (test)"))
			}
			return nil, nil
		},
		Run: func(context.Context, *storage.Tx, tenants.Tenant) error { return nil }})
	runtest.Go(t, func(ctx context.Context) error { return reg.Run(ctx, 50*time.Millisecond) })
	return m
}

func (m *migrationEnv) wait(t *testing.T, id tenant.ID, wf string) tenants.MigrationInfo {
	t.Helper()
	var got tenants.MigrationInfo
	runtest.Eventually(t, "the migration to end", func() bool {
		var err error
		got, err = m.reg.GetMigration(context.Background(), id, wf)
		return err == nil && got.Status != tenants.WorkflowRunning
	})
	return got
}

// TestMigrationRules: what a tier migration refuses and when the tier
// changes. One migration at a time and no tier change beside it; the tier
// is the old one until the migration's switch; an aborted migration ends
// failed with the tenant where it was; an offboarding cancels one; and a
// migration id is found under its own tenant only.
func TestMigrationRules(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		e := newMigrationEnv(t, dsn)
		for _, id := range []string{"acme", "other"} {
			if _, _, err := e.reg.Create(ctx, tenants.CreateRequest{ID: id}, "", op); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.reg.StartMigration(ctx, "acme", "gold", op); !errs.Is(err, "unknown_tier") {
			t.Errorf("unknown tier: %v", err)
		}
		if _, err := e.reg.StartMigration(ctx, "acme", "basic", op); !errs.Is(err, "tier_unchanged") {
			t.Errorf("same tier: %v", err)
		}
		if _, err := e.reg.StartMigration(ctx, "nobody", "premium", op); !errs.Is(err, "tenant_not_found") {
			t.Errorf("unknown tenant: %v", err)
		}

		m, err := e.reg.StartMigration(ctx, "acme", "premium", op)
		if err != nil || m.Status != tenants.WorkflowRunning || m.FromTier != "basic" || m.To != tenants.Silo {
			t.Fatalf("start: %+v %v", m, err)
		}
		runtest.Eventually(t, "the step to see its migration", func() bool { return e.saw.Load() != nil })
		if got := e.saw.Load().(tenants.Migration); got.FromTier != "basic" || got.ToTier != "premium" || got.From != tenants.Pool {
			t.Errorf("the step saw %+v", got)
		}
		if _, err := e.reg.StartMigration(ctx, "acme", "plus", op); !errs.Is(err, "migration_in_progress") {
			t.Errorf("a second migration: %v", err)
		}
		plus := "plus"
		if _, err := e.reg.Update(ctx, "acme", tenants.Patch{Tier: &plus}, op); !errs.Is(err, "migration_in_progress") {
			t.Errorf("a tier change during a migration: %v", err)
		}
		if tn, _ := e.reg.Get(ctx, "acme"); tn.Tier != "basic" || tn.Isolation != tenants.Pool {
			t.Errorf("the tier changed before the switch: %+v", tn)
		}
		// Found under its own tenant only, and only as a migration.
		for _, c := range []struct {
			tid tenant.ID
			wf  string
		}{{"other", m.ID}, {"acme", "wf_nope"}} {
			if _, err := e.reg.GetMigration(ctx, c.tid, c.wf); !errs.Is(err, "migration_not_found") {
				t.Errorf("GetMigration(%s, %s): %v", c.tid, c.wf, err)
			}
		}
		wfs, _ := e.reg.Workflows(ctx, "acme")
		onboarding := wfs[len(wfs)-1].ID
		if _, err := e.reg.GetMigration(ctx, "acme", onboarding); !errs.Is(err, "migration_not_found") {
			t.Errorf("an onboarding as a migration: %v", err)
		}

		e.gate <- struct{}{}
		done := e.wait(t, "acme", m.ID)
		if done.Status != tenants.WorkflowDone || !slices.ContainsFunc(done.Steps, func(s tenants.StepRecord) bool { return s.Name == "switch-tier" }) {
			t.Fatalf("migration: %+v", done)
		}
		tn, err := e.reg.Get(ctx, "acme")
		if err != nil || tn.Tier != "premium" || tn.Isolation != tenants.Silo || tn.PriorIsolation != tenants.Pool || tn.IsolationChangedAt.IsZero() {
			t.Fatalf("after the migration: %+v %v", tn, err)
		}

		// An aborted migration: failed, not retried, the tenant unmoved.
		e.abort.Store(true)
		m2, err := e.reg.StartMigration(ctx, "acme", "basic", op)
		if err != nil {
			t.Fatal(err)
		}
		e.gate <- struct{}{}
		failed := e.wait(t, "acme", m2.ID)
		if failed.Status != tenants.WorkflowFailed || failed.LastError == "" {
			t.Fatalf("aborted migration: %+v", failed)
		}
		if tn, _ := e.reg.Get(ctx, "acme"); tn.Tier != "premium" {
			t.Errorf("an aborted migration moved the tenant: %+v", tn)
		}
		e.abort.Store(false)

		// An offboarding cancels the migration under way.
		m3, err := e.reg.StartMigration(ctx, "acme", "plus", op)
		if err != nil {
			t.Fatalf("a migration after a failed one: %v", err)
		}
		if _, err := e.reg.Delete(ctx, "acme", op); err != nil {
			t.Fatal(err)
		}
		e.gate <- struct{}{}
		if got := e.wait(t, "acme", m3.ID); got.Status != tenants.WorkflowCancelled {
			t.Errorf("migration after an offboarding: %+v", got)
		}
		runtest.Eventually(t, "acme to be deleted", func() bool {
			tn, err := e.reg.Get(ctx, "acme")
			return err == nil && tn.Status == tenants.Deleted
		})

		// The trail.
		var actions []string
		page, err := e.log.ListTenant(ctx, storage.TenantScope("acme"), audit.Filter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Items {
			actions = append(actions, ev.Action)
		}
		for _, want := range []string{"tenant.migration.started", "tenant.tier_switched", "tenant.migration.done", "tenant.migration.failed"} {
			if !slices.Contains(actions, want) {
				t.Errorf("the trail has no %s: %v", want, actions)
			}
		}
	})
}
