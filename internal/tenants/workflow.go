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
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// Lifecycle workflows.
//
// Onboarding and offboarding are persisted state machines of named steps.
// A workflow row records the kind and status; a step row is written, in the
// same transaction as the step's own database work, when the step completes.
// A step therefore either completes exactly once or leaves nothing behind,
// and a workflow interrupted by a crash resumes at its first incomplete step
// when any node starts (Registry.Run). Steps whose effects leave the
// database must be idempotent: they may run again after a crash.
//
// Capabilities add their steps with AddOnboardingStep, AddOffboardingStep
// and AddMigrationStep before Run. Onboarding runs the added steps in order
// and then "activate"; offboarding runs the added teardown steps in reverse
// order (last set up, first torn down), then "release-domains" and
// "mark-deleted"; a tier migration (migration.go) runs the added steps in
// order and then "switch-tier".
//
// A step whose work is long and happens elsewhere (a data copy to another
// database) does it in Work, outside any transaction of Bulkhead's, with
// checkpoints of its own; its Run then records the outcome.

// Kind is a workflow kind.
type Kind string

// The workflow kinds.
const (
	KindOnboarding  Kind = "onboarding"
	KindOffboarding Kind = "offboarding"
	KindMigration   Kind = "migration"
)

// WorkflowStatus is a workflow's state.
type WorkflowStatus string

// The workflow states.
const (
	WorkflowRunning   WorkflowStatus = "running"
	WorkflowDone      WorkflowStatus = "done"
	WorkflowCancelled WorkflowStatus = "cancelled"
)

// Step is one named, idempotent unit of a lifecycle workflow. Run does its
// database work in tx, which is scoped to the tenant; the step counts as done
// only if that transaction commits.
type Step struct {
	Name string
	// Work, when set, runs before Run, outside any transaction of
	// Bulkhead's (a step's transaction holds the tenant's row, and on
	// SQLite the only writer): long work on another system that keeps
	// its own checkpoints there, such as copying a tenant's rows. It runs
	// again after a crash, a failed Run or a retry, and must be written
	// for that. What it holds for Run (a write fence) it lets go in
	// release, which is called once Run's transaction has ended:
	// committed true if the step was recorded done. release may be nil.
	Work func(ctx context.Context, t Tenant) (release func(committed bool), err error)
	Run  func(ctx context.Context, tx *storage.Tx, t Tenant) error
	// SwitchesTier, in a migration step, switches the tenant to the
	// migration's target tier in the step's transaction, after Run.
	SwitchesTier bool
}

