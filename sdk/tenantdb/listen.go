package tenantdb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// PlacementChannel is the channel on which Bulkhead notifies a change of
// a tenant's placement, on the cluster's shared database, with the tenant
// id as payload.
const PlacementChannel = "bulkhead_placement"

// AllTenants is the payload of a change that may touch every tenant's
// placement (a cluster's settings, say): it empties the cache.
const AllTenants = "*"

// Run keeps the placement cache coherent and closes idle silo pools until
// ctx ends; then it returns nil. It listens on PlacementChannel on every
// cluster's shared database and drops a tenant's placement when notified.
// While one of its connections does not listen (before the first LISTEN,
// after a lost connection), nothing is cached: a notification may be
// missed then, and every transaction asks the resolver. Without Run, the
// cache relies on PlacementTTL and Invalidate alone.
func (db *DB) Run(ctx context.Context) error {
	db.mu.Lock()
	if db.running {
		db.mu.Unlock()
		return errors.New("tenantdb: Run is already running")
	}
	db.running, db.deaf = true, len(db.clusters)
	db.purgeLocked()
	db.mu.Unlock()
	defer func() {
		db.mu.Lock()
		db.running, db.deaf = false, 0
		db.purgeLocked()
		db.mu.Unlock()
	}()

	var wg sync.WaitGroup
	for _, c := range db.clusters {
		wg.Go(func() { db.listen(ctx, c) })
	}
	wg.Go(func() { db.sweepSilos(ctx) })
	wg.Wait()
	return nil
}

// listen listens on c until ctx ends, redialing with a backoff when its
// connection is lost.
func (db *DB) listen(ctx context.Context, c *cluster) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		listened, err := db.listenOnce(ctx, c)
		if ctx.Err() != nil {
			return
		}
		if listened {
			backoff = 100 * time.Millisecond
		}
		db.log.WarnContext(ctx, "tenantdb: placement notifications lost; redialing",
			"cluster", c.name, "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// listenIdle is how long a listening connection waits before it pings.
const listenIdle = 30 * time.Second

// listenOnce dials c's shared database, listens, and applies the
// notifications until the connection fails or ctx ends. The cache is on
// (as far as c is concerned) only between its LISTEN and its return.
func (db *DB) listenOnce(ctx context.Context, c *cluster) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, c.config.ConnConfig.Copy())
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{PlacementChannel}.Sanitize()); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	db.hearing(true)
	defer db.hearing(false)
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil && n.Payload == AllTenants:
			db.mu.Lock()
			db.purgeLocked()
			db.mu.Unlock()
		case err == nil:
			db.Invalidate(n.Payload)
		case ctx.Err() != nil:
			return true, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return true, fmt.Errorf("ping: %w", err)
			}
		default:
			return true, err
		}
	}
}

// hearing records that a listener started or stopped listening. Either
// way the cache starts over empty: what it held may predate a
// notification that no one heard.
func (db *DB) hearing(on bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if on {
		db.deaf--
	} else {
		db.deaf++
	}
	db.purgeLocked()
}

// sweepSilos closes idle silo pools until ctx ends.
func (db *DB) sweepSilos(ctx context.Context) {
	t := time.NewTicker(max(db.cfg.SiloIdle/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			db.silos.sweep()
		}
	}
}
