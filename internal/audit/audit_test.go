package audit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

func newLog(t *testing.T, dsn string) (*audit.Log, *storage.DB, *clock.Fake) {
	t.Helper()
	db := storagetest.Open(t, dsn, audit.Migrations())
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	var batches []int
	var mu sync.Mutex
	l := audit.New(db, audit.Options{Clock: clk, BatchHook: func(n int) { mu.Lock(); batches = append(batches, n); mu.Unlock() }})
	t.Cleanup(func() { l.Close() })
	return l, db, clk
}

// appendMany appends n events to each of the given chains concurrently.
func appendMany(t *testing.T, l *audit.Log, chains []string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errc := make(chan error, len(chains)*n)
	for _, c := range chains {
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errc <- l.Append(context.Background(), audit.Event{TenantID: c, Principal: "p", Action: "test.act",
					Target: fmt.Sprintf("%s-%d", c, i), Detail: map[string]string{"i": fmt.Sprint(i)}})
			}()
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatalf("append: %v", err)
		}
	}
}

func TestChainsAndVerify(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		l, _, _ := newLog(t, dsn)
		appendMany(t, l, []string{"", "tenant-a", "tenant-b"}, 40)
		rep, err := l.VerifyAllTenants(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK || rep.Chains != 3 || rep.Events != 120 {
			t.Fatalf("verify = %+v; want ok, 3 chains, 120 events", rep)
		}
		// Each chain is numbered 1..40 and linked.
		page, err := l.ListAllTenants(context.Background(), audit.Filter{Tenant: "tenant-a", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 40 {
			t.Fatalf("tenant-a has %d events; want 40", len(page.Items))
		}
		for i, e := range page.Items { // newest first
			if want := int64(40 - i); e.Seq != want || e.TenantID != "tenant-a" {
				t.Fatalf("item %d: seq %d tenant %q; want seq %d of tenant-a", i, e.Seq, e.TenantID, want)
			}
			if i+1 < len(page.Items) && e.PrevHash != page.Items[i+1].Hash {
				t.Fatalf("event %d does not link to event %d", e.Seq, e.Seq-1)
			}
		}
	})
}

func TestGroupCommitBatches(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn, audit.Migrations())
		var mu sync.Mutex
		commits := 0
		l := audit.New(db, audit.Options{BatchHook: func(int) { mu.Lock(); commits++; mu.Unlock() }})
		defer l.Close()
		appendMany(t, l, []string{"tenant-a"}, 300)
		mu.Lock()
		defer mu.Unlock()
		if commits >= 300 {
			t.Errorf("300 concurrent appends took %d commits; group commit should batch them", commits)
		}
	})
}

func TestVerifyDetectsTampering(t *testing.T) {
	cases := []struct {
		name   string
		tamper string // SQL run against the database
		seq    int64  // first broken seq reported
		reason string
	}{
		{"altered action", `UPDATE audit_events SET action = 'tenant.nothing' WHERE chain = 'tenant-a' AND seq = 3`, 3, "altered"},
		{"altered outcome", `UPDATE audit_events SET outcome = 'denied' WHERE chain = 'tenant-a' AND seq = 5`, 5, "altered"},
		{"altered detail", `UPDATE audit_events SET detail = '{"i":"99"}' WHERE chain = 'tenant-a' AND seq = 2`, 2, "altered"},
		{"removed middle", `DELETE FROM audit_events WHERE chain = 'tenant-a' AND seq = 4`, 5, "removed"},
		{"removed newest", `DELETE FROM audit_events WHERE chain = 'tenant-a' AND seq = 6`, 6, "removed"},
		{"removed whole chain", `DELETE FROM audit_events WHERE chain = 'tenant-a'`, 6, "gone"},
		{"removed head", `DELETE FROM audit_heads WHERE chain = 'tenant-a'`, 0, "no recorded head"},
		{"removed chain and head", `DELETE FROM audit_events WHERE chain = 'tenant-a'; DELETE FROM audit_heads WHERE chain = 'tenant-a'`, 0, "no recorded head"},
		{"rehashed row without relinking", `UPDATE audit_events SET prev_hash = hash WHERE chain = 'tenant-a' AND seq = 2`, 2, "link"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			storagetest.ForEach(t, func(t *testing.T, dsn string) {
				l, _, _ := newLog(t, dsn)
				for i := range 6 {
					if err := l.Append(context.Background(), audit.Event{TenantID: "tenant-a", Principal: "p", Action: "test.act",
						Detail: map[string]string{"i": fmt.Sprint(i)}}); err != nil {
						t.Fatal(err)
					}
				}
				if rep, _ := l.VerifyAllTenants(context.Background()); !rep.OK {
					t.Fatalf("before tampering: %+v", rep)
				}
				storagetest.ExecAsOwner(t, dsn, []string{"audit_events", "audit_heads"}, tc.tamper)
				rep, err := l.VerifyAllTenants(context.Background(), "tenant-a")
				if err != nil {
					t.Fatal(err)
				}
				if rep.OK || rep.Broken == nil {
					t.Fatalf("verify after %q = %+v; want broken", tc.tamper, rep)
				}
				if rep.Broken.TenantID != "tenant-a" || rep.Broken.Seq != tc.seq || !strings.Contains(rep.Broken.Reason, tc.reason) {
					t.Fatalf("broken = %+v; want tenant-a seq %d, reason mentioning %q", *rep.Broken, tc.seq, tc.reason)
				}
			})
		})
	}
}

