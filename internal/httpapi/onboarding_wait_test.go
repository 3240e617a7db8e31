package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// createAnswer is an answer of POST /v1/tenants.
type createAnswer struct {
	status               int
	location, retryAfter string
	tenant               struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	took time.Duration
}

// postTenant creates tenant id with an Idempotency-Key; it reports
// failures as errors, so that goroutines may call it.
func postTenant(base, id, key string) (createAnswer, error) {
	var a createAnswer
	req, err := http.NewRequest("POST", base+"/v1/tenants", bytes.NewReader([]byte(`{"id":"`+id+`"}`)))
	if err != nil {
		return a, err
	}
	req.Header.Set("Authorization", "Bearer "+apitest.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	a.took = time.Since(start)
	a.status, a.location, a.retryAfter = resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Retry-After")
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &a.tenant); err != nil {
		return a, errors.New("create answer: " + string(b))
	}
	return a, nil
}

// TestCreateAnswersOnceOnboarded: POST /v1/tenants answers the tenant
// active, waiting for its onboarding; a retry with the same
// Idempotency-Key while onboarding runs waits for it too, instead of
// answering 201 with the tenant provisioning (as the retry of a create cut
// off by a crash did). When onboarding does not finish within the wait,
// the answer is 202 with the tenant provisioning, its Location and
// Retry-After, and a later retry answers 201 once it is active.
func TestCreateAnswersOnceOnboarded(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		gate := make(chan struct{})
		var failing atomic.Bool
		failing.Store(true)
		step := tenants.Step{Name: "test-gate", Run: func(ctx context.Context, _ *storage.Tx, tn tenants.Tenant) error {
			switch tn.ID {
			case "slow-co":
				select {
				case <-gate:
				case <-ctx.Done():
					return ctx.Err()
				}
			case "failing-co":
				if failing.Load() {
					return errors.New("not yet")
				}
			}
			return nil
		}}
		env := apitest.New(t, dsn, apitest.Options{OnboardingSteps: []tenants.Step{step}, OnboardingWait: time.Second})

		// A retry while the first create's onboarding runs waits for it.
		first := make(chan createAnswer, 1)
		go func() {
			a, err := postTenant(env.URL, "slow-co", "k-slow")
			if err != nil {
				t.Error(err)
			}
			first <- a
		}()
		// The create commits, and its onboarding waits at the gate.
		runtest.Eventually(t, "the create's commit", func() bool {
			r := send(t, env.URL, call{method: "GET", path: "/v1/tenants/slow-co", token: apitest.AdminToken})
			return r.Status == http.StatusOK
		})
		retried := make(chan createAnswer, 1)
		go func() {
			a, err := postTenant(env.URL, "slow-co", "k-slow")
			if err != nil {
				t.Error(err)
			}
			retried <- a
		}()
		time.Sleep(300 * time.Millisecond)
		close(gate)
		for what, c := range map[string]chan createAnswer{"the create": first, "its retry during onboarding": retried} {
			a := <-c
			if a.status != http.StatusCreated || a.tenant.Status != "active" || a.location != "/v1/tenants/slow-co" {
				t.Errorf("%s: %d %+v; want 201 with the tenant active", what, a.status, a)
			}
		}

		// Onboarding that outlasts the wait: 202, provisioning, and where to poll.
		a, err := postTenant(env.URL, "failing-co", "k-fail")
		if err != nil {
			t.Fatal(err)
		}
		if a.status != http.StatusAccepted || a.tenant.Status != "provisioning" || a.location != "/v1/tenants/failing-co" || a.retryAfter == "" ||
			a.took < time.Second {
			t.Fatalf("create with a failing step: %+v; want 202 provisioning with Location and Retry-After, after the wait", a)
		}
		if a, err = postTenant(env.URL, "failing-co", "k-fail"); err != nil || a.status != http.StatusAccepted || a.tenant.Status != "provisioning" {
			t.Fatalf("retry while onboarding still fails: %+v %v; want 202 provisioning", a, err)
		}
		failing.Store(false)
		waitStatus(t, env, "failing-co", "active") // polling GET, as the 202 says
		if a, err = postTenant(env.URL, "failing-co", "k-fail"); err != nil || a.status != http.StatusCreated || a.tenant.Status != "active" {
			t.Fatalf("retry once onboarded: %+v %v; want 201 active", a, err)
		}
	})
}
