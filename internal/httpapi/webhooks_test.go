package httpapi_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
