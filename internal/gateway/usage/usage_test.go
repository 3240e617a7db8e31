package usage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/usage"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

var start = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func tiers() tenants.Tiers {
	return tenants.Tiers{
		"basic":   {Name: "basic", Isolation: tenants.Pool, GatewayRPS: 2, GatewayBurst: 4},
		"premium": {Name: "premium", Isolation: tenants.Silo, GatewayRPS: 100, GatewayBurst: 100},
		"metered": {Name: "metered", Isolation: tenants.Pool, GatewayQuota: 50, GatewayQuotaPeriod: "day"},
		"both":    {Name: "both", Isolation: tenants.Pool, GatewayRPS: 1, GatewayBurst: 1, GatewayQuota: 10, GatewayQuotaPeriod: "day"},
	}
}

func newService(t *testing.T, db *storage.DB, fc *clock.Fake, mod func(*usage.Config)) *usage.Service {
	cfg := usage.Config{DB: db, Audit: audit.New(db, audit.Options{Clock: fc}), Tiers: tiers(), Clock: fc, QuotaBatch: 5}
	if mod != nil {
		mod(&cfg)
	}
	return usage.New(cfg)
}

// run runs s until the test ends (or the returned stop is called).
func run(t *testing.T, s *usage.Service) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

func open(t *testing.T, dsn string) *storage.DB {
	return storagetest.Open(t, dsn, audit.Migrations(), usage.Migrations())
}

