package tenant_test

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
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

type env struct {
	db  *storage.DB
	log *audit.Log
	reg *tenant.Registry
}

func newEnv(t *testing.T, dsn string, steps ...tenant.Step) *env {
	t.Helper()
	db := storagetest.Open(t, dsn, audit.Migrations(), tenant.Migrations())
	l := audit.New(db, audit.Options{})
	reg := tenant.NewRegistry(db, l, tenant.Options{})
	for _, s := range steps {
		reg.AddOnboardingStep(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := reg.Start(ctx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		reg.Shutdown(context.Background())
		cancel()
		l.Close()
	})
	return &env{db: db, log: l, reg: reg}
}

var op = tenant.Actor{Principal: "operator:test", RequestID: "req-1", SourceIP: "127.0.0.1"}

func TestParseID(t *testing.T) {
	for _, ok := range []string{"abc", "a-b", "acme-corp-01", strings.Repeat("a", 63), "0ab"} {
		if _, err := tenant.ParseID(ok); err != nil {
			t.Errorf("ParseID(%q) = %v; want ok", ok, err)
		}
	}
	for _, bad := range []string{"", "ab", "-ab", "ab-", "Abc", "a_b", "a.b", strings.Repeat("a", 64), "ab\n", "abc/def", "äbc"} {
		_, err := tenant.ParseID(bad)
		if !errs.Is(err, "invalid_tenant_id") {
			t.Errorf("ParseID(%q) = %v; want invalid_tenant_id", bad, err)
		}
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"abc", "a-b", "", "-x-", "Ab9", strings.Repeat("z", 70), "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := tenant.ParseID(s)
		if err != nil {
			return
		}
		if string(id) != s || len(s) < 3 || len(s) > 63 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" ||
			s[0] == '-' || s[len(s)-1] == '-' {
			t.Fatalf("ParseID accepted %q", s)
		}
	})
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
	ts, err := tenant.LoadTiers(write(`{"tiers":[{"name":"basic","isolation":"pool","rate_limit_rps":5},{"name":"gold","isolation":"silo"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if ts["gold"].Isolation != tenant.Silo || ts["basic"].RateLimitRPS != 5 || len(ts) != 2 {
		t.Fatalf("tiers = %+v", ts)
	}
	for _, bad := range []string{
		`{"tiers":[{"name":"gold","isolation":"silo"}]}`,                                      // no basic
		`{"tiers":[{"name":"basic","isolation":"moon"}]}`,                                     // bad isolation
		`{"tiers":[{"name":"basic","isolation":"pool"},{"name":"basic","isolation":"pool"}]}`, // duplicate
		`{"tiers":[{"name":"basic","isolation":"pool","extra":1}]}`,                           // unknown field
		`not json`,
	} {
		if _, err := tenant.LoadTiers(write(bad)); err == nil {
			t.Errorf("LoadTiers(%s) accepted it", bad)
		}
	}
}

func TestCreateRunsStepsOnceAndActivates(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		var runs sync.Map
		step := func(name string) tenant.Step {
			return tenant.Step{Name: name, Run: func(ctx context.Context, tx *storage.Tx, tn tenant.Tenant) error {
				if tn.Status != tenant.Provisioning || string(tn.ID) != tx.TenantID() {
					return errors.New("step saw the wrong tenant")
				}
				n, _ := runs.LoadOrStore(name+"/"+tx.TenantID(), new(atomic.Int32))
				n.(*atomic.Int32).Add(1)
				return nil
			}}
		}
		e := newEnv(t, dsn, step("keys"), step("policy-store"))
		ctx := context.Background()
		tn, created, err := e.reg.Create(ctx, tenant.CreateRequest{ID: "acme", Name: "Acme", Tier: "premium",
			Domains: []string{"Acme.Example."}, Config: json.RawMessage(`{"plan":"x"}`)}, "", op)
		if err != nil {
			t.Fatal(err)
		}
		if !created || tn.Status != tenant.Active || tn.Isolation != tenant.Silo || tn.Domains[0] != "acme.example" {
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
		if len(wfs) != 1 || wfs[0].Status != tenant.WorkflowDone || len(wfs[0].Steps) != 3 || wfs[0].Attempts != 1 {
			t.Fatalf("workflows = %+v; want one done onboarding of 3 steps in 1 attempt", wfs)
		}
	})
}

func TestFailedStepIsRetried(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		var calls atomic.Int32
		flaky := tenant.Step{Name: "flaky", Run: func(ctx context.Context, tx *storage.Tx, _ tenant.Tenant) error {
			if calls.Add(1) < 3 {
				return errors.New("upstream unavailable")
			}
			return nil
		}}
		e := newEnv(t, dsn, flaky)
		ctx := context.Background()
		tn, _, err := e.reg.Create(ctx, tenant.CreateRequest{ID: "flaky-co"}, "", op)
		if err != nil {
			t.Fatal(err)
		}
		if tn.Status != tenant.Provisioning {
			t.Fatalf("status after a failing step = %s; want provisioning", tn.Status)
		}
		wfs, _ := e.reg.Workflows(ctx, "flaky-co")
		if len(wfs) != 1 || !strings.Contains(wfs[0].LastError, "upstream unavailable") {
			t.Fatalf("workflow = %+v; want last_error recorded", wfs)
		}
		waitStatus(t, e.reg, "flaky-co", tenant.Active)
		if calls.Load() != 3 {
			t.Errorf("flaky ran %d times; want 3 (two failures, one success)", calls.Load())
		}
	})
}

func waitStatus(t *testing.T, reg *tenant.Registry, id tenant.ID, want tenant.Status) tenant.Tenant {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tn, err := reg.Get(context.Background(), id)
		if err == nil && tn.Status == want {
			return tn
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant %s: status %s (err %v); want %s", id, tn.Status, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLifecycle(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn)
		ctx := context.Background()
		if _, _, err := e.reg.Create(ctx, tenant.CreateRequest{ID: "acme", Domains: []string{"acme.example"}}, "", op); err != nil {
			t.Fatal(err)
		}
		// Duplicate id, duplicate domain.
		if _, _, err := e.reg.Create(ctx, tenant.CreateRequest{ID: "acme"}, "", op); !errs.Is(err, "tenant_exists") {
			t.Errorf("duplicate id: %v", err)
		}
		if _, _, err := e.reg.Create(ctx, tenant.CreateRequest{ID: "other", Domains: []string{"ACME.example"}}, "", op); !errs.Is(err, "domain_taken") {
			t.Errorf("duplicate domain: %v", err)
		}
		if _, err := e.reg.Get(ctx, "other"); !errs.Is(err, "tenant_not_found") {
			t.Errorf("a refused create left tenant 'other' behind: %v", err)
		}
		// Suspend / resume rules.
		if tn, err := e.reg.Suspend(ctx, "acme", op); err != nil || tn.Status != tenant.Suspended {
			t.Fatalf("suspend: %v %v", tn.Status, err)
		}
		if tn, err := e.reg.Suspend(ctx, "acme", op); err != nil || tn.Status != tenant.Suspended {
			t.Fatalf("suspend twice: %v %v", tn.Status, err)
		}
		if tn, err := e.reg.Resume(ctx, "acme", op); err != nil || tn.Status != tenant.Active {
			t.Fatalf("resume: %v %v", tn.Status, err)
		}
		// Updates.
		name, tier := "Acme Inc", "premium"
		if _, err := e.reg.Update(ctx, "acme", tenant.Patch{Tier: &tier}, op); !errs.Is(err, "tier_migration_unsupported") {
			t.Errorf("pool→silo tier change: %v", err)
		}
		ds := []string{"acme.io", "www.acme.io"}
		tn, err := e.reg.Update(ctx, "acme", tenant.Patch{Name: &name, Domains: &ds, Config: json.RawMessage(`{"k":1}`)}, op)
		if err != nil || tn.Name != name || len(tn.Domains) != 2 || string(tn.Config) != `{"k":1}` {
			t.Fatalf("update: %+v %v", tn, err)
		}
		// The released domain can be claimed by another tenant.
		if _, _, err := e.reg.Create(ctx, tenant.CreateRequest{ID: "other", Domains: []string{"acme.example"}}, "", op); err != nil {
			t.Fatalf("claim a released domain: %v", err)
		}
		// Delete → offboarding → deleted; the id stays reserved; nothing can change it.
		tn, err = e.reg.Delete(ctx, "acme", op)
		if err != nil || tn.Status != tenant.Offboarding {
			t.Fatalf("delete: %v %v", tn.Status, err)
		}
		tn = waitStatus(t, e.reg, "acme", tenant.Deleted)
		if len(tn.Domains) != 0 {
			t.Errorf("deleted tenant keeps domains %v", tn.Domains)
		}
		if _, _, err := e.reg.Create(ctx, tenant.CreateRequest{ID: "acme"}, "", op); !errs.Is(err, "tenant_exists") {
			t.Errorf("re-create of a deleted id: %v", err)
		}
		if _, err := e.reg.Resume(ctx, "acme", op); !errs.Is(err, "invalid_tenant_state") {
			t.Errorf("resume deleted: %v", err)
		}
		if _, err := e.reg.Update(ctx, "acme", tenant.Patch{Name: &name}, op); !errs.Is(err, "tenant_offboarded") {
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
		db := storagetest.Open(t, dsn, audit.Migrations(), tenant.Migrations())
		l := audit.New(db, audit.Options{})
		defer l.Close()
		reg := tenant.NewRegistry(db, l, tenant.Options{})
		var mu sync.Mutex
		var order []string
		for _, n := range []string{"first", "second"} {
			reg.AddOffboardingStep(tenant.Step{Name: n, Run: func(ctx context.Context, tx *storage.Tx, tn tenant.Tenant) error {
				if tn.Status != tenant.Offboarding {
					return errors.New("teardown ran on a tenant that is not offboarding")
				}
				mu.Lock()
				order = append(order, n)
				mu.Unlock()
				return nil
			}})
		}
		if err := reg.Start(context.Background(), time.Second); err != nil {
			t.Fatal(err)
		}
		defer reg.Shutdown(context.Background())
		if _, _, err := reg.Create(context.Background(), tenant.CreateRequest{ID: "gone"}, "", op); err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Delete(context.Background(), "gone", op); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, reg, "gone", tenant.Deleted)
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
		req := tenant.CreateRequest{ID: "idem", Name: "Idem"}
		var wg sync.WaitGroup
		results := make([]tenant.Tenant, 5)
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
	big := `{"x":"` + strings.Repeat("a", tenant.MaxConfigSize) + `"}`
	for _, tc := range []struct {
		req         tenant.CreateRequest
		code, field string
	}{
		{tenant.CreateRequest{ID: "A"}, "invalid_tenant_id", "id"},
		{tenant.CreateRequest{ID: "abc", Tier: "gold"}, "unknown_tier", "tier"},
		{tenant.CreateRequest{ID: "abc", Name: strings.Repeat("n", 201)}, "invalid_name", "name"},
		{tenant.CreateRequest{ID: "abc", Domains: []string{"ok.example", "bad domain"}}, "invalid_domain", "domains[1]"},
		{tenant.CreateRequest{ID: "abc", Config: json.RawMessage(`[1]`)}, "invalid_config", "config"},
		{tenant.CreateRequest{ID: "abc", Config: json.RawMessage(big)}, "config_too_large", "config"},
	} {
		_, _, err := e.reg.Create(context.Background(), tc.req, "", op)
		e2, ok := errs.As(err)
		if !ok || e2.Code != tc.code || e2.Field != tc.field {
			t.Errorf("Create(%+v) = %v; want code %s field %s", tc.req.ID, err, tc.code, tc.field)
		}
	}
	p, _ := e.reg.ListAllTenants(context.Background(), tenant.ListOptions{})
	if len(p.Items) != 0 {
		t.Errorf("refused creates left %d tenants", len(p.Items))
	}
}

func TestDeleteCancelsStuckOnboarding(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		stuck := tenant.Step{Name: "stuck", Run: func(context.Context, *storage.Tx, tenant.Tenant) error { return errors.New("never works") }}
		e := newEnv(t, dsn, stuck)
		ctx := context.Background()
		if _, _, err := e.reg.Create(ctx, tenant.CreateRequest{ID: "stuck-co"}, "", op); err != nil {
			t.Fatal(err)
		}
		if _, err := e.reg.Delete(ctx, "stuck-co", op); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, e.reg, "stuck-co", tenant.Deleted)
		wfs, _ := e.reg.Workflows(ctx, "stuck-co")
		kinds := map[tenant.Kind]tenant.WorkflowStatus{}
		for _, w := range wfs {
			kinds[w.Kind] = w.Status
		}
		if kinds[tenant.KindOnboarding] != tenant.WorkflowCancelled || kinds[tenant.KindOffboarding] != tenant.WorkflowDone {
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
	slow := tenant.Step{Name: "slow", Run: func(ctx context.Context, tx *storage.Tx, _ tenant.Tenant) error {
		calls.Add(1)
		<-release
		return nil
	}}
	node := func() *tenant.Registry {
		db := storagetest.Open(t, dsn, audit.Migrations(), tenant.Migrations())
		l := audit.New(db, audit.Options{})
		t.Cleanup(func() { l.Close() })
		reg := tenant.NewRegistry(db, l, tenant.Options{})
		reg.AddOnboardingStep(slow)
		return reg
	}
	n1, n2 := node(), node()
	if err := n1.Start(context.Background(), time.Hour); err != nil {
		t.Fatal(err)
	}
	created := make(chan error, 1)
	go func() {
		_, _, err := n1.Create(context.Background(), tenant.CreateRequest{ID: "shared"}, "", op)
		created <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := n2.Start(context.Background(), 20*time.Millisecond); err != nil { // resumes every running workflow
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	close(release)
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	waitStatus(t, n1, "shared", tenant.Active)
	if c := calls.Load(); c != 1 {
		t.Errorf("the step ran %d times across two nodes; want 1", c)
	}
	n1.Shutdown(context.Background())
	n2.Shutdown(context.Background())
}

// TestManyConcurrentCreates runs more concurrent onboardings than the
// PostgreSQL pool has connections: none may wait on another for a connection.
func TestManyConcurrentCreates(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, tenant.Step{Name: "noop", Run: func(context.Context, *storage.Tx, tenant.Tenant) error { return nil }})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		errc := make(chan error, 80)
		for i := range 80 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tn, _, err := e.reg.Create(ctx, tenant.CreateRequest{ID: fmt.Sprintf("conc-%03d", i)}, "", op)
				if err == nil && tn.Status != tenant.Active {
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
		if got := tenant.RetryDelay(time.Second, tc.attempts); got != tc.want {
			t.Errorf("retryDelay(1s, %d) = %v; want %v", tc.attempts, got, tc.want)
		}
	}
	if got := tenant.RetryDelay(0, 9); got != 0 {
		t.Errorf("at start every workflow is due; retryDelay(0, 9) = %v", got)
	}
}
