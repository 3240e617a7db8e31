package data

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// A tier migration moves the tenant's placement to the target tier's
// model on the same cluster, in three steps of the migration workflow:
//
//   - data-provision: the target schema or database and role are made
//     (bridge, silo; a pool target is the shared database) and given the
//     cluster's registered migrations; the move is recorded (data_moves).
//   - data-copy: capture on the source, the rows copied, the changes made
//     meanwhile applied until few are left (mover.go).
//   - data-cutover: the write fence, the last changes, the verification of
//     every table (rows and checksum; a difference rolls the move back:
//     the source stays the placement, nothing was written to it but by
//     the application, and the target is dropped), then in one
//     transaction of Bulkhead's the placement switched to the target and
//     the tenant's tier switched (tenants.Step.SwitchesTier). The fence is
//     lifted once that commits, after every SDK was told (NOTIFY).
//
// Each step's cluster work runs again from its start after a crash and
// finds what the last run made. The source is kept, retained, for the
// service's Retention (a move back is possible until then), and dropped
// by the sweeper; a later move drops what earlier moves retained first.

// Moves' statuses.
const (
	moveCopying    = "copying"
	moveSwitched   = "switched"
	moveRolledBack = "rolled_back"
	moveAbandoned  = "abandoned"
	moveDropped    = "dropped"
)

// move is a data_moves row.
type move struct {
	workflow, tenant, status, cluster string
	source, target                    side
	rowsTotal, rowsCopied, lag, pause int64
	verified, err                     string
	dropAfter                         time.Time
	created, updated                  time.Time
}

// side is one placement of a move.
type side struct {
	model, database, schema, role string
	object                        sql.NullString
	password                      string // sealed
}

const moveColumns = `workflow_id, tenant_id, status, cluster,
	source_model, source_database, source_schema, source_role, source_object, source_password,
	target_model, target_database, target_schema, target_role, target_object, target_password,
	rows_total, rows_copied, lag, pause_us, verified, error, drop_after, created_at, updated_at`

func scanMove(row interface{ Scan(...any) error }) (move, error) {
	var m move
	var dropAfter, created, updated int64
	err := row.Scan(&m.workflow, &m.tenant, &m.status, &m.cluster,
		&m.source.model, &m.source.database, &m.source.schema, &m.source.role, &m.source.object, &m.source.password,
		&m.target.model, &m.target.database, &m.target.schema, &m.target.role, &m.target.object, &m.target.password,
		&m.rowsTotal, &m.rowsCopied, &m.lag, &m.pause, &m.verified, &m.err, &dropAfter, &created, &updated)
	m.dropAfter, m.created, m.updated = time.UnixMicro(dropAfter).UTC(), time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return m, err
}

// readMove reads the move of workflow wf in tx (the tenant's scope).
func readMove(ctx context.Context, tx *storage.Tx, wf string) (move, bool, error) {
	m, err := scanMove(tx.QueryRow(ctx, `SELECT `+moveColumns+` FROM data_moves WHERE workflow_id = ? AND tenant_id = ?`, wf, tx.TenantID()))
	if errors.Is(err, sql.ErrNoRows) {
		return move{}, false, nil
	}
	if err != nil {
		return move{}, false, fmt.Errorf("data: read move: %w", err)
	}
	return m, true, nil
}

// loadMove reads the move of the workflow whose step ctx runs.
func (s *Service) loadMove(ctx context.Context, id tenant.ID) (move, bool, error) {
	var m move
	var found bool
	err := s.db.View(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
		var err error
		m, found, err = readMove(ctx, tx, tenants.WorkflowID(ctx))
		return err
	})
	return m, found, err
}

// end is where a side's rows are on cluster c.
func (sd side) end(c cluster) end {
	e := end{c: c, model: sd.model, database: sd.database, schema: sd.schema}
	if e.database == "" {
		e.database = c.database
	}
	return e
}

// placementOf is the side as a placement of tenant id on cluster.
func (sd side) placementOf(id, cluster string) placement {
	return placement{DataPlacement: api.DataPlacement{TenantID: id, Model: sd.model, Cluster: cluster, Database: sd.database,
		Schema: sd.schema, Role: sd.role}}
}

// moveNames are the two names a tenant's bridge or silo placement may
// have on a cluster: its Name, and the same made with the prefix prefix +
// "_m_" (no plain Name has a '_' right after the prefix, since tenant ids
// have none, so the two never meet another tenant's; see Name). A move
// takes the one neither the current placement nor a retained copy holds.
func moveNames(prefix string, id tenant.ID) [2]string {
	return [2]string{Name(prefix, id), Name(prefix+"_m_", id)}
}

