package tenants

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// Tier migrations.
//
// A tier migration moves a tenant to another tier while it keeps serving:
// a workflow (KindMigration) whose steps the capabilities add (the data
// service provisions the target placement, copies the rows and cuts over)
// and which ends with "switch-tier". The tenant's tier, and with it its
// isolation, usage plan and issuer, changes in one transaction: that of
// the first step marked SwitchesTier (the data cutover, so that the
// placement and the tier change together), or "switch-tier" when no step
// did. Until then the tenant is what it was. The tenant id never changes.
//
// One migration runs per tenant at a time; an offboarding cancels it. A
// step that finds the migration cannot succeed (a failed verification)
// undoes its own work and returns Abort: the workflow ends failed, the
// tenant where it was.

// Migration is what a tier migration moves a tenant from and to. Steps
// read it with MigrationOf.
type Migration struct {
	FromTier string    `json:"from_tier"`
	ToTier   string    `json:"to_tier"`
	From     Isolation `json:"from_isolation"`
	To       Isolation `json:"to_isolation"`
}

// migrationKey is the workflow input key of the Migration.
const migrationKey = "tenants.migration"

// MigrationOf returns the migration whose step ctx runs.
func MigrationOf(ctx context.Context) (Migration, bool) {
	raw, ok := StepInput(ctx, migrationKey)
	if !ok {
		return Migration{}, false
	}
	var m Migration
	if err := json.Unmarshal(raw, &m); err != nil {
		return Migration{}, false
	}
	return m, true
}

// WorkflowFailed is the state of a workflow a step aborted (Abort).
const WorkflowFailed WorkflowStatus = "failed"

// abortError is a step's verdict that its workflow cannot succeed.
type abortError struct{ err error }

func (e abortError) Error() string { return e.err.Error() }
func (e abortError) Unwrap() error { return e.err }

// Abort wraps the error of a step that has undone its work and found its
// workflow cannot succeed: the workflow ends failed, and is not retried.
func Abort(err error) error { return abortError{err: err} }

// MigrationInfo is a tier migration: its workflow and what it moves.
type MigrationInfo struct {
	Workflow
	Migration
}

// StartMigration starts moving tenant id to tier toTier and returns the
// migration as started; its steps run in the background.
func (r *Registry) StartMigration(ctx context.Context, id tenant.ID, toTier string, actor tenant.Actor) (MigrationInfo, error) {
	to, ok := r.tiers[toTier]
	if !ok {
		return MigrationInfo{}, errs.Field("target_tier", "unknown_tier", "tier %q is not configured; known tiers: %s", errs.Clip(toTier, 40), r.tierNames())
	}
	wfID := newWorkflowID()
	var m MigrationInfo
	var input Input
	err := r.db.Update(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
		t, err := lockTenant(ctx, tx)
		if err != nil {
			return err
		}
		if t.Status != Active && t.Status != Suspended {
			return errs.E(errs.Conflict, "tenant_not_active", "tenant %q is %s: only an active or suspended tenant moves", t.ID, t.Status)
		}
		if t.Tier == to.Name {
			return errs.Field("target_tier", "tier_unchanged", "tenant %q is on tier %s already", t.ID, t.Tier)
		}
		if err := noMigrationRunning(ctx, tx); err != nil {
			return err
		}
		mig := Migration{FromTier: t.Tier, ToTier: to.Name, From: t.Isolation, To: to.Isolation}
		raw, err := json.Marshal(mig)
		if err != nil {
			return err
		}
		now := r.clock.Now()
		input = Input{migrationKey: raw}
		if err := r.insertWorkflow(ctx, tx, wfID, t.ID, KindMigration, input, now); err != nil {
			return err
		}
		at := now.UTC().Truncate(time.Microsecond)
		m = MigrationInfo{Workflow: Workflow{ID: wfID, TenantID: t.ID, Kind: KindMigration, Status: WorkflowRunning, Attempts: 1,
			Steps: []StepRecord{}, CreatedAt: at, UpdatedAt: at}, Migration: mig}
		return r.audit.AppendTx(ctx, tx, audit.Event{TenantID: tx.TenantID(), Principal: actor.Principal,
			Action: "tenant.migration.started", Target: tx.TenantID(), RequestID: actor.RequestID, SourceIP: actor.SourceIP,
			Detail: map[string]string{"workflow_id": wfID, "from_tier": mig.FromTier, "to_tier": mig.ToTier}})
	})
	if err != nil {
		return MigrationInfo{}, err
	}
	r.goRun(ctx, wfID, &claim{tenant: id, kind: KindMigration, input: input})
	return m, nil
}

