package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// connTokens: each tenant's admin and a plain user of tenant-a.
func connTokens() map[string]tenant.Context {
	return map[string]tenant.Context{
		"tok-admin-a": {TenantID: "tenant-a", Principal: "user:root-a", Groups: []string{"admins"}},
		"tok-admin-b": {TenantID: "tenant-b", Principal: "user:root-b", Groups: []string{"admins"}},
		"tok-user-a":  {TenantID: "tenant-a", Principal: "user:u1"},
	}
}

// upstream is a third-party API on loopback that answers only the real
// token, and remembers what it received.
type upstream struct {
	*httptest.Server
	token string
	mu    sync.Mutex
	seen  []*http.Request
	hits  atomic.Int64
}

func newUpstream(t *testing.T, token string, h http.HandlerFunc) *upstream {
	u := &upstream{token: token}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.mu.Lock()
		u.seen = append(u.seen, r.Clone(context.Background()))
		u.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+token && r.Header.Get("X-Api-Key") != token && r.URL.Query().Get("api_key") != token {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"bad token"}`)
			return
		}
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q,"query":%q}`, r.URL.EscapedPath(), r.URL.RawQuery)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) last() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		return nil
	}
	return u.seen[len(u.seen)-1]
}

type connCreated struct {
	ID          string `json:"id"`
	TenantID    string `json:"tenant_id"`
	UpstreamURL string `json:"upstream_url"`
	Grant       struct {
		ID    string `json:"id"`
		PartA string `json:"part_a"`
	} `json:"grant"`
	WebhookSecret string `json:"webhook_secret"`
}

type issuedGrant struct {
	ID     string `json:"id"`
	PartA  string `json:"part_a"`
	Status string `json:"status"`
}

// createConn makes a connection of tid to u's server (bearer placement unless body says).
func (a *azEnv) createConn(tid, token string, body map[string]any) connCreated {
	a.t.Helper()
	var c connCreated
	a.ok("POST", "/v1/tenants/"+tid+"/connections", token, body, http.StatusCreated, &c)
	if c.ID == "" || !strings.HasPrefix(c.Grant.PartA, "bhpa1."+tid+".") {
		a.t.Fatalf("create connection: %+v", c)
	}
	return c
}

// viaProxy sends a request through the node's proxy with partA as bearer.
func (a *azEnv) viaProxy(method, path, partA string, header http.Header) response {
	a.t.Helper()
	return send(a.t, a.env.ProxyURL, call{method: method, path: path, token: partA, header: header})
}

// logBuffer collects a node's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// dumpTables returns every stored value of the tables, read with SQL in
// the platform scope.
func dumpTables(t *testing.T, db *storage.DB, tables ...string) string {
	t.Helper()
	var out strings.Builder
	err := db.View(context.Background(), storage.PlatformScope(), func(tx *storage.Tx) error {
		for _, table := range tables {
			rows, err := tx.Query(context.Background(), `SELECT * FROM `+table)
			if err != nil {
				return err
			}
			cols, _ := rows.Columns()
			for rows.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					rows.Close()
					return err
				}
				for _, v := range vals {
					if b, ok := v.([]byte); ok {
						out.Write(b)
					} else {
						fmt.Fprint(&out, v)
					}
					out.WriteByte('|')
				}
				out.WriteByte('\n')
			}
			rows.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dump tables: %v", err)
	}
	return out.String()
}

// secretForms are the ways a token could show up in stored text.
func secretForms(token string) []string {
	return []string{token, base64.StdEncoding.EncodeToString([]byte(token)), base64.RawURLEncoding.EncodeToString([]byte(token)),
		hex.EncodeToString([]byte(token))}
}

