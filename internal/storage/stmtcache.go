package storage

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"time"
)

// stmtCache keeps the prepared statements of one SQLite pool, so that a
// query a transaction has run before is not parsed and planned again:
// SQLite's driver prepares every statement it is given, which cost the
// token endpoint a fifth of its CPU. PostgreSQL needs none: pgx caches
// its prepared statements per connection itself.
//
// A statement is prepared on the pool (database/sql's *sql.Stmt), and a
// transaction uses it through Tx.StmtContext, which prepares it on the
// transaction's own connection once and reuses it there afterwards. The
// pool-level prepare needs a connection of its own, which a transaction
// that holds the writer's only one could wait for forever: so it runs in
// the background, outside any transaction, and the query that asked for
// it runs unprepared meanwhile.
type stmtCache struct {
	pool    *sql.DB
	timeout time.Duration // for a prepare to get a connection and finish
	wg      sync.WaitGroup

	mu      sync.Mutex
	stmts   map[string]*sql.Stmt // nil: could not be prepared; not tried again
	pending map[string]bool
	closed  bool
}

// maxCachedStatements bounds the cache; queries past it run unprepared.
// Bulkhead's queries are constant strings but for a few built per call
// (an IN list's length); the bound keeps those from growing it forever.
const maxCachedStatements = 1024

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, timeout: 10 * time.Second, stmts: map[string]*sql.Stmt{}, pending: map[string]bool{}}
}

// get returns q's prepared statement, or nil when it is not (yet) there:
// then the caller runs q as it is, and q is prepared in the background.
// A script of more than one statement is not kept: the driver parses a
// prepared script again on every run, so it would gain nothing.
func (c *stmtCache) get(q string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.stmts[q]; ok {
		return s
	}
	if c.closed || c.pending[q] || len(c.stmts)+len(c.pending) >= maxCachedStatements {
		return nil
	}
	if strings.Contains(strings.TrimRight(q, "; \t\r\n"), ";") {
		c.stmts[q] = nil
		return nil
	}
	c.pending[q] = true
	c.wg.Add(1)
	go c.prepare(q)
	return nil
}

func (c *stmtCache) prepare(q string) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	s, err := c.pool.PrepareContext(ctx, q)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, q)
	if errors.Is(err, context.DeadlineExceeded) {
		return // the pool was busy for long: the next use asks again
	}
	if err != nil {
		// A query on a table its own transaction makes, say: it runs
		// unprepared, as before.
		c.stmts[q] = nil
		return
	}
	if c.closed {
		s.Close()
		return
	}
	c.stmts[q] = s
}

// close waits for the prepares under way and closes every statement; the
// pool is closed after it.
func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.stmts {
		if s != nil {
			s.Close()
		}
	}
	clear(c.stmts)
}
