package authz_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/authz"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

var op = tenant.Actor{Principal: "operator:test"}

// node is one Bulkhead node's authorization service on a shared database.
type node struct {
	db  *storage.DB
	svc *authz.Service
}

func newNode(t *testing.T, dsn string, cacheSize int) node {
	t.Helper()
	db := storagetest.Open(t, dsn, audit.Migrations(), tenants.Migrations(), authz.Migrations())
	l := audit.New(db, audit.Options{})
	t.Cleanup(func() { l.Close() })
	svc := authz.New(db, l, authz.Options{CacheSize: cacheSize})
	runtest.Go(t, svc.Run)
	return node{db, svc}
}

// onboard creates active tenants with their stores, through the registry of n.
func onboard(t *testing.T, n node, ids ...string) {
	t.Helper()
	l := audit.New(n.db, audit.Options{})
	t.Cleanup(func() { l.Close() })
	reg := tenants.NewRegistry(n.db, l, tenants.Options{})
	reg.AddOnboardingStep(n.svc.OnboardingStep())
	ctx := context.Background()
	runtest.Go(t, func(ctx context.Context) error { return reg.Run(ctx, 50*time.Millisecond) })
	for _, id := range ids {
		if _, _, err := reg.Create(ctx, tenants.CreateRequest{ID: id}, "", op); err != nil {
			t.Fatal(err)
		}
		runtest.Eventually(t, "tenant "+id+" active", func() bool {
			tn, err := reg.Get(ctx, tenant.ID(id))
			return err == nil && tn.Status == tenants.Active
		})
	}
}

var readReq = authz.Request{
	Principal: &authz.EntityRef{Type: "User", ID: "alice"},
	Action:    &authz.EntityRef{Type: "Action", ID: "read"},
	Resource:  &authz.EntityRef{Type: "Doc", ID: "d1"},
}

func decide(t *testing.T, svc *authz.Service, tid string) string {
	t.Helper()
	d, err := svc.Authorize(context.Background(), tenant.ID(tid), readReq, authz.Asker{Actor: op})
	if err != nil {
		t.Fatalf("authorize in %s: %v", tid, err)
	}
	return d.Decision
}

// awaitDecision waits until svc decides want for tid.
func awaitDecision(t *testing.T, svc *authz.Service, tid, want, what string) {
	t.Helper()
	runtest.Eventually(t, what+": the node decides "+want, func() bool { return decide(t, svc, tid) == want })
}

// TestWritesReachOtherNodes: two nodes share a PostgreSQL database; a
// write on one evicts the other's cached set (LISTEN/NOTIFY), for tenant
// policies and for global ones.
func TestWritesReachOtherNodes(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	n1, n2 := newNode(t, dsn, 100), newNode(t, dsn, 100)
	onboard(t, n1, "tenant-a", "tenant-b")
	ctx := context.Background()
	// Warm n2's caches.
	for _, tid := range []string{"tenant-a", "tenant-b"} {
		if got := decide(t, n2.svc, tid); got != authz.Deny {
			t.Fatalf("empty store of %s: %s", tid, got)
		}
	}
	p, err := n1.svc.CreatePolicy(ctx, "tenant-a", authz.PolicyInput{Statement: `permit(principal == User::"alice", action, resource);`}, op)
	if err != nil {
		t.Fatal(err)
	}
	awaitDecision(t, n2.svc, "tenant-a", authz.Allow, "tenant policy written on n1")
	if got := decide(t, n2.svc, "tenant-b"); got != authz.Deny {
		t.Errorf("tenant-b after tenant-a's write: %s", got)
	}
	g, err := n1.svc.CreatePolicy(ctx, "", authz.PolicyInput{Statement: `forbid(principal, action == Action::"read", resource);`}, op)
	if err != nil {
		t.Fatal(err)
	}
	awaitDecision(t, n2.svc, "tenant-a", authz.Deny, "global forbid written on n1")
	if err := n1.svc.DeletePolicy(ctx, "", g.ID, op); err != nil {
		t.Fatal(err)
	}
	awaitDecision(t, n2.svc, "tenant-a", authz.Allow, "global forbid deleted on n1")
	if err := n1.svc.DeletePolicy(ctx, "tenant-a", p.ID, op); err != nil {
		t.Fatal(err)
	}
	awaitDecision(t, n2.svc, "tenant-a", authz.Deny, "tenant policy deleted on n1")
}

