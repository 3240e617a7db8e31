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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/connect"
	"github.com/bulkhead-dev/bulkhead/internal/hooksig"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
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
		token := u.token
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

// setToken makes the upstream take another token only (the third party rotated it).
func (u *upstream) setToken(token string) {
	u.mu.Lock()
	u.token = token
	u.mu.Unlock()
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
		logs := &runtest.Log{}
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
		i := len(forged) - 3 // a pad character: the forgery still parses
		if forged[i] == 'A' {
			forged[i] = 'B'
		} else {
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
		runtest.Eventually(t, "activity", func() bool {
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
// webhookSink receives alert webhooks and checks their signatures.
type webhookSink struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	sigs   []string
}

func newWebhookSink(t *testing.T) *webhookSink {
	s := &webhookSink{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies, s.sigs = append(s.bodies, b), append(s.sigs, r.Header.Get(hooksig.Header))
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return s
}

// verified returns the bodies whose signature checks under secret.
func (s *webhookSink) verified(secret string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for i, b := range s.bodies {
		ts, _, _ := strings.Cut(strings.TrimPrefix(s.sigs[i], "t="), ",")
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err == nil && s.sigs[i] == hooksig.Sign([]byte(secret), time.Unix(sec, 0), b) {
			out = append(out, b)
		}
	}
	return out
}

type alertList struct {
	Items []struct {
		ID        string            `json:"id"`
		Kind      string            `json:"kind"`
		GrantID   string            `json:"grant_id"`
		Suspended bool              `json:"grant_suspended"`
		Detail    map[string]string `json:"detail"`
	} `json:"items"`
}

// TestConnectionExfiltrationBurst: after a quiet baseline, a burst of
// downloads raises an alert while it runs; the grant, set to auto-suspend,
// is suspended before the burst gets far; the alert is listed and reaches
// the signed webhook; a new source network raises its own alert.
func TestConnectionExfiltrationBurst(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		fc := clock.NewFake(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
		a := newTwoTenantEnvWith(t, dsn, apitest.Options{TenantTokens: connTokens(), Clock: fc, TrustedProxies: []string{"127.0.0.1"},
			Anomaly: connect.AnomalyOptions{Window: time.Minute, Warmup: 5, LearningPeriod: time.Hour}})
		const token = "xoxb-0123456789-abcdefghijklmnop"
		record := strings.Repeat("r", 1000)
		up := newUpstream(t, token, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, record) })
		hook := newWebhookSink(t)
		c := a.createConn("tenant-a", "tok-admin-a", map[string]any{"name": "chat", "upstream_url": up.URL, "token": token,
			"alerts": map[string]any{"sensitivity": 4, "webhook_url": hook.URL}, "grant": map[string]any{"name": "bot", "auto_suspend": true}})
		if c.WebhookSecret == "" {
			t.Fatal("no webhook secret in the creation's answer")
		}
		get := func(path string) response {
			return a.viaProxy("GET", "/c/"+c.ID+path, c.Grant.PartA, http.Header{"X-Forwarded-For": {"198.51.100.7"}})
		}
		// A quiet baseline: three requests a minute for ten minutes.
		for range 10 {
			for i := range 3 {
				if r := get(fmt.Sprintf("/records/%d", i)); r.Status != 200 {
					t.Fatalf("baseline request: %d %s", r.Status, r.Body)
				}
			}
			fc.Advance(time.Minute)
		}
		var alerts alertList
		a.ok("GET", "/v1/tenants/tenant-a/alerts", "tok-admin-a", nil, 200, &alerts)
		if len(alerts.Items) != 0 {
			t.Fatalf("alerts during a quiet baseline: %+v", alerts.Items)
		}
		// The exfiltration burst: the integration pulls every record it can.
		served, refused := 0, 0
		for i := range 200 {
			r := get(fmt.Sprintf("/records/%d", i))
			if r.Status == 200 {
				served++
				continue
			}
			wantProblem(t, "request in the burst", r, http.StatusForbidden, "grant_suspended", "")
			refused++
		}
		if served > 20 || refused == 0 {
			t.Fatalf("burst: %d served, %d refused; the grant should be suspended within a few requests", served, refused)
		}
		a.ok("GET", "/v1/tenants/tenant-a/alerts?connection="+c.ID, "tok-admin-a", nil, 200, &alerts)
		kinds := map[string]bool{}
		for _, al := range alerts.Items {
			kinds[al.Kind] = true
			if al.GrantID != c.Grant.ID || !al.Suspended {
				t.Errorf("alert: %+v", al)
			}
		}
		if !kinds[connect.AlertRequestRate] {
			t.Fatalf("no request_rate alert: %+v", alerts.Items)
		}
		var grants struct{ Items []issuedGrant }
		a.ok("GET", "/v1/tenants/tenant-a/connections/"+c.ID+"/grants", "tok-admin-a", nil, 200, &grants)
		if len(grants.Items) != 1 || grants.Items[0].Status != "suspended" {
			t.Fatalf("grant after the burst: %+v", grants.Items)
		}
		runtest.Eventually(t, "a signed webhook", func() bool { return len(hook.verified(c.WebhookSecret)) > 0 })
		if len(hook.verified("whsec_wrong")) != 0 {
			t.Fatal("a webhook signature verifies under another secret")
		}
		if body := hook.verified(c.WebhookSecret)[0]; !strings.Contains(string(body), `"kind":"request_rate"`) &&
			!strings.Contains(string(body), `"kind":"distinct_paths"`) {
			t.Fatalf("webhook body: %s", body)
		}

		// Resumed, the grant works again; from a network never seen after
		// its learning hour, the request passes (auto-suspend is off now)
		// and raises a new_network alert, once.
		a.ok("PATCH", "/v1/tenants/tenant-a/connections/"+c.ID, "tok-admin-a", map[string]any{"alerts": map[string]any{"sensitivity": 50}}, 200, nil)
		b := a.createGrant("tenant-a", c.ID, map[string]any{"token": token})
		fc.Advance(2 * time.Hour)
		for _, ip := range []string{"198.51.100.9", "203.0.113.5", "203.0.113.77"} {
			r := a.viaProxy("GET", "/c/"+c.ID+"/records/1", b.PartA, http.Header{"X-Forwarded-For": {ip}})
			if r.Status != 200 {
				t.Fatalf("request from %s: %d %s", ip, r.Status, r.Body)
			}
		}
		a.ok("GET", "/v1/tenants/tenant-a/alerts?connection="+c.ID, "tok-admin-a", nil, 200, &alerts)
		nets := 0
		for _, al := range alerts.Items {
			if al.Kind == connect.AlertNewNetwork && al.GrantID == b.ID {
				nets++
				if al.Detail["network"] != "198.51.100.0/24" && al.Detail["network"] != "203.0.113.0/24" {
					t.Errorf("new network alert: %+v", al)
				}
			}
		}
		if nets != 2 {
			t.Fatalf("new_network alerts for grant 2: %d, want 2 (one per new /24): %+v", nets, alerts.Items)
		}
	})
}

// createGrant adds a grant to a connection.
func (a *azEnv) createGrant(tid, connID string, body map[string]any) issuedGrant {
	a.t.Helper()
	var g issuedGrant
	a.ok("POST", "/v1/tenants/"+tid+"/connections/"+connID+"/grants", "tok-admin-a", body, http.StatusCreated, &g)
	if g.ID == "" || g.PartA == "" {
		a.t.Fatalf("create grant: %+v", g)
	}
	return g
}

// TestConnectionGrantsRotationAndTokenReplacement: grants share a
// connection with Part As of their own; rotation replaces one Part A
// without touching the token; replacing the token re-splits every grant.
func TestConnectionGrantsRotationAndTokenReplacement(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		a := newTwoTenantEnvWith(t, dsn, apitest.Options{TenantTokens: connTokens()})
		const tok1, tok2 = "tok-one-aaaaaaaaaaaaaaaa", "tok-two-bbbbbbbbbbbbbbbbbbbbbbbbbbbb"
		up := newUpstream(t, tok1, nil)
		c := a.createConn("tenant-a", "tok-admin-a", map[string]any{"name": "api", "upstream_url": up.URL, "token": tok1,
			"placement": map[string]string{"type": "header", "name": "x-api-key"}})
		works := func(partA string) int { return a.viaProxy("GET", "/c/"+c.ID+"/x", partA, nil).Status }
		g2 := a.createGrant("tenant-a", c.ID, map[string]any{"part_a": c.Grant.PartA, "name": "second"})
		if works(c.Grant.PartA) != 200 || works(g2.PartA) != 200 || up.last().Header.Get("X-Api-Key") != tok1 {
			t.Fatal("two grants of one connection")
		}
		// Rotation with the grant's own Part A: the old one stops working.
		var rot issuedGrant
		a.ok("POST", "/v1/tenants/tenant-a/connections/"+c.ID+"/grants/"+g2.ID+"/rotate", "tok-admin-a", map[string]any{"part_a": g2.PartA}, 200, &rot)
		if rot.ID != g2.ID || rot.PartA == g2.PartA || works(rot.PartA) != 200 || works(g2.PartA) != 401 || works(c.Grant.PartA) != 200 {
			t.Fatalf("rotation: %+v", rot)
		}
		// Replacing the token re-splits every grant.
		up.setToken(tok2) // the third party now takes only the new token
		var upd struct {
			TokenVersion int           `json:"token_version"`
			Grants       []issuedGrant `json:"grants"`
		}
		a.ok("PATCH", "/v1/tenants/tenant-a/connections/"+c.ID, "tok-admin-a", map[string]any{"token": tok2}, 200, &upd)
		if upd.TokenVersion != 2 || len(upd.Grants) != 2 {
			t.Fatalf("token replacement: %+v", upd)
		}
		for _, g := range upd.Grants {
			if works(g.PartA) != 200 || up.last().Header.Get("X-Api-Key") != tok2 {
				t.Fatalf("re-split grant %s", g.ID)
			}
		}
		if works(rot.PartA) != 401 || works(c.Grant.PartA) != 401 {
			t.Fatal("a Part A from before the token's replacement still works")
		}
		// The old token no longer matches the connection's.
		r := a.call("POST", "/v1/tenants/tenant-a/connections/"+c.ID+"/grants", "tok-admin-a", map[string]any{"token": tok1})
		wantProblem(t, "grant with the old token", r, http.StatusBadRequest, "token_mismatch", "token")
		noEcho(t, "grant with the old token", r, tok1)
	})
}

