package httpapi_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/connect"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// connFixture is a node with tenant-a and tenant-b, each with a connection
// ("crm-of-a", "crm-of-b") to an upstream of its own that takes only its
// tenant's token.
type connFixture struct {
	*azEnv
	tokenA, tokenB string
	upA, upB       *upstream
	a, b           connCreated
}

const (
	connTokenA = "sk_live_AAAA-tenant-a-upstream-token-0001"
	connTokenB = "sk_live_BBBB-tenant-b-upstream-token-0002"
)

func newConnFixture(t *testing.T, dsn string, opts apitest.Options) *connFixture {
	t.Helper()
	opts.TenantTokens = connTokens()
	f := &connFixture{azEnv: newTwoTenantEnvWith(t, dsn, opts), tokenA: connTokenA, tokenB: connTokenB}
	f.upA, f.upB = newUpstream(t, f.tokenA, nil), newUpstream(t, f.tokenB, nil)
	f.a = f.createConn("tenant-a", "tok-admin-a", map[string]any{"name": "crm-of-a", "upstream_url": f.upA.URL + "/api", "token": f.tokenA})
	f.b = f.createConn("tenant-b", "tok-admin-b", map[string]any{"name": "crm-of-b", "upstream_url": f.upB.URL + "/api", "token": f.tokenB})
	return f
}

// secrets are what no answer may hold: both tokens and both Part As.
func (f *connFixture) secrets() []string {
	return []string{f.tokenA, f.tokenB, f.a.Grant.PartA, f.b.Grant.PartA}
}

// noEchoAll fails if r holds any of secrets.
func noEchoAll(t *testing.T, what string, r response, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		noEcho(t, what, r, s)
	}
}

// state is what an admin of tid reads of connection connID: its record,
// its grants and the tenant's connection listing, as sent.
func (f *connFixture) state(tid, token, connID string) string {
	f.t.Helper()
	var out strings.Builder
	for _, p := range []string{"/connections/" + connID, "/connections/" + connID + "/grants", "/connections"} {
		r := f.call("GET", "/v1/tenants/"+tid+p, token, nil)
		if r.Status != http.StatusOK {
			f.t.Fatalf("GET %s of %s: %d %s", p, tid, r.Status, r.Body)
		}
		out.Write(r.Body)
		out.WriteByte('\n')
	}
	return out.String()
}

// proxyWorks checks that partA still reaches connection c's upstream, which
// gets the real token.
func (f *connFixture) proxyWorks(what string, connID, partA string, up *upstream) {
	f.t.Helper()
	r := f.viaProxy("GET", "/c/"+connID+"/v1/ping", partA, nil)
	if r.Status != http.StatusOK || up.last() == nil || up.last().Header.Get("Authorization") != "Bearer "+up.token {
		f.t.Fatalf("%s: the grant no longer works through the proxy: %d %s", what, r.Status, r.Body)
	}
}

// connEndpoint is a connection route with a well-formed body, its path a
// route pattern over {tenant}, {connection} and {grant}.
type connEndpoint struct {
	method, path string
	body         any
}

const (
	connsPath = "/v1/tenants/{tenant}/connections"
	connPath  = connsPath + "/{connection}"
	grantPath = connPath + "/grants/{grant}"
)

// connEndpoints are every connection route, with bodies that would succeed
// for the connection's own admin: the token of tenant-a's connection goes
// where one is asked for, so that knowing it is not enough either.
func connEndpoints(token string) []connEndpoint {
	return []connEndpoint{
		{"POST", connsPath, map[string]any{"name": "made-by-intruder", "upstream_url": "http://127.0.0.1:9/x", "token": token}},
		{"GET", connsPath, nil},
		{"GET", connPath, nil},
		{"PATCH", connPath, map[string]any{"name": "renamed-by-intruder", "allowed_methods": []string{"GET"}}},
		{"DELETE", connPath, nil},
		{"POST", connPath + "/grants", map[string]any{"name": "intruder", "token": token}},
		{"GET", connPath + "/grants", nil},
		{"POST", grantPath + "/rotate", map[string]any{"token": token}},
		{"POST", grantPath + "/suspend", map[string]any{"reason": "intruder"}},
		{"POST", grantPath + "/resume", nil},
		{"DELETE", grantPath, nil},
		{"GET", connPath + "/activity", nil},
		{"GET", "/v1/tenants/{tenant}/alerts", nil},
		{"GET", "/v1/tenants/{tenant}/alerts?connection={connection}", nil},
	}
}