// Workflow is a lifecycle workflow and its completed steps.
type Workflow struct {
	ID        string         `json:"id"`
	TenantID  tenant.ID      `json:"tenant_id"`
	Kind      Kind           `json:"kind"`
	Status    WorkflowStatus `json:"status"`
	Attempts  int            `json:"attempts"`
	LastError string         `json:"last_error,omitempty"`
	Steps     []StepRecord   `json:"steps"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

// StepRecord is a completed step.
type StepRecord struct {
	Name        string    `json:"name"`
	CompletedAt time.Time `json:"completed_at"`
}

func newWorkflowID() string { return ids.New("wf") }

// AddOnboardingStep appends a step to every onboarding. Call it before Run.
func (r *Registry) AddOnboardingStep(s Step) { r.addStep(&r.onboard, s) }

// AddOffboardingStep adds a teardown step to every offboarding. Call it before Run.
func (r *Registry) AddOffboardingStep(s Step) { r.addStep(&r.offboard, s) }

// AddMigrationStep appends a step to every tier migration. Call it before Run.
func (r *Registry) AddMigrationStep(s Step) { r.addStep(&r.migrate, s) }

func (r *Registry) addStep(list *[]Step, s Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		panic("tenant: workflow step " + s.Name + " added after Run")
	}
	for _, have := range *list {
		if have.Name == s.Name {
			panic("tenant: workflow step " + s.Name + " added twice")
		}
	}
	*list = append(*list, s)
}

// steps returns the full step list of a workflow kind.
func (r *Registry) steps(kind Kind) []Step {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch kind {
	case KindOnboarding:
		out := append([]Step{}, r.onboard...)
		return append(out, Step{Name: "activate", Run: r.activate})
	case KindOffboarding:
		out := make([]Step, 0, len(r.offboard)+2)
		for i := len(r.offboard) - 1; i >= 0; i-- {
			out = append(out, r.offboard[i])
		}
		return append(out, Step{Name: "release-domains", Run: releaseDomains}, Step{Name: "mark-deleted", Run: r.markDeleted})
	case KindMigration:
		out := append([]Step{}, r.migrate...)
		return append(out, Step{Name: "switch-tier", Run: r.finishMigration})
	}
	return nil
}

func (r *Registry) activate(ctx context.Context, tx *storage.Tx, t Tenant) error {
	if t.Status != Provisioning {
		return nil
	}
	if err := setStatus(ctx, tx, Active, r.clock.Now()); err != nil {
		return err
	}
	return r.audit.AppendTx(ctx, tx, audit.Event{TenantID: tx.TenantID(), Principal: "system", Action: "tenant.activated", Target: tx.TenantID()})
}

func releaseDomains(ctx context.Context, tx *storage.Tx, _ Tenant) error {
	if _, err := tx.Exec(ctx, `DELETE FROM tenant_domains WHERE tenant_id = ?`, tx.TenantID()); err != nil {
		return fmt.Errorf("tenant: release domains: %w", err)
	}
	return nil
}

func (r *Registry) markDeleted(ctx context.Context, tx *storage.Tx, _ Tenant) error {
	if err := setStatus(ctx, tx, Deleted, r.clock.Now()); err != nil {
		return err
	}
	return r.audit.AppendTx(ctx, tx, audit.Event{TenantID: tx.TenantID(), Principal: "system", Action: "tenant.deleted", Target: tx.TenantID()})
}

// insertWorkflow records a new running workflow, claimed by its creator (attempt 1).
func (r *Registry) insertWorkflow(ctx context.Context, tx *storage.Tx, id string, tid tenant.ID, kind Kind, input Input, now time.Time) error {
	if input == nil {
		input = Input{}
	}
	raw, err := json.Marshal(input)
	if err != nil {
		return fmt.Errorf("tenant: encode workflow input: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO workflows (id, tenant_id, kind, status, attempts, last_error, input, created_at, updated_at)
		VALUES (?, ?, ?, ?, 1, '', ?, ?, ?)`, id, string(tid), string(kind), string(WorkflowRunning), string(raw), now.UnixMicro(), now.UnixMicro()); err != nil {
		return fmt.Errorf("tenant: insert workflow: %w", err)
	}
	return nil
}

// Run resumes every running workflow (those a crash or a stop interrupted)
// and then retries stalled ones every interval, until ctx ends. Then it
// stops taking up workflows, cancels the steps still running in the
// background (Shutdown lets them reach their checkpoint first; a cancelled
// step leaves nothing and runs again at the next start) and returns once
// every workflow it, or Delete, ran in the background has returned.
func (r *Registry) Run(ctx context.Context, interval time.Duration) error {
	r.mu.Lock()
	r.started = true
	r.mu.Unlock()
	defer func() {
		r.stop()
		r.halt()
		r.wg.Wait()
	}()
	if err := r.resume(ctx, 0); err != nil && ctx.Err() == nil {
		return err
	}
	t, tick := r.clock.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.stopping:
			<-ctx.Done()
			return nil
		case <-tick:
			if err := r.resume(ctx, interval); err != nil {
				r.log.ErrorContext(ctx, "resume workflows", "err", err)
			}
		}
	}
}