func TestBurstThenThrottleWithHeaders(t *testing.T) {
	db := open(t, storagetest.DSN(t, storage.SQLite))
	fc := clock.NewFake(start)
	s := newService(t, db, fc, nil)
	ctx := context.Background()
	for i := range 4 {
		d, err := s.Admit(ctx, "acme", "basic")
		if err != nil || !d.Allowed {
			t.Fatalf("request %d of the burst: %+v, %v", i, d, err)
		}
	}
	d, err := s.Admit(ctx, "acme", "basic")
	if err != nil || d.Allowed || d.Reason != "rate" {
		t.Fatalf("past the burst: %+v, %v", d, err)
	}
	rec := httptest.NewRecorder()
	d.Reject(rec)
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "1" ||
		rec.Header().Get("RateLimit-Policy") != `"rate";q=4;w=2` || rec.Header().Get("RateLimit") != `"rate";r=0;t=1` ||
		rec.Header().Get("Content-Type") != "application/problem+json" || !strings.Contains(rec.Body.String(), `"rate_limited"`) ||
		!strings.Contains(rec.Body.String(), `"violated-policies":["rate"]`) {
		t.Fatalf("429 = %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	// Another tenant of the tier has its own bucket.
	if d, _ := s.Admit(ctx, "other", "basic"); !d.Allowed || d.Limit != `"rate";r=3;t=1` {
		t.Fatal("tenant other throttled by acme's requests")
	}
	fc.Advance(500 * time.Millisecond)
	if d, _ := s.Admit(ctx, "acme", "basic"); !d.Allowed || d.Limit != `"rate";r=0;t=1` {
		t.Fatalf("after a refill: %+v", d)
	}
	// Both policies: both items while allowed, only the violated one
	// when refused (Retry-After never ends before a carried window).
	d, _ = s.Admit(ctx, "acme", "both")
	if !d.Allowed || d.Policy != `"rate";q=1;w=1, "quota";q=10;w=86400` || d.Limit != `"rate";r=0;t=1, "quota";r=9;t=43200` {
		t.Fatalf("both policies: %+v", d)
	}
	d, _ = s.Admit(ctx, "acme", "both")
	if d.Allowed || d.Reason != "rate" || d.Limit != `"rate";r=0;t=1` || d.RetryAfter != time.Second {
		t.Fatalf("both policies, over the rate: %+v", d)
	}
	// No plan, no limit and no headers.
	if d, _ := s.Admit(ctx, "acme", "nosuch"); !d.Allowed || d.Policy != "" {
		t.Fatalf("no plan: %+v", d)
	}
}

func TestNodesShareTheRate(t *testing.T) {
	db := open(t, storagetest.DSN(t, storage.SQLite))
	fc := clock.NewFake(start)
	s := newService(t, db, fc, func(c *usage.Config) { c.Nodes = 2 })
	n := 0
	for {
		d, err := s.Admit(context.Background(), "acme", "basic")
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allowed {
			break
		}
		n++
	}
	if n != 2 {
		t.Fatalf("a node of two admitted a burst of %d, want 2 (half of 4)", n)
	}
}

func TestTierChangeAndOverrideWithoutRestart(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		db := open(t, dsn)
		fc := clock.NewFake(start)
		a, b := newService(t, db, fc, nil), newService(t, db, fc, nil)
		if db.Dialect() != storage.Postgres {
			b = a // one process owns a SQLite database: one node
		}
		run(t, a)
		if b != a {
			run(t, b)
		}
		ctx := context.Background()
		exhaust := func(s *usage.Service, tier string) int {
			n := 0
			for ; n < 1000; n++ {
				d, err := s.Admit(ctx, "acme", tier)
				if err != nil {
					t.Fatal(err)
				}
				if !d.Allowed {
					break
				}
			}
			return n
		}
		if n := exhaust(b, "basic"); n != 4 {
			t.Fatalf("basic admitted %d, want 4", n)
		}
		// A tier change: the next request is judged by the new tier's plan.
		if n := exhaust(b, "premium"); n != 100 {
			t.Fatalf("premium admitted %d, want 100", n)
		}
		if _, err := a.Override(ctx, "acme"); !errs.Is(err, "usage_plan_not_found") {
			t.Fatalf("Override before any = %v", err)
		}
		// An override set on node a applies on node b, which had cached
		// "no override".
		op := tenant.Actor{Principal: "operator"}
		if err := a.SetOverride(ctx, "acme", usage.Plan{RPS: 1, Burst: 7}, op); err != nil {
			t.Fatal(err)
		}
		runtest.Eventually(t, "node b to apply the override", func() bool {
			p, err := b.PlanFor(ctx, "acme", "basic")
			return err == nil && p.Burst == 7
		})
		if n := exhaust(b, "basic"); n != 7 {
			t.Fatalf("override admitted %d, want 7", n)
		}
		if err := a.DeleteOverride(ctx, "acme", op); err != nil {
			t.Fatal(err)
		}
		runtest.Eventually(t, "node b to drop the override", func() bool {
			p, err := b.PlanFor(ctx, "acme", "basic")
			return err == nil && p.Burst == 4
		})
		if err := a.DeleteOverride(ctx, "acme", op); !errs.Is(err, "usage_plan_not_found") {
			t.Fatalf("second delete = %v", err)
		}
		// Both changes are in the tenant's audit chain.
		var actions []string
		if err := db.View(ctx, storage.TenantScope("acme"), func(tx *storage.Tx) error {
			rows, err := tx.Query(ctx, `SELECT action FROM audit_events WHERE chain = ? ORDER BY seq`, "acme")
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var a string
				if err := rows.Scan(&a); err != nil {
					return err
				}
				actions = append(actions, a)
			}
			return rows.Err()
		}); err != nil {
			t.Fatal(err)
		}
		if strings.Join(actions, ",") != "usage_plan.set,usage_plan.deleted" {
			t.Fatalf("audited %v", actions)
		}
		for _, bad := range []usage.Plan{{RPS: -1}, {RPS: 5}, {Quota: 3}, {Quota: 3, QuotaPeriod: "year"}, {QuotaPeriod: "day"}} {
			if err := a.SetOverride(ctx, "acme", bad, op); !errs.Is(err, "invalid_plan") {
				t.Errorf("SetOverride(%+v) = %v", bad, err)
			}
		}
	})
}