// targetName picks the name of a move's bridge or silo target: one of
// moveNames that the current placement (current) and the copies earlier
// moves retained do not hold; when both are held, the retained copies
// are dropped first (their rollback window ends early), which fails and
// is retried while the application still holds connections to them.
func (s *Service) targetName(ctx context.Context, c cluster, id tenant.ID, current string) (string, error) {
	for attempt := 0; ; attempt++ {
		held := map[string]bool{current: true}
		retained, _, _, err := s.retainedMoves(ctx, id, func(move, side) bool { return true })
		if err != nil {
			return "", err
		}
		for _, m := range retained {
			held[m.retained().role] = true
		}
		for _, n := range moveNames(c.Prefix, id) {
			if !held[n] {
				return n, nil
			}
		}
		if attempt > 0 {
			return "", fmt.Errorf("data: both names of tenant %s's placement are held", id)
		}
		named := func(_ move, sd side) bool { return sd.model != Pool }
		if _, err := s.dropRetained(ctx, id, named, true); err != nil {
			return "", err
		}
	}
}

// MigrationSteps are the data service's steps of a tier migration, in order.
func (s *Service) MigrationSteps() []tenants.Step {
	return []tenants.Step{
		{Name: "data-provision", Work: s.provisionTarget, Run: s.recordTarget},
		{Name: "data-copy", Work: s.copyRows, Run: s.recordCopied},
		{Name: "data-cutover", Work: s.cutover, Run: s.switchPlacement, SwitchesTier: true},
	}
}

// moveRun is what one run of a step's Work hands its Run, by workflow.
type moveRun struct {
	target   side
	password string // in clear, until Run seals it
	// The progress, read by GET migration while the step writes it.
	rowsTotal, copied, lag atomic.Int64
	pause                  time.Duration
	verified               map[string]tableSum
	fenceAt                time.Time
}

func (s *Service) run(wf string) *moveRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.moving == nil {
		s.moving = map[string]*moveRun{}
	}
	r, ok := s.moving[wf]
	if !ok {
		r = &moveRun{}
		s.moving[wf] = r
	}
	return r
}

func (s *Service) forget(wf string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.moving, wf)
}

// moves reports whether the migration of ctx moves data, and from where.
func (s *Service) movesData(ctx context.Context, id tenant.ID) (tenants.Migration, placement, bool, error) {
	m, ok := tenants.MigrationOf(ctx)
	if !ok || m.From == m.To {
		return m, placement{}, false, nil
	}
	var p placement
	var found bool
	err := s.db.View(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
		var err error
		p, found, err = readPlacement(ctx, tx)
		return err
	})
	if err != nil || !found {
		return m, p, false, err
	}
	if p.Status != Ready {
		return m, p, false, fmt.Errorf("data: tenant %s's placement is %s; a move needs it ready", id, p.Status)
	}
	return m, p, p.Model != string(m.To), nil
}

func (s *Service) provisionTarget(ctx context.Context, t tenants.Tenant) (func(bool), error) {
	m, p, moves, err := s.movesData(ctx, t.ID)
	if err != nil || !moves {
		return nil, err
	}
	c, err := s.mustCluster(ctx, p.Cluster)
	if err != nil {
		return nil, err
	}
	lock, err := lockMoves(ctx, c, t.ID)
	if err != nil {
		return nil, err
	}
	defer unlockMoves(ctx, lock, t.ID)
	// What earlier moves retained and the target needs goes first: a
	// pool's rows of the tenant (their keys); for a schema or database,
	// its name, when both names are held (see targetName).
	if m.To == tenants.Pool {
		pool := func(_ move, sd side) bool { return sd.model == Pool }
		if _, err := s.dropRetained(ctx, t.ID, pool, true); err != nil {
			return nil, err
		}
	}
	r := s.run(tenants.WorkflowID(ctx))
	r.target = side{model: string(m.To), database: c.database, schema: "public"}
	r.password = ""
	if m.To != tenants.Pool {
		name, err := s.targetName(ctx, c, t.ID, p.Role)
		if err != nil {
			return nil, err
		}
		if err := s.objectFree(ctx, t.ID, c.Name, sql.NullString{String: name, Valid: true}); err != nil {
			return nil, err
		}
		r.password = newPassword()
		if err := s.provision(ctx, c, string(m.To), t.ID, name, r.password); err != nil {
			return nil, err
		}
		r.target.role, r.target.object = name, sql.NullString{String: name, Valid: true}
		if m.To == tenants.Bridge {
			r.target.schema = name
		} else {
			r.target.database = name
		}
		if err := s.migratePlacement(ctx, c, r.target.placementOf(string(t.ID), c.Name).DataPlacement); err != nil {
			return nil, err
		}
	}
	return nil, s.hook(ctx, "provisioned")
}

