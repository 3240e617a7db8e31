package httpapi_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/connect"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// connCase is a connection request that must be refused.
type connCase struct {
	name   string
	mod    func(b map[string]any) // changes a well-formed body
	raw    string                 // or: the body as sent
	status int
	code   string
	field  string
	secret string // a further value the answer must not hold
}

func setField(k string, v any) func(map[string]any) { return func(b map[string]any) { b[k] = v } }

func dropField(k string) func(map[string]any) { return func(b map[string]any) { delete(b, k) } }

func withPlacement(typ, name string) func(map[string]any) {
	return setField("placement", map[string]string{"type": typ, "name": name})
}

func badURL(u string) connCase {
	return connCase{name: "upstream " + u, mod: setField("upstream_url", u), status: 400, code: "invalid_upstream_url", field: "upstream_url"}
}

func badToken(name string, tok any) connCase {
	return connCase{name: name, mod: setField("token", tok), status: 400, code: "invalid_token_value", field: "token"}
}

func badPlacement(typ, name, field string) connCase {
	return connCase{name: "placement " + typ + " " + name, mod: withPlacement(typ, name), status: 400, code: "invalid_placement", field: field}
}

func unknownField(k string) connCase {
	return connCase{name: "unknown field " + k, mod: setField(k, "x"), status: 400, code: "unknown_field", field: k}
}

// connWrites are the stored connections and grants, read with SQL.
func (a *azEnv) connWrites() string {
	a.t.Helper()
	return dumpTables(a.t, a.env.DB, "connect_connections", "connect_grants")
}

// refuse sends each case (body: base changed by the case) and checks the
// problem, that no secret is echoed, and that nothing was written.
func (f *connFixture) refuse(method, path string, base func() map[string]any, cases []connCase, secrets ...string) {
	t := f.t
	t.Helper()
	before, state := f.connWrites(), f.state("tenant-a", "tok-admin-a", f.a.ID)
	for _, c := range cases {
		var body any = c.raw
		hidden := append(slices.Clip(secrets), c.secret)
		if c.raw == "" {
			b := base()
			if c.mod != nil {
				c.mod(b)
			}
			body = b
			if s, ok := b["token"].(string); ok && len(s) > 3 {
				hidden = append(hidden, s)
			}
		}
		what := method + " " + path + " " + c.name
		r := f.call(method, path, "tok-admin-a", body)
		wantProblem(t, what, r, c.status, c.code, c.field)
		noEchoAll(t, what, r, hidden...)
		if got := f.connWrites(); got != before {
			t.Errorf("%s: the stored connections or grants changed", what)
			before = got
		}
		if got := f.state("tenant-a", "tok-admin-a", f.a.ID); got != state {
			t.Errorf("%s: tenant-a's connection, grants or listing changed:\nbefore %s\nafter  %s", what, state, got)
			state = got
		}
	}
	f.proxyWorks("A's grant after "+method+" "+path, f.a.ID, f.a.Grant.PartA, f.upA)
}

