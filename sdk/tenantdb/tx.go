package tenantdb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// A transaction is scoped in its BEGIN: one simple-protocol query,
// "BEGIN …; SET LOCAL app.tenant_id = …; SET LOCAL ROLE …; SET LOCAL
// search_path = …", one round trip like a plain BEGIN (beginSQL). SET
// LOCAL lasts for the transaction only, so PostgreSQL itself drops the
// settings at COMMIT or ROLLBACK. app.tenant_id and search_path are set
// in every model, not only bridge and silo, so no session-level
// search_path can reach a pool transaction either (a session-level role
// cannot: see below). pg_temp comes last in
// the path, so a temporary table the transaction makes never shadows the
// tenant's own. The values are never parameters here (SET takes none):
// the tenant id is checked against the tenant id syntax and quoted as a
// literal, the role and schema are quoted as identifiers.
//
// What a transaction may leave on its session is checked when its
// connection is given back (cleanSQL, in the pool's AfterRelease, which
// pgxpool runs after Release has returned, so the caller does not wait
// for it) and on every new connection: a session-level app.tenant_id or
// role (SET, set_config(…, false)), a temporary schema, a cursor held
// past its transaction (DECLARE … WITH HOLD) or a channel listened to. A
// connection with any of them is closed instead of going back to the
// pool: a temporary table could otherwise stand in for a tenant's table
// that is missing, a held cursor hand another tenant the rows it read
// (FETCH checks no privilege and no policy), a LISTEN deliver one
// tenant's notifications on another's connection, and a leftover setting
// would be one statement away from applying.
const cleanSQL = `SELECT coalesce(current_setting('app.tenant_id', true), '') = '' AND current_setting('role') = 'none' ` +
	`AND pg_my_temp_schema() = 0 AND NOT EXISTS (SELECT FROM pg_cursors WHERE is_holdable) ` +
	`AND NOT EXISTS (SELECT FROM pg_listening_channels())`

// beginSQL is the BEGIN that scopes a transaction of tenant tid (see
// cleanSQL's comment): opts' modes, then the settings. role "none" is the
// serving role itself.
func beginSQL(opts pgx.TxOptions, tid, role, searchPath string) (string, error) {
	var b strings.Builder
	b.WriteString("BEGIN")
	for _, m := range []struct {
		prefix, got string
		valid       []pgx.TxIsoLevel // the three modes are strings alike
	}{
		{" ISOLATION LEVEL ", string(opts.IsoLevel), []pgx.TxIsoLevel{pgx.Serializable, pgx.RepeatableRead, pgx.ReadCommitted, pgx.ReadUncommitted}},
		{" ", string(opts.AccessMode), []pgx.TxIsoLevel{pgx.TxIsoLevel(pgx.ReadWrite), pgx.TxIsoLevel(pgx.ReadOnly)}},
		{" ", string(opts.DeferrableMode), []pgx.TxIsoLevel{pgx.TxIsoLevel(pgx.Deferrable), pgx.TxIsoLevel(pgx.NotDeferrable)}},
	} {
		if m.got == "" {
			continue
		}
		if !slices.Contains(m.valid, pgx.TxIsoLevel(m.got)) {
			return "", fmt.Errorf("tenantdb: transaction mode %q is not one of pgx's", m.got)
		}
		b.WriteString(m.prefix + m.got)
	}
	if !validTenantID(tid) { // checked before; the literal below relies on it
		return "", fmt.Errorf("%w: %q", ErrInvalidTenant, tid)
	}
	b.WriteString("; SET LOCAL app.tenant_id = '" + tid + "'")
	// A pool transaction runs as the serving role: the connection came
	// with no other (cleanSQL checked it when it was given back, or
	// when it was made), so there is no role to set.
	if role != "none" {
		b.WriteString("; SET LOCAL ROLE " + pgx.Identifier{role}.Sanitize())
	}
	b.WriteString("; SET LOCAL search_path = " + searchPath)
	return b.String(), nil
}

// clean reports whether c holds none of what a transaction may leave on
// its session (cleanSQL). Any error counts as not clean.
func clean(ctx context.Context, c *pgx.Conn) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var ok bool
	return c.QueryRow(ctx, cleanSQL).Scan(&ok) == nil && ok
}

// Tx runs fn in a transaction scoped to the tenant of ctx (see
// TenantFromContext) and commits it if fn returns nil; otherwise, or if fn
// panics, it rolls back. fn must not keep tx, or use tx.Conn() outside
// it: what runs after the transaction ends runs with none of the tenant's
// settings.
func (db *DB) Tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return db.TxWithOptions(ctx, pgx.TxOptions{}, fn)
}

// ReadTx is Tx in a READ ONLY transaction: a guard against a write by
// mistake, not a boundary (any statement the application sends can be
// one that writes through a function).
func (db *DB) ReadTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return db.TxWithOptions(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly}, fn)
}

// TxWithOptions is Tx with an isolation level, access mode and
// deferrable mode. BeginQuery and CommitQuery are refused: the scope is
// what begins the transaction.
//
// When Bulkhead moves the tenant's data to another placement (a tier
// migration) while fn runs, fn's first write to the placement the tenant
// left fails with SQLSTATE BHMOV (MovedState), or, in a REPEATABLE READ
// or SERIALIZABLE transaction whose snapshot is older than the move,
// with a serialization failure; the transaction is rolled back, the
// placement read again and, if it is another (BHMOV: in any case), fn
// run again there, with a short
// wait between tries while Bulkhead finishes the switch, for up to
// MovedRetryFor. fn must therefore be safe to run again, as for a
// serialization failure: nothing outside the transaction, or only what
// may happen twice. It sees the error as pgx returns it (return it, or
// wrap it with %w, for the retry to see it).
func (db *DB) TxWithOptions(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	if opts.BeginQuery != "" || opts.CommitQuery != "" {
		return errors.New("tenantdb: TxOptions.BeginQuery and CommitQuery are not supported")
	}
	tid, err := TenantFromContext(ctx)
	if err != nil {
		return err
	}
	wait := movedFirstWait
	deadline := db.now().Add(MovedRetryFor)
	for {
		used, err := db.txOnce(ctx, opts, tid, fn)
		if !db.now().Before(deadline) {
			return err
		}
		if Moved(err) {
			db.Invalidate(tid)
		} else if !db.movedUnder(ctx, tid, used, err) { // it read the placement anew itself
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, movedMaxWait)
	}
}