// hook calls the MoveHook at point, if one is set.
func (s *Service) hook(ctx context.Context, point string) error {
	if s.opts.MoveHook == nil {
		return nil
	}
	return s.opts.MoveHook(ctx, point)
}

func (s *Service) recordTarget(ctx context.Context, tx *storage.Tx, t tenants.Tenant) error {
	_, p, moves, err := s.movesData(ctx, t.ID)
	if err != nil || !moves {
		return err
	}
	wf := tenants.WorkflowID(ctx)
	r := s.run(wf)
	if r.target.model == "" {
		return errors.New("data: the target was not provisioned in this run; retrying")
	}
	sealedTarget := ""
	if r.password != "" {
		b, err := s.sealer.Wrap([]byte(r.password), roleBinding(t.ID, p.Cluster, r.target.role))
		if err != nil {
			return fmt.Errorf("data: seal role password: %w", err)
		}
		sealedTarget = base64.StdEncoding.EncodeToString(b)
	}
	var sealedSource string
	if err := tx.QueryRow(ctx, `SELECT role_password FROM data_placements WHERE tenant_id = ?`, tx.TenantID()).Scan(&sealedSource); err != nil {
		return fmt.Errorf("data: read placement: %w", err)
	}
	now := s.now().UnixMicro()
	var srcObject any
	if p.Role != "" {
		srcObject = p.Role
	}
	if _, err := tx.Exec(ctx, `DELETE FROM data_moves WHERE workflow_id = ? AND tenant_id = ?`, wf, tx.TenantID()); err != nil {
		return fmt.Errorf("data: record move: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO data_moves (workflow_id, tenant_id, status, cluster,
		source_model, source_database, source_schema, source_role, source_object, source_password,
		target_model, target_database, target_schema, target_role, target_object, target_password, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		wf, tx.TenantID(), moveCopying, p.Cluster,
		p.Model, p.Database, p.Schema, p.Role, srcObject, sealedSource,
		r.target.model, r.target.database, r.target.schema, r.target.role, r.target.object, sealedTarget, now, now); err != nil {
		return fmt.Errorf("data: record move: %w", err)
	}
	return nil
}

// objectFree refuses a target name that another tenant's placement or
// move holds on the cluster (40 bits of SHA-256 meeting; see Name).
func (s *Service) objectFree(ctx context.Context, id tenant.ID, cluster string, object sql.NullString) error {
	if !object.Valid {
		return nil
	}
	var n int
	err := s.db.View(ctx, storage.PlatformScope(), func(ptx *storage.Tx) error {
		return ptx.QueryRow(ctx, `SELECT (SELECT count(*) FROM data_placements WHERE cluster = ? AND object_name = ? AND tenant_id <> ?) +
			(SELECT count(*) FROM data_moves WHERE cluster = ? AND ? IN (source_object, target_object) AND tenant_id <> ? AND status <> ?)`,
			cluster, object.String, string(id), cluster, object.String, string(id), moveDropped).Scan(&n)
	})
	if err != nil {
		return fmt.Errorf("data: check name: %w", err)
	}
	if n > 0 {
		return tenants.Abort(nameTaken(cluster, object.String))
	}
	return nil
}

func (s *Service) mustCluster(ctx context.Context, name string) (cluster, error) {
	c, ok, err := s.loadCluster(ctx, name)
	if err != nil {
		return c, err
	}
	if !ok {
		return c, fmt.Errorf("data: cluster %s is not registered", name)
	}
	return c, nil
}

// session is a move's two connections and its tables.
type session struct {
	m        move
	c        cluster
	src, dst end
	lock     *pgx.Conn // holds the tenant's move lock (lockMoves)
	srcConn  *pgx.Conn
	dstConn  *pgx.Conn
	tables   []table
}

// errMoveBusy is a move lock held elsewhere.
var errMoveBusy = errors.New("data: move: another node is working on this tenant's move; it is tried again later")

// moveLockKey is the advisory lock key of a tenant's moves ($1: the tenant id).
const moveLockKey = `hashtextextended('bulkhead-move-run:' || $1, 0)`

// unlockMoves lets the move lock go and closes its connection: unlocked
// first, so that the next step, at once, finds it free (a closed
// connection's locks go only when its server process has ended).
func unlockMoves(ctx context.Context, conn *pgx.Conn, id tenant.ID) {
	ctx = context.WithoutCancel(ctx)
	_, _ = conn.Exec(ctx, `SELECT pg_advisory_unlock(`+moveLockKey+`)`, string(id))
	conn.Close(ctx)
}

// lockMoves takes tenant id's move lock on cluster c: a session advisory
// lock on the shared database, held by one run of a move step's work, or
// one drop of what a move retained, at a time, on any node; it ends with
// the returned connection (a kill -9 included). errMoveBusy if held.
func lockMoves(ctx context.Context, c cluster, id tenant.ID) (*pgx.Conn, error) {
	conn, err := dial(ctx, c.Name, adminDSN, c.adminDSN, "")
	if err != nil {
		return nil, err
	}
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+moveLockKey+`)`, string(id)).Scan(&locked); err != nil || !locked {
		conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return nil, fmt.Errorf("data: move: take the move lock: %w", err)
		}
		return nil, errMoveBusy
	}
	return conn, nil
}

