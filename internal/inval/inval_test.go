package inval_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

const channel = "bulkhead_inval_test"

// cache records what a Channel asks of a node's cache, in order.
type cache struct {
	mu     sync.Mutex
	calls  []string
	notify chan struct{}
}

func newCache() *cache { return &cache{notify: make(chan struct{}, 100)} }

func (c *cache) record(s string) {
	c.mu.Lock()
	c.calls = append(c.calls, s)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *cache) hooks() inval.Hooks {
	return inval.Hooks{
		Evict:   func(_ context.Context, key string) { c.record("evict " + key) },
		Purge:   func(context.Context) { c.record("purge") },
		Enable:  func(context.Context) { c.record("enable") },
		Disable: func(context.Context) { c.record("disable") },
	}
}

func (c *cache) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

// waitFor waits until the calls so far hold call, and returns them.
func (c *cache) waitFor(t *testing.T, call string) []string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if got := c.got(); slices.Contains(got, call) {
			return got
		}
		select {
		case <-c.notify:
		case <-deadline:
			t.Fatalf("no %q after 10 s; calls: %q", call, c.got())
		}
	}
}

// run runs ch until the test ends and waits for it to listen.
func run(t *testing.T, ch *inval.Channel, c *cache) {
	t.Helper()
	runtest.Go(t, ch.Run)
	c.waitFor(t, "enable")
}