// TestConnectionProxyEndToEnd is the acceptance test: a local
// upstream accepts only the real token; the integration succeeds with Part
// A through the proxy, fails with Part A sent directly upstream, fails
// after revocation; neither part as stored, nor any log line, nor the
// audit trail holds the token.
func TestConnectionProxyEndToEnd(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		logs := &logBuffer{}
		a := newTwoTenantEnvWith(t, dsn, apitest.Options{TenantTokens: connTokens(),
			Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		const token = "sk_live_9f8e7d6c5b4a39281706f5e4d3c2b1a0-REAL"
		up := newUpstream(t, token, nil)
		c := a.createConn("tenant-a", "tok-admin-a", map[string]any{"name": "crm", "upstream_url": up.URL + "/api", "token": token,
			"placement": map[string]string{"type": "bearer"}})
		partA := c.Grant.PartA

		// Through the proxy with Part A: the upstream sees the real token, on its base path.
		r := a.viaProxy("GET", "/c/"+c.ID+"/v1/contacts?limit=5", partA, http.Header{"Cookie": {"session=integration"}})
		if r.Status != 200 || !strings.Contains(string(r.Body), `"path":"/api/v1/contacts"`) || !strings.Contains(string(r.Body), `limit=5`) {
			t.Fatalf("through the proxy: %d %s", r.Status, r.Body)
		}
		if got := up.last(); got.Header.Get("Authorization") != "Bearer "+token || got.Header.Get("Cookie") != "" {
			t.Fatalf("upstream got Authorization %q, Cookie %q", got.Header.Get("Authorization"), got.Header.Get("Cookie"))
		}
		noEcho(t, "proxied answer", r, token)

		// Part A sent straight to the upstream is worthless there.
		direct := send(t, up.URL, call{method: "GET", path: "/api/v1/contacts", token: partA})
		if direct.Status != http.StatusUnauthorized {
			t.Fatalf("Part A sent directly upstream: %d", direct.Status)
		}

		// A forged Part A (one pad byte changed) is refused before Part B is read.
		forged := []byte(partA)
		i := len(forged) - 3
		forged[i] ^= 0x01
		if forged[i] == '-' || forged[i] == '_' || forged[i] == '.' {
			forged[i] = 'A'
		}
		hits := up.hits.Load()
		wantProblem(t, "forged Part A", a.viaProxy("GET", "/c/"+c.ID+"/v1/contacts", string(forged), nil), http.StatusUnauthorized, "invalid_part_a", "")
		wantProblem(t, "no Part A", a.viaProxy("GET", "/c/"+c.ID+"/v1/contacts", "", nil), http.StatusUnauthorized, "invalid_part_a", "")
		wantProblem(t, "garbage", a.viaProxy("GET", "/c/"+c.ID+"/v1/contacts", "bhpa1.x.y.z", nil), http.StatusUnauthorized, "invalid_part_a", "")
		if up.hits.Load() != hits {
			t.Fatal("a refused request reached the upstream")
		}

		// The activity log has the request: method, path without query, status, bytes, grant.
		var act struct {
			Items []struct {
				Principal string            `json:"principal"`
				Outcome   string            `json:"outcome"`
				SourceIP  string            `json:"source_ip"`
				Detail    map[string]string `json:"detail"`
			} `json:"items"`
		}
		waitFor(t, "activity", func() bool {
			a.ok("GET", "/v1/tenants/tenant-a/connections/"+c.ID+"/activity", "tok-admin-a", nil, 200, &act)
			return len(act.Items) >= 2
		})
		var okReq bool
		for _, e := range act.Items {
			if e.Outcome == "success" {
				okReq = true
				if e.Detail["method"] != "GET" || e.Detail["path"] != "/v1/contacts" || e.Detail["status"] != "200" || e.Detail["grant"] != c.Grant.ID ||
					e.Detail["bytes_out"] == "0" || e.Detail["latency_us"] == "" || e.SourceIP != "127.0.0.1" || e.Detail["user_agent"] == "" {
					t.Errorf("activity record: %+v", e)
				}
			}
		}
		if !okReq {
			t.Errorf("no successful request in the activity: %+v", act.Items)
		}

		// Revocation: the very next request fails.
		r = a.call("DELETE", "/v1/tenants/tenant-a/connections/"+c.ID+"/grants/"+c.Grant.ID, "tok-admin-a", nil)
		if r.Status != http.StatusNoContent {
			t.Fatalf("delete grant: %d %s", r.Status, r.Body)
		}
		wantProblem(t, "after revocation", a.viaProxy("GET", "/c/"+c.ID+"/v1/contacts", partA, nil), http.StatusUnauthorized, "invalid_part_a", "")

		// Nothing stored and no log line holds the token, in any encoding.
		a.env.Audit.Close() // flush the queued request records
		stored := dumpTables(t, a.env.DB, "connect_connections", "connect_grants", "connect_alerts", "connect_networks", "audit_events")
		for _, f := range secretForms(token) {
			if strings.Contains(stored, f) {
				t.Errorf("the database holds the token (%q)", f)
			}
			if strings.Contains(logs.String(), f) {
				t.Errorf("a log line holds the token (%q)", f)
			}
		}
		if strings.Contains(stored, partA) || strings.Contains(logs.String(), partA) {
			t.Error("Part A is stored or logged whole")
		}
	})
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not reached in 5 s", what)
}
