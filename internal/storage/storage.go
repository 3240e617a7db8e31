// Package storage opens Bulkhead's database (embedded SQLite or PostgreSQL),
// applies each service's migrations, and runs transactions bound to a scope.
//
// A scope is either one tenant or the platform. Every transaction has one:
//
//   - On PostgreSQL the scope is set per transaction with set_config(…, true),
//     and every table has row-level security ENABLEd and FORCEd with policies
//     that read it (declared per table: Component.RowSecurity). A query in tenant A's scope sees only A's rows even when
//     its SQL forgets the WHERE clause; a transaction with no scope sees
//     nothing. Open refuses a role that bypasses row-level security. A
//     table's owner could switch its policies off, so the tables belong to
//     an owner role that only migrates them (MigrateAndGrant), and
//     PrepareToServe refuses a serving role that could act as their owner.
//   - On SQLite there is no row-level security; the guarantee comes from the
//     repositories, which take the tenant for every query from Tx.TenantID
//     (the scope), never from a free string.
//
// Queries are written once with '?' placeholders; Tx rebinds them to $n for
// PostgreSQL.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"modernc.org/sqlite"               // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// Dialect names the SQL database behind a DB.
type Dialect string

// The supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is an open Bulkhead database.
type DB struct {
	dialect  Dialect
	write    *sql.DB // SQLite: one connection, so writers queue instead of failing busy
	read     *sql.DB // SQLite: a pool for readers; PostgreSQL: the same pool as write
	dsn      string  // PostgreSQL: for the dedicated connections of Listen
	role     string  // PostgreSQL: the role the connections act as (current_user)
	migrated atomic.Bool
	// SQLite: the prepared statements of write and read (nil on
	// PostgreSQL, whose driver keeps its own).
	writeStmts, readStmts *stmtCache
}

// IsPostgres reports whether the DSN names a PostgreSQL database.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open opens the database named by dsn: a postgres:// URL, or a path to an
// SQLite file (optionally prefixed "sqlite:"). It does not migrate.
func Open(ctx context.Context, dsn string) (*DB, error) {
	if IsPostgres(dsn) {
		return openPostgres(ctx, dsn)
	}
	return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"))
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("storage: empty SQLite path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("storage: create database directory: %w", err)
	}
	// Create the file owner-only; SQLite gives its -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("storage: create database file: %w", err)
	}
	f.Close()
	// synchronous(FULL): a commit is on disk when it returns, even across a
	// power loss (NORMAL in WAL mode may lose the last commits). Group commit
	// of audit events is what keeps the fsyncs few.
	dsn := func(write bool) string {
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(1)", "synchronous(FULL)"} {
			q.Add("_pragma", p)
		}
		if write {
			// BEGIN IMMEDIATE: a writer takes the lock up front instead of failing to upgrade.
			q.Set("_txlock", "immediate")
		} else {
			// Readers use deferred transactions on WAL snapshots, never blocking the writer.
			q.Add("_pragma", "query_only(1)")
		}
		return "file:" + path + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn(true))
	if err != nil {
		return nil, fmt.Errorf("storage: open sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn(false))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("storage: open sqlite: %w", err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8) // keep them: opening one costs pragmas and a schema read
	db := &DB{dialect: SQLite, write: w, read: r, writeStmts: newStmtCache(w), readStmts: newStmtCache(r)}
	if err := w.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("storage: open sqlite %s: %w", path, err)
	}
	return db, nil
}

func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	p, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("storage: open postgres: %w", err)
	}
	p.SetMaxOpenConns(32)
	p.SetMaxIdleConns(32)
	db := &DB{dialect: Postgres, write: p, read: p, dsn: dsn}
	var super, bypass bool
	var role string
	err = p.QueryRowContext(ctx,
		`SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`).
		Scan(&role, &super, &bypass)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("storage: connect to postgres: %w", err)
	}
	if super || bypass {
		p.Close()
		return nil, fmt.Errorf("storage: postgres role %q bypasses row-level security (superuser or BYPASSRLS); "+
			"connect as an ordinary role so the database can enforce tenant isolation", role)
	}
	db.role = role
	return db, nil
}

// Dialect reports which database this is.
func (db *DB) Dialect() Dialect { return db.dialect }

// Role returns the PostgreSQL role the database is used as ("" on SQLite).
func (db *DB) Role() string { return db.role }

// Close closes the database.
func (db *DB) Close() error {
	db.writeStmts.close()
	db.readStmts.close()
	err := db.write.Close()
	if db.read != db.write {
		err = errors.Join(err, db.read.Close())
	}
	return err
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.read.PingContext(ctx) }

// Migrated reports whether Migrate or PrepareToServe has completed on this handle.
func (db *DB) Migrated() bool { return db.migrated.Load() }

// Scope is the tenant, or the platform, that a transaction acts for.
type Scope struct {
	tenant   string
	platform bool
}

// TenantScope returns the scope of one tenant. Callers pass a validated
// tenant id (tenant.ID); an empty id yields a scope that sees nothing.
func TenantScope(id tenant.ID) Scope { return Scope{tenant: string(id)} }

// PlatformScope returns the scope that crosses tenants. Use it only in
// operator and control-plane code whose name says it crosses tenants.
func PlatformScope() Scope { return Scope{platform: true} }

// IsPlatform reports whether s is the platform scope.
func (s Scope) IsPlatform() bool { return s.platform }