// resume runs, in the background, the running workflows that are due: at
// start (interval 0) all of them; later those untouched for interval, with
// the wait doubling after each failed attempt up to maxRetryDelay.
func (r *Registry) resume(ctx context.Context, interval time.Duration) error {
	type candidate struct {
		id       string
		attempts int
		updated  int64
	}
	var due []string
	now := r.clock.Now()
	err := r.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, attempts, updated_at FROM workflows WHERE status = ? ORDER BY created_at`,
			string(WorkflowRunning))
		if err != nil {
			return fmt.Errorf("tenant: find running workflows: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var c candidate
			if err := rows.Scan(&c.id, &c.attempts, &c.updated); err != nil {
				return err
			}
			if !time.UnixMicro(c.updated).Add(retryDelay(interval, c.attempts)).After(now) {
				due = append(due, c.id)
			}
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	for _, id := range due {
		r.goRun(ctx, id, nil)
	}
	return nil
}

// maxRetryDelay caps the backoff between attempts of a failing workflow.
const maxRetryDelay = 15 * time.Minute

func retryDelay(interval time.Duration, attempts int) time.Duration {
	d := interval
	for i := 1; i < attempts && d < maxRetryDelay; i++ {
		d *= 2
	}
	return min(d, maxRetryDelay)
}

// goRun runs a workflow in the background unless the registry is shutting
// down (then the next start resumes it). Shutdown and Run wait for it.
func (r *Registry) goRun(ctx context.Context, id string, c *claim) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped() {
		return
	}
	r.wg.Go(func() { r.runWorkflow(context.WithoutCancel(ctx), id, c) })
}

// Shutdown stops taking up workflows and waits, until ctx ends, for the
// running ones to reach their next checkpoint (the end of a step).
func (r *Registry) Shutdown(ctx context.Context) error {
	r.stop()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("tenant: shutdown: %w", ctx.Err())
	}
}

// stop makes the registry take up no more workflows.
func (r *Registry) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.stopping:
	default:
		close(r.stopping)
	}
}

func (r *Registry) stopped() bool {
	select {
	case <-r.stopping:
		return true
	default:
		return false
	}
}

// claim is what a run knows of a workflow its caller has just created (and
// so claimed, counting attempt 1), which saves reading and claiming it again.
type claim struct {
	tenant tenant.ID
	kind   Kind
	input  Input
}

// Input is what a workflow's creator hands its steps, by key (a capability
// uses its own key, such as "identity.admin"). It is stored with the
// workflow, so a resumed workflow's steps see it too. It must hold no
// secret in clear.
type Input map[string]json.RawMessage

type inputKey struct{}

type workflowKey struct{}

// WorkflowID returns the id of the workflow whose step ctx runs ("" outside one).
func WorkflowID(ctx context.Context) string {
	id, _ := ctx.Value(workflowKey{}).(string)
	return id
}

// StepInput returns the value under key of the input of the workflow whose
// step ctx runs.
func StepInput(ctx context.Context, key string) (json.RawMessage, bool) {
	in, _ := ctx.Value(inputKey{}).(Input)
	v, ok := in[key]
	return v, ok
}

// runWorkflow runs the workflow's remaining steps. It returns when the
// workflow is done, cancelled, a step failed (retried later by Run's loop),
// another node is running it, or the registry is shutting down; a step
// still running when Run returns is cancelled. One run of a
// workflow happens at a time: an in-process set guards this node, a lock
// taken in each step's transaction guards the others, and the step rows'
// primary key makes a step complete once whatever happens.
// maxRunningWorkflows bounds the workflows whose steps run at once on a
// node. A step runs in a transaction, and a step may read in a second one
// (data placement reads its cluster in the platform scope, which the
// tenant's transaction cannot see): with every connection of PostgreSQL's
// pool (32) held by a step waiting for its second, the node stalled. 96
// tenants created at once did that (TestConcurrentCreatesComplete). Eight
// workflows hold at most sixteen connections; the others wait here, not
// on the pool.
const maxRunningWorkflows = 8

func (r *Registry) runWorkflow(ctx context.Context, id string, c *claim) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.halted, cancel)()
	r.mu.Lock()
	if running, ok := r.inflight[id]; ok {
		r.mu.Unlock()
		if c != nil {
			// The creator waits for the run already under way (the retry
			// loop may have picked the new workflow up first).
			select {
			case <-running:
			case <-ctx.Done():
			}
		}
		return
	}
	done := make(chan struct{})
	r.inflight[id] = done
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.inflight, id)
		r.mu.Unlock()
		close(done)
	}()
	select {
	case r.running <- struct{}{}:
	case <-ctx.Done():
		return // left for the retry loop
	}
	err := func() error {
		defer func() { <-r.running }() // even if a step panics
		return r.runSteps(ctx, id, c)
	}()
	if err == nil || errors.Is(err, errBusy) {
		return
	}
	var abort abortError
	if errors.As(err, &abort) {
		r.log.ErrorContext(ctx, "workflow aborted", "workflow_id", id, "err", err)
		r.fail(ctx, id, err)
		return
	}
	r.log.ErrorContext(ctx, "workflow step failed; will retry", "workflow_id", id, "err", err)
	_ = r.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE workflows SET last_error = ?, updated_at = ? WHERE id = ?`,
			errs.Clip(err.Error(), 500), r.clock.Now().UnixMicro(), id)
		return err
	})
}

