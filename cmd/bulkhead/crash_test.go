package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

type workflow struct {
	Kind     string `json:"kind"`
	Status   string `json:"status"`
	Attempts int    `json:"attempts"`
	Steps    []struct {
		Name        string    `json:"name"`
		CompletedAt time.Time `json:"completed_at"`
	} `json:"steps"`
}

func workflows(t *testing.T, c *client.Client, id string) []workflow {
	t.Helper()
	var out struct {
		Items []workflow `json:"items"`
	}
	if err := c.Do(context.Background(), "GET", "/v1/tenants/"+id+"/workflows", nil, nil, &out); err != nil {
		return nil
	}
	return out.Items
}

func stepNames(w workflow) []string {
	var names []string
	for _, s := range w.Steps {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return names
}

// The tests below run the command built with -tags bulkheadtest, whose
// onboarding has the extra steps of testhook.go: BULKHEAD_TEST_ONBOARDING_DELAY
// makes a step wait, so that a kill lands inside it.

// TestOnboardingSurvivesKill9 starts bulkhead as a child process, kills it
// with SIGKILL while an onboarding step is in progress, restarts it, and
// shows that the tenant reaches active with every step's work done exactly
// once: the step that finished before the kill is not run again, the
// interrupted step's work was rolled back and then done once.
func TestOnboardingSurvivesKill9(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		dataDir := filepath.Join(t.TempDir(), "data")
		if filepath.IsAbs(dsn) {
			dsn = "" // SQLite: the default database in the data directory
		}
		p := startServeBinary(t, hookBinaryFor(t), dataDir, dsn, "BULKHEAD_TEST_ONBOARDING_DELAY=30s")
		c := p.client()
		go c.CreateTenant(context.Background(), client.CreateTenant{ID: "crash-co", Name: "Crash Co", AdminEmail: "root@crash.example"}, "") // cut off by the kill

		// Wait until test-mark is done and test-delay is running.
		var before []workflow
		runtest.Eventually(t, "the steps before test-delay to complete", func() bool {
			before = workflows(t, c, "crash-co")
			return len(before) == 1 && slices.Contains(stepNames(before[0]), "test-mark")
		})
		tn, err := c.GetTenant(context.Background(), "crash-co")
		if err != nil || tn.Status != "provisioning" {
			t.Fatalf("before the kill: %+v %v; want provisioning", tn, err)
		}
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.exited

		p2 := startServeBinary(t, hookBinaryFor(t), dataDir, dsn, "BULKHEAD_TEST_ONBOARDING_DELAY=50ms", "BULKHEAD_PUBLIC_URL="+p.url)
		c2 := p2.client()
		runtest.Eventually(t, "the tenant to become active after the restart", func() bool {
			tn, err = c2.GetTenant(context.Background(), "crash-co")
			return err == nil && tn.Status == "active"
		})
		var cfg map[string]float64
		if err := json.Unmarshal(tn.Config, &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg["test_mark_runs"] != 1 || cfg["test_delay_runs"] != 1 {
			t.Errorf("step work counts = %v; want test_mark_runs 1 and test_delay_runs 1", cfg)
		}
		after := workflows(t, c2, "crash-co")
		if len(after) != 1 {
			t.Fatalf("workflows = %+v; want one", after)
		}
		w := after[0]
		if w.Status != "done" || w.Attempts != 2 {
			t.Errorf("workflow status %s attempts %d; want done after 2 attempts", w.Status, w.Attempts)
		}
		if got := stepNames(w); !slices.Equal(got, []string{"activate", "authz", "data-placement", "identity", "kms", "test-delay", "test-mark"}) {
			t.Errorf("completed steps %v; want each of activate, test-delay, test-mark once", got)
		}
		firstRun := map[string]time.Time{}
		for _, s := range before[0].Steps {
			firstRun[s.Name] = s.CompletedAt
		}
		for _, s := range w.Steps {
			if at, ok := firstRun[s.Name]; ok && !s.CompletedAt.Equal(at) {
				t.Errorf("%s completed again after the restart (%v, was %v)", s.Name, s.CompletedAt, at)
			}
		}
		// The first admin, an input of the workflow, was made once.
		users, err := c2.ListUsers(context.Background(), "crash-co", 0, "", "")
		if err != nil || len(users.Items) != 1 || users.Items[0].Email != "root@crash.example" || !slices.Equal(users.Items[0].Groups, []string{"admins"}) {
			t.Errorf("users after the crash: %+v %v; want root@crash.example once, in admins", users.Items, err)
		}
		// The audit trail holds one start and one activation, and verifies.
		page, err := c2.ListAudit(context.Background(), client.AuditQuery{Tenant: "crash-co"})
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, e := range page.Items {
			count[e.Action]++
		}
		if count["tenant.onboarding.started"] != 1 || count["tenant.activated"] != 1 {
			t.Errorf("audit actions %v; want one onboarding.started and one activated", count)
		}
		if rep, err := c2.VerifyAudit(context.Background()); err != nil || !rep.OK {
			t.Errorf("verify after the crash: %+v %v", rep, err)
		}
	})
}