// open connects to both sides of the tenant's move, takes the move's run
// lock and lists the tables. The caller closes it.
func (s *Service) openMove(ctx context.Context, id tenant.ID) (*session, bool, error) {
	m, found, err := s.loadMove(ctx, id)
	if err != nil || !found {
		return nil, false, err
	}
	if m.status != moveCopying {
		return nil, false, nil
	}
	c, err := s.mustCluster(ctx, m.cluster)
	if err != nil {
		return nil, false, err
	}
	ss := &session{m: m, c: c, src: m.source.end(c), dst: m.target.end(c)}
	ok := false
	defer func() {
		if !ok {
			ss.close(ctx)
		}
	}()
	if ss.lock, err = lockMoves(ctx, c, id); err != nil {
		return nil, false, err
	}
	// Read again under the lock: a sweep may have ended the move.
	if m, found, err = s.loadMove(ctx, id); err != nil || !found || m.status != moveCopying {
		return nil, false, err
	}
	// The files registered since the target was made reach it first (the
	// runner migrates ready placements only; a pool target is the shared,
	// migrated database).
	if m.target.model != Pool {
		if err := s.migratePlacement(ctx, c, m.target.placementOf(string(id), c.Name).DataPlacement); err != nil {
			return nil, false, err
		}
	}
	if ss.srcConn, err = ss.src.open(ctx, id); err != nil {
		return nil, false, err
	}
	if ss.dstConn, err = ss.dst.open(ctx, id); err != nil {
		return nil, false, err
	}
	if ss.tables, err = listTables(ctx, ss.srcConn, ss.src.schema); err != nil {
		return nil, false, err
	}
	dstTables, err := listTables(ctx, ss.dstConn, ss.dst.schema)
	if err != nil {
		return nil, false, err
	}
	if err := sameTables(ss.tables, dstTables); err != nil {
		return nil, false, err
	}
	if m.target.model == Pool {
		if err := keyedByTenant(dstTables); err != nil {
			return nil, false, err
		}
	}
	ok = true
	return ss, true, nil
}

func (ss *session) close(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	if ss.srcConn != nil {
		ss.srcConn.Close(ctx) // lets the run lock, and a fence still held, go
	}
	if ss.dstConn != nil {
		ss.dstConn.Close(ctx)
	}
	if ss.lock != nil {
		unlockMoves(ctx, ss.lock, tenant.ID(ss.m.tenant))
	}
}

// catchUpRounds bounds the catch-up passes of the copy step; the cutover
// applies what is left.
const catchUpRounds = 20

// smallLag is a count of pending changes the cutover applies quickly.
const smallLag = 500

func (s *Service) copyRows(ctx context.Context, t tenants.Tenant) (func(bool), error) {
	ss, ok, err := s.openMove(ctx, t.ID)
	if err != nil || !ok {
		return nil, s.refusedAbort(ctx, t.ID, err)
	}
	defer ss.close(ctx)
	if err := installCapture(ctx, ss.srcConn, ss.src.schema, t.ID, ss.tables); err != nil {
		return nil, err
	}
	r := s.run(ss.m.workflow)
	r.rowsTotal.Store(0)
	r.copied.Store(0)
	for _, tb := range ss.tables {
		sum, err := countRows(ctx, ss.srcConn, ss.src.schema, tb, t.ID)
		if err != nil {
			return nil, err
		}
		r.rowsTotal.Add(sum)
	}
	last := time.Now()
	err = copyRows(ctx, ss.srcConn, ss.dstConn, ss.src.schema, ss.dst.schema, ss.tables, t.ID, func(n int64) {
		r.copied.Add(n)
		if time.Since(last) > time.Second {
			last = time.Now()
			s.saveProgress(ctx, t.ID, ss.m.workflow, r)
		}
	})
	if err != nil {
		return nil, err
	}
	if err := s.catchUp(ctx, ss, r); err != nil {
		return nil, err
	}
	return nil, s.hook(ctx, "copied")
}