func (r *Registry) runSteps(ctx context.Context, id string, c *claim) error {
	if c == nil {
		c = &claim{}
		err := r.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
			var t, k, status, input string
			err := tx.QueryRow(ctx, `SELECT tenant_id, kind, status, input FROM workflows WHERE id = ?`, id).Scan(&t, &k, &status, &input)
			if err != nil {
				return fmt.Errorf("tenant: load workflow %s: %w", id, err)
			}
			if WorkflowStatus(status) != WorkflowRunning {
				return errCancelled
			}
			c.tenant, c.kind = tenant.ID(t), Kind(k)
			if err := json.Unmarshal([]byte(input), &c.input); err != nil {
				return fmt.Errorf("tenant: workflow %s input unreadable: %w", id, err)
			}
			_, err = tx.Exec(ctx, `UPDATE workflows SET attempts = attempts + 1, updated_at = ? WHERE id = ?`, r.clock.Now().UnixMicro(), id)
			return err
		})
		if errors.Is(err, errCancelled) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	ctx = context.WithValue(context.WithValue(tenant.WithID(ctx, c.tenant), inputKey{}, c.input), workflowKey{}, id)
	log := r.log.With("workflow_id", id, "kind", string(c.kind))
	steps := r.steps(c.kind)
	for i, s := range steps {
		if r.stopped() {
			log.InfoContext(ctx, "workflow paused for shutdown; it resumes at the next start")
			return nil
		}
		last := i == len(steps)-1
		ran := false
		release, err := r.work(ctx, id, c.tenant, s)
		if err != nil {
			return fmt.Errorf("step %s: %w", s.Name, err)
		}
		err = r.db.Update(ctx, storage.TenantScope(c.tenant), func(tx *storage.Tx) error {
			if ok, err := tx.TryLock(ctx, "workflow:"+id); err != nil {
				return err
			} else if !ok {
				return errBusy
			}
			// Lock the tenant before reading the workflow's status, so that an
			// offboarding that cancels this workflow is either seen or waits.
			t, err := lockTenant(ctx, tx)
			if err != nil {
				return err
			}
			var status string
			if err := tx.QueryRow(ctx, `SELECT status FROM workflows WHERE id = ? AND tenant_id = ?`, id, tx.TenantID()).Scan(&status); err != nil {
				return fmt.Errorf("tenant: workflow status: %w", err)
			}
			if WorkflowStatus(status) != WorkflowRunning {
				return errCancelled
			}
			var done int
			err = tx.QueryRow(ctx, `SELECT 1 FROM workflow_steps WHERE workflow_id = ? AND tenant_id = ? AND step = ?`,
				id, tx.TenantID(), s.Name).Scan(&done)
			switch {
			case err == nil: // completed before
			case !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("tenant: read step: %w", err)
			default:
				if s.Run != nil {
					if err := s.Run(ctx, tx, t); err != nil {
						return fmt.Errorf("step %s: %w", s.Name, err)
					}
				}
				if s.SwitchesTier && c.kind == KindMigration {
					if err := r.SwitchTier(ctx, tx, t); err != nil {
						return fmt.Errorf("step %s: %w", s.Name, err)
					}
				}
				if _, err := tx.Exec(ctx, `INSERT INTO workflow_steps (workflow_id, tenant_id, step, completed_at) VALUES (?, ?, ?, ?)`,
					id, tx.TenantID(), s.Name, r.clock.Now().UnixMicro()); err != nil {
					return fmt.Errorf("tenant: record step %s: %w", s.Name, err)
				}
				ran = true
			}
			if !last {
				return nil
			}
			_, err = tx.Exec(ctx, `UPDATE workflows SET status = ?, last_error = '', updated_at = ? WHERE id = ? AND tenant_id = ? AND status = ?`,
				string(WorkflowDone), r.clock.Now().UnixMicro(), id, tx.TenantID(), string(WorkflowRunning))
			return err
		})
		if release != nil {
			release(err == nil)
		}
		switch {
		case errors.Is(err, errCancelled):
			log.InfoContext(ctx, "workflow cancelled")
			return nil
		case err != nil:
			return err
		}
		if ran {
			log.InfoContext(ctx, "workflow step completed", "step", s.Name)
		}
	}
	return nil
}