func events(t *testing.T, l *audit.Log, f audit.Filter) []audit.Event {
	t.Helper()
	p, err := l.ListAllTenants(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return p.Items
}

var errBoom = errors.New("boom")

// TestWrite: a committed write audits, evicts on this node after the
// commit and notifies; a rolled-back one does none of the three.
func TestWrite(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db := storagetest.Open(t, dsn, audit.Migrations())
		log := audit.New(db, audit.Options{})
		t.Cleanup(func() { log.Close() })
		local := newCache()
		ch := inval.New(db, channel, log, nil, local.hooks())
		run(t, ch, local)
		actor := tenant.Actor{Principal: "user:u1", RequestID: "req-1", SourceIP: "192.0.2.1"}

		// Rolled back: fn fails, or the transaction fails after Changed.
		err := ch.Write(ctx, "tenant-r", actor, func(tx *storage.Tx) (inval.Change, error) {
			return inval.Change{Action: "test.failed", Target: "x"}, errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("Write = %v, want %v", err, errBoom)
		}
		err = db.Update(ctx, storage.TenantScope(tenant.ID("tenant-r")), func(tx *storage.Tx) error {
			if err := ch.Changed(ctx, tx, "tenant-r"); err != nil {
				return err
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("Update = %v, want %v", err, errBoom)
		}
		if got := events(t, log, audit.Filter{Tenant: "tenant-r"}); len(got) != 0 {
			t.Fatalf("a rolled-back write audited %+v", got)
		}

		// Committed: the event, then this node's eviction.
		var evictedInTx bool
		err = ch.Write(ctx, "tenant-a", actor, func(tx *storage.Tx) (inval.Change, error) {
			evictedInTx = slices.Contains(local.got(), "evict tenant-a")
			return inval.Change{Action: "test.changed", Target: "thing-1", Detail: map[string]string{"k": "v"}}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if evictedInTx {
			t.Fatal("evicted before the commit")
		}
		if !slices.Contains(local.got(), "evict tenant-a") {
			t.Fatalf("Write returned before this node evicted: %q", local.got())
		}
		got := events(t, log, audit.Filter{Tenant: "tenant-a"})
		if len(got) != 1 {
			t.Fatalf("events = %+v, want one", got)
		}
		if e := got[0]; e.TenantID != "tenant-a" || e.Principal != "user:u1" || e.Action != "test.changed" || e.Target != "thing-1" ||
			e.RequestID != "req-1" || e.SourceIP != "192.0.2.1" || e.Outcome != audit.Success || e.Detail["k"] != "v" || len(e.Detail) != 1 {
			t.Fatalf("event = %+v", e)
		}

		// A platform write purges.
		if err := ch.Write(ctx, "", actor, func(tx *storage.Tx) (inval.Change, error) {
			return inval.Change{Action: "test.global", Target: "all"}, nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := events(t, log, audit.Filter{Tenant: audit.PlatformChain}); len(got) != 1 || got[0].Action != "test.global" {
			t.Fatalf("platform events = %+v", got)
		}
		// (On PostgreSQL this node's own listener hears its notifications
		// too, and applies them again: harmless.)
		calls := local.got()
		if slices.Contains(calls, "evict tenant-r") {
			t.Fatalf("a rolled-back write evicted: %q", calls)
		}
		if i, j := slices.Index(calls, "evict tenant-a"), slices.Index(calls, "purge"); i < 0 || j < i {
			t.Fatalf("calls = %q, want evict tenant-a then purge", calls)
		}
	})
}

// TestOtherNode: on PostgreSQL a second node (another connection pool on
// the same database) caches only while it listens, and a committed write
// on the first evicts its entries through the notification; a rolled-back
// one never reaches it.
func TestOtherNode(t *testing.T) {
	ctx := context.Background()
	dsn := storagetest.PostgresDSN(t)
	db1 := storagetest.Open(t, dsn, audit.Migrations())
	log1 := audit.New(db1, audit.Options{})
	t.Cleanup(func() { log1.Close() })
	node1 := inval.New(db1, channel, log1, nil, newCache().hooks())

	db2, err := storage.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db2.Close() })
	c2 := newCache()
	node2 := inval.New(db2, channel, nil, nil, c2.hooks())
	stop2 := runtest.Go(t, node2.Run)
	c2.waitFor(t, "enable")

	actor := tenant.Actor{Principal: "user:u1"}
	if err := node1.Write(ctx, "tenant-r", actor, func(tx *storage.Tx) (inval.Change, error) {
		return inval.Change{}, errBoom
	}); !errors.Is(err, errBoom) {
		t.Fatalf("Write = %v", err)
	}
	if err := db1.Update(ctx, storage.TenantScope(tenant.ID("tenant-s")), func(tx *storage.Tx) error {
		if err := node1.Changed(ctx, tx, "tenant-s"); err != nil {
			return err
		}
		return errBoom // after pg_notify ran in the transaction
	}); !errors.Is(err, errBoom) {
		t.Fatalf("Update = %v", err)
	}
	if err := node1.Write(ctx, "tenant-b", actor, func(tx *storage.Tx) (inval.Change, error) {
		return inval.Change{Action: "test.changed", Target: "thing-2"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := node1.Write(ctx, "", actor, func(tx *storage.Tx) (inval.Change, error) {
		return inval.Change{Action: "test.global"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	// Notifications arrive in commit order: once the purge is here, a
	// rolled-back write's would have been too.
	got := c2.waitFor(t, "purge")
	if want := []string{"enable", "evict tenant-b", "purge"}; !slices.Equal(got, want) {
		t.Fatalf("node 2: %q, want %q", got, want)
	}

	// A node that stops listening stops caching.
	if err := stop2(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := c2.got(); got[len(got)-1] != "disable" {
		t.Fatalf("node 2 after Run: %q, want disable last", got)
	}
}

// TestRunEvery: the periodic task runs beside the listener, and RunEvery
// returns, with the listener stopped, once its context ends.
func TestRunEvery(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn, audit.Migrations())
		c := newCache()
		ch := inval.New(db, channel, nil, nil, c.hooks())
		var ticks atomic.Int32
		stop := runtest.Go(t, func(ctx context.Context) error {
			return ch.RunEvery(ctx, time.Millisecond, func(context.Context) { ticks.Add(1) })
		})
		c.waitFor(t, "enable")
		runtest.Eventually(t, "two ticks", func() bool { return ticks.Load() >= 2 })
		if err := stop(); err != nil {
			t.Fatalf("RunEvery: %v", err)
		}
		if got := c.got(); got[len(got)-1] != "disable" && storage.IsPostgres(dsn) {
			t.Errorf("calls after RunEvery: %q, want disable last (the listener stopped)", got)
		}
	})
}