// catchUp applies the recorded changes, round after round, until fewer
// than smallLag are left or catchUpRounds have run (writers that outpace
// the apply: the cutover then applies the rest inside its fence, and
// pauses the tenant's writes longer), recording the lag as it goes.
func (s *Service) catchUp(ctx context.Context, ss *session, r *moveRun) error {
	for range catchUpRounds {
		if _, err := applyChanges(ctx, ss.srcConn, ss.dstConn, ss.src.schema, ss.dst.schema, ss.tables, tenant.ID(ss.m.tenant)); err != nil {
			return err
		}
		lag, err := pendingChanges(ctx, ss.srcConn, tenant.ID(ss.m.tenant))
		if err != nil {
			return err
		}
		r.lag.Store(lag)
		s.saveProgress(ctx, tenant.ID(ss.m.tenant), ss.m.workflow, r)
		if lag < smallLag {
			return nil
		}
	}
	return nil
}

// countRows counts tenant id's rows of t.
func countRows(ctx context.Context, conn *pgx.Conn, schema string, t table, id tenant.ID) (int64, error) {
	var n int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM `+ident(schema, t.name)+` WHERE tenant_id = $1`, string(id)).Scan(&n); err != nil {
		return 0, fmt.Errorf("data: move: count %s: %w", t.name, err)
	}
	return n, nil
}

// saveProgress writes a run's progress where GET migration reads it.
func (s *Service) saveProgress(ctx context.Context, id tenant.ID, wf string, r *moveRun) {
	err := s.db.Update(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE data_moves SET rows_total = ?, rows_copied = ?, lag = ?, updated_at = ? WHERE workflow_id = ? AND tenant_id = ?`,
			r.rowsTotal.Load(), r.copied.Load(), r.lag.Load(), s.now().UnixMicro(), wf, tx.TenantID())
		return err
	})
	if err != nil && ctx.Err() == nil {
		s.log.WarnContext(ctx, "record a move's progress", "tenant_id", id, "err", err)
	}
}

func (s *Service) recordCopied(ctx context.Context, tx *storage.Tx, t tenants.Tenant) error {
	wf := tenants.WorkflowID(ctx)
	r := s.run(wf)
	_, err := tx.Exec(ctx, `UPDATE data_moves SET rows_total = ?, rows_copied = ?, lag = ?, updated_at = ? WHERE workflow_id = ? AND tenant_id = ? AND status = ?`,
		r.rowsTotal.Load(), r.copied.Load(), r.lag.Load(), s.now().UnixMicro(), wf, tx.TenantID(), moveCopying)
	return err
}

// refusedAbort turns a move the placements refuse (mover.go's
// moveRefusedError) into the migration's end: the move is rolled back.
func (s *Service) refusedAbort(ctx context.Context, id tenant.ID, err error) error {
	var refused moveRefusedError
	if !errors.As(err, &refused) {
		return err
	}
	if rerr := s.rollBack(ctx, id, err.Error()); rerr != nil {
		return errors.Join(err, rerr)
	}
	return tenants.Abort(err)
}

// cutover fences the tenant's writes on the source, applies the last
// changes, verifies every table and marks the source moved; the step's
// Run then switches the placement, and release lifts the fence.
func (s *Service) cutover(ctx context.Context, t tenants.Tenant) (func(bool), error) {
	ss, ok, err := s.openMove(ctx, t.ID)
	if err != nil || !ok {
		return nil, s.refusedAbort(ctx, t.ID, err)
	}
	keep := false
	defer func() {
		if !keep {
			ss.close(ctx)
		}
	}()
	// The capture is there: data-copy made it before it was recorded done,
	// and only a rollback or a drop, which end the move, removes it.
	// Applied before the fence, so that little is left inside it.
	r := s.run(ss.m.workflow)
	if err := s.catchUp(ctx, ss, r); err != nil {
		return nil, err
	}
	if err := takeFence(ctx, ss.srcConn, t.ID); err != nil {
		return nil, err
	}
	r.fenceAt = time.Now()
	lift := func(moved bool) {
		bg := context.WithoutCancel(ctx)
		if !moved && s.switched(bg, t.ID, ss.m.workflow) {
			moved = true // the commit happened; only its answer was lost
		}
		if !moved {
			if err := markMoved(bg, ss.srcConn, t.ID, false); err != nil {
				s.log.ErrorContext(bg, "undo a move's mark; closing its connection lifts the fence all the same", "tenant_id", t.ID, "err", err)
			}
		}
		if err := liftFence(bg, ss.srcConn, t.ID); err != nil {
			s.log.WarnContext(bg, "lift a move's fence; closing its connection lifts it", "tenant_id", t.ID, "err", err)
		}
		r.pause = time.Since(r.fenceAt)
		ss.close(bg)
	}
	fail := func(err error) (func(bool), error) {
		keep = true
		lift(false)
		return nil, err
	}
	if _, err := applyChanges(ctx, ss.srcConn, ss.dstConn, ss.src.schema, ss.dst.schema, ss.tables, t.ID); err != nil {
		return fail(err)
	}
	if err := syncSequences(ctx, ss.srcConn, ss.dstConn, ss.src.schema, ss.dst.schema, ss.tables); err != nil {
		return fail(err)
	}
	sums, err := verify(ctx, ss)
	if err != nil {
		var refused moveRefusedError
		if errors.As(err, &refused) {
			keep = true
			lift(false)
			return nil, s.refusedAbort(ctx, t.ID, err)
		}
		return fail(err)
	}
	r.verified = sums
	if err := markMoved(ctx, ss.srcConn, t.ID, true); err != nil {
		return fail(err)
	}
	if err := s.hook(ctx, "fenced"); err != nil {
		return fail(err)
	}
	keep = true
	return func(committed bool) {
		lift(committed)
		if committed {
			s.recordPause(ctx, t.ID, ss.m.workflow, r.pause)
		}
	}, nil
}