// TestConnectionRevocationAcrossNodes: two nodes on one PostgreSQL
// database; a grant revoked or suspended on one is refused by the other's
// proxy within a second (NOTIFY drops its cached grant; its cache would
// otherwise keep it for an hour here).
func TestConnectionRevocationAcrossNodes(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	opts := apitest.Options{TenantTokens: connTokens(), RootKey: key, ConnectCacheTTL: time.Hour}
	a := newTwoTenantEnvWith(t, dsn, opts)
	opts.PublicURL = a.env.URL // nodes of one database share their public URL
	n2 := apitest.New(t, dsn, opts)
	const token = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
	up := newUpstream(t, token, nil)
	c := a.createConn("tenant-a", "tok-admin-a", map[string]any{"name": "git", "upstream_url": up.URL, "token": token})
	g2 := a.createGrant("tenant-a", c.ID, map[string]any{"token": token})
	via2 := func(partA string) int {
		return send(t, n2.ProxyURL, call{method: "GET", path: "/c/" + c.ID + "/repos", token: partA}).Status
	}
	runtest.Eventually(t, "node 2 listening and caching", func() bool {
		return via2(c.Grant.PartA) == 200 && via2(g2.PartA) == 200 && n2.Connect.CachedGrants() == 2
	})
	measure := func(what string, act func(), want int) {
		t.Helper()
		start := time.Now()
		act()
		for via2(c.Grant.PartA) != want {
			if time.Since(start) > time.Second {
				t.Fatalf("%s: node 2 still serves the grant after 1 s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("%s reached node 2 in %v", what, time.Since(start))
	}
	base := "/v1/tenants/tenant-a/connections/" + c.ID + "/grants/" + c.Grant.ID
	measure("suspension", func() { a.ok("POST", base+"/suspend", "tok-admin-a", nil, 200, nil) }, http.StatusForbidden)
	measure("resumption", func() { a.ok("POST", base+"/resume", "tok-admin-a", nil, 200, nil) }, http.StatusOK)
	measure("revocation", func() {
		if r := a.call("DELETE", base, "tok-admin-a", nil); r.Status != http.StatusNoContent {
			t.Fatalf("delete grant: %d", r.Status)
		}
	}, http.StatusUnauthorized)
	if via2(g2.PartA) != 200 {
		t.Fatal("revoking one grant stopped another")
	}
}