// TestCacheIsBounded: many tenants, a small cache; every decision is still
// right (an evicted set is rebuilt from the database).
func TestCacheIsBounded(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		n := newNode(t, dsn, 2)
		var ids []string
		for i := range 5 {
			ids = append(ids, fmt.Sprintf("tenant-%d", i))
		}
		onboard(t, n, ids...)
		ctx := context.Background()
		for i, id := range ids {
			if i%2 == 0 {
				if _, err := n.svc.CreatePolicy(ctx, tenant.ID(id), authz.PolicyInput{Statement: `permit(principal, action, resource);`}, op); err != nil {
					t.Fatal(err)
				}
			}
		}
		for round := range 3 {
			for i, id := range ids {
				want := authz.Deny
				if i%2 == 0 {
					want = authz.Allow
				}
				if got := decide(t, n.svc, id); got != want {
					t.Errorf("round %d, %s: %s, want %s", round, id, got, want)
				}
			}
		}
		if got := n.svc.CachedSets(); got > 2 {
			t.Errorf("%d sets cached, bound 2", got)
		}
	})
}

// TestGlobalForbidFailsClosed: a global forbid that cannot be evaluated on
// a request (an attribute it reads is missing) denies, where Cedar alone
// would skip it and let a tenant permit through; its error text is not shown.
func TestGlobalForbidFailsClosed(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		n := newNode(t, dsn, 10)
		onboard(t, n, "tenant-a")
		ctx := context.Background()
		g, err := n.svc.CreatePolicy(ctx, "", authz.PolicyInput{Statement: `forbid(principal, action, resource) when { principal.suspended };`}, op)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.svc.CreatePolicy(ctx, "tenant-a", authz.PolicyInput{Statement: `permit(principal, action, resource);`}, op); err != nil {
			t.Fatal(err)
		}
		ask := func(entities string) authz.Decision {
			t.Helper()
			r := readReq
			r.Entities = []byte(entities)
			d, err := n.svc.Authorize(ctx, "tenant-a", r, authz.Asker{Actor: op})
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		d := ask(``)
		if d.Decision != authz.Deny || len(d.DeterminingPolicies) != 1 || d.DeterminingPolicies[0] != "global/"+g.ID {
			t.Errorf("global forbid on a missing attribute: %+v, want deny by global/%s", d, g.ID)
		}
		if len(d.Errors) != 1 || strings.Contains(d.Errors[0].Message, "suspended") {
			t.Errorf("errors %+v: want one, without the global policy's text", d.Errors)
		}
		if d := ask(`[{"uid":{"type":"User","id":"alice"},"attrs":{"suspended":false},"parents":[]}]`); d.Decision != authz.Allow {
			t.Errorf("not suspended: %+v", d)
		}
		if d := ask(`[{"uid":{"type":"User","id":"alice"},"attrs":{"suspended":true},"parents":[]}]`); d.Decision != authz.Deny {
			t.Errorf("suspended: %+v", d)
		}
	})
}

// TestStoreBounds: a store refuses statements past its character bound.
func TestStoreBounds(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		n := newNode(t, dsn, 10)
		onboard(t, n, "tenant-a")
		ctx := context.Background()
		big := `permit(principal, action, resource) when { context.s == "` + strings.Repeat("x", authz.MaxStatementBytes-200) + `" };`
		var full error
		var made int
		for made = 0; made < authz.MaxStoreChars/len(big)+2; made++ {
			if _, full = n.svc.CreatePolicy(ctx, "tenant-a", authz.PolicyInput{Statement: big}, op); full != nil {
				break
			}
		}
		if !errs.Is(full, "store_full") || made != authz.MaxStoreChars/len(big) {
			t.Fatalf("after %d statements of %d bytes: %v; want store_full after %d", made, len(big), full, authz.MaxStoreChars/len(big))
		}
		// A small policy still fits; replacing one with a big one does not.
		p, err := n.svc.CreatePolicy(ctx, "tenant-a", authz.PolicyInput{Statement: `permit(principal, action, resource);`}, op)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.svc.ReplacePolicy(ctx, "tenant-a", p.ID, authz.PolicyInput{Statement: big}, op); !errs.Is(err, "store_full") {
			t.Errorf("replace with a big statement in a full store: %v", err)
		}
	})
}