// TestConnectionBadInput: a connection, its update, a grant or a rotation
// with bad input gets a problem with a stable code and field, echoes no
// secret and writes nothing.
func TestConnectionBadInput(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newConnFixture(t, dsn, apitest.Options{})
		tok := f.tokenA
		host := strings.TrimPrefix(f.upA.URL, "http://")
		// A second connection of A: its name is taken, its Part A is not the first's.
		other := f.createConn("tenant-a", "tok-admin-a", map[string]any{"name": "taken", "upstream_url": f.upA.URL, "token": tok})
		secrets := append(f.secrets(), other.Grant.PartA)

		create := func() map[string]any {
			return map[string]any{"name": "new-conn", "upstream_url": f.upA.URL + "/api", "token": tok, "placement": map[string]string{"type": "bearer"}}
		}
		userinfo := badURL("http://user:hunter2-pass@" + host + "/api")
		userinfo.secret = "hunter2-pass"
		createCases := []connCase{
			userinfo,
			badURL("https://apikey@" + host),
			badURL("ftp://" + host + "/api"),
			badURL("file:///etc/passwd"),
			badURL("gopher://" + host),
			badURL("http:///api"),
			badURL("https://"),
			badURL("http://:8080/api"),
			badURL(host + "/api"),
			badURL(""),
			badURL(f.upA.URL + "/api?key=1"),
			badURL(f.upA.URL + "/api?"),
			badURL(f.upA.URL + "/api#frag"),
			badURL(f.upA.URL + "#"),
			badURL(f.upA.URL + "/api/../admin"),
			badURL("http://127.0.0.1:0/api"),
			badURL("http://127.0.0.1:99999/api"),
			badURL("http://" + host + "/" + strings.Repeat("a", 2048)),
			{name: "no token", mod: dropField("token"), status: 400, code: "invalid_token_value", field: "token"},
			badToken("empty token", ""),
			badToken("token over 8192 bytes", strings.Repeat("t", connect.MaxTokenBytes+1)),
			badToken("token with a space", "sk_live abc"),
			badToken("token with CR LF", "sk_live_abc\r\nX-Injected: 1"),
			badToken("token with LF", "sk_live_abc\nX-Injected: 1"),
			badToken("token with a tab", "sk_live\tabc"),
			badToken("token with NUL", "sk_live\x00abc"),
			badToken("token not ASCII", "sk_live_tökén"),
			{name: "token a number", mod: setField("token", 12345), status: 400, code: "invalid_field_type", field: "token"},
			badPlacement("cookie", "", "placement.type"),
			badPlacement("basic", "", "placement.type"),
			badPlacement("bearer", "X-Api-Key", "placement.name"),
			badPlacement("header", "Host", "placement.name"),
			badPlacement("header", "host", "placement.name"),
			badPlacement("header", "Content-Length", "placement.name"),
			badPlacement("header", "Cookie", "placement.name"),
			badPlacement("header", "Transfer-Encoding", "placement.name"),
			badPlacement("header", "X-Forwarded-For", "placement.name"),
			badPlacement("header", "", "placement.name"),
			badPlacement("header", "X Api Key", "placement.name"),
			badPlacement("header", "X-Api-Key:", "placement.name"),
			badPlacement("query", "", "placement.name"),
			badPlacement("query", "api key", "placement.name"),
			badPlacement("query", "api=key", "placement.name"),
			badPlacement("query", "api&key", "placement.name"),
			badPlacement("query", strings.Repeat("k", 65), "placement.name"),
			{name: "method TRACE", mod: setField("allowed_methods", []string{"GET", "TRACE"}), status: 400, code: "invalid_methods", field: "allowed_methods"},
			{name: "method CONNECT", mod: setField("allowed_methods", []string{"CONNECT"}), status: 400, code: "invalid_methods", field: "allowed_methods"},
			{name: "method unknown", mod: setField("allowed_methods", []string{"FETCH"}), status: 400, code: "invalid_methods", field: "allowed_methods"},
			{name: "path without slash", mod: setField("allowed_paths", []string{"v1/contacts"}), status: 400, code: "invalid_paths", field: "allowed_paths"},
			{name: "path with ..", mod: setField("allowed_paths", []string{"/v1/../admin"}), status: 400, code: "invalid_paths", field: "allowed_paths"},
			{name: "path with .", mod: setField("allowed_paths", []string{"/v1/./x"}), status: 400, code: "invalid_paths", field: "allowed_paths"},
			{name: "path with escape", mod: setField("allowed_paths", []string{"/v1/%2e%2e/admin"}), status: 400, code: "invalid_paths", field: "allowed_paths"},
			{name: "path with query", mod: setField("allowed_paths", []string{"/v1?x=1"}), status: 400, code: "invalid_paths", field: "allowed_paths"},
			{name: "sensitivity 0.5", mod: setField("alerts", map[string]any{"sensitivity": 0.5}), status: 400, code: "invalid_sensitivity", field: "alerts.sensitivity"},
			{name: "sensitivity 100", mod: setField("alerts", map[string]any{"sensitivity": 100}), status: 400, code: "invalid_sensitivity", field: "alerts.sensitivity"},
			{name: "sensitivity negative", mod: setField("alerts", map[string]any{"sensitivity": -4}), status: 400, code: "invalid_sensitivity", field: "alerts.sensitivity"},
			{name: "webhook with userinfo", mod: setField("alerts", map[string]any{"webhook_url": "https://u:hook-pass@" + host}),
				status: 400, code: "invalid_upstream_url", field: "alerts.webhook_url", secret: "hook-pass"},
			{name: "duplicate name", mod: setField("name", "taken"), status: 409, code: "connection_exists", field: "name"},
			{name: "the first connection's name", mod: setField("name", "crm-of-a"), status: 409, code: "connection_exists", field: "name"},
			{name: "no name", mod: dropField("name"), status: 400, code: "invalid_name", field: "name"},
			{name: "bad name", mod: setField("name", "my conn"), status: 400, code: "invalid_name", field: "name"},
			{name: "bad grant name", mod: setField("grant", map[string]any{"name": "my grant"}), status: 400, code: "invalid_name", field: "grant.name"},
			unknownField("tenant_id"),
			unknownField("id"),
			unknownField("token_version"),
			unknownField("upstream"),
			{name: "not an object", raw: `["x"]`, status: 400, code: "invalid_json"},
			{name: "truncated", raw: `{"name":"x","token":"` + tok, status: 400, code: "invalid_json"},
		}
		f.refuse("POST", "/v1/tenants/tenant-a/connections", create, createCases, secrets...)

		patch := func() map[string]any { return map[string]any{} }
		conn := "/v1/tenants/tenant-a/connections/" + f.a.ID
		patchCases := []connCase{
			{name: "upstream without token", mod: setField("upstream_url", f.upB.URL), status: 400, code: "token_required", field: "upstream_url"},
			{name: "same upstream without token", mod: setField("upstream_url", f.upA.URL+"/api"), status: 400, code: "token_required", field: "upstream_url"},
			{name: "bad upstream with token", mod: func(b map[string]any) { b["upstream_url"], b["token"] = "ftp://"+host, tok },
				status: 400, code: "invalid_upstream_url", field: "upstream_url"},
			{name: "upstream with userinfo", mod: func(b map[string]any) { b["upstream_url"], b["token"] = "http://u:patch-pass@"+host, tok },
				status: 400, code: "invalid_upstream_url", field: "upstream_url", secret: "patch-pass"},
			badToken("empty token", ""),
			badToken("token with CR LF", "sk_live\r\nX: 1"),
			badToken("token over 8192 bytes", strings.Repeat("t", connect.MaxTokenBytes+1)),
			badPlacement("header", "Cookie", "placement.name"),
			badPlacement("query", "a b", "placement.name"),
			{name: "method TRACE", mod: setField("allowed_methods", []string{"TRACE"}), status: 400, code: "invalid_methods", field: "allowed_methods"},
			{name: "path without slash", mod: setField("allowed_paths", []string{"admin"}), status: 400, code: "invalid_paths", field: "allowed_paths"},
			{name: "sensitivity 0.5", mod: setField("alerts", map[string]any{"sensitivity": 0.5}), status: 400, code: "invalid_sensitivity", field: "alerts.sensitivity"},
			{name: "taken name", mod: setField("name", "taken"), status: 409, code: "connection_exists", field: "name"},
			{name: "bad name", mod: setField("name", ""), status: 400, code: "invalid_name", field: "name"},
			unknownField("tenant_id"),
			unknownField("token_version"),
		}
		f.refuse("PATCH", conn, patch, patchCases, secrets...)

		grantCases := []connCase{
			{name: "empty", status: 400, code: "token_required", field: "token"},
			{name: "name only", mod: setField("name", "second"), status: 400, code: "token_required", field: "token"},
			{name: "wrong token", mod: setField("token", "sk_live_not-the-token"), status: 400, code: "token_mismatch", field: "token"},
			{name: "B's token", mod: setField("token", f.tokenB), status: 400, code: "token_mismatch", field: "token"},
			{name: "token and Part A", mod: func(b map[string]any) { b["token"], b["part_a"] = tok, f.a.Grant.PartA },
				status: 400, code: "invalid_token_source", field: "token"},
			{name: "bad token", mod: setField("token", "a b"), status: 400, code: "invalid_token_value", field: "token"},
			{name: "garbage Part A", mod: setField("part_a", "bhpa1.garbage"), status: 400, code: "invalid_part_a", field: "part_a"},
			{name: "another connection's Part A", mod: setField("part_a", other.Grant.PartA), status: 400, code: "invalid_part_a", field: "part_a"},
			{name: "B's Part A", mod: setField("part_a", f.b.Grant.PartA), status: 400, code: "invalid_part_a", field: "part_a"},
			{name: "bad name", mod: func(b map[string]any) { b["token"], b["name"] = tok, "my grant" }, status: 400, code: "invalid_name", field: "grant.name"},
			unknownField("status"),
		}
		f.refuse("POST", conn+"/grants", patch, grantCases, secrets...)
		rotateCases := slices.DeleteFunc(slices.Clone(grantCases), func(c connCase) bool {
			return c.field == "grant.name" || c.name == "name only" || c.code == "unknown_field"
		})
		rotateCases = append(rotateCases, unknownField("name"))
		f.refuse("POST", conn+"/grants/"+f.a.Grant.ID+"/rotate", patch, rotateCases, secrets...)

		// A connection with a token of exactly 8192 bytes is accepted.
		long := strings.Repeat("L", connect.MaxTokenBytes)
		f.createConn("tenant-a", "tok-admin-a", map[string]any{"name": "longest-token", "upstream_url": f.upA.URL, "token": long})

		// The audit of the refused requests holds no secret either.
		f.env.Audit.Close() // flush the queued records
		trail := dumpTables(t, f.env.DB, "audit_events")
		for _, s := range append(slices.Concat(secretForms(tok), secretForms(f.tokenB)), other.Grant.PartA, f.a.Grant.PartA, "hunter2-pass", "hook-pass", long) {
			if strings.Contains(trail, s) {
				t.Errorf("the audit trail holds a secret (%.40q)", s)
			}
		}
	})
}

