package tenants_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

type env struct {
	db  *storage.DB
	log *audit.Log
	reg *tenants.Registry
}

func newEnv(t *testing.T, dsn string, steps ...tenants.Step) *env {
	t.Helper()
	db := storagetest.Open(t, dsn, audit.Migrations(), tenants.Migrations())
	l := audit.New(db, audit.Options{})
	t.Cleanup(func() { l.Close() })
	reg := tenants.NewRegistry(db, l, tenants.Options{})
	for _, s := range steps {
		reg.AddOnboardingStep(s)
	}
	runtest.Go(t, func(ctx context.Context) error { return reg.Run(ctx, 50*time.Millisecond) })
	return &env{db: db, log: l, reg: reg}
}

var op = tenant.Actor{Principal: "operator:test", RequestID: "req-1", SourceIP: "127.0.0.1"}

func TestParseID(t *testing.T) {
	for _, ok := range []string{"abc", "a-b", "acme-corp-01", strings.Repeat("a", 63), "0ab"} {
		if _, err := tenants.ParseID(ok); err != nil {
			t.Errorf("ParseID(%q) = %v; want ok", ok, err)
		}
	}
	for _, bad := range []string{"", "ab", "-ab", "ab-", "Abc", "a_b", "a.b", strings.Repeat("a", 64), "ab\n", "abc/def", "äbc"} {
		_, err := tenants.ParseID(bad)
		if !errs.Is(err, "invalid_tenant_id") {
			t.Errorf("ParseID(%q) = %v; want invalid_tenant_id", bad, err)
		}
	}
}