// TestQuotaAcrossNodes runs two nodes on one database, each admitting as
// much as it can: together they admit at least the quota and at most the
// quota plus nodes × batch.
func TestQuotaAcrossNodes(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		db := open(t, dsn)
		fc := clock.NewFake(start)
		const quota, batch, nodes = 50, 5, 2
		nodesS := []*usage.Service{newService(t, db, fc, nil), newService(t, db, fc, nil)}
		ctx := context.Background()
		admitted := 0
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, s := range nodesS {
			wg.Go(func() {
				for range 200 {
					d, err := s.Admit(ctx, "acme", "metered")
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						mu.Lock()
						admitted++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		if admitted < quota || admitted > quota+nodes*batch {
			t.Fatalf("admitted %d; want between %d and %d", admitted, quota, quota+nodes*batch)
		}
		for _, s := range nodesS {
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
		d, err := nodesS[0].Admit(ctx, "acme", "metered")
		if err != nil || d.Allowed || d.Reason != "quota" || d.RetryAfter != 12*time.Hour {
			t.Fatalf("over quota: %+v, %v", d, err)
		}
		if d.Policy != `"quota";q=50;w=86400` || d.Limit != `"quota";r=0;t=43200` {
			t.Fatalf("quota fields: %q, %q", d.Policy, d.Limit)
		}
		rec := httptest.NewRecorder()
		d.Reject(rec)
		if rec.Code != 429 || rec.Header().Get("Retry-After") != "43200" || !strings.Contains(rec.Body.String(), `"quota_exceeded"`) ||
			!strings.Contains(rec.Body.String(), `"violated-policies":["quota"]`) {
			t.Fatalf("429 = %d %v %s", rec.Code, rec.Header(), rec.Body)
		}
		// The next day starts again.
		fc.Advance(12 * time.Hour)
		if d, _ := nodesS[1].Admit(ctx, "acme", "metered"); !d.Allowed {
			t.Fatalf("next day: %+v", d)
		}
	})
}

func TestUsageFlushOnStopAndCrash(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		db := open(t, dsn)
		fc := clock.NewFake(start)
		var logs bytes.Buffer
		s := newService(t, db, fc, func(c *usage.Config) { c.Logger = slog.New(slog.NewJSONHandler(&logs, nil)) })
		stop := run(t, s)
		ctx := context.Background()
		s.Record(ctx, usage.Usage{Tenant: "acme", Tier: "basic", Method: "GET", Path: "/x?token=secret", Status: 200,
			BytesIn: 10, BytesOut: 100, Latency: 3 * time.Millisecond})
		s.Record(ctx, usage.Usage{Tenant: "acme", Tier: "basic", Status: 503, Latency: 7 * time.Second})
		s.Record(ctx, usage.Usage{Tenant: "bravo", Tier: "basic", Status: 404, Latency: 30 * time.Millisecond})
		stop() // the final flush
		recs, err := s.Usage(ctx, "acme", start.Add(-time.Hour), start.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].Requests != 2 || recs[0].BytesIn != 10 || recs[0].BytesOut != 100 ||
			recs[0].Status != [4]int64{1, 0, 0, 1} || recs[0].Latency[0] != 1 || recs[0].Latency[10] != 1 || !recs[0].Hour.Equal(start) {
			t.Fatalf("acme's usage = %+v", recs)
		}
		// Tenant acme's range never holds bravo's rows.
		if recs, _ := s.Usage(ctx, "bravo", start, start.Add(time.Hour)); len(recs) != 1 || recs[0].Requests != 1 {
			t.Fatalf("bravo's usage = %+v", recs)
		}
		line := logs.String()
		if strings.Contains(line, "secret") || !strings.Contains(line, `"tenant_id":"acme"`) || !strings.Contains(line, `"path":"/x"`) {
			t.Fatalf("access log: %s", line)
		}

		// A crash loses only what was recorded since the last flush.
		c := newService(t, db, fc, nil)
		run(t, c)
		c.Record(ctx, usage.Usage{Tenant: "acme", Status: 200})
		if err := c.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		c.Record(ctx, usage.Usage{Tenant: "acme", Status: 200}) // never flushed: the process "dies"
		recs, _ = s.Usage(ctx, "acme", start, start.Add(time.Hour))
		if len(recs) != 1 || recs[0].Requests != 3 {
			t.Fatalf("after a crash: %+v", recs)
		}
		if _, err := s.Usage(ctx, "acme", start, start); !errs.Is(err, "invalid_range") {
			t.Fatalf("empty range: %v", err)
		}
	})
}

func TestTickerFlushes(t *testing.T) {
	db := open(t, storagetest.DSN(t, storage.SQLite))
	fc := clock.NewFake(start)
	s := newService(t, db, fc, nil)
	run(t, s)
	ctx := context.Background()
	s.Record(ctx, usage.Usage{Tenant: "acme", Status: 200})
	runtest.Eventually(t, "the ticker to be set", func() bool { return fc.Pending() > 0 })
	runtest.Eventually(t, "a flush on the tick", func() bool {
		fc.Advance(time.Second)
		recs, err := s.Usage(ctx, "acme", start, start.Add(time.Hour))
		return err == nil && len(recs) == 1
	})
}

func TestMetricsBoundedCardinality(t *testing.T) {
	db := open(t, storagetest.DSN(t, storage.SQLite))
	fc := clock.NewFake(start)
	s := newService(t, db, fc, func(c *usage.Config) { c.TopTenants = 2 })
	for i, id := range []tenant.ID{"aaa", "bbb", "ccc", "ddd"} {
		for range 10 - i {
			s.Record(context.Background(), usage.Usage{Tenant: id, Tier: "basic", Status: 200})
		}
	}
	s.Record(context.Background(), usage.Usage{Tenant: "eee", Tier: "made-up", Status: 200})
	out, err := json.Marshal(usage.Gather(t, s))
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, want := range []string{`basic/aaa/2xx=10`, `basic/bbb/2xx=9`, `basic/other/2xx=15`, `unknown/other/2xx=1`} {
		if !strings.Contains(got, want) {
			t.Errorf("metrics %s lack %s", got, want)
		}
	}
	if strings.Contains(got, "ccc") || strings.Contains(got, "made-up") {
		t.Errorf("metrics %s name a tenant outside the top or an unknown tier", got)
	}
}

// TestTiersReloaded: a new tiers set applies to the next request.
func TestTiersReloaded(t *testing.T) {
	db := open(t, storagetest.DSN(t, storage.SQLite))
	s := newService(t, db, clock.NewFake(start), nil)
	ctx := context.Background()
	if d, _ := s.Admit(ctx, "acme", "basic"); d.Policy != `"rate";q=4;w=2` {
		t.Fatalf("before: %+v", d)
	}
	ts := tiers()
	ts["basic"] = tenants.Tier{Name: "basic", Isolation: tenants.Pool, GatewayRPS: 10, GatewayBurst: 30}
	s.SetTiers(ts)
	if d, _ := s.Admit(ctx, "acme", "basic"); d.Policy != `"rate";q=30;w=3` || d.Limit != `"rate";r=29;t=1` {
		t.Fatalf("after: %+v", d)
	}
}

// TestQuotaWithoutDatabase: a node that cannot flush its quota counts
// admits at most one batch more, then fails rather than overshoot.
func TestQuotaWithoutDatabase(t *testing.T) {
	dsn := storagetest.DSN(t, storage.SQLite)
	db := open(t, dsn)
	fc := clock.NewFake(start)
	s := newService(t, db, fc, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	runtest.Eventually(t, "the plan cache to be on", func() bool { return usage.PlansCached(s) })
	if d, err := s.Admit(ctx, "acme", "metered"); err != nil || !d.Allowed {
		t.Fatalf("first request: %+v, %v", d, err)
	}
	db.Close()
	admitted := 1
	var err error
	for range 20 {
		var d usage.Decision
		if d, err = s.Admit(ctx, "acme", "metered"); err != nil {
			break
		}
		if d.Allowed {
			admitted++
		}
	}
	if err == nil || admitted != 5 {
		t.Fatalf("without a database: admitted %d (want one batch, 5), then %v", admitted, err)
	}
}