// switched reports whether the move of workflow wf is recorded switched
// (true also when that cannot be read: leaving the source marked moved is
// the safe side, a retry of the cutover clears or confirms it).
func (s *Service) switched(ctx context.Context, id tenant.ID, wf string) bool {
	var status string
	err := s.db.View(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT status FROM data_moves WHERE workflow_id = ? AND tenant_id = ?`, wf, tx.TenantID()).Scan(&status)
	})
	return err != nil || status == moveSwitched
}

// verify compares every table's rows and checksum on both sides, the two
// sides read at once.
func verify(ctx context.Context, ss *session) (map[string]tableSum, error) {
	out := map[string]tableSum{}
	for _, tb := range ss.tables {
		var dst tableSum
		var dstErr error
		var wg sync.WaitGroup
		wg.Go(func() { dst, dstErr = checksum(ctx, ss.dstConn, ss.dst.schema, tb, tenant.ID(ss.m.tenant)) })
		src, err := checksum(ctx, ss.srcConn, ss.src.schema, tb, tenant.ID(ss.m.tenant))
		wg.Wait()
		if err = errors.Join(err, dstErr); err != nil {
			return nil, err
		}
		if src != dst {
			return nil, moveRefused("verification failed for table %s: the source has %d rows (checksum %s), the target %d (checksum %s)",
				tb.name, src.Rows, src.Sum, dst.Rows, dst.Sum)
		}
		out[tb.name] = src
	}
	return out, nil
}

func (s *Service) recordPause(ctx context.Context, id tenant.ID, wf string, pause time.Duration) {
	err := s.db.Update(context.WithoutCancel(ctx), storage.TenantScope(id), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE data_moves SET pause_us = ? WHERE workflow_id = ? AND tenant_id = ?`, pause.Microseconds(), wf, tx.TenantID())
		return err
	})
	if err != nil {
		s.log.WarnContext(ctx, "record a move's write pause", "tenant_id", id, "err", err)
	}
	s.forget(wf)
}

// switchPlacement makes the move's target the tenant's placement, in the
// cutover step's transaction, and keeps the source retained.
func (s *Service) switchPlacement(ctx context.Context, tx *storage.Tx, t tenants.Tenant) error {
	wf := tenants.WorkflowID(ctx)
	m, found, err := readMove(ctx, tx, wf)
	if err != nil || !found || m.status != moveCopying {
		return err
	}
	p, ok, err := readPlacement(ctx, tx)
	if err != nil {
		return err
	}
	if !ok || p.Model != m.source.model || p.Schema != m.source.schema || p.Database != m.source.database {
		return errors.New("data: the placement changed during the move")
	}
	c, err := s.mustCluster(ctx, m.cluster)
	if err != nil {
		return err
	}
	r := s.run(wf)
	verified, _ := json.Marshal(r.verified)
	now := s.now()
	if _, err := tx.Exec(ctx, `UPDATE data_placements SET model = ?, database_name = ?, schema_name = ?, role_name = ?, object_name = ?,
		role_password = ?, version = version + 1, updated_at = ? WHERE tenant_id = ?`,
		m.target.model, m.target.database, m.target.schema, m.target.role, m.target.object, m.target.password, now.UnixMicro(), tx.TenantID()); err != nil {
		if storage.IsUniqueViolation(err) {
			// Rolled back after this transaction ends (it fails), not in it.
			return fmt.Errorf("data: switch placement: %w", nameTaken(m.cluster, m.target.object.String))
		}
		return fmt.Errorf("data: switch placement: %w", err)
	}
	dropAfter := now.Add(s.opts.Retention)
	if _, err := tx.Exec(ctx, `UPDATE data_moves SET status = ?, verified = ?, pause_us = ?, lag = 0, drop_after = ?, updated_at = ?
		WHERE workflow_id = ? AND tenant_id = ?`, moveSwitched, string(verified), time.Since(r.fenceAt).Microseconds(),
		dropAfter.UnixMicro(), now.UnixMicro(), wf, tx.TenantID()); err != nil {
		return fmt.Errorf("data: record move: %w", err)
	}
	return s.changed(ctx, tx, c, "data.placement_moved", map[string]string{
		"from": m.source.model, "to": m.target.model, "cluster": m.cluster, "workflow_id": wf,
		"source_retained_until": dropAfter.Format(time.RFC3339)})
}