// fail ends a running workflow failed (a step aborted it), in the audit
// trail too.
func (r *Registry) fail(ctx context.Context, id string, cause error) {
	err := r.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		var tid, kind string
		if err := tx.QueryRow(ctx, `SELECT tenant_id, kind FROM workflows WHERE id = ? AND status = ?`, id, string(WorkflowRunning)).Scan(&tid, &kind); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE workflows SET status = ?, last_error = ?, updated_at = ? WHERE id = ?`,
			string(WorkflowFailed), errs.Clip(cause.Error(), 500), r.clock.Now().UnixMicro(), id); err != nil {
			return err
		}
		return r.audit.AppendTx(ctx, tx, audit.Event{TenantID: tid, Principal: "system", Action: "tenant." + kind + ".failed",
			Target: tid, Outcome: audit.Failure, Detail: map[string]string{"workflow_id": id, "error": errs.Clip(cause.Error(), 200)}})
	})
	if err != nil {
		r.log.ErrorContext(ctx, "record a failed workflow", "workflow_id", id, "err", err)
	}
}

// work runs step s's Work, unless the step has none or completed before:
// the tenant as a read (not a lock) sees it, since Work runs outside the
// step's transaction.
func (r *Registry) work(ctx context.Context, id string, tid tenant.ID, s Step) (func(bool), error) {
	if s.Work == nil {
		return nil, nil
	}
	var t Tenant
	done := false
	err := r.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		var err error
		if t, err = getTx(ctx, tx, tid); err != nil {
			return err
		}
		var one int
		err = tx.QueryRow(ctx, `SELECT 1 FROM workflow_steps WHERE workflow_id = ? AND tenant_id = ? AND step = ?`,
			id, tx.TenantID(), s.Name).Scan(&one)
		switch {
		case err == nil:
			done = true
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("tenant: read step: %w", err)
		}
		return nil
	})
	if err != nil || done {
		return nil, err
	}
	return s.Work(ctx, t)
}

var (
	errCancelled = errors.New("workflow cancelled")
	errBusy      = errors.New("workflow running on another node")
)

// Workflows returns the tenant's workflows, newest first, with their completed steps.
func (r *Registry) Workflows(ctx context.Context, id tenant.ID) ([]Workflow, error) {
	var out []Workflow
	err := r.db.View(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
		if _, err := getTx(ctx, tx, tenant.ID(tx.TenantID())); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, kind, status, attempts, last_error, created_at, updated_at
			FROM workflows WHERE tenant_id = ? ORDER BY created_at DESC, id`, tx.TenantID())
		if err != nil {
			return fmt.Errorf("tenant: list workflows: %w", err)
		}
		for rows.Next() {
			w := Workflow{TenantID: tenant.ID(tx.TenantID()), Steps: []StepRecord{}}
			var kind, status string
			var created, updated int64
			if err := rows.Scan(&w.ID, &kind, &status, &w.Attempts, &w.LastError, &created, &updated); err != nil {
				rows.Close()
				return fmt.Errorf("tenant: list workflows: %w", err)
			}
			w.Kind, w.Status = Kind(kind), WorkflowStatus(status)
			w.CreatedAt, w.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
			out = append(out, w)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			steps, err := tx.Query(ctx, `SELECT step, completed_at FROM workflow_steps WHERE workflow_id = ? AND tenant_id = ? ORDER BY completed_at, step`,
				out[i].ID, tx.TenantID())
			if err != nil {
				return fmt.Errorf("tenant: list steps: %w", err)
			}
			for steps.Next() {
				var s StepRecord
				var at int64
				if err := steps.Scan(&s.Name, &at); err != nil {
					steps.Close()
					return err
				}
				s.CompletedAt = time.UnixMicro(at).UTC()
				out[i].Steps = append(out[i].Steps, s)
			}
			steps.Close()
			if err := steps.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if out == nil && err == nil {
		out = []Workflow{}
	}
	return out, err
}

// StepNames lists the steps of a workflow kind, in the order they run.
func (r *Registry) StepNames(kind Kind) []string {
	steps := r.steps(kind)
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Name
	}
	return out
}