// rawExchange writes req on a new connection to the proxy and reads the
// answers until the proxy closes it.
func rawExchange(t *testing.T, proxyURL, req string) []int {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(proxyURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	var statuses []int
	br := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return statuses
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
}

// paths are the paths of the requests the upstream received.
func (u *upstream) paths() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, r := range u.seen {
		out = append(out, r.URL.Path)
	}
	return out
}

// proxyCase is a proxied request that must be refused before it reaches
// the upstream.
type proxyCase struct {
	name   string
	method string
	path   string // after /c/{connection}
	auth   string // the Authorization header
	header http.Header
	status int
	code   string
}

// TestConnectionProxyBadInput: the proxy refuses what a grant may not send
// with a problem and a stable code, before the upstream is called; an
// upstream that hangs, is down or redirects is answered for; each refusal
// is in the connection's activity.
func TestConnectionProxyBadInput(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newConnFixture(t, dsn, apitest.Options{ProxyUpstreamTimeout: 300 * time.Millisecond})
		tok := f.tokenA
		strict := f.createConn("tenant-a", "tok-admin-a", map[string]any{"name": "strict", "upstream_url": f.upA.URL + "/api", "token": tok,
			"allowed_methods": []string{"GET", "POST"}, "allowed_paths": []string{"/v1/contacts"}})
		partA := strict.Grant.PartA
		gone := f.createGrant("tenant-a", strict.ID, map[string]any{"token": tok})
		if r := f.call("DELETE", "/v1/tenants/tenant-a/connections/"+strict.ID+"/grants/"+gone.ID, "tok-admin-a", nil); r.Status != 204 {
			t.Fatalf("delete grant: %d %s", r.Status, r.Body)
		}
		secrets := append(f.secrets(), partA, gone.PartA)
		bearer := "Bearer " + partA
		lastDot := strings.LastIndex(partA, ".")
		bigHeaders := http.Header{}
		for i := range 40 {
			bigHeaders.Set(fmt.Sprintf("X-Filler-%d", i), strings.Repeat("f", 1000))
		}
		badAuth := func(name, auth string) proxyCase {
			return proxyCase{name, "GET", "/v1/contacts", auth, nil, http.StatusUnauthorized, "invalid_part_a"}
		}
		badPath := func(name, path string) proxyCase {
			return proxyCase{name, "GET", path, bearer, nil, http.StatusBadRequest, "invalid_path"}
		}
		outside := func(name, path string) proxyCase {
			return proxyCase{name, "GET", path, bearer, nil, http.StatusForbidden, "path_not_allowed"}
		}
		cases := []proxyCase{
			badAuth("no Authorization", ""),
			badAuth("Basic", "Basic "+partA),
			badAuth("bearer without token", "Bearer "),
			badAuth("the upstream token", "Bearer "+tok),
			badAuth("Part A without pad", "Bearer "+partA[:lastDot]),
			badAuth("Part A with empty pad", "Bearer "+partA[:lastDot+1]),
			badAuth("Part A pad not base64url", "Bearer "+partA[:lastDot+1]+"!!!!"),
			badAuth("Part A pad cut short", bearer[:len(bearer)-4]),
			badAuth("Part A extra segment", bearer+".x"),
			badAuth("Part A bad grant id", "Bearer bhpa1.tenant-a.grt_x."+partA[lastDot+1:]),
			badAuth("Part A other prefix", "Bearer bhpa2"+strings.TrimPrefix(partA, "bhpa1")),
			badAuth("Part A of a deleted grant", "Bearer "+gone.PartA),
			{"method DELETE", "DELETE", "/v1/contacts", bearer, nil, 403, "method_not_allowed"},
			{"method PUT", "PUT", "/v1/contacts/1", bearer, nil, 403, "method_not_allowed"},
			outside("path outside", "/v1/admin"),
			outside("path sharing the prefix", "/v1/contactsX"),
			outside("root path", "/"),
			outside("encoded slash outside", "/v1%2Fadmin"),
			badPath("dot dot", "/v1/contacts/../admin"),
			badPath("dot", "/v1/contacts/./1"),
			badPath("escaped dot dot", "/v1/contacts/%2e%2e/admin"),
			badPath("escaped DOT DOT", "/v1/contacts/%2E%2E/admin"),
			badPath("half-escaped dot dot", "/v1/contacts/.%2e/admin"),
			badPath("escaped slashes and dot dot", "/v1/contacts%2F..%2Fadmin"),
			badPath("NUL", "/v1/contacts/%00"),
			{"one header over 32 KiB", "GET", "/v1/contacts", bearer, http.Header{"X-Big": {strings.Repeat("b", 33<<10)}}, 431, "headers_too_large"},
			{"headers over 32 KiB together", "GET", "/v1/contacts", bearer, bigHeaders, 431, "headers_too_large"},
			{"websocket upgrade", "GET", "/v1/contacts", bearer, http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"},
				"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Version": {"13"}}, 400, "upgrade_not_supported"},
		}
		for _, c := range cases {
			hits := f.upA.hits.Load()
			r := send(t, f.env.ProxyURL, call{method: c.method, path: "/c/" + strict.ID + c.path, auth: c.auth, header: c.header})
			wantProblem(t, c.name, r, c.status, c.code, "")
			noEchoAll(t, c.name, r, secrets...)
			if f.upA.hits.Load() != hits {
				t.Errorf("%s: the refused request reached the upstream", c.name)
			}
		}
		// What the grant may do goes through (the refusals were not a broken setup).
		for _, m := range []string{"GET", "POST"} {
			if r := send(t, f.env.ProxyURL, call{method: m, path: "/c/" + strict.ID + "/v1/contacts/1", auth: bearer}); r.Status != 200 {
				t.Fatalf("%s within the grant: %d %s", m, r.Status, r.Body)
			}
		}

		// Smuggling: raw requests framed two ways. Whatever Go's server makes
		// of them, the upstream gets at most the one outer request (on the
		// allowed path), never the request hidden in its body.
		host := strings.TrimPrefix(f.env.ProxyURL, "http://")
		hidden := "GET /c/" + strict.ID + "/v1/admin HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: " + bearer + "\r\n\r\n" +
			"GET /api/v1/admin HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
		outer := "POST /c/" + strict.ID + "/v1/contacts HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: " + bearer + "\r\n"
		closing := "GET /healthz HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n"
		chunk := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(hidden), hidden)
		smuggling := []struct {
			name, req string
			want      []int // what Go's server answers, in order
		}{
			{"CL.TE: the hidden request after the last chunk",
				outer + fmt.Sprintf("Content-Length: %d\r\n", 5+len(hidden)) + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden + closing,
				[]int{200, 403, 404, 200}},
			{"TE.CL: the hidden request in a chunk, a short Content-Length",
				outer + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + chunk + closing,
				[]int{200, 200}},
			{"two Content-Lengths",
				outer + fmt.Sprintf("Content-Length: 0\r\nContent-Length: %d\r\n\r\n", len(hidden)) + hidden + closing,
				[]int{400}},
			{"obfuscated Transfer-Encoding",
				outer + fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding: xchunked\r\n\r\n", len(hidden)) + hidden + closing,
				[]int{501}},
			{"two Transfer-Encodings",
				outer + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n" + chunk + closing,
				[]int{501}},
			{"Transfer-Encoding with a space before the colon",
				outer + fmt.Sprintf("Content-Length: %d\r\nTransfer-Encoding : chunked\r\n\r\n", len(hidden)) + hidden + closing,
				[]int{400}},
		}
		for _, s := range smuggling {
			before := len(f.upA.paths())
			got := rawExchange(t, f.env.ProxyURL, s.req)
			if !slices.Equal(got, s.want) {
				t.Errorf("%s: answers %v, want %v", s.name, got, s.want)
			}
			seen := f.upA.paths()[before:]
			if len(seen) > 1 {
				t.Errorf("%s: the upstream got %d requests for one proxied request: %v", s.name, len(seen), seen)
			}
			for _, p := range seen {
				if p != "/api/v1/contacts" {
					t.Errorf("%s: the upstream got a request for %s", s.name, p)
				}
			}
		}

		// Upstreams that hang, are down, or redirect elsewhere.
		hang := newUpstream(t, tok, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		down := "http://" + ln.Addr().String()
		ln.Close()
		elsewhere := newUpstream(t, "nobody", nil)
		redirect := newUpstream(t, tok, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", elsewhere.URL+"/landing")
			w.WriteHeader(http.StatusFound)
		})
		// A redirect that keeps the request's query, as many servers' do:
		// with the token in the query, the Location holds it.
		redirectQuery := newUpstream(t, tok, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", elsewhere.URL+r.URL.RequestURI())
			w.WriteHeader(http.StatusMovedPermanently)
		})
		hangC := f.createConn("tenant-a", "tok-admin-a", map[string]any{"name": "hangs", "upstream_url": hang.URL, "token": tok})
		downC := f.createConn("tenant-a", "tok-admin-a", map[string]any{"name": "down", "upstream_url": down, "token": tok})
		redirC := f.createConn("tenant-a", "tok-admin-a", map[string]any{"name": "redirects", "upstream_url": redirect.URL, "token": tok})
		redirQC := f.createConn("tenant-a", "tok-admin-a", map[string]any{"name": "redirects-query", "upstream_url": redirectQuery.URL, "token": tok,
			"placement": map[string]string{"type": "query", "name": "api_key"}})
		secrets = append(secrets, hangC.Grant.PartA, downC.Grant.PartA, redirC.Grant.PartA, redirQC.Grant.PartA)
		if q := url.QueryEscape(tok); q != tok {
			secrets = append(secrets, q)
		}

		start := time.Now()
		r := f.viaProxy("GET", "/c/"+hangC.ID+"/slow", hangC.Grant.PartA, nil)
		wantProblem(t, "hanging upstream", r, http.StatusGatewayTimeout, "upstream_timeout", "")
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("hanging upstream: answered after %v", d)
		}
		noEchoAll(t, "hanging upstream", r, secrets...)
		r = f.viaProxy("GET", "/c/"+downC.ID+"/x", downC.Grant.PartA, nil)
		wantProblem(t, "upstream down", r, http.StatusBadGateway, "upstream_unreachable", "")
		noEchoAll(t, "upstream down", r, secrets...)

		for _, rc := range []struct {
			name     string
			conn     connCreated
			status   int
			location string
		}{
			{"redirect elsewhere", redirC, http.StatusFound, elsewhere.URL + "/landing"},
			{"redirect keeping the query", redirQC, http.StatusMovedPermanently, ""},
		} {
			r := f.viaProxy("GET", "/c/"+rc.conn.ID+"/next?page=2", rc.conn.Grant.PartA, nil)
			if r.Status != rc.status {
				t.Errorf("%s: status %d, want %d (passed back, not followed): %s", rc.name, r.Status, rc.status, r.Body)
			}
			noEchoAll(t, rc.name, r, secrets...)
			if loc := r.Header.Get("Location"); !strings.HasPrefix(loc, elsewhere.URL+"/") || (rc.location != "" && loc != rc.location) {
				t.Errorf("%s: Location %q, want %q", rc.name, loc, rc.location)
			}
		}
		if n := elsewhere.hits.Load(); n != 0 {
			t.Errorf("the host redirected to got %d requests", n)
		}

		// Each refusal is in the connection's activity, with its code.
		for _, w := range []struct {
			conn    string
			outcome string
			codes   []string
		}{
			{strict.ID, "denied", []string{"method_not_allowed", "path_not_allowed"}},
			{strict.ID, "failure", []string{"headers_too_large", "upgrade_not_supported"}},
			{hangC.ID, "failure", []string{"upstream_timeout"}},
			{downC.ID, "failure", []string{"upstream_unreachable"}},
		} {
			for _, code := range w.codes {
				runtest.Eventually(t, code+" in the activity", func() bool {
					return slices.ContainsFunc(f.activity("tenant-a", "tok-admin-a", w.conn), func(e activityEvent) bool {
						return e.Outcome == w.outcome && e.Detail["code"] == code && e.Principal == "grant:"+e.Detail["grant"] && e.Detail["grant"] != ""
					})
				})
			}
		}
	})
}
