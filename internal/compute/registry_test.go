package compute_test

import (
	"context"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/compute"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// TestPublishReachesOtherNodes: two nodes on one PostgreSQL database; a
// function published on one runs on the other (its module comes from the
// database), and a new version published on the first replaces the
// second's deployment at once (LISTEN/NOTIFY), as does a deletion.
func TestPublishReachesOtherNodes(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	op := tenant.Actor{Principal: "operator:test"}
	node := func() *compute.Registry {
		db := storagetest.Open(t, dsn, audit.Migrations(), compute.Migrations())
		l := audit.New(db, audit.Options{})
		t.Cleanup(func() { l.Close() })
		e, err := compute.New(compute.Options{Dir: t.TempDir(), CacheDir: cacheDir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close(context.Background()) })
		r := compute.NewRegistry(db, l, e)
		runtest.Go(t, r.Run)
		return r
	}
	n1, n2 := node(), node()
	ctx := context.Background()
	cfg := compute.Config{Name: "fn", TenancyMode: compute.PerTenant}
	if _, err := n1.Publish(ctx, cfg, modules["counter"], op); err != nil {
		t.Fatal(err)
	}
	res, err := n2.Invoke(ctx, "fn", compute.Caller{Tenant: "tenant-a"}, "r", nil)
	if err != nil || !res.Cold {
		t.Fatalf("first invocation on node 2: %v", err)
	}
	// Version 2 (another module) on node 1: node 2 serves it.
	if _, err := n1.Publish(ctx, cfg, modules["limits"], op); err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, "node 2 serving the new version", func() bool {
		res, err := n2.Invoke(ctx, "fn", compute.Caller{Tenant: "tenant-a"}, "r", []byte("x"))
		return err == nil && string(res.Body) == "1" // the limits module answers its call count
	})
	if err := n1.Delete(ctx, "fn", op); err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, "node 2 refusing the deleted function", func() bool {
		_, err := n2.Invoke(ctx, "fn", compute.Caller{Tenant: "tenant-a"}, "r", nil)
		return err != nil
	})
}

// TestPublisherKeepsItsDeployment: the node that publishes a function
// hears its own change notice too, sometimes after the function's first
// invocations; it must keep the version it deployed (and that version's
// warm environments) rather than drop it and start cold. The test replays
// the notice after the first invocation (as a late one arrives), and waits
// until the node has handled it: notices reach a node in order, so once it
// serves version 2 of another function, published after the replay on a
// second node, it has.
func TestPublisherKeepsItsDeployment(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	op := tenant.Actor{Principal: "operator:test"}
	var db1 *storage.DB
	node := func() *compute.Registry {
		db := storagetest.Open(t, dsn, audit.Migrations(), compute.Migrations())
		if db1 == nil {
			db1 = db
		}
		l := audit.New(db, audit.Options{})
		t.Cleanup(func() { l.Close() })
		e, err := compute.New(compute.Options{Dir: t.TempDir(), CacheDir: cacheDir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close(context.Background()) })
		r := compute.NewRegistry(db, l, e)
		runtest.Go(t, r.Run)
		return r
	}
	n1, n2 := node(), node()
	ctx := context.Background()
	a := compute.Caller{Tenant: "tenant-a"}
	other := compute.Config{Name: "other", TenancyMode: compute.PerTenant}
	if _, err := n1.Publish(ctx, other, modules["counter"], op); err != nil {
		t.Fatal(err)
	}
	fn := compute.Config{Name: "fn", TenancyMode: compute.PerTenant}
	if _, err := n1.Publish(ctx, fn, modules["counter"], op); err != nil {
		t.Fatal(err)
	}
	first, err := n1.Invoke(ctx, "fn", a, "r1", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The publication's notice, arriving late.
	if err := db1.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.Notify(ctx, "bulkhead_functions", "fn")
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.Publish(ctx, other, modules["counter"], op); err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, "node 1 serving version 2 of other", func() bool {
		res, err := n1.Invoke(ctx, "other", a, "r", nil)
		return err == nil && res.Version == 2
	})
	again, err := n1.Invoke(ctx, "fn", a, "r2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Cold || again.EnvironmentID != first.EnvironmentID {
		t.Fatalf("after its own publication's notice node 1 started fn cold (environment %s, first %s): it dropped the version it had deployed",
			again.EnvironmentID, first.EnvironmentID)
	}
}