func (e connEndpoint) fill(tid, connID, grantID string) string {
	return strings.NewReplacer("{tenant}", tid, "{connection}", connID, "{grant}", grantID).Replace(e.path)
}

func (e connEndpoint) String() string { return e.method + " " + e.path }

// wantEveryConnRoute fails unless eps cover every registered connection route.
func wantEveryConnRoute(t *testing.T, env *apitest.Env, eps []connEndpoint) {
	t.Helper()
	n := 0
	for _, rt := range env.API.Routes() {
		if !strings.HasPrefix(rt.Name, "connection.") {
			continue
		}
		n++
		if !slices.ContainsFunc(eps, func(e connEndpoint) bool { return e.method == rt.Method && e.path == rt.Path }) {
			t.Errorf("connection route %s %s (%s) is not checked", rt.Method, rt.Path, rt.Name)
		}
	}
	if n < 13 {
		t.Errorf("only %d connection routes registered", n)
	}
}

// TestConnectionCrossTenantRoutes: tenant-b's admin cannot reach tenant-a's
// connections, grants, activity or alerts by any route, neither naming
// tenant-a (404 tenant_not_found, the answer for a tenant that does not
// exist) nor naming tenant-b with tenant-a's ids (404 connection_not_found /
// grant_not_found, the answer for ids that never existed); nothing of A
// changes, and A's grant still works. A plain user of tenant-a gets 403;
// the operator manages A's connections, audited in A's chain.
func TestConnectionCrossTenantRoutes(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newConnFixture(t, dsn, apitest.Options{})
		eps := connEndpoints(f.tokenA)
		wantEveryConnRoute(t, f.env, eps)
		aBefore, bBefore := f.state("tenant-a", "tok-admin-a", f.a.ID), f.state("tenant-b", "tok-admin-b", f.b.ID)
		// Nothing an answer may reveal of A: its secrets, its names, its upstream.
		aData := append(f.secrets(), "crm-of-a", strings.TrimPrefix(f.upA.URL, "http://"))

		// 1. B's admin naming tenant-a: the answer about a tenant that does not exist.
		for _, e := range eps {
			what := e.String() + " (B's admin, tenant-a's path)"
			r := f.call(e.method, e.fill("tenant-a", f.a.ID, f.a.Grant.ID), "tok-admin-b", e.body)
			wantProblem(t, what, r, http.StatusNotFound, "tenant_not_found", "")
			noEchoAll(t, what, r, aData...)
			missing := f.call(e.method, e.fill("tenant-zzz", f.a.ID, f.a.Grant.ID), "tok-admin-b", e.body)
			if got, want := stripProblem(t, what, r, "tenant-a"), stripProblem(t, what, missing, "tenant-zzz"); got != want {
				t.Errorf("%s: answer differs from a missing tenant's:\ntenant-a %s\nmissing  %s", what, got, want)
			}
		}

		// 2. B's admin naming its own tenant with A's ids: the answer about
		// ids that never existed.
		type idCase struct {
			name              string
			conn, grant, code string
			probe             func(e connEndpoint) string // the same path with a never-existing id
		}
		neverConn, neverGrant := ids.New("con"), ids.New("grt")
		idCases := []idCase{
			{"A's connection", f.a.ID, f.a.Grant.ID, "connection_not_found",
				func(e connEndpoint) string { return e.fill("tenant-b", neverConn, f.a.Grant.ID) }},
			{"B's connection, A's grant", f.b.ID, f.a.Grant.ID, "grant_not_found",
				func(e connEndpoint) string { return e.fill("tenant-b", f.b.ID, neverGrant) }},
		}
		for _, ic := range idCases {
			for _, e := range eps {
				if !strings.Contains(e.path, "{connection}") || (ic.code == "grant_not_found" && !strings.Contains(e.path, "{grant}")) {
					continue
				}
				what := e.String() + " (B's admin, tenant-b's path, " + ic.name + ")"
				r := f.call(e.method, e.fill("tenant-b", ic.conn, ic.grant), "tok-admin-b", e.body)
				wantProblem(t, what, r, http.StatusNotFound, ic.code, "")
				noEchoAll(t, what, r, aData...)
				missing := f.call(e.method, ic.probe(e), "tok-admin-b", e.body)
				id, never := ic.conn, neverConn
				if ic.code == "grant_not_found" {
					id, never = ic.grant, neverGrant
				}
				if got, want := stripProblem(t, what, r, id), stripProblem(t, what, missing, never); got != want {
					t.Errorf("%s: answer differs from a never-existing id's:\nA's   %s\nnever %s", what, got, want)
				}
			}
		}

		// 3. A's Part A as the token source on B's own connection, and B's
		// on A's (as A's admin): refused; as B's admin on A's: 404.
		for _, c := range []struct {
			name, tid, token, conn, grant, partA string
			status                               int
			code, field                          string
		}{
			{"B's admin, A's Part A, B's connection", "tenant-b", "tok-admin-b", f.b.ID, f.b.Grant.ID, f.a.Grant.PartA, 400, "invalid_part_a", "part_a"},
			{"A's admin, B's Part A, A's connection", "tenant-a", "tok-admin-a", f.a.ID, f.a.Grant.ID, f.b.Grant.PartA, 400, "invalid_part_a", "part_a"},
			{"B's admin, B's Part A, A's connection", "tenant-a", "tok-admin-b", f.a.ID, f.a.Grant.ID, f.b.Grant.PartA, 404, "tenant_not_found", ""},
			{"B's admin, B's Part A, A's ids under tenant-b", "tenant-b", "tok-admin-b", f.a.ID, f.a.Grant.ID, f.b.Grant.PartA, 404, "connection_not_found", ""},
		} {
			grants := "/v1/tenants/" + c.tid + "/connections/" + c.conn + "/grants"
			for _, path := range []string{grants, grants + "/" + c.grant + "/rotate"} {
				r := f.call("POST", path, c.token, map[string]any{"part_a": c.partA})
				wantProblem(t, c.name+": POST "+path, r, c.status, c.code, c.field)
				noEchoAll(t, c.name, r, f.secrets()...)
			}
		}

		// 4. A plain user of tenant-a: 403, for every route.
		for _, e := range eps {
			what := e.String() + " (A's plain user)"
			r := f.call(e.method, e.fill("tenant-a", f.a.ID, f.a.Grant.ID), "tok-user-a", e.body)
			wantProblem(t, what, r, http.StatusForbidden, "tenant_admin_required", "")
			noEchoAll(t, what, r, aData...)
		}

		// Nothing of A or B changed; both grants still work.
		if got := f.state("tenant-a", "tok-admin-a", f.a.ID); got != aBefore {
			t.Errorf("tenant-a's connection changed:\nbefore %s\nafter  %s", aBefore, got)
		}
		if got := f.state("tenant-b", "tok-admin-b", f.b.ID); got != bBefore {
			t.Errorf("tenant-b's connection changed:\nbefore %s\nafter  %s", bBefore, got)
		}
		f.proxyWorks("A's grant after B's attempts", f.a.ID, f.a.Grant.PartA, f.upA)
		f.proxyWorks("B's grant after B's attempts", f.b.ID, f.b.Grant.PartA, f.upB)

		// 5. The operator manages tenant-a's connections; each act is in
		// tenant-a's chain under the operator, in no other chain.
		op := apitest.AdminToken
		c := f.createConn("tenant-a", op, map[string]any{"name": "made-by-operator", "upstream_url": f.upA.URL, "token": f.tokenA})
		base := "/v1/tenants/tenant-a/connections/" + c.ID
		f.ok("PATCH", base, op, map[string]any{"name": "renamed-by-operator"}, 200, nil)
		var g issuedGrant
		f.ok("POST", base+"/grants", op, map[string]any{"token": f.tokenA}, 201, &g)
		f.ok("POST", base+"/grants/"+g.ID+"/suspend", op, nil, 200, nil)
		f.ok("GET", base+"/grants", op, nil, 200, nil)
		f.ok("GET", base+"/activity", op, nil, 200, nil)
		f.ok("GET", "/v1/tenants/tenant-a/alerts", op, nil, 200, nil)
		var list connect.Page
		f.ok("GET", "/v1/tenants/tenant-a/connections", op, nil, 200, &list)
		if len(list.Items) != 2 {
			t.Errorf("the operator's listing of tenant-a: %+v", list.Items)
		}
		f.proxyWorks("the operator's connection", c.ID, c.Grant.PartA, f.upA)
		if r := f.call("DELETE", base, op, nil); r.Status != http.StatusNoContent {
			t.Fatalf("the operator deletes A's connection: %d %s", r.Status, r.Body)
		}
		for action, target := range map[string]string{"connection.created": c.ID, "connection.updated": c.ID,
			"connection.grant_created": g.ID, "connection.grant_suspended": g.ID, "connection.deleted": c.ID} {
			var page client.AuditPage
			f.ok("GET", "/v1/tenants/tenant-a/audit?action="+action, "tok-admin-a", nil, 200, &page)
			if !slices.ContainsFunc(page.Items, func(e client.AuditEvent) bool {
				return e.TenantID == "tenant-a" && e.Target == target && strings.HasPrefix(e.Principal, "operator:") && e.Outcome == "success"
			}) {
				t.Errorf("the operator's %s of %s is not in tenant-a's chain: %+v", action, target, page.Items)
			}
			for _, chain := range []string{"tenant-b", "-"} {
				for _, e := range auditEvents(t, f.env, client.AuditQuery{Tenant: chain, Action: action}) {
					if e.Target == target {
						t.Errorf("the operator's %s of %s is in chain %q: %+v", action, target, chain, e)
					}
				}
			}
		}
		// B's admin still sees none of it.
		r := f.call("GET", "/v1/tenants/tenant-b/audit", "tok-admin-b", nil)
		noEchoAll(t, "B's trail", r, aData...)
		for _, id := range []string{c.ID, g.ID, f.a.Grant.ID} {
			if strings.Contains(string(r.Body), id) {
				t.Errorf("B's trail names A's object %s", id)
			}
		}
	})
}