// noMigrationRunning refuses a change while a tier migration of tx's
// tenant runs.
func noMigrationRunning(ctx context.Context, tx *storage.Tx) error {
	var wf string
	err := tx.QueryRow(ctx, `SELECT id FROM workflows WHERE tenant_id = ? AND kind = ? AND status = ?`,
		tx.TenantID(), string(KindMigration), string(WorkflowRunning)).Scan(&wf)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("tenant: find running migration: %w", err)
	}
	return errs.E(errs.Conflict, "migration_in_progress", "tenant %q is being moved by migration %s; wait for it to end", tx.TenantID(), wf)
}

// SwitchTier moves the tenant of tx, which the caller's step holds, to its
// migration's target tier, in tx: the tier and isolation change together
// with whatever else tx changes (the data cutover switches the placement in
// the same transaction). Switching a tenant already on the target tier does
// nothing, so the call may come from the cutover and from "switch-tier".
func (r *Registry) SwitchTier(ctx context.Context, tx *storage.Tx, t Tenant) error {
	m, ok := MigrationOf(ctx)
	if !ok {
		return errors.New("tenant: SwitchTier outside a tier migration")
	}
	if t.Tier == m.ToTier {
		return nil
	}
	now := r.clock.Now()
	prior, changedAt := string(t.PriorIsolation), t.IsolationChangedAt.UnixMicro()
	if t.PriorIsolation == "" {
		changedAt = 0
	}
	if m.To != t.Isolation {
		prior, changedAt = string(t.Isolation), now.UnixMicro()
	}
	if _, err := tx.Exec(ctx, `UPDATE tenants SET tier = ?, isolation = ?, prior_isolation = ?, isolation_changed_at = ?, updated_at = ? WHERE id = ?`,
		m.ToTier, string(m.To), prior, changedAt, now.UnixMicro(), tx.TenantID()); err != nil {
		return fmt.Errorf("tenant: switch tier: %w", err)
	}
	return r.audit.AppendTx(ctx, tx, audit.Event{TenantID: tx.TenantID(), Principal: "system", Action: "tenant.tier_switched",
		Target: tx.TenantID(), Detail: map[string]string{"from_tier": t.Tier, "to_tier": m.ToTier, "isolation": string(m.To)}})
}

// finishMigration is a migration's last step: the tier switch, unless a
// step did it, and the migration's end in the audit trail.
func (r *Registry) finishMigration(ctx context.Context, tx *storage.Tx, t Tenant) error {
	if err := r.SwitchTier(ctx, tx, t); err != nil {
		return err
	}
	m, _ := MigrationOf(ctx)
	return r.audit.AppendTx(ctx, tx, audit.Event{TenantID: tx.TenantID(), Principal: "system", Action: "tenant.migration.done",
		Target: tx.TenantID(), Detail: map[string]string{"from_tier": m.FromTier, "to_tier": m.ToTier}})
}

// Migrations returns the tenant's tier migrations, newest first.
func (r *Registry) Migrations(ctx context.Context, id tenant.ID) ([]MigrationInfo, error) {
	wfs, err := r.Workflows(ctx, id)
	if err != nil {
		return nil, err
	}
	out := []MigrationInfo{}
	for _, w := range wfs {
		if w.Kind != KindMigration {
			continue
		}
		m, err := r.migrationOf(ctx, w)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// GetMigration returns one of the tenant's tier migrations; another
// tenant's, or another kind of workflow, is not found.
func (r *Registry) GetMigration(ctx context.Context, id tenant.ID, wfID string) (MigrationInfo, error) {
	wfs, err := r.Workflows(ctx, id)
	if err != nil {
		return MigrationInfo{}, err
	}
	for _, w := range wfs {
		if w.ID == wfID && w.Kind == KindMigration {
			return r.migrationOf(ctx, w)
		}
	}
	return MigrationInfo{}, errs.E(errs.NotFound, "migration_not_found", "tenant %q has no migration %q", id, errs.Clip(wfID, 40))
}

func (r *Registry) migrationOf(ctx context.Context, w Workflow) (MigrationInfo, error) {
	var input string
	err := r.db.View(ctx, storage.TenantScope(w.TenantID), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT input FROM workflows WHERE id = ? AND tenant_id = ?`, w.ID, tx.TenantID()).Scan(&input)
	})
	if err != nil {
		return MigrationInfo{}, fmt.Errorf("tenant: read migration: %w", err)
	}
	var in Input
	var m Migration
	if err := json.Unmarshal([]byte(input), &in); err == nil {
		_ = json.Unmarshal(in[migrationKey], &m)
	}
	return MigrationInfo{Workflow: w, Migration: m}, nil
}
