// Package inval keeps what a node caches from the database coherent with
// the database, on every node: it is the one way a service writes an
// audited change that invalidates a cache, and the one way it hears of
// other nodes' changes.
//
// The invariant it protects: a node caches only while it listens. On
// PostgreSQL many nodes share one database, and a change committed by one
// reaches the others only as a notification (LISTEN/NOTIFY), which is lost
// if no connection listens when it is sent. So a service's cache starts
// off; Run switches it on once its connection listens, and off (empty)
// whenever that connection is lost, until a new one listens. A write made
// through Write (or reported with Changed) evicts this node's entries
// after the commit, and every other node's by the notification that the
// commit sends. A node that missed nothing keeps its cache; a node that
// may have missed something has nothing cached to be stale. On SQLite one
// process owns the database: Run enables the cache at once, and the
// writer's own evictions are all that is needed.
//
// A service constructs one Channel with its notification channel, its
// database, the audit log and its cache's Hooks; runs Run for as long as
// it serves; and writes through Write, or reports a change made in a
// transaction of another kind with Changed. A service whose own node must
// catch up otherwise after a write (compute deploys a function before it
// stores it; signing reloads an issuer's keys with a deadline) uses Run
// only, and sends its notification with tx.Notify on the same channel.
package inval

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// All is the key of a change that may touch everything a node caches: a
// write in the platform scope (Write with no tenant) notifies it, and it
// makes every node call Purge. (No tenant id is "*".)
const All = "*"

// Hooks are a service's cache as a Channel drives it. Every hook is
// required. They run on Run's goroutine (with Run's context) or, for this
// node's own writes, right after the commit on the writer's (with the
// write's context, without its cancellation); they should not block long.
type Hooks struct {
	// Evict drops what this node caches under key: a tenant id, or
	// whatever key the service notifies (a function name).
	Evict func(ctx context.Context, key string)
	// Purge drops everything (a change to All).
	Purge func(ctx context.Context)
	// Enable switches caching on, from empty: this node now listens.
	Enable func(ctx context.Context)
	// Disable switches caching off and drops everything: this node no
	// longer listens, and may miss changes until it does again.
	Disable func(ctx context.Context)
}

// Channel is one service's notification channel: its audited writes and
// its listener.
type Channel struct {
	name  string
	db    *storage.DB
	audit *audit.Log
	log   *slog.Logger
	hooks Hooks
}

// New returns the channel name of db, whose writes are audited in log
// (nil for a channel that never calls Write) and whose changes drive
// hooks; logger reports a lost listening connection.
func New(db *storage.DB, name string, log *audit.Log, logger *slog.Logger, hooks Hooks) *Channel {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Channel{name: name, db: db, audit: log, log: logger, hooks: hooks}
}

// Change is what a write did, for the audit log: its action, its target
// and, if any, its detail. The tenant, principal, request and source come
// from the write's scope and actor.
type Change struct {
	Action string
	Target string
	Detail map[string]string
}

// Write runs fn in a transaction in tenant tid's scope (the platform
// scope when tid is "", a change to All) and, if fn succeeds, in the same
// transaction appends the audit event of the Change it returns and reports
// the change (see Changed): this node evicts tid's entries after the
// commit, and the commit notifies the other nodes. If fn or anything after
// it fails, the transaction rolls back: no event, no eviction, no
// notification.
func (c *Channel) Write(ctx context.Context, tid tenant.ID, actor tenant.Actor, fn func(tx *storage.Tx) (Change, error)) error {
	scope, key := storage.PlatformScope(), All
	if tid != "" {
		scope, key = storage.TenantScope(tid), string(tid)
	}
	return c.db.Update(ctx, scope, func(tx *storage.Tx) error {
		ch, err := fn(tx)
		if err != nil {
			return err
		}
		if err := c.audit.AppendTx(ctx, tx, audit.Event{TenantID: tx.TenantID(), Principal: actor.Principal, Action: ch.Action,
			Target: ch.Target, RequestID: actor.RequestID, SourceIP: actor.SourceIP, Detail: ch.Detail}); err != nil {
			return err
		}
		return c.Changed(ctx, tx, key)
	})
}

// Changed reports, in tx, that what is cached under key changed, for a
// write that is not a Write of its own (an offboarding step, a write the
// caller audits otherwise): this node evicts key after tx commits, and the
// commit notifies the other nodes (PostgreSQL delivers the notification at
// commit and drops it on rollback).
func (c *Channel) Changed(ctx context.Context, tx *storage.Tx, key string) error {
	after := context.WithoutCancel(ctx)
	tx.AfterCommit(func() { c.apply(after, key) })
	return tx.Notify(ctx, c.name, key)
}

// apply applies a change of key to this node's cache.
func (c *Channel) apply(ctx context.Context, key string) {
	if key == All {
		c.hooks.Purge(ctx)
		return
	}
	c.hooks.Evict(ctx, key)
}

// Run listens for other nodes' changes and applies them to this node's
// cache, switching caching on while it listens and off while it does not
// (see the package doc). It blocks until ctx ends and then returns nil.
func (c *Channel) Run(ctx context.Context) error {
	c.db.Listen(ctx, c.name, c.log, func() { c.hooks.Enable(ctx) }, func() { c.hooks.Disable(ctx) },
		func(key string) { c.apply(ctx, key) })
	<-ctx.Done() // on SQLite Listen returns at once
	return nil
}

// RunEvery is Run beside a periodic task: it calls tick every interval
// while it listens, until ctx ends, and returns once both have stopped.
// It is the Run of a service whose cache listener has a sweep to go with
// it.
func (c *Channel) RunEvery(ctx context.Context, interval time.Duration, tick func(context.Context)) error {
	var listener sync.WaitGroup
	defer listener.Wait()
	listener.Go(func() { c.Run(ctx) })
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			tick(ctx)
		}
	}
}