func TestListFiltersAndPages(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		l, _, clk := newLog(t, dsn)
		ctx := context.Background()
		t0 := clk.Now()
		for i := range 10 {
			action := "a.even"
			if i%2 == 1 {
				action = "a.odd"
			}
			chain := "tenant-a"
			if i >= 5 {
				chain = ""
			}
			if err := l.Append(ctx, audit.Event{TenantID: chain, Principal: "p", Action: action}); err != nil {
				t.Fatal(err)
			}
			clk.Advance(time.Minute)
		}
		count := func(f audit.Filter) int {
			t.Helper()
			p, err := l.ListAllTenants(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			return len(p.Items)
		}
		for name, tc := range map[string]struct {
			f    audit.Filter
			want int
		}{
			"all":            {audit.Filter{}, 10},
			"tenant":         {audit.Filter{Tenant: "tenant-a"}, 5},
			"platform":       {audit.Filter{Tenant: audit.PlatformChain}, 5},
			"action":         {audit.Filter{Action: "a.odd"}, 5},
			"since":          {audit.Filter{Since: t0.Add(7 * time.Minute)}, 3},
			"until":          {audit.Filter{Until: t0.Add(2 * time.Minute)}, 2},
			"tenant+action":  {audit.Filter{Tenant: "tenant-a", Action: "a.even"}, 3},
			"unknown tenant": {audit.Filter{Tenant: "nobody"}, 0},
		} {
			if got := count(tc.f); got != tc.want {
				t.Errorf("%s: %d events; want %d", name, got, tc.want)
			}
		}
		// Pages of 3 walk all 10 events once, newest first.
		seen := map[int64]bool{}
		cursor, last := "", int64(1<<62)
		for pages := 0; ; pages++ {
			p, err := l.ListAllTenants(ctx, audit.Filter{Limit: 3, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Items {
				if seen[e.ID] || e.ID >= last {
					t.Fatalf("event %d repeated or out of order", e.ID)
				}
				seen[e.ID], last = true, e.ID
			}
			if cursor = p.NextCursor; cursor == "" {
				break
			}
			if pages > 5 {
				t.Fatal("pagination does not end")
			}
		}
		if len(seen) != 10 {
			t.Fatalf("pages held %d events; want 10", len(seen))
		}
		for _, f := range []audit.Filter{{Limit: -1}, {Limit: 1001}, {Cursor: "!!"}, {Cursor: "MA"}} {
			if _, err := l.ListAllTenants(ctx, f); err == nil {
				t.Errorf("ListAllTenants(%+v) accepted a bad filter", f)
			}
		}
	})
}

func TestListTenantSeesOnlyItsChain(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		l, _, _ := newLog(t, dsn)
		appendMany(t, l, []string{"tenant-a", "tenant-b", ""}, 3)
		// The filter's tenant is ignored: the scope decides.
		p, err := l.ListTenant(context.Background(), storage.TenantScope("tenant-a"), audit.Filter{Tenant: "tenant-b"})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) != 3 {
			t.Fatalf("tenant-a's listing has %d events; want its 3", len(p.Items))
		}
		for _, e := range p.Items {
			if e.TenantID != "tenant-a" {
				t.Fatalf("tenant-a's listing holds an event of %q", e.TenantID)
			}
		}
		if _, err := l.ListTenant(context.Background(), storage.PlatformScope(), audit.Filter{}); err == nil {
			t.Error("ListTenant accepted the platform scope")
		}
	})
}

