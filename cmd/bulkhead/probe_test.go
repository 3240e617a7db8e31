package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/runtest"
)

// TestProbeCLI: bulkhead probe against a running Bulkhead with tenants it
// makes itself (clean: exit 0, a SARIF report without results, the
// tenants deleted afterwards), against an application that forgets the
// tenant check (exit 3, the finding explained), and with bad command
// lines (exit 2, no credential echoed).
func TestProbeCLI(t *testing.T) {
	p := startServeArgs(t, []string{"--data-dir", filepath.Join(t.TempDir(), "data")})
	sarif := filepath.Join(t.TempDir(), "probe.sarif")
	out, errOut, code := runCLI(t, p.url, "probe", "--openapi", p.url+"/v1/openapi.json", "--base-url", p.url,
		"--make-tenants", "2", "--scope", "kms:encrypt", "--scope", "kms:decrypt", "--format", "sarif", "--out", sarif, "--rate", "0")
	if code != 0 {
		t.Fatalf("probe of Bulkhead: exit %d\n%s\n%s", code, out, errOut)
	}
	b, err := os.ReadFile(sarif)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version string
		Runs    []struct {
			Tool    struct{ Driver struct{ Name string } }
			Results []any
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Version != "2.1.0" || len(doc.Runs) != 1 || len(doc.Runs[0].Results) != 0 {
		t.Fatalf("the SARIF report: %v\n%s", err, b)
	}
	list, _, _ := runCLI(t, p.url, "tenant", "list")
	if strings.Contains(list, "probe-") && strings.Contains(list, "active") {
		t.Errorf("the probe's tenants outlived it:\n%s", list)
	}

	// client: sources: tokens from Bulkhead for two tenants' clients,
	// their secrets in the environment; a deleted client gets none, and
	// the run does not start.
	secrets := map[string]string{}
	clientIDs := map[string]string{}
	for _, tid := range []string{"probe-c", "probe-d"} {
		if _, errOut, code := runCLI(t, p.url, "tenant", "create", tid); code != 0 {
			t.Fatalf("tenant create %s: %s", tid, errOut)
		}
		out, errOut, code := runCLI(t, p.url, "client", "create", "prober", "--tenant", tid, "--grant", "client_credentials",
			"--scope", "kms:encrypt", "--output", "json")
		var c struct {
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &c) != nil {
			t.Fatalf("client create for %s: %s%s", tid, out, errOut)
		}
		clientIDs[tid], secrets[tid] = c.ClientID, c.ClientSecret
	}
	t.Setenv("BULKHEAD_PROBE_SECRET_C", secrets["probe-c"])
	t.Setenv("BULKHEAD_PROBE_SECRET_D", secrets["probe-d"])
	byClient := []string{"probe", "--openapi", p.url + "/v1/openapi.json", "--base-url", p.url, "--rate", "0", "--scope", "kms:encrypt",
		"--tenant", "c@probe-c=client:" + clientIDs["probe-c"], "--tenant", "d@probe-d=client:" + clientIDs["probe-d"]}
	if out, errOut, code := runCLI(t, p.url, byClient...); code != 0 || !strings.Contains(out, "no findings") {
		t.Fatalf("probe with client: sources: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, errOut, code := runCLI(t, p.url, "client", "delete", clientIDs["probe-d"], "--tenant", "probe-d"); code != 0 {
		t.Fatalf("client delete: %s", errOut)
	}
	out, errOut, code = runCLI(t, p.url, byClient...)
	if code != 1 || !strings.Contains(errOut, "a token for client "+clientIDs["probe-d"]) || strings.Contains(out+errOut, secrets["probe-d"]) {
		t.Fatalf("probe with a deleted client: exit %d, want 1 and no token\n%s\n%s", code, out, errOut)
	}

	app := leakyApp(t)
	doc2 := filepath.Join(t.TempDir(), "leaky.json")
	if err := os.WriteFile(doc2, []byte(leakyDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PROBE_TOKEN_A", "token-of-tenant-a-0123456789")
	t.Setenv("PROBE_TOKEN_B", "token-of-tenant-b-0123456789")
	out, errOut, code = runCLI(t, p.url, "probe", "--openapi", doc2, "--base-url", app,
		"--tenant", "a@acme=env:PROBE_TOKEN_A", "--tenant", "b@globex=env:PROBE_TOKEN_B")
	if code != 3 || !strings.Contains(out, "cross_tenant_read") || !strings.Contains(out, "GET /things/{id}") {
		t.Fatalf("probe of a leaky application: exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, "token-of-tenant") {
		t.Errorf("the report holds a credential:\n%s", out)
	}
	out, _, code = runCLI(t, p.url, "probe", "--openapi", doc2, "--base-url", app, "--format", "json",
		"--tenant", "a@acme=env:PROBE_TOKEN_A", "--tenant", "b@globex=env:PROBE_TOKEN_B")
	var rep struct {
		Findings []struct{ Rule, Operation string }
	}
	if code != 3 || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Findings) == 0 {
		t.Fatalf("--format json: exit %d\n%s", code, out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"probe", "--base-url", app}, "needs --openapi"},
		{[]string{"probe", "--openapi", doc2, "--base-url", app, "--tenant", "a=token-of-tenant-a-0123456789", "--tenant", "b=env:PROBE_TOKEN_B"}, "env:VAR, file:PATH or client:ID"},
		{[]string{"probe", "--openapi", p.url + "/v1/openapi.json", "--base-url", app, "--tenant", "a=env:PROBE_TOKEN_A", "--tenant", "b=env:PROBE_TOKEN_B"}, "the only host the probe talks to"},
		{[]string{"probe", "--openapi", doc2, "--base-url", app, "--tenant", "a=env:PROBE_TOKEN_A"}, "two tenants"},
		{[]string{"probe", "--openapi", doc2, "--base-url", app, "--format", "xml", "--tenant", "a=env:PROBE_TOKEN_A", "--tenant", "b=env:PROBE_TOKEN_B"}, "--format"},
	} {
		out, errOut, code := runCLI(t, p.url, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) || strings.Contains(out+errOut, "token-of-tenant") {
			t.Errorf("%v: exit %d, want 2 and %q\n%s%s", tc.args, code, tc.want, out, errOut)
		}
	}
}

const leakyDoc = `{"openapi": "3.0.3", "info": {"title": "leaky", "version": "1"}, "security": [{"bearer": []}],
 "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
 "paths": {
  "/things": {"post": {"requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}}, "responses": {"201": {"description": "made"}}}},
  "/things/{id}": {"get": {"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "a thing"}}}}
 }}`

// leakyApp serves things to any signed-in caller, whoever made them.
func leakyApp(t *testing.T) string {
	t.Helper()
	var mu sync.Mutex
	things := map[string]string{}
	n := 0
	mux := http.NewServeMux()
	signedIn := func(r *http.Request) bool {
		return strings.HasPrefix(r.Header.Get("Authorization"), "Bearer token-of-tenant-")
	}
	mux.HandleFunc("POST /things", func(w http.ResponseWriter, r *http.Request) {
		if !signedIn(r) {
			w.WriteHeader(401)
			return
		}
		var in struct{ Name string }
		json.NewDecoder(r.Body).Decode(&in)
		mu.Lock()
		defer mu.Unlock()
		n++
		id := "thing-" + strings.Repeat("x", n) + "abcdef"
		things[id] = in.Name
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(map[string]string{"id": id, "name": in.Name})
	})
	mux.HandleFunc("GET /things/{id}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		name, ok := things[r.PathValue("id")]
		mu.Unlock()
		if !signedIn(r) || !ok {
			w.WriteHeader(404)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"id": r.PathValue("id"), "name": name})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	runtest.Go(t, func(ctx context.Context) error {
		go func() { <-ctx.Done(); srv.Close() }()
		srv.Serve(ln)
		return nil
	})
	return "http://" + ln.Addr().String()
}