func TestLoadTiers(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "tiers.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ts, err := tenants.LoadTiers(write(`{"tiers":[{"name":"basic","isolation":"pool","rate_limit_rps":5},{"name":"gold","isolation":"silo"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if ts["gold"].Isolation != tenants.Silo || ts["basic"].RateLimitRPS != 5 || len(ts) != 2 {
		t.Fatalf("tiers = %+v", ts)
	}
	ts, err = tenants.LoadTiers(write(`{"tiers":[{"name":"basic","isolation":"pool","gateway_rps":10,"gateway_burst":20,` +
		`"gateway_quota":1000,"gateway_quota_period":"month"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if b := ts["basic"]; b.GatewayRPS != 10 || b.GatewayBurst != 20 || b.GatewayQuota != 1000 || b.GatewayQuotaPeriod != "month" {
		t.Fatalf("gateway plan = %+v", b)
	}
	for _, bad := range []string{
		`{"tiers":[{"name":"basic","isolation":"pool","gateway_rps":-1,"gateway_burst":1}]}`,           // negative rate
		`{"tiers":[{"name":"basic","isolation":"pool","gateway_rps":5}]}`,                              // rate without burst
		`{"tiers":[{"name":"basic","isolation":"pool","gateway_quota":5}]}`,                            // quota without period
		`{"tiers":[{"name":"basic","isolation":"pool","gateway_quota":5,"gateway_quota_period":"y"}]}`, // bad period
		`{"tiers":[{"name":"basic","isolation":"pool","gateway_quota_period":"day"}]}`,                 // period without quota
		`{"tiers":[{"name":"gold","isolation":"silo"}]}`,                                               // no basic
		`{"tiers":[{"name":"basic","isolation":"moon"}]}`,                                              // bad isolation
		`{"tiers":[{"name":"basic","isolation":"pool"},{"name":"basic","isolation":"pool"}]}`,          // duplicate
		`{"tiers":[{"name":"basic","isolation":"pool","extra":1}]}`,                                    // unknown field
		`not json`,
	} {
		if _, err := tenants.LoadTiers(write(bad)); err == nil {
			t.Errorf("LoadTiers(%s) accepted it", bad)
		}
	}
}

func TestCreateRunsStepsOnceAndActivates(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		var runs sync.Map
		step := func(name string) tenants.Step {
			return tenants.Step{Name: name, Run: func(ctx context.Context, tx *storage.Tx, tn tenants.Tenant) error {
				if tn.Status != tenants.Provisioning || string(tn.ID) != tx.TenantID() {
					return errors.New("step saw the wrong tenant")
				}
				n, _ := runs.LoadOrStore(name+"/"+tx.TenantID(), new(atomic.Int32))
				n.(*atomic.Int32).Add(1)
				return nil
			}}
		}
		e := newEnv(t, dsn, step("keys"), step("policy-store"))
		ctx := context.Background()
		tn, created, err := e.reg.Create(ctx, tenants.CreateRequest{ID: "acme", Name: "Acme", Tier: "premium",
			Domains: []string{"Acme.Example."}, Config: json.RawMessage(`{"plan":"x"}`)}, "", op)
		if err != nil {
			t.Fatal(err)
		}
		if !created || tn.Status != tenants.Active || tn.Isolation != tenants.Silo || tn.Domains[0] != "acme.example" {
			t.Fatalf("created %v tenant %+v", created, tn)
		}
		for _, s := range []string{"keys", "policy-store"} {
			n, ok := runs.Load(s + "/acme")
			if !ok || n.(*atomic.Int32).Load() != 1 {
				t.Errorf("step %s ran %v times; want 1", s, n)
			}
		}
		wfs, err := e.reg.Workflows(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if len(wfs) != 1 || wfs[0].Status != tenants.WorkflowDone || len(wfs[0].Steps) != 3 || wfs[0].Attempts != 1 {
			t.Fatalf("workflows = %+v; want one done onboarding of 3 steps in 1 attempt", wfs)
		}
	})
}

func TestFailedStepIsRetried(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		var calls atomic.Int32
		flaky := tenants.Step{Name: "flaky", Run: func(ctx context.Context, tx *storage.Tx, _ tenants.Tenant) error {
			if calls.Add(1) < 3 {
				return errors.New("upstream unavailable")
			}
			return nil
		}}
		e := newEnv(t, dsn, flaky)
		ctx := context.Background()
		tn, _, err := e.reg.Create(ctx, tenants.CreateRequest{ID: "flaky-co"}, "", op)
		if err != nil {
			t.Fatal(err)
		}
		if tn.Status != tenants.Provisioning {
			t.Fatalf("status after a failing step = %s; want provisioning", tn.Status)
		}
		wfs, _ := e.reg.Workflows(ctx, "flaky-co")
		if len(wfs) != 1 || !strings.Contains(wfs[0].LastError, "upstream unavailable") {
			t.Fatalf("workflow = %+v; want last_error recorded", wfs)
		}
		waitStatus(t, e.reg, "flaky-co", tenants.Active)
		if calls.Load() != 3 {
			t.Errorf("flaky ran %d times; want 3 (two failures, one success)", calls.Load())
		}
	})
}

func waitStatus(t *testing.T, reg *tenants.Registry, id tenant.ID, want tenants.Status) tenants.Tenant {
	t.Helper()
	var tn tenants.Tenant
	runtest.Eventually(t, fmt.Sprintf("tenant %s %s", id, want), func() bool {
		var err error
		tn, err = reg.Get(context.Background(), id)
		return err == nil && tn.Status == want
	})
	return tn
}

func TestLifecycle(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		if _, _, err := e.reg.Create(ctx, tenants.CreateRequest{ID: "acme", Domains: []string{"acme.example"}}, "", op); err != nil {
			t.Fatal(err)
		}
		// Duplicate id, duplicate domain.
		if _, _, err := e.reg.Create(ctx, tenants.CreateRequest{ID: "acme"}, "", op); !errs.Is(err, "tenant_exists") {
			t.Errorf("duplicate id: %v", err)
		}
		if _, _, err := e.reg.Create(ctx, tenants.CreateRequest{ID: "other", Domains: []string{"ACME.example"}}, "", op); !errs.Is(err, "domain_taken") {
			t.Errorf("duplicate domain: %v", err)
		}
		if _, err := e.reg.Get(ctx, "other"); !errs.Is(err, "tenant_not_found") {
			t.Errorf("a refused create left tenant 'other' behind: %v", err)
		}
		// Suspend / resume rules.
		if tn, err := e.reg.Suspend(ctx, "acme", op); err != nil || tn.Status != tenants.Suspended {
			t.Fatalf("suspend: %v %v", tn.Status, err)
		}
		if tn, err := e.reg.Suspend(ctx, "acme", op); err != nil || tn.Status != tenants.Suspended {
			t.Fatalf("suspend twice: %v %v", tn.Status, err)
		}
		if tn, err := e.reg.Resume(ctx, "acme", op); err != nil || tn.Status != tenants.Active {
			t.Fatalf("resume: %v %v", tn.Status, err)
		}
		// Updates.
		name, tier := "Acme Inc", "premium"
		if _, err := e.reg.Update(ctx, "acme", tenants.Patch{Tier: &tier}, op); !errs.Is(err, "tier_migration_unsupported") {
			t.Errorf("pool→silo tier change: %v", err)
		}
		ds := []string{"acme.io", "www.acme.io"}
		tn, err := e.reg.Update(ctx, "acme", tenants.Patch{Name: &name, Domains: &ds, Config: json.RawMessage(`{"k":1}`)}, op)
		if err != nil || tn.Name != name || len(tn.Domains) != 2 || string(tn.Config) != `{"k":1}` {
			t.Fatalf("update: %+v %v", tn, err)
		}
		// The released domain can be claimed by another tenant.
		if _, _, err := e.reg.Create(ctx, tenants.CreateRequest{ID: "other", Domains: []string{"acme.example"}}, "", op); err != nil {
			t.Fatalf("claim a released domain: %v", err)
		}
		// Delete → offboarding → deleted; the id stays reserved; nothing can change it.
		tn, err = e.reg.Delete(ctx, "acme", op)
		if err != nil || tn.Status != tenants.Offboarding {
			t.Fatalf("delete: %v %v", tn.Status, err)
		}
		tn = waitStatus(t, e.reg, "acme", tenants.Deleted)
		if len(tn.Domains) != 0 {
			t.Errorf("deleted tenant keeps domains %v", tn.Domains)
		}
		if _, _, err := e.reg.Create(ctx, tenants.CreateRequest{ID: "acme"}, "", op); !errs.Is(err, "tenant_exists") {
			t.Errorf("re-create of a deleted id: %v", err)
		}
		if _, err := e.reg.Resume(ctx, "acme", op); !errs.Is(err, "invalid_tenant_state") {
			t.Errorf("resume deleted: %v", err)
		}
		if _, err := e.reg.Update(ctx, "acme", tenants.Patch{Name: &name}, op); !errs.Is(err, "tenant_offboarded") {
			t.Errorf("update deleted: %v", err)
		}
		// Every change is in acme's audit chain, and the chain verifies.
		p, err := e.log.ListAllTenants(ctx, audit.Filter{Tenant: "acme", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for i := len(p.Items) - 1; i >= 0; i-- {
			actions = append(actions, p.Items[i].Action)
		}
		want := "tenant.onboarding.started tenant.activated tenant.suspended tenant.resumed tenant.updated tenant.offboarding.started tenant.deleted"
		if got := strings.Join(actions, " "); got != want {
			t.Errorf("acme's audit actions:\n got %s\nwant %s", got, want)
		}
		if rep, _ := e.log.VerifyAllTenants(ctx); !rep.OK {
			t.Errorf("verify: %+v", rep)
		}
	})
}

func TestOffboardingRunsTeardownsInReverse(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn, audit.Migrations(), tenants.Migrations())
		l := audit.New(db, audit.Options{})
		defer l.Close()
		reg := tenants.NewRegistry(db, l, tenants.Options{})
		var mu sync.Mutex
		var order []string
		for _, n := range []string{"first", "second"} {
			reg.AddOffboardingStep(tenants.Step{Name: n, Run: func(ctx context.Context, tx *storage.Tx, tn tenants.Tenant) error {
				if tn.Status != tenants.Offboarding {
					return errors.New("teardown ran on a tenant that is not offboarding")
				}
				mu.Lock()
				order = append(order, n)
				mu.Unlock()
				return nil
			}})
		}
		defer runtest.Go(t, func(ctx context.Context) error { return reg.Run(ctx, time.Second) })()
		if _, _, err := reg.Create(context.Background(), tenants.CreateRequest{ID: "gone"}, "", op); err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Delete(context.Background(), "gone", op); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, reg, "gone", tenants.Deleted)
		mu.Lock()
		defer mu.Unlock()
		if strings.Join(order, ",") != "second,first" {
			t.Errorf("teardown order %v; want second,first", order)
		}
	})
}

func TestIdempotentCreate(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		req := tenants.CreateRequest{ID: "idem", Name: "Idem"}
		var wg sync.WaitGroup
		results := make([]tenants.Tenant, 5)
		errsOut := make([]error, 5)
		for i := range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], _, errsOut[i] = e.reg.Create(ctx, req, "key-1", op)
			}()
		}
		wg.Wait()
		for i := range 5 {
			if errsOut[i] != nil || results[i].ID != "idem" {
				t.Errorf("concurrent create %d with one key: %+v %v; want the same tenant", i, results[i], errsOut[i])
			}
		}
		tn, created, err := e.reg.Create(ctx, req, "key-1", op)
		if err != nil || created || tn.ID != "idem" {
			t.Fatalf("retry: created=%v %+v %v; want the same tenant, not created", created, tn, err)
		}
		req.Name = "Different"
		if _, _, err := e.reg.Create(ctx, req, "key-1", op); !errs.Is(err, "idempotency_key_reused") {
			t.Fatalf("same key, other request: %v", err)
		}
		wfs, _ := e.reg.Workflows(ctx, "idem")
		if len(wfs) != 1 {
			t.Errorf("%d onboarding workflows; want 1", len(wfs))
		}
	})
}

func TestCreateValidation(t *testing.T) {
	e := newEnv(t, storagetest.DSN(t, storage.SQLite))
	big := `{"x":"` + strings.Repeat("a", tenants.MaxConfigSize) + `"}`
	for _, tc := range []struct {
		req         tenants.CreateRequest
		code, field string
	}{
		{tenants.CreateRequest{ID: "A"}, "invalid_tenant_id", "id"},
		{tenants.CreateRequest{ID: "abc", Tier: "gold"}, "unknown_tier", "tier"},
		{tenants.CreateRequest{ID: "abc", Name: strings.Repeat("n", 201)}, "invalid_name", "name"},
		{tenants.CreateRequest{ID: "abc", Domains: []string{"ok.example", "bad domain"}}, "invalid_domain", "domains[1]"},
		{tenants.CreateRequest{ID: "abc", Config: json.RawMessage(`[1]`)}, "invalid_config", "config"},
		{tenants.CreateRequest{ID: "abc", Config: json.RawMessage(big)}, "config_too_large", "config"},
	} {
		_, _, err := e.reg.Create(context.Background(), tc.req, "", op)
		e2, ok := errs.As(err)
		if !ok || e2.Code != tc.code || e2.Field != tc.field {
			t.Errorf("Create(%+v) = %v; want code %s field %s", tc.req.ID, err, tc.code, tc.field)
		}
	}
	p, _ := e.reg.ListAllTenants(context.Background(), tenants.ListOptions{})
	if len(p.Items) != 0 {
		t.Errorf("refused creates left %d tenants", len(p.Items))
	}
}

func TestDeleteCancelsStuckOnboarding(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		stuck := tenants.Step{Name: "stuck", Run: func(context.Context, *storage.Tx, tenants.Tenant) error { return errors.New("never works") }}
		e := newEnv(t, dsn, stuck)
		ctx := context.Background()
		if _, _, err := e.reg.Create(ctx, tenants.CreateRequest{ID: "stuck-co"}, "", op); err != nil {
			t.Fatal(err)
		}
		if _, err := e.reg.Delete(ctx, "stuck-co", op); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, e.reg, "stuck-co", tenants.Deleted)
		wfs, _ := e.reg.Workflows(ctx, "stuck-co")
		kinds := map[tenants.Kind]tenants.WorkflowStatus{}
		for _, w := range wfs {
			kinds[w.Kind] = w.Status
		}
		if kinds[tenants.KindOnboarding] != tenants.WorkflowCancelled || kinds[tenants.KindOffboarding] != tenants.WorkflowDone {
			t.Fatalf("workflows = %v; want onboarding cancelled, offboarding done", kinds)
		}
	})
}

// TestOneNodeRunsAWorkflow starts two registries (two nodes) on one
// PostgreSQL database: while node 1 runs a step, node 2's resume loop finds
// the workflow running and must not run the step too.
func TestOneNodeRunsAWorkflow(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	var calls atomic.Int32
	release := make(chan struct{})
	slow := tenants.Step{Name: "slow", Run: func(ctx context.Context, tx *storage.Tx, _ tenants.Tenant) error {
		calls.Add(1)
		<-release
		return nil
	}}
	node := func() *tenants.Registry {
		db := storagetest.Open(t, dsn, audit.Migrations(), tenants.Migrations())
		l := audit.New(db, audit.Options{})
		t.Cleanup(func() { l.Close() })
		reg := tenants.NewRegistry(db, l, tenants.Options{})
		reg.AddOnboardingStep(slow)
		return reg
	}
	n1, n2 := node(), node()
	stop1 := runtest.Go(t, func(ctx context.Context) error { return n1.Run(ctx, time.Hour) })
	created := make(chan error, 1)
	go func() {
		_, _, err := n1.Create(context.Background(), tenants.CreateRequest{ID: "shared"}, "", op)
		created <- err
	}()
	runtest.Eventually(t, "n1 in the slow step", func() bool { return calls.Load() > 0 })
	// n2 resumes every running workflow at once, then every 20ms.
	stop2 := runtest.Go(t, func(ctx context.Context) error { return n2.Run(ctx, 20*time.Millisecond) })
	// Each try of n2 claims the workflow (an attempt) and finds it busy:
	// wait for two, at start and from the retry loop, while n1 is in the step.
	runtest.Eventually(t, "node 2's tries", func() bool {
		wfs, err := n2.Workflows(context.Background(), "shared")
		return err == nil && len(wfs) == 1 && wfs[0].Attempts >= 3
	})
	close(release)
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	waitStatus(t, n1, "shared", tenants.Active)
	if c := calls.Load(); c != 1 {
		t.Errorf("the step ran %d times across two nodes; want 1", c)
	}
	stop1()
	stop2()
}

// TestManyConcurrentCreates runs more concurrent onboardings than the
// PostgreSQL pool has connections: none may wait on another for a connection.
func TestManyConcurrentCreates(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, tenants.Step{Name: "noop", Run: func(context.Context, *storage.Tx, tenants.Tenant) error { return nil }})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		errc := make(chan error, 80)
		for i := range 80 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tn, _, err := e.reg.Create(ctx, tenants.CreateRequest{ID: fmt.Sprintf("conc-%03d", i)}, "", op)
				if err == nil && tn.Status != tenants.Active {
					err = fmt.Errorf("%s is %s", tn.ID, tn.Status)
				}
				errc <- err
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				t.Fatal(err)
			}
		}
		if rep, _ := e.log.VerifyAllTenants(ctx); !rep.OK || rep.Chains != 80 {
			t.Fatalf("verify: %+v", rep)
		}
	})
}

func TestRetryDelayBacksOff(t *testing.T) {
	for _, tc := range []struct {
		attempts int
		want     time.Duration
	}{{0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {4, 8 * time.Second}, {30, 15 * time.Minute}} {
		if got := tenants.RetryDelay(time.Second, tc.attempts); got != tc.want {
			t.Errorf("retryDelay(1s, %d) = %v; want %v", tc.attempts, got, tc.want)
		}
	}
	if got := tenants.RetryDelay(0, 9); got != 0 {
		t.Errorf("at start every workflow is due; retryDelay(0, 9) = %v", got)
	}
}

// TestRetryFollowsTheClock: a failed step is retried when the registry's
// clock has moved one retry interval past the failure, not before.
func TestRetryFollowsTheClock(t *testing.T) {
	db := storagetest.Open(t, storagetest.DSN(t, storage.SQLite), audit.Migrations(), tenants.Migrations())
	l := audit.New(db, audit.Options{})
	t.Cleanup(func() { l.Close() })
	fc := clock.NewFake(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	reg := tenants.NewRegistry(db, l, tenants.Options{Clock: fc})
	var calls atomic.Int32
	reg.AddOnboardingStep(tenants.Step{Name: "flaky", Run: func(ctx context.Context, tx *storage.Tx, _ tenants.Tenant) error {
		if calls.Add(1) == 1 {
			return errors.New("upstream unavailable")
		}
		return nil
	}})
	runtest.Go(t, func(ctx context.Context) error { return reg.Run(ctx, time.Minute) })
	// Run sets its ticker once it has resumed what was interrupted.
	runtest.Eventually(t, "the retry ticker", func() bool { return fc.Pending() == 1 })
	if tn, _, err := reg.Create(context.Background(), tenants.CreateRequest{ID: "clock-co"}, "", op); err != nil || tn.Status != tenants.Provisioning {
		t.Fatalf("create with a failing step: %+v %v", tn, err)
	}
	fc.Advance(59 * time.Second)
	if n := calls.Load(); n != 1 {
		t.Fatalf("the step ran %d times before a retry interval passed", n)
	}
	fc.Advance(time.Second)
	waitStatus(t, reg, "clock-co", tenants.Active)
	if n := calls.Load(); n != 2 {
		t.Errorf("the step ran %d times; want 2", n)
	}
}

// TestListSearch filters the operator's list by tier and by a text that
// starts an id or is in a name; % and _ in the text are plain characters.
func TestListSearch(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		for _, c := range []tenants.CreateRequest{{ID: "acme", Name: "Acme Rockets", Tier: "premium"}, {ID: "acme-labs", Name: "Labs", Tier: "basic"},
			{ID: "globex", Name: "Globex 100% Corp", Tier: "basic"}, {ID: "initech", Name: "Init_Tech", Tier: "premium"}} {
			if _, _, err := e.reg.Create(ctx, c, "", op); err != nil {
				t.Fatal(err)
			}
		}
		ids := func(o tenants.ListOptions) string {
			t.Helper()
			p, err := e.reg.ListAllTenants(ctx, o)
			if err != nil {
				t.Fatalf("%+v: %v", o, err)
			}
			var out []string
			for _, tn := range p.Items {
				out = append(out, string(tn.ID))
			}
			return strings.Join(out, ",")
		}
		for _, tc := range []struct {
			o    tenants.ListOptions
			want string
		}{
			{tenants.ListOptions{Query: "acme"}, "acme,acme-labs"},
			{tenants.ListOptions{Query: "ROCK"}, "acme"},
			{tenants.ListOptions{Query: "100%"}, "globex"},
			{tenants.ListOptions{Query: "%"}, "globex"},
			{tenants.ListOptions{Query: "t_t"}, "initech"},
			{tenants.ListOptions{Query: "_"}, "initech"},
			{tenants.ListOptions{Query: "me-la"}, ""}, // an id matches from its start only
			{tenants.ListOptions{Tier: "basic"}, "acme-labs,globex"},
			{tenants.ListOptions{Tier: "premium", Query: "a"}, "acme"},
		} {
			if got := ids(tc.o); got != tc.want {
				t.Errorf("%+v: %q, want %q", tc.o, got, tc.want)
			}
		}
		// Pages of a search follow each other.
		first, err := e.reg.ListAllTenants(ctx, tenants.ListOptions{Query: "acme", Limit: 1})
		if err != nil || len(first.Items) != 1 || first.NextCursor == "" {
			t.Fatalf("first page: %+v %v", first, err)
		}
		if got := ids(tenants.ListOptions{Query: "acme", Limit: 1, Cursor: first.NextCursor}); got != "acme-labs" {
			t.Errorf("second page: %q", got)
		}
		for _, o := range []tenants.ListOptions{{Tier: "gold"}, {Query: strings.Repeat("a", 101)}, {Query: "a\x00"}, {Query: "\xff"}} {
			if _, err := e.reg.ListAllTenants(ctx, o); err == nil {
				t.Errorf("%+v: no error", o)
			}
		}
	})
}