// Tx is a transaction bound to a scope.
type Tx struct {
	tx          *sql.Tx
	stmts       *stmtCache // nil on PostgreSQL
	dialect     Dialect
	scope       Scope
	afterCommit []func()
}

// AfterCommit runs fn once the transaction has committed (never if it
// rolls back), for in-memory effects of what it wrote, such as telling
// caches that state changed.
func (tx *Tx) AfterCommit(fn func()) { tx.afterCommit = append(tx.afterCommit, fn) }

// TenantID returns the tenant of the transaction's scope ("" in the platform scope).
// Repositories use it, never a caller's string, in their WHERE clauses.
func (tx *Tx) TenantID() string { return tx.scope.tenant }

// Scope returns the transaction's scope.
func (tx *Tx) Scope() Scope { return tx.scope }

// Dialect reports the database's dialect.
func (tx *Tx) Dialect() Dialect { return tx.dialect }

// Exec runs a statement written with '?' placeholders.
func (tx *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := tx.prepared(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return tx.tx.ExecContext(ctx, tx.rebind(query), args...)
}

// Query runs a query written with '?' placeholders.
func (tx *Tx) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := tx.prepared(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return tx.tx.QueryContext(ctx, tx.rebind(query), args...)
}

// QueryRow runs a query written with '?' placeholders that returns at most one row.
func (tx *Tx) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if s := tx.prepared(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return tx.tx.QueryRowContext(ctx, tx.rebind(query), args...)
}

// prepared is query's prepared statement on this transaction's
// connection, nil when it has none (yet; see stmtCache).
func (tx *Tx) prepared(ctx context.Context, query string) *sql.Stmt {
	if s := tx.stmts.get(query); s != nil {
		return tx.tx.StmtContext(ctx, s)
	}
	return nil
}

func (tx *Tx) rebind(q string) string {
	if tx.dialect != Postgres {
		return q
	}
	return Rebind(q)
}

// Rebind turns '?' placeholders into PostgreSQL's $1, $2, … outside quoted text.
func Rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Update runs fn in a read-write transaction bound to scope, committing if
// fn returns nil and rolling back otherwise.
func (db *DB) Update(ctx context.Context, scope Scope, fn func(*Tx) error) error {
	return db.run(ctx, db.write, nil, scope, fn)
}

// View runs fn in a read-only transaction bound to scope.
func (db *DB) View(ctx context.Context, scope Scope, fn func(*Tx) error) error {
	// One snapshot for the whole transaction (PostgreSQL's default READ
	// COMMITTED would let two queries of one View see different states).
	opts := &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	if db.dialect == SQLite {
		opts = nil // the read pool is query_only; a WAL read transaction is one snapshot already
	}
	return db.run(ctx, db.read, opts, scope, fn)
}

func (db *DB) run(ctx context.Context, pool *sql.DB, opts *sql.TxOptions, scope Scope, fn func(*Tx) error) (err error) {
	stx, err := pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("storage: begin: %w", err)
	}
	stmts := db.readStmts
	if pool == db.write {
		stmts = db.writeStmts
	}
	tx := &Tx{tx: stx, stmts: stmts, dialect: db.dialect, scope: scope}
	defer func() {
		if p := recover(); p != nil {
			_ = stx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = stx.Rollback()
		}
	}()
	if db.dialect == Postgres {
		platform := ""
		if scope.platform {
			platform = "on"
		}
		if _, err := stx.ExecContext(ctx,
			`SELECT set_config('bulkhead.tenant_id', $1, true), set_config('bulkhead.platform', $2, true)`,
			scope.tenant, platform); err != nil {
			return fmt.Errorf("storage: set scope: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("storage: commit: %w", err)
	}
	for _, f := range tx.afterCommit {
		f()
	}
	return nil
}

// IsUniqueViolation reports whether err is a unique or primary-key constraint violation.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		c := liteErr.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// TryLock takes a named lock that spans nodes for the rest of the
// transaction, if no other transaction holds it. On PostgreSQL it is a
// transaction-scoped advisory lock (released at commit or rollback, or when
// the holder's connection dies); on SQLite, whose single writer already
// serializes write transactions, it always succeeds.
func (tx *Tx) TryLock(ctx context.Context, name string) (bool, error) {
	if tx.dialect != Postgres {
		return true, nil
	}
	var ok bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(`+lockKeySQL+`)`, lockKey(name), name).Scan(&ok); err != nil {
		return false, fmt.Errorf("storage: lock %s: %w", name, err)
	}
	return ok, nil
}

// Lock waits for a named lock that spans nodes for the rest of the
// transaction. On SQLite it returns at once (see TryLock).
func (tx *Tx) Lock(ctx context.Context, name string) error {
	if tx.dialect != Postgres {
		return nil
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(`+lockKeySQL+`)`, lockKey(name), name); err != nil {
		return fmt.Errorf("storage: lock %s: %w", name, err)
	}
	return nil
}

// lockKeySQL is a named lock's advisory key (arguments: lockKey(name),
// name). Advisory locks belong to the whole database, not to a schema,
// so deployments that share a database in schemas of their own (and
// tests, a schema each) would take each other's locks: outside the public
// schema the key is a hash of the schema and the name. In the public
// schema it stays lockKey(name), the key every earlier version used, so
// an upgrade's old and new nodes still exclude each other.
const lockKeySQL = `CASE WHEN current_schema() = 'public' THEN ?::bigint ELSE hashtextextended(current_schema() || '/' || ?::text, 0) END`

func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}