// TestGracefulShutdownCheckpoints sends SIGTERM during an onboarding step:
// the step finishes, the process exits 0, and the next start finishes the
// workflow.
func TestGracefulShutdownCheckpoints(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startServeBinary(t, hookBinaryFor(t), dataDir, "", "BULKHEAD_TEST_ONBOARDING_DELAY=1s")
	c := p.client()
	created := make(chan error, 1)
	go func() {
		_, err := c.CreateTenant(context.Background(), client.CreateTenant{ID: "term-co"}, "")
		created <- err
	}()
	runtest.Eventually(t, "the steps before test-delay to complete", func() bool {
		w := workflows(t, c, "term-co")
		return len(w) == 1 && slices.Contains(stepNames(w[0]), "test-mark")
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.output())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if err := <-created; err != nil {
		t.Errorf("the in-flight create did not finish: %v", err)
	}
	p2 := startServeBinary(t, hookBinaryFor(t), dataDir, "", "BULKHEAD_TEST_ONBOARDING_DELAY=1s", "BULKHEAD_PUBLIC_URL="+p.url)
	c2 := p2.client()
	runtest.Eventually(t, "active after restart", func() bool {
		tn, err := c2.GetTenant(context.Background(), "term-co")
		return err == nil && tn.Status == "active"
	})
	w := workflows(t, c2, "term-co")
	if got := stepNames(w[0]); !slices.Equal(got, []string{"activate", "authz", "data-placement", "identity", "kms", "test-delay", "test-mark"}) {
		t.Errorf("completed steps %v", got)
	}
}

// TestCreateReplayAfterKill9: a create whose onboarding is cut off by
// kill -9 is retried, with the same Idempotency-Key, against the restarted
// node, which resumes the onboarding: the retry answers 201 with the
// tenant active, as the README promises, once the resumed onboarding is
// done (it used to answer at once, 201 with the tenant provisioning).
func TestCreateReplayAfterKill9(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		dataDir := filepath.Join(t.TempDir(), "data")
		if filepath.IsAbs(dsn) {
			dsn = "" // SQLite: the default database in the data directory
		}
		const key = "replay-key-1"
		body := client.CreateTenant{ID: "replay-co", Name: "Replay Co"}
		p := startServeBinary(t, hookBinaryFor(t), dataDir, dsn, "BULKHEAD_TEST_ONBOARDING_DELAY=30s")
		go createAnswer(p.url, body, key) // cut off by the kill
		runtest.Eventually(t, "the steps before test-delay to complete", func() bool {
			w := workflows(t, p.client(), "replay-co")
			return len(w) == 1 && slices.Contains(stepNames(w[0]), "test-mark")
		})
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.exited

		p2 := startServeBinary(t, hookBinaryFor(t), dataDir, dsn, "BULKHEAD_TEST_ONBOARDING_DELAY=2s", "BULKHEAD_PUBLIC_URL="+p.url)
		status, tn, err := createAnswer(p2.url, body, key)
		if err != nil || status != http.StatusCreated || tn.Status != "active" || tn.ID != "replay-co" {
			t.Fatalf("the create's retry after kill -9: %d %+v %v; want 201 with the tenant active", status, tn, err)
		}
		var cfg map[string]float64
		if err := json.Unmarshal(tn.Config, &cfg); err != nil || cfg["test_delay_runs"] != 1 {
			t.Errorf("the answer is not the onboarded tenant: config %s", tn.Config)
		}
		if status, tn, err = createAnswer(p2.url, body, key); err != nil || status != http.StatusCreated || tn.Status != "active" {
			t.Errorf("a later retry: %d %+v %v; want 201 active", status, tn, err)
		}
		if w := workflows(t, p2.client(), "replay-co"); len(w) != 1 || w[0].Status != "done" {
			t.Errorf("workflows after the retries: %+v; want the one onboarding, done", w)
		}
	})
}

// createAnswer posts a create with an Idempotency-Key and returns the
// status and the tenant; it reports failures as errors, so that goroutines
// may call it.
func createAnswer(base string, in client.CreateTenant, key string) (int, client.Tenant, error) {
	var tn client.Tenant
	b, _ := json.Marshal(in)
	req, err := http.NewRequest("POST", base+"/v1/tenants", bytes.NewReader(b))
	if err != nil {
		return 0, tn, err
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, tn, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, tn, json.NewDecoder(resp.Body).Decode(&tn)
}

// TestShippedBinaryHasNoTestHooks: the command as built without tags does
// not know BULKHEAD_TEST_ONBOARDING_DELAY, so an environment cannot add
// steps to a production node's onboarding; the build with the tag does (the
// search would find it).
func TestShippedBinaryHasNoTestHooks(t *testing.T) {
	const name = "BULKHEAD_TEST_ONBOARDING_DELAY"
	for _, c := range []struct {
		bin  string
		want bool
	}{{binary, false}, {hookBinaryFor(t), true}} {
		b, err := os.ReadFile(c.bin)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Contains(b, []byte(name)); got != c.want {
			t.Errorf("%s holds %s: %v; want %v", filepath.Base(c.bin), name, got, c.want)
		}
	}
}
