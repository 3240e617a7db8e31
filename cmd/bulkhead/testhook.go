//go:build bulkheadtest

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/internal/app"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// addTestHooks registers onboarding steps that only the crash-safety tests
// use; it is built only with -tags bulkheadtest (the tests build their
// child process so), so that a production binary never takes workflow
// steps from its environment. BULKHEAD_TEST_ONBOARDING_DELAY=<duration>
// adds two steps before "activate": "test-mark", which counts its runs in
// the tenant's config (test_mark_runs), and "test-delay", which waits for
// the duration and then counts its runs (test_delay_runs). A test kills the
// process during the wait and checks after a restart that each count is 1.
func addTestHooks(a *app.App) {
	d, err := time.ParseDuration(os.Getenv("BULKHEAD_TEST_ONBOARDING_DELAY"))
	if err != nil || d <= 0 {
		return
	}
	reg := a.Tenants
	reg.AddOnboardingStep(tenants.Step{Name: "test-mark", Run: countRun("test_mark_runs")})
	count := countRun("test_delay_runs")
	reg.AddOnboardingStep(tenants.Step{Name: "test-delay", Run: func(ctx context.Context, tx *storage.Tx, t tenants.Tenant) error {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
		return count(ctx, tx, t)
	}})
}

// testConfig adds the move pause (testMoveHook) and, with
// BULKHEAD_TEST_PROVISION_DELAY=<duration>, a wait
// to the data placement step after the tenant's schema or database and
// role are made and before the placement is recorded: a test kills the
// process during the wait and checks after a restart that the placement
// is made once.
func testConfig(c *app.Config) {
	testMoveHook(c)
	d, err := time.ParseDuration(os.Getenv("BULKHEAD_TEST_PROVISION_DELAY"))
	if err != nil || d <= 0 {
		return
	}
	c.DataProvisioned = func(ctx context.Context, _ api.DataPlacement, _ *pgx.Conn) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// testMoveHook adds, with BULKHEAD_TEST_MOVE_PAUSE=<point>, a pause at
// that checkpoint of every tier migration's data move (data.MoveHook:
// provisioned, copied, fenced): the hook writes BULKHEAD_TEST_MOVE_MARK's
// file and waits, and a test kills the process there.
func testMoveHook(c *app.Config) {
	point := os.Getenv("BULKHEAD_TEST_MOVE_PAUSE")
	if point == "" {
		return
	}
	mark := os.Getenv("BULKHEAD_TEST_MOVE_MARK")
	c.DataMoveHook = func(ctx context.Context, at string) error {
		if at != point {
			return nil
		}
		if err := os.WriteFile(mark, []byte(at), 0o600); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}
}

func countRun(key string) func(context.Context, *storage.Tx, tenants.Tenant) error {
	return func(ctx context.Context, tx *storage.Tx, t tenants.Tenant) error {
		cfg := map[string]any{}
		if err := json.Unmarshal(t.Config, &cfg); err != nil {
			return err
		}
		n, _ := cfg[key].(float64)
		cfg[key] = n + 1
		b, _ := json.Marshal(cfg)
		if _, err := tx.Exec(ctx, `UPDATE tenants SET config = ? WHERE id = ?`, string(b), tx.TenantID()); err != nil {
			return fmt.Errorf("test hook: %w", err)
		}
		return nil
	}
}