func TestAppendTxCommitsWithTheAct(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		l, db, _ := newLog(t, dsn)
		ctx := context.Background()
		ev := audit.Event{TenantID: "tenant-a", Principal: "p", Action: "test.tx"}
		// Rolled back with its transaction.
		_ = db.Update(ctx, storage.TenantScope("tenant-a"), func(tx *storage.Tx) error {
			if err := l.AppendTx(ctx, tx, ev); err != nil {
				t.Fatal(err)
			}
			return fmt.Errorf("roll back")
		})
		// Refused in another tenant's scope.
		err := db.Update(ctx, storage.TenantScope("tenant-b"), func(tx *storage.Tx) error { return l.AppendTx(ctx, tx, ev) })
		if err == nil {
			t.Fatal("AppendTx wrote tenant-a's event in tenant-b's scope")
		}
		if err := db.Update(ctx, storage.TenantScope("tenant-a"), func(tx *storage.Tx) error { return l.AppendTx(ctx, tx, ev) }); err != nil {
			t.Fatal(err)
		}
		if err := l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
		p, err := l.ListAllTenants(ctx, audit.Filter{Tenant: "tenant-a"})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) != 2 || p.Items[1].Seq != 1 || p.Items[0].Seq != 2 {
			t.Fatalf("events = %+v; want seq 1 (AppendTx) and 2 (Append) only", p.Items)
		}
		if rep, _ := l.VerifyAllTenants(ctx); !rep.OK {
			t.Fatalf("verify: %+v", rep)
		}
	})
}

func TestAppendAfterClose(t *testing.T) {
	l, _, _ := newLog(t, storagetest.DSN(t, storage.SQLite))
	l.Close()
	if err := l.Append(context.Background(), audit.Event{Action: "x"}); err != audit.ErrClosed {
		t.Fatalf("Append after Close = %v; want ErrClosed", err)
	}
}

// TestCloseRacingAppends: every Append that Close races either returns
// ErrClosed or is written; none is stranded waiting for a writer that left.
func TestCloseRacingAppends(t *testing.T) {
	for round := range 50 {
		db := storagetest.Open(t, storagetest.DSN(t, storage.SQLite), audit.Migrations())
		l := audit.New(db, audit.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var wg sync.WaitGroup
		var written sync.Map
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := l.Append(ctx, audit.Event{TenantID: "tenant-a", Action: "race", Target: fmt.Sprint(i)})
				switch err {
				case nil:
					written.Store(fmt.Sprint(i), true)
				case audit.ErrClosed:
				default:
					t.Errorf("round %d: append %d: %v", round, i, err)
				}
			}()
		}
		l.Close()
		wg.Wait()
		cancel()
		n := 0
		written.Range(func(any, any) bool { n++; return true })
		// A reopened log sees exactly the events whose Append returned nil.
		l2 := audit.New(db, audit.Options{})
		p, err := l2.ListAllTenants(context.Background(), audit.Filter{Limit: 100})
		l2.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) != n {
			t.Fatalf("round %d: %d events stored; %d appends reported success", round, len(p.Items), n)
		}
	}
}

// TestEventsAreAppendOnlyOnPostgres: no Bulkhead transaction, not even a
// platform-scoped one, can change or remove an event, behind two locks.
// The serving role lacks the privileges (the statements are refused); and
// were they granted, the policies would let no row be touched, as they do
// for the tables' owner.
func TestEventsAreAppendOnlyOnPostgres(t *testing.T) {
	serving, owner := storagetest.PostgresDSNs(t)
	l, db, _ := newLog(t, serving)
	ctx := context.Background()
	if err := l.Append(ctx, audit.Event{TenantID: "tenant-a", Action: "keep"}); err != nil {
		t.Fatal(err)
	}
	ownerDB, err := storage.Open(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	defer ownerDB.Close()
	for _, scope := range []storage.Scope{storage.PlatformScope(), storage.TenantScope("tenant-a")} {
		for _, q := range []string{`UPDATE audit_events SET action = 'gone'`, `DELETE FROM audit_events`, `DELETE FROM audit_heads`} {
			err := db.Update(ctx, scope, func(tx *storage.Tx) error {
				_, err := tx.Exec(ctx, q)
				return err
			})
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
				t.Errorf("%s as the serving role (platform scope %v): err = %v; want permission denied", q, scope.IsPlatform(), err)
			}
			err = ownerDB.Update(ctx, scope, func(tx *storage.Tx) error {
				res, err := tx.Exec(ctx, q)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n != 0 {
					t.Errorf("%s as the owner changed %d rows (platform scope %v)", q, n, scope.IsPlatform())
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if rep, _ := l.VerifyAllTenants(ctx); !rep.OK || rep.Events != 1 {
		t.Fatalf("verify: %+v", rep)
	}
}