// MovedState is the SQLSTATE of a write to a placement the tenant has
// left: Bulkhead's tier migration fences the source and marks it so.
const MovedState = "BHMOV"

// MovedRetryFor is how long a transaction that met MovedState is tried
// again on the tenant's placement as read anew: the cutover's switch takes
// milliseconds, but a Bulkhead node that crashed in it finishes it when
// it, or another node, resumes the workflow.
const MovedRetryFor = 10 * time.Second

const (
	movedFirstWait = 2 * time.Millisecond
	movedMaxWait   = 250 * time.Millisecond
)

// Moved reports whether err is (or wraps) the error of a write to a
// placement the tenant has left (MovedState).
func Moved(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == MovedState
}

// movedUnder reports whether a transaction that failed with a
// serialization failure (a REPEATABLE READ or SERIALIZABLE snapshot older
// than the cutover's mark meets the fence so) ran on a placement the
// tenant has since left: read anew, the placement is another.
func (db *DB) movedUnder(ctx context.Context, tid string, used api.DataPlacement, err error) bool {
	var pgErr *pgconn.PgError
	if used.TenantID == "" || !errors.As(err, &pgErr) || pgErr.Code != "40001" {
		return false
	}
	db.Invalidate(tid)
	now, perr := db.placement(ctx, tid)
	return perr == nil && now.Version != used.Version
}

// txOnce is one try of TxWithOptions; it returns the placement it used.
func (db *DB) txOnce(ctx context.Context, opts pgx.TxOptions, tid string, fn func(pgx.Tx) error) (used api.DataPlacement, err error) {
	s, err := db.scope(ctx, tid)
	if err != nil {
		return used, err
	}
	defer s.done()
	used = s.placement
	c, tx, err := db.begin(ctx, s, opts, tid)
	if err != nil {
		return used, fmt.Errorf("tenantdb: tenant %q: %w", tid, err)
	}
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback(ctx)
			c.Release()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		tx.Rollback(ctx)
		c.Release()
		return used, err
	}
	err = tx.Commit(ctx)
	c.Release()
	if err != nil {
		return used, fmt.Errorf("tenantdb: tenant %q: commit: %w", tid, err)
	}
	return used, nil
}

// begin acquires a connection from s's pool and begins a transaction on
// it, scoped to tenant tid, in one round trip (beginSQL).
func (db *DB) begin(ctx context.Context, s scoped, opts pgx.TxOptions, tid string) (*pgxpool.Conn, pgx.Tx, error) {
	q, err := beginSQL(opts, tid, s.role, s.searchPath)
	if err != nil {
		return nil, nil, err
	}
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("acquire a connection: %w", err)
	}
	tx, err := c.BeginTx(ctx, pgx.TxOptions{BeginQuery: q})
	if err != nil {
		// The connection may be inside the failed transaction: Release
		// closes a connection that is not idle.
		c.Release()
		return nil, nil, fmt.Errorf("begin: %w", err)
	}
	return c, tx, nil
}

// scoped is where a transaction of one tenant runs: the pool and the
// settings.
type scoped struct {
	placement        api.DataPlacement
	pool             *pgxpool.Pool
	maxConns         int32
	role, searchPath string
	done             func()
}

// scope resolves tenant tid's placement to its pool and settings. The
// caller calls done once it has released its connection.
func (db *DB) scope(ctx context.Context, tid string) (scoped, error) {
	p, err := db.placement(ctx, tid)
	if err != nil {
		return scoped{}, err
	}
	c := db.clusters[p.Cluster]
	schema := p.Schema
	if schema == "" {
		schema = "public"
	}
	s := scoped{placement: p, pool: c.pool, maxConns: c.config.MaxConns, role: p.Role, searchPath: searchPath(schema), done: func() {}}
	switch p.Model {
	case ModelPool:
		s.role = "none"
	case ModelSilo:
		sp, err := db.silos.acquire(siloKey{cluster: p.Cluster, database: p.Database})
		if err != nil {
			return scoped{}, err
		}
		s.pool, s.maxConns, s.done = sp.pool, db.cfg.SiloMaxConns, func() { db.silos.release(sp) }
	}
	return s, nil
}

// searchPath is the search_path of a transaction in schema: the schema,
// then the session's temporary schema (see beginSQL), nothing else.
func searchPath(schema string) string {
	return pgx.Identifier{schema}.Sanitize() + ", pg_temp"
}

// Warm does what a transaction of the tenant in ctx does before it talks
// to the database: it checks the tenant, resolves its placement (cached)
// and, for a silo, opens its database's pool (which connects lazily). An
// application can call it at sign-in so that the first transaction is not
// the one to wait; warm, it costs a cache and a map lookup.
func (db *DB) Warm(ctx context.Context) (api.DataPlacement, error) {
	tid, err := TenantFromContext(ctx)
	if err != nil {
		return api.DataPlacement{}, err
	}
	s, err := db.scope(ctx, tid)
	if err != nil {
		return api.DataPlacement{}, err
	}
	s.done()
	return s.placement, nil
}
