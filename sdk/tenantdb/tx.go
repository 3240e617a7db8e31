package tenantdb

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// scopeSQL is the one statement that scopes a transaction to a tenant,
// queued right behind BEGIN so that both travel in one round trip.
//
// Its first column says whether the connection came clean: a transaction
// leaves app.tenant_id empty and the role "none" behind it
// (set_config(…, true) lasts for the transaction only), and no
// temporary schema, held cursor or channel listened to, unless it ran
// SET or set_config(…, false), made a temporary table, DECLAREd a cursor
// WITH HOLD and did not close it, or ran LISTEN. Such a connection is closed before the
// transaction does anything, and the transaction begins again on another
// one: a temporary table (which the session keeps) could otherwise stand
// in for a tenant's table that is missing, a held cursor hand another
// tenant the rows it read (FETCH checks no privilege and no policy), a
// LISTEN deliver one tenant's notifications on another's connection, and
// a leftover setting would be one statement away from applying. The
// cursor check costs a few microseconds of the server's time; the
// transaction's own cursors are not holdable, so it sees only earlier
// ones.
//
// The three settings are set in every model, not only bridge and silo: in
// pool the role is "none" (the serving role) and the path the placement's
// schema, so no session-level SET ROLE or search_path can reach a pool
// transaction either. pg_temp comes last in the path, so a temporary
// table the transaction makes never shadows the tenant's own.
const scopeSQL = `SELECT coalesce(current_setting('app.tenant_id', true), '') = '' AND current_setting('role') = 'none' ` +
	`AND pg_my_temp_schema() = 0 AND NOT EXISTS (SELECT FROM pg_cursors WHERE is_holdable) ` +
	`AND NOT EXISTS (SELECT FROM pg_listening_channels()), ` +
	`set_config('app.tenant_id', $1, true), set_config('role', $2, true), set_config('search_path', $3, true)`

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
func (db *DB) TxWithOptions(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) (err error) {
	if opts.BeginQuery != "" || opts.CommitQuery != "" {
		return errors.New("tenantdb: TxOptions.BeginQuery and CommitQuery are not supported")
	}
	tid, err := TenantFromContext(ctx)
	if err != nil {
		return err
	}
	s, err := db.scope(ctx, tid)
	if err != nil {
		return err
	}
	defer s.done()
	c, tx, err := db.begin(ctx, s, opts, tid)
	if err != nil {
		return fmt.Errorf("tenantdb: tenant %q: %w", tid, err)
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
		return err
	}
	err = tx.Commit(ctx)
	c.Release()
	if err != nil {
		return fmt.Errorf("tenantdb: tenant %q: commit: %w", tid, err)
	}
	return nil
}

// begin acquires a connection from s's pool, begins a transaction on it
// and scopes it (scopeSQL) in one round trip. A connection that did not
// come clean is closed and another one tried: at most as many as the pool
// holds, after which a new one, clean, is made.
func (db *DB) begin(ctx context.Context, s scoped, opts pgx.TxOptions, tid string) (*pgxpool.Conn, pgx.Tx, error) {
	for range s.maxConns + 1 {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("acquire a connection: %w", err)
		}
		var b pgx.Batch
		b.BeginTx(opts)
		b.Queue(scopeSQL, tid, s.role, s.searchPath)
		br := c.SendBatch(ctx, &b)
		tx := br.Tx()
		var clean bool
		if _, err = br.Exec(); err == nil {
			err = br.QueryRow().Scan(&clean, nil, nil, nil)
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			tx.Rollback(ctx)
			c.Release()
			return nil, nil, fmt.Errorf("begin: %w", err)
		}
		if clean {
			return c, tx, nil
		}
		db.log.WarnContext(ctx, "tenantdb: closed a connection left with session-level tenant settings or temporary tables",
			"tenant_id", tid)
		tx.Rollback(ctx)
		c.Hijack().Close(ctx)
	}
	return nil, nil, errors.New("begin: every connection came with session-level tenant settings " +
		"(does the DSN set role or app.tenant_id?)")
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
// then the session's temporary schema (see scopeSQL), nothing else.
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