// rollBack ends the tenant's move in progress: the capture leaves the
// source, the source stays the placement, and the target is dropped by
// the next sweep.
func (s *Service) rollBack(ctx context.Context, id tenant.ID, why string) error {
	ctx = context.WithoutCancel(ctx)
	m, found, err := s.loadMove(ctx, id)
	if err != nil || !found || m.status != moveCopying {
		return err
	}
	c, err := s.mustCluster(ctx, m.cluster)
	if err != nil {
		return err
	}
	if err := s.removeCaptureOn(ctx, c, m.source, id); err != nil {
		return err
	}
	s.forget(m.workflow)
	return s.db.Update(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE data_moves SET status = ?, error = ?, drop_after = ?, updated_at = ? WHERE workflow_id = ? AND tenant_id = ? AND status = ?`,
			moveRolledBack, errs.Clip(why, 500), s.now().UnixMicro(), s.now().UnixMicro(), m.workflow, tx.TenantID(), moveCopying); err != nil {
			return fmt.Errorf("data: record rollback: %w", err)
		}
		return s.audit.AppendTx(ctx, tx, auditMove(tx.TenantID(), "data.move_rolled_back", m, why))
	})
}

// removeCaptureOn removes tenant id's capture from side sd's database, if
// that database is still there.
func (s *Service) removeCaptureOn(ctx context.Context, c cluster, sd side, id tenant.ID) error {
	e := sd.end(c)
	conn, err := e.open(ctx, id)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return removeCapture(ctx, conn, e.schema, id)
}

func auditMove(tid, action string, m move, why string) audit.Event {
	d := map[string]string{"workflow_id": m.workflow, "from": m.source.model, "to": m.target.model, "cluster": m.cluster}
	out := audit.Success
	if why != "" {
		d["error"], out = errs.Clip(why, 200), audit.Failure
	}
	return audit.Event{TenantID: tid, Principal: "system", Action: action, Target: tid, Outcome: out, Detail: d}
}

// dropRetained drops what the tenant's earlier moves retained (a switched
// move's source, a rolled back or abandoned move's target): those whose
// time has come, or with all, every one (a new move ends the rollback
// window of the last). It holds the tenant's move lock (held: the caller
// does; otherwise it takes it, and a lock held elsewhere, by a move at
// work, leaves everything for a later sweep), and reads what to drop under
// it. What the tenant's placement is now is never dropped, whatever a
// move row says.
func (s *Service) dropRetained(ctx context.Context, id tenant.ID, pick func(move, side) bool, held bool) (dropped int, err error) {
	due, cur, placed, err := s.retainedMoves(ctx, id, pick)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	if !held {
		c, err := s.mustCluster(ctx, due[0].cluster)
		if err != nil {
			return 0, err
		}
		lock, err := lockMoves(ctx, c, id)
		if errors.Is(err, errMoveBusy) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		defer unlockMoves(ctx, lock, id)
		if due, cur, placed, err = s.retainedMoves(ctx, id, pick); err != nil {
			return 0, err
		}
	}
	for _, m := range due {
		c, err := s.mustCluster(ctx, m.cluster)
		if err != nil {
			return dropped, err
		}
		sd := m.retained()
		live := placed && cur.Cluster == m.cluster && cur.Model == sd.model && cur.Database == sd.database && cur.Schema == sd.schema
		switch m.status {
		case moveSwitched:
			if err := s.removeCaptureOn(ctx, c, m.source, id); err != nil && !live {
				return dropped, err
			}
		case moveAbandoned:
			// The source is the offboarded placement, which its own
			// retention drops; its capture goes now if it can.
			if err := s.removeCaptureOn(ctx, c, m.source, id); err != nil {
				s.log.WarnContext(ctx, "remove an abandoned move's capture", "tenant_id", id, "err", err)
			}
		}
		if !live {
			if err := dropOnCluster(ctx, c, sd.placementOf(string(id), m.cluster)); err != nil {
				return dropped, err
			}
		}
		err = s.db.Update(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
			if _, err := tx.Exec(ctx, `UPDATE data_moves SET status = ?, updated_at = ? WHERE workflow_id = ? AND tenant_id = ? AND status = ?`,
				moveDropped, s.now().UnixMicro(), m.workflow, tx.TenantID(), m.status); err != nil {
				return fmt.Errorf("data: record a retained copy dropped: %w", err)
			}
			return s.audit.AppendTx(ctx, tx, auditMove(tx.TenantID(), "data.move_retained_dropped", m, ""))
		})
		if err != nil {
			return dropped, err
		}
		dropped++
	}
	return dropped, nil
}

// retained is the side a move keeps until it is dropped: a switched
// move's source, a rolled back or abandoned move's target.
func (m move) retained() side {
	if m.status == moveSwitched {
		return m.source
	}
	return m.target
}

// dueNow picks what a move retained whose retention has ended.
func (s *Service) dueNow(m move, _ side) bool { return !m.dropAfter.After(s.now()) }

// retainedMoves reads the tenant's moves that retain a side pick picks,
// and its placement now.
func (s *Service) retainedMoves(ctx context.Context, id tenant.ID, pick func(move, side) bool) (due []move, cur placement, placed bool, err error) {
	err = s.db.View(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
		var err error
		if cur, placed, err = readPlacement(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+moveColumns+` FROM data_moves WHERE tenant_id = ? AND status IN (?, ?, ?) ORDER BY created_at`,
			tx.TenantID(), moveSwitched, moveRolledBack, moveAbandoned)
		if err != nil {
			return fmt.Errorf("data: find retained moves: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanMove(rows)
			if err != nil {
				return fmt.Errorf("data: find retained moves: %w", err)
			}
			if pick(m, m.retained()) {
				due = append(due, m)
			}
		}
		return rows.Err()
	})
	return due, cur, placed, err
}

// sweepMoves drops, for every tenant, what its moves retained past its time.
func (s *Service) sweepMoves(ctx context.Context) (int, error) {
	due, err := s.dueTenants(ctx, "retained moves", `SELECT DISTINCT tenant_id FROM data_moves WHERE status IN (?, ?, ?) AND drop_after <= ?`,
		moveSwitched, moveRolledBack, moveAbandoned, s.now().UnixMicro())
	if err != nil {
		return 0, err
	}
	var failed []error
	dropped := 0
	for _, id := range due {
		n, err := s.dropRetained(ctx, id, s.dueNow, false)
		if err != nil {
			failed = append(failed, fmt.Errorf("tenant %s: %w", id, err))
		}
		dropped += n
	}
	return dropped, errors.Join(failed...)
}

// abandonMoves ends, in an offboarding's transaction, the tenant's move in
// progress: its target is dropped by the next sweep, and the capture
// leaves the source with the source's own drop.
func abandonMoves(ctx context.Context, tx *storage.Tx, now time.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE data_moves SET status = ?, drop_after = ?, updated_at = ? WHERE tenant_id = ? AND status = ?`,
		moveAbandoned, now.UnixMicro(), now.UnixMicro(), tx.TenantID(), moveCopying); err != nil {
		return fmt.Errorf("data: abandon move: %w", err)
	}
	return nil
}

