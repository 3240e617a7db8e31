package tenantdb_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/sdk/tenantdb"
)

func noop(pgx.Tx) error { return nil }

// TestPlacementCache: a placement is asked for once, then served from the
// cache until its TTL passes or it is invalidated; a placement that is
// not ready is not cached.
func TestPlacementCache(t *testing.T) {
	e := newEnv(t)
	pool, bridge := e.cluster.Pool(t, "ten-a"), e.cluster.Bridge(t, "ten-a")
	e.resolver.Set(pool)
	db := e.open(t, tenantdb.Config{PlacementTTL: time.Minute}, "")
	clock := clock.NewFake(time.Now())
	tenantdb.SetNow(db, clock.Now)
	ctx := as("ten-a")
	for range 3 {
		if err := db.Tx(ctx, noop); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.resolver.Calls(); n != 1 {
		t.Fatalf("resolver asked %d times for 3 transactions", n)
	}
	// The tenant moves to its bridge schema: the cache holds the pool
	// placement until the TTL passes.
	e.resolver.Set(bridge)
	clock.Advance(59 * time.Second)
	if u, _, _ := settings(t, db, "ten-a"); u != e.servingUser(t) {
		t.Fatalf("within the TTL the tenant runs as %q", u)
	}
	clock.Advance(time.Second)
	if u, _, _ := settings(t, db, "ten-a"); u != bridge.Role {
		t.Fatalf("after the TTL the tenant runs as %q, want %q", u, bridge.Role)
	}
	// Invalidate drops it at once.
	e.resolver.Set(pool)
	db.Invalidate("ten-a")
	if u, _, _ := settings(t, db, "ten-a"); u != e.servingUser(t) {
		t.Fatalf("after Invalidate the tenant runs as %q", u)
	}
	// Not ready: refused each time, and asked for each time.
	calls := e.resolver.Calls()
	notReady := pool
	notReady.Status = "provisioning"
	e.resolver.Set(notReady)
	db.Invalidate("ten-a")
	for range 2 {
		if err := db.Tx(ctx, noop); !errors.Is(err, tenantdb.ErrPlacementNotReady) {
			t.Fatalf("provisioning: %v", err)
		}
	}
	e.resolver.Set(pool)
	if err := db.Tx(ctx, noop); err != nil {
		t.Fatalf("ready again: %v", err)
	}
	if n := e.resolver.Calls() - calls; n != 3 {
		t.Fatalf("resolver asked %d times, want 3 (the not-ready answers were cached)", n)
	}
}

// TestPlacementNotification: Run drops a tenant's cached placement when
// Bulkhead notifies bulkhead_placement with the tenant's id, and every
// placement on "*".
func TestPlacementNotification(t *testing.T) {
	e := newEnv(t)
	pa, pb := e.cluster.Pool(t, "ten-a"), e.cluster.Pool(t, "ten-b")
	e.resolver.Set(pa, pb)
	db := e.open(t, tenantdb.Config{PlacementTTL: time.Hour}, "")
	runtest.Go(t, db.Run)
	runtest.Eventually(t, "Run listening", func() bool { return tenantdb.Listening(db) })
	notify := func(payload string) {
		e.cluster.Exec(t, "", "SELECT pg_notify('"+tenantdb.PlacementChannel+"', '"+payload+"')")
	}
	refusedAfter := func(tid, payload string) {
		t.Helper()
		if err := db.Tx(as(tid), noop); err != nil {
			t.Fatal(err)
		}
		p := pa
		if tid == "ten-b" {
			p = pb
		}
		p.Status = "dropping"
		e.resolver.Set(p)
		notify(payload)
		runtest.Eventually(t, "the notification to reach "+tid+"'s cached placement", func() bool {
			return errors.Is(db.Tx(as(tid), noop), tenantdb.ErrPlacementNotReady)
		})
	}
	refusedAfter("ten-a", "ten-a")
	if err := db.Tx(as("ten-b"), noop); err != nil {
		t.Fatalf("ten-b after ten-a's notification: %v", err)
	}
	refusedAfter("ten-b", tenantdb.AllTenants)
}

// TestConcurrentTenants runs many tenants' transactions at once on a
// small pool (go test -race): each sees its own notes only.
func TestConcurrentTenants(t *testing.T) {
	e := newEnv(t)
	tenants := []string{"ten-a", "ten-b", "ten-c", "ten-d"}
	e.resolver.Set(e.cluster.Pool(t, tenants[0]), e.cluster.Pool(t, tenants[1]), e.cluster.Bridge(t, tenants[2]),
		e.cluster.Silo(t, tenants[3]))
	db := e.open(t, tenantdb.Config{PlacementTTL: time.Millisecond}, "pool_max_conns=2")
	for _, tid := range tenants {
		insert(t, db, tid, tid)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(tenants)*20)
	for i := range len(tenants) * 20 {
		tid := tenants[i%len(tenants)]
		wg.Go(func() {
			err := db.ReadTx(as(tid), func(tx pgx.Tx) error {
				rows, _ := tx.Query(context.Background(), "SELECT body FROM notes")
				got, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err == nil && !slices.Equal(got, []string{tid}) {
					err = fmt.Errorf("%s sees %v", tid, got)
				}
				return err
			})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
