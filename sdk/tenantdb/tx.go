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
// Its first column looks at the settings the connection had before it:
// a transaction leaves app.tenant_id empty and the role "none" behind it
// (set_config(…, true) lasts for the transaction only), so anything else
// was set for the session by a transaction that ran SET or
// set_config(…, false). The three settings are then set for this
// transaction whatever the session holds, so such leftovers never apply to
// it; the connection that held them is closed after it rather than reused.
//
// The role and search_path are set in every model, not only bridge and
// silo: in pool the role is "none" (the serving role) and the path the
// placement's schema, so that no session-level SET ROLE or search_path
// can reach a pool transaction either. pg_temp comes last in the path: a
// temporary table (which a session keeps across transactions) never
// shadows the tenant's own.
const scopeSQL = `SELECT coalesce(current_setting('app.tenant_id', true), '') = '' AND current_setting('role') = 'none', ` +
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
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("tenantdb: tenant %q: acquire a connection: %w", tid, err)
	}
	tx, clean, err := begin(ctx, c, opts, tid, s.role, s.searchPath)
	if err != nil {
		c.Release()
		return fmt.Errorf("tenantdb: tenant %q: begin: %w", tid, err)
	}
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback(ctx)
			db.release(c, clean)
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		tx.Rollback(ctx)
		db.release(c, clean)
		return err
	}
	err = tx.Commit(ctx)
	db.release(c, clean)
	if err != nil {
		return fmt.Errorf("tenantdb: tenant %q: commit: %w", tid, err)
	}
	return nil
}

// begin begins a transaction on c and scopes it (scopeSQL) in one round
// trip. clean reports whether c came without session-level tenant
// settings.
func begin(ctx context.Context, c *pgxpool.Conn, opts pgx.TxOptions, tid, role, searchPath string) (tx pgx.Tx, clean bool, err error) {
	var b pgx.Batch
	b.BeginTx(opts)
	b.Queue(scopeSQL, tid, role, searchPath)
	br := c.SendBatch(ctx, &b)
	tx = br.Tx()
	if _, err = br.Exec(); err == nil {
		err = br.QueryRow().Scan(&clean, nil, nil, nil)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		tx.Rollback(ctx)
		return nil, false, err
	}
	return tx, clean, nil
}

// release returns c to its pool, or closes it if it came with another
// transaction's session-level settings (see scopeSQL).
func (db *DB) release(c *pgxpool.Conn, clean bool) {
	if clean {
		c.Release()
		return
	}
	db.log.Warn("tenantdb: closed a connection that a transaction left with session-level tenant settings")
	conn := c.Hijack()
	conn.Close(context.Background())
}

// scoped is where a transaction of one tenant runs: the pool and the
// settings.
type scoped struct {
	placement        api.DataPlacement
	pool             *pgxpool.Pool
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
	s := scoped{placement: p, pool: c.pool, role: p.Role, searchPath: searchPath(schema), done: func() {}}
	switch p.Model {
	case ModelPool:
		s.role = "none"
	case ModelSilo:
		sp, err := db.silos.acquire(siloKey{cluster: p.Cluster, database: p.Database})
		if err != nil {
			return scoped{}, err
		}
		s.pool, s.done = sp.pool, func() { db.silos.release(sp) }
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