// MoveProgress is how far the data move of tenant id's migration wf is;
// ok is false when the migration moves no data (or has not recorded its
// target yet).
func (s *Service) MoveProgress(ctx context.Context, id tenant.ID, wf string) (api.DataMoveProgress, bool, error) {
	var m move
	var found bool
	err := s.db.View(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
		var err error
		m, found, err = readMove(ctx, tx, wf)
		return err
	})
	if err != nil || !found {
		return api.DataMoveProgress{}, false, err
	}
	out := api.DataMoveProgress{Status: m.status, Cluster: m.cluster, From: m.source.model, To: m.target.model,
		RowsTotal: m.rowsTotal, RowsCopied: m.rowsCopied, Lag: m.lag, Error: m.err}
	if r := s.peek(wf); r != nil && m.status == moveCopying {
		out.RowsTotal, out.RowsCopied, out.Lag = r.rowsTotal.Load(), r.copied.Load(), r.lag.Load()
	}
	if m.pause > 0 {
		out.WritePauseMS = strconv.FormatFloat(float64(m.pause)/1000, 'f', 1, 64)
	}
	if m.verified != "" {
		_ = json.Unmarshal([]byte(m.verified), &out.Verified)
	}
	if m.status == moveSwitched {
		out.SourceRetainedUntil = m.dropAfter
	}
	return out, true, nil
}

// peek returns this node's run of workflow wf, if it has one: only its
// progress (atomic) may be read outside the step.
func (s *Service) peek(wf string) *moveRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.moving[wf]
}
