package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/hooksig"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestWebhookCLI subscribes a receiver to tenant events, sees a tenant's
// creation delivered and signed with the secret create printed, reads the
// delivery log, and removes the webhook.
func TestWebhookCLI(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	var sigs []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies, sigs = append(bodies, string(b)), append(sigs, r.Header.Get(hooksig.Header))
		mu.Unlock()
	}))
	defer recv.Close()
	p := startServeArgs(t, []string{"--data-dir", filepath.Join(t.TempDir(), "data"), "--allow-private-upstreams"})
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, p.url, args...)
		if code != wantCode {
			t.Fatalf("bulkhead %s: exit %d; want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out + errOut
	}
	var w client.WebhookCreated
	if err := json.Unmarshal([]byte(cli(0, "webhook", "create", "--url", recv.URL, "--event", "tenant.*", "--output", "json")), &w); err != nil ||
		!strings.HasPrefix(w.Secret, "whsec_") || w.ID == "" {
		t.Fatalf("create: %+v %v", w, err)
	}
	if out := cli(2, "webhook", "create", "--url", recv.URL); !strings.Contains(out, "--event") {
		t.Errorf("create without --event:\n%s", out)
	}
	cli(0, "tenant", "create", "hooked")
	runtest.Eventually(t, "the tenant's events at the receiver", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(bodies) > 0
	})
	mu.Lock()
	body, sig := bodies[0], sigs[0]
	mu.Unlock()
	if err := hooksig.Verify([]byte(w.Secret), sig, []byte(body), time.Now(), time.Minute); err != nil || !strings.Contains(body, `"tenant_id":"hooked"`) {
		t.Errorf("delivery %s (%s): %v", body, sig, err)
	}
	runtest.Eventually(t, "a delivered row in the log", func() bool {
		return strings.Contains(cli(0, "webhook", "deliveries", w.ID), "delivered")
	})
	if out := cli(0, "webhook", "list"); !strings.Contains(out, w.ID) || !strings.Contains(out, "tenant.*") || strings.Contains(out, w.Secret) {
		t.Errorf("list:\n%s", out)
	}
	if out := cli(0, "webhook", "get", w.ID); !strings.Contains(out, recv.URL) || strings.Contains(out, w.Secret) {
		t.Errorf("get:\n%s", out)
	}
	cli(0, "webhook", "delete", w.ID)
	if out := cli(1, "webhook", "get", w.ID); !strings.Contains(out, "webhook_not_found") {
		t.Errorf("get after delete:\n%s", out)
	}
}
