package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/httpapi"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestWebhookBadInput: a bad webhook gets problem+json with a stable code
// and the field, and makes nothing; a node that keeps to public addresses
// refuses a loopback or private URL.
func TestWebhookBadInput(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{DenyPrivateUpstreams: true})
		op := func(body string) response {
			return send(t, env.URL, call{method: "POST", path: "/v1/webhooks", token: apitest.AdminToken, body: []byte(body)})
		}
		for _, c := range []struct{ body, code, field string }{
			{`{"url":"ftp://hooks.example.com/x","events":["*"]}`, "invalid_webhook_url", "url"},
			{`{"url":"https://user:pw@hooks.example.com/x","events":["*"]}`, "invalid_webhook_url", "url"},
			{`{"url":"not a url","events":["*"]}`, "invalid_webhook_url", "url"},
			{`{"url":"https://hooks.example.com/x#frag","events":["*"]}`, "invalid_webhook_url", "url"},
			{`{"url":"https://` + strings.Repeat("a", 2050) + `.example.com/","events":["*"]}`, "invalid_webhook_url", "url"},
			{`{"url":"http://127.0.0.1:9/x","events":["*"]}`, "webhook_url_not_allowed", "url"},
			{`{"url":"http://[::1]/x","events":["*"]}`, "webhook_url_not_allowed", "url"},
			{`{"url":"http://10.0.0.1/x","events":["*"]}`, "webhook_url_not_allowed", "url"},
			{`{"url":"https://hooks.example.com/x","events":[]}`, "invalid_events", "events"},
			{`{"url":"https://hooks.example.com/x","events":["tenant.exploded"]}`, "unknown_event_type", "events"},
			{`{"url":"https://hooks.example.com/x","events":["user.*"]}`, "unknown_event_type", "events"},
			{`{"url":"https://hooks.example.com/x","events":["tenant*"]}`, "unknown_event_type", "events"},
		} {
			wantProblem(t, c.body, op(c.body), http.StatusBadRequest, c.code, c.field)
		}
		big := `{"url":"https://hooks.example.com/x","events":["` + strings.Repeat("x", httpapi.MaxBodySize) + `"]}`
		wantProblem(t, "oversized body", op(big), http.StatusBadRequest, "body_too_large", "")
		wantProblem(t, "bad JSON", op(`{"url":`), http.StatusBadRequest, "invalid_json", "")
		wantProblem(t, "unknown webhook", send(t, env.URL, call{method: "GET", path: "/v1/webhooks/whk_aaaaaaaaaaaaaaaaaaaaaaaaaa", token: apitest.AdminToken}),
			http.StatusNotFound, "webhook_not_found", "")
		wantProblem(t, "malformed id", send(t, env.URL, call{method: "DELETE", path: "/v1/webhooks/nope", token: apitest.AdminToken}),
			http.StatusNotFound, "webhook_not_found", "")
		var list api.WebhookPage
		wantJSON(t, "list", send(t, env.URL, call{method: "GET", path: "/v1/webhooks", token: apitest.AdminToken}), http.StatusOK, &list)
		if len(list.Items) != 0 {
			t.Errorf("bad requests made webhooks: %+v", list.Items)
		}
	})
}

// TestWebhookSecretShownOnce: the secret is in the create's answer and
// nowhere after: not in the webhook, the list, the delivery log, the
// audit trail, nor in an error about the webhook.
func TestWebhookSecretShownOnce(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, storagetest.DSN(t, "sqlite"), apitest.Options{})
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	defer recv.Close()
	var created api.WebhookCreated
	wantJSON(t, "create", send(t, env.URL, call{method: "POST", path: "/v1/webhooks", token: apitest.AdminToken,
		body: []byte(`{"url":"` + recv.URL + `/hook","events":["tenant.*"]}`)}), http.StatusCreated, &created)
	if !strings.HasPrefix(created.Secret, "whsec_") || !strings.HasPrefix(created.ID, "whk_") {
		t.Fatalf("created: %+v", created)
	}
	createTenant(t, env, client.CreateTenant{ID: "hooked"})
	runtest.Eventually(t, "a failed attempt in the log", func() bool {
		r := send(t, env.URL, call{method: "GET", path: "/v1/webhooks/" + created.ID + "/deliveries", token: apitest.AdminToken})
		return r.Status == 200 && bytes.Contains(r.Body, []byte(`"last_status_code":500`))
	})
	for _, c := range []call{
		{method: "GET", path: "/v1/webhooks/" + created.ID},
		{method: "GET", path: "/v1/webhooks"},
		{method: "GET", path: "/v1/webhooks/" + created.ID + "/deliveries"},
		{method: "GET", path: "/v1/audit?limit=1000"},
		{method: "POST", path: "/v1/webhooks", body: []byte(`{"url":"` + recv.URL + `","events":["nope"]}`)},
	} {
		c.token = apitest.AdminToken
		r := send(t, env.URL, c)
		if r.Status >= 500 {
			t.Errorf("%s: %d", c, r.Status)
		}
		noEcho(t, c.String(), r, created.Secret)
	}
}

// TestLifecycleEventsReachWebhooks: the services' own changes (a tenant
// onboarded and suspended, a key rotated and scheduled for deletion) reach
// a webhook subscribed to every type, each once; a change that failed
// (rotating a key scheduled for deletion), one that changed nothing
// (suspending a suspended tenant) and acts that are not lifecycle events
// (a key made) send nothing.
func TestLifecycleEventsReachWebhooks(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{})
		ctx := t.Context()
		var mu sync.Mutex
		var types []string
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var e api.Event
			if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			mu.Lock()
			types = append(types, e.TenantID+" "+e.Type)
			mu.Unlock()
		}))
		defer recv.Close()
		if _, err := env.Admin.CreateWebhook(ctx, client.CreateWebhook{URL: recv.URL, Events: []string{"*"}}); err != nil {
			t.Fatal(err)
		}
		createTenant(t, env, client.CreateTenant{ID: "evt-co"})
		k, err := env.Admin.CreateKey(ctx, "evt-co", client.CreateKeyRequest{Description: "events"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.Admin.RotateKey(ctx, "evt-co", k.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Admin.ScheduleKeyDeletion(ctx, "evt-co", k.ID, 7); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Admin.RotateKey(ctx, "evt-co", k.ID); err == nil {
			t.Fatal("rotated a key scheduled for deletion")
		}
		for range 2 { // the second changes nothing
			if _, err := env.Admin.SuspendTenant(ctx, "evt-co"); err != nil {
				t.Fatal(err)
			}
		}
		want := []string{"evt-co kms.key_deletion_scheduled", "evt-co kms.key_rotated", "evt-co tenant.activated",
			"evt-co tenant.onboarding.started", "evt-co tenant.suspended"}
		var got []string
		runtest.Eventually(t, "the lifecycle events at the webhook", func() bool {
			mu.Lock()
			got = slices.Sorted(slices.Values(types))
			mu.Unlock()
			return len(got) >= len(want)
		})
		time.Sleep(200 * time.Millisecond) // anything more would come now
		mu.Lock()
		got = slices.Sorted(slices.Values(types))
		mu.Unlock()
		if !slices.Equal(got, want) {
			t.Errorf("events delivered:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