// TestConnectionCrossTenantProxy: through the proxy, a Part A reaches its
// own grant's connection only: tenant-b's Part A on tenant-a's connection,
// or one of A's Part As on another of A's connections, gets 404 and the
// upstreams are not called; a Part A whose tenant is rewritten does not
// authenticate. B's listing, alerts and activity never show A's.
func TestConnectionCrossTenantProxy(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		fc := clock.NewFake(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
		f := newConnFixture(t, dsn, apitest.Options{Clock: fc, TrustedProxies: []string{"127.0.0.1"},
			Anomaly: connect.AnomalyOptions{LearningPeriod: time.Hour}})
		upA2 := newUpstream(t, f.tokenA, nil)
		a2 := f.createConn("tenant-a", "tok-admin-a", map[string]any{"name": "second-of-a", "upstream_url": upA2.URL, "token": f.tokenA})
		ups := []*upstream{f.upA, upA2, f.upB}

		// After the learning hour, each grant is used from a new network:
		// each tenant gets a new_network alert of its own.
		fc.Advance(2 * time.Hour)
		for _, u := range []struct {
			conn, partA, ip string
		}{{f.a.ID, f.a.Grant.PartA, "198.51.100.10"}, {f.b.ID, f.b.Grant.PartA, "203.0.113.20"}} {
			if r := f.viaProxy("GET", "/c/"+u.conn+"/v1/ping", u.partA, http.Header{"X-Forwarded-For": {u.ip}}); r.Status != 200 {
				t.Fatalf("request from a new network: %d %s", r.Status, r.Body)
			}
		}

		swapTenant := func(partA, from, to string) string {
			return strings.Replace(partA, "bhpa1."+from+".", "bhpa1."+to+".", 1)
		}
		cases := []struct {
			name, conn, partA string
			status            int
			code              string
		}{
			{"B's Part A on A's connection", f.a.ID, f.b.Grant.PartA, 404, "connection_not_found"},
			{"B's Part A on A's second connection", a2.ID, f.b.Grant.PartA, 404, "connection_not_found"},
			{"A's Part A on A's other connection", a2.ID, f.a.Grant.PartA, 404, "connection_not_found"},
			{"A's Part A on B's connection", f.b.ID, f.a.Grant.PartA, 404, "connection_not_found"},
			{"A's Part A rewritten to tenant-b, on A's connection", f.a.ID, swapTenant(f.a.Grant.PartA, "tenant-a", "tenant-b"), 401, "invalid_part_a"},
			{"A's Part A rewritten to tenant-b, on B's connection", f.b.ID, swapTenant(f.a.Grant.PartA, "tenant-a", "tenant-b"), 401, "invalid_part_a"},
			{"B's Part A rewritten to tenant-a, on A's connection", f.a.ID, swapTenant(f.b.Grant.PartA, "tenant-b", "tenant-a"), 401, "invalid_part_a"},
		}
		for _, c := range cases {
			var hits []int64
			for _, u := range ups {
				hits = append(hits, u.hits.Load())
			}
			r := f.viaProxy("GET", "/c/"+c.conn+"/v1/contacts", c.partA, nil)
			wantProblem(t, c.name, r, c.status, c.code, "")
			noEchoAll(t, c.name, r, f.secrets()...)
			if strings.Contains(string(r.Body), "crm-of-") {
				t.Errorf("%s: the answer names a connection: %s", c.name, r.Body)
			}
			for i, u := range ups {
				if u.hits.Load() != hits[i] {
					t.Errorf("%s: upstream %d was called", c.name, i)
				}
			}
		}
		f.proxyWorks("A's grant after the attempts", f.a.ID, f.a.Grant.PartA, f.upA)

		// B's listing holds B's connection only.
		var list connect.Page
		r := f.call("GET", "/v1/tenants/tenant-b/connections", "tok-admin-b", nil)
		wantJSON(t, "B's listing", r, 200, &list)
		if len(list.Items) != 1 || list.Items[0].ID != f.b.ID || strings.Contains(string(r.Body), "tenant-a") {
			t.Errorf("B's listing: %s", r.Body)
		}

		// Alerts: each tenant sees its own and none of the other's.
		for _, tc := range []struct {
			tid, token, ownGrant string
			foreign              []string
		}{
			{"tenant-a", "tok-admin-a", f.a.Grant.ID, []string{f.b.ID, f.b.Grant.ID, "tenant-b"}},
			{"tenant-b", "tok-admin-b", f.b.Grant.ID, []string{f.a.ID, a2.ID, f.a.Grant.ID, "tenant-a"}},
		} {
			var alerts alertList
			r := f.call("GET", "/v1/tenants/"+tc.tid+"/alerts", tc.token, nil)
			wantJSON(t, tc.tid+"'s alerts", r, 200, &alerts)
			own := false
			for _, al := range alerts.Items {
				own = own || (al.Kind == connect.AlertNewNetwork && al.GrantID == tc.ownGrant)
			}
			if !own {
				t.Errorf("%s has no new_network alert of its own: %s", tc.tid, r.Body)
			}
			for _, s := range tc.foreign {
				if strings.Contains(string(r.Body), s) {
					t.Errorf("%s's alerts mention %s: %s", tc.tid, s, r.Body)
				}
			}
		}

		// Activity: each connection's holds its own grant's requests only;
		// A's refused Part A on its other connection is in that one's, and
		// B's refused attempts are in B's chain, not A's.
		runtest.Eventually(t, "A's refused request in the activity of A's second connection", func() bool {
			return slices.ContainsFunc(f.activity("tenant-a", "tok-admin-a", a2.ID), func(e activityEvent) bool {
				return e.Outcome == "denied" && e.Detail["code"] == "connection_not_found" && e.Detail["grant"] == f.a.Grant.ID
			})
		})
		for _, ac := range []struct {
			tid, token, conn, foreign string
		}{
			{"tenant-a", "tok-admin-a", f.a.ID, "grant:" + f.b.Grant.ID},
			{"tenant-a", "tok-admin-a", a2.ID, "grant:" + f.b.Grant.ID},
			{"tenant-b", "tok-admin-b", f.b.ID, "grant:" + f.a.Grant.ID},
		} {
			evs := f.activity(ac.tid, ac.token, ac.conn)
			if len(evs) == 0 {
				t.Errorf("%s's activity of %s is empty", ac.tid, ac.conn)
			}
			for _, e := range evs {
				if e.Principal == ac.foreign || e.TenantID != ac.tid {
					t.Errorf("%s's activity of %s holds a foreign event %+v", ac.tid, ac.conn, e)
				}
			}
		}
		runtest.Eventually(t, "B's refused attempt on A's connection in B's chain", func() bool {
			var page client.AuditPage
			f.ok("GET", "/v1/tenants/tenant-b/audit?action=connection.request", "tok-admin-b", nil, 200, &page)
			return slices.ContainsFunc(page.Items, func(e client.AuditEvent) bool {
				return e.Outcome == "denied" && e.Target == f.a.ID && e.Detail["code"] == "connection_not_found"
			})
		})
		for _, e := range auditEvents(t, f.env, client.AuditQuery{Tenant: "tenant-a"}) {
			if e.Principal == "grant:"+f.b.Grant.ID || strings.Contains(e.Principal, "root-b") {
				t.Errorf("tenant-a's chain holds B's event %+v", e)
			}
		}
	})
}

// activityEvent is an event of a connection's activity.
type activityEvent struct {
	TenantID  string            `json:"tenant_id"`
	Principal string            `json:"principal"`
	Target    string            `json:"target"`
	Outcome   string            `json:"outcome"`
	SourceIP  string            `json:"source_ip"`
	Detail    map[string]string `json:"detail"`
}

// activity reads connection connID's activity (one page of up to 1000).
func (a *azEnv) activity(tid, token, connID string) []activityEvent {
	a.t.Helper()
	var page struct {
		Items []activityEvent `json:"items"`
	}
	a.ok("GET", "/v1/tenants/"+tid+"/connections/"+connID+"/activity?limit=1000", token, nil, 200, &page)
	return page.Items
}
