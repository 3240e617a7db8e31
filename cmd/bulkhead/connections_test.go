package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// thirdParty is a third-party API on loopback that answers only its
// current token.
type thirdParty struct {
	*httptest.Server
	mu    sync.Mutex
	token string
	paths []string // of the requests it answered
}

func newThirdParty(t *testing.T, token string) *thirdParty {
	tp := &thirdParty{token: token}
	tp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tp.mu.Lock()
		defer tp.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+tp.token {
			http.Error(w, `{"error":"bad token"}`, http.StatusUnauthorized)
			return
		}
		tp.paths = append(tp.paths, r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}))
	t.Cleanup(tp.Close)
	return tp
}

// setToken makes the API take another token only (its owner replaced it).
func (tp *thirdParty) setToken(token string) {
	tp.mu.Lock()
	tp.token = token
	tp.mu.Unlock()
}

// proxied sends GET path through the connections proxy with partA as the
// bearer token and returns the status and the problem code (or the body).
func proxied(t *testing.T, proxyURL, connection, path, partA string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, proxyURL+"/c/"+connection+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+partA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var problem client.Error
	if resp.StatusCode >= 400 && json.Unmarshal(body, &problem) == nil && problem.Code != "" {
		return resp.StatusCode, problem.Code
	}
	return resp.StatusCode, string(body)
}

// TestCLIConnections drives the connection commands against a real node
// and its proxy: a connection to a third party that takes only the real
// token, its Part A through the proxy, a second grant, rotation with a
// Part A, suspension and resumption, a token replacement, activity, the
// deletions, and another tenant's admin, who sees none of it.
func TestCLIConnections(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		const adminA, adminB = "tok-admin-acme", "tok-admin-globex"
		env := apitest.New(t, dsn, apitest.Options{TenantTokens: map[string]tenant.Context{
			adminA: {TenantID: "acme", Principal: "user:root-acme", Groups: []string{"admins"}},
			adminB: {TenantID: "globex", Principal: "user:root-globex", Groups: []string{"admins"}},
		}})
		const realToken, newToken = "sk_live_real-token-0123456789", "sk_live_replaced-token-9876543210"
		api := newThirdParty(t, realToken)
		dir := t.TempDir()
		tokenFile := filepath.Join(dir, "token")
		if err := os.WriteFile(tokenFile, []byte(realToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var printed strings.Builder // everything the commands printed
		// cli runs a command as token with stdin and returns what it printed.
		cli := func(token, stdin string, wantCode int, args ...string) string {
			t.Helper()
			code, out, errOut := runHere(stdin, append(args, "--addr", env.URL, "--token", token)...)
			printed.WriteString(out + errOut)
			if code != wantCode {
				t.Fatalf("bulkhead %s: exit %d; want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errOut)
			}
			return out + errOut
		}
		acme := func(wantCode int, args ...string) string {
			t.Helper()
			return cli(adminA, "", wantCode, append(args, "--tenant", "acme")...)
		}
		partAOf := regexp.MustCompile(`Part A[^\n]* of grant (grt_\S+) \(shown once; [^)]*\): (bhpa1\.\S+)`)
		// issued returns the grant ids and Part As a command printed.
		issued := func(out string, want int) (ids, partAs []string) {
			t.Helper()
			for _, m := range partAOf.FindAllStringSubmatch(out, -1) {
				ids, partAs = append(ids, m[1]), append(partAs, m[2])
			}
			if len(ids) != want {
				t.Fatalf("want %d Part As printed, got %d:\n%s", want, len(ids), out)
			}
			return ids, partAs
		}
		get := func(id string) client.Connection {
			t.Helper()
			var c client.Connection
			if out := acme(0, "connection", "get", id, "--output", "json"); json.Unmarshal([]byte(out), &c) != nil || c.ID != id {
				t.Fatalf("connection get --output json:\n%s", out)
			}
			return c
		}
		through := func(conn, partA string, wantStatus int, want string) {
			t.Helper()
			if status, got := proxied(t, env.ProxyURL, conn, "/things/1", partA); status != wantStatus || !strings.Contains(got, want) {
				t.Fatalf("GET {proxy}/c/%s/things/1: %d %s; want %d %s", conn, status, got, wantStatus, want)
			}
		}
		cli(apitest.AdminToken, "", 0, "tenant", "create", "acme")
		cli(apitest.AdminToken, "", 0, "tenant", "create", "globex")

		// Create: the table shows the connection, and the first grant's Part A once.
		out := acme(0, "connection", "create", "crm", "--upstream-url", api.URL+"/api", "--token-file", tokenFile,
			"--allow-method", "GET", "--allow-path", "/things", "--grant-name", "sync", "--sensitivity", "8")
		m := regexp.MustCompile(`(?m)^(con_\S+)\s+crm\s+` + regexp.QuoteMeta(api.URL) + `/api\s+bearer\s+GET\s+/things\s+8\s+-\s+1\s`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("connection create:\n%s", out)
		}
		conn := m[1]
		grants, partAs := issued(out, 1)
		g1, partA1 := grants[0], partAs[0]
		if !strings.HasPrefix(partA1, "bhpa1.acme."+g1+".") {
			t.Fatalf("Part A %q is not of grant %s of acme", partA1, g1)
		}
		through(conn, partA1, http.StatusOK, `{"path":"/api/things/1"}`)
		through(conn, realToken, http.StatusUnauthorized, "invalid_part_a") // the proxy takes Part As only
		if status, _ := proxied(t, env.ProxyURL, conn, "/other", partA1); status != http.StatusForbidden {
			t.Errorf("a path the connection does not allow: %d", status)
		}

		// List and get.
		if out = acme(0, "connection", "list"); !strings.Contains(out, conn) || !strings.Contains(out, "crm") {
			t.Errorf("connection list:\n%s", out)
		}
		if c := get(conn); c.Name != "crm" || c.TenantID != "acme" || c.Placement.Type != client.PlacementBearer ||
			!slices.Equal(c.AllowedMethods, []string{"GET"}) || !slices.Equal(c.AllowedPaths, []string{"/things"}) ||
			c.Alerts.Sensitivity != 8 || c.TokenVersion != 1 {
			t.Errorf("connection get: %+v", c)
		}

		// A second grant, with the token again; a wrong token is refused.
		out = acme(0, "connection", "grant", "create", conn, "--token-file", tokenFile, "--name", "reports")
		grants, partAs = issued(out, 1)
		g2, partA2 := grants[0], partAs[0]
		if !regexp.MustCompile(`(?m)^` + g2 + `\s+reports\s+active\s+false\s`).MatchString(out) {
			t.Errorf("grant create:\n%s", out)
		}
		through(conn, partA2, http.StatusOK, "/api/things/1")
		if out = cli(adminA, "not-the-token\n", 1, "connection", "grant", "create", conn, "--tenant", "acme", "--token-stdin"); !strings.Contains(out, "400 token_mismatch") {
			t.Errorf("grant create with a wrong token:\n%s", out)
		}

		// Rotation with the grant's current Part A: the old one is refused.
		partAFile := filepath.Join(dir, "part-a")
		if err := os.WriteFile(partAFile, []byte(partA1+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out = acme(0, "connection", "grant", "rotate", conn, g1, "--part-a-file", partAFile)
		grants, partAs = issued(out, 1)
		if grants[0] != g1 || partAs[0] == partA1 || !strings.Contains(out, "the old one no longer works") {
			t.Fatalf("grant rotate:\n%s", out)
		}
		oldPartA1, partA1 := partA1, partAs[0]
		through(conn, oldPartA1, http.StatusUnauthorized, "invalid_part_a")
		through(conn, partA1, http.StatusOK, "/api/things/1")
		if out = acme(1, "connection", "grant", "rotate", conn, g1, "--part-a-file", partAFile); !strings.Contains(out, "400 invalid_part_a") {
			t.Errorf("rotate with a Part A that no longer works:\n%s", out)
		}

		// Suspension refuses the grant's Part A, resumption lets it in again;
		// the other grant is untouched.
		out = acme(0, "connection", "grant", "suspend", conn, g1, "--reason", "laptop stolen")
		if !regexp.MustCompile(`(?m)^` + g1 + `\s+sync\s+suspended\s+false\s+\S+\s+\S+\s+laptop stolen$`).MatchString(out) {
			t.Errorf("grant suspend:\n%s", out)
		}
		through(conn, partA1, http.StatusForbidden, "grant_suspended")
		through(conn, partA2, http.StatusOK, "/api/things/1")
		if out = acme(0, "connection", "grant", "resume", conn, g1); !regexp.MustCompile(`(?m)^` + g1 + `\s+sync\s+active\s`).MatchString(out) {
			t.Errorf("grant resume:\n%s", out)
		}
		through(conn, partA1, http.StatusOK, "/api/things/1")
		out = acme(0, "connection", "grant", "list", conn)
		if !regexp.MustCompile(`(?m)^`+g1+`\s+sync\s+active\s`).MatchString(out) || !regexp.MustCompile(`(?m)^`+g2+`\s+reports\s+active\s`).MatchString(out) {
			t.Errorf("grant list:\n%s", out)
		}

		// Another tenant's admin sees nothing of acme's connection.
		for _, args := range [][]string{
			{"connection", "get", conn, "--tenant", "acme"},
			{"connection", "get", conn, "--tenant", "globex"},
			{"connection", "grant", "list", conn, "--tenant", "globex"},
			{"connection", "grant", "suspend", conn, g1, "--tenant", "globex"},
			{"connection", "delete", conn, "--tenant", "globex"},
			{"connection", "activity", conn, "--tenant", "globex"},
		} {
			if out := cli(adminB, "", 1, args...); !strings.Contains(out, "404 ") {
				t.Errorf("globex's admin: bulkhead %s:\n%s", strings.Join(args, " "), out)
			}
		}
		if out = cli(adminB, "", 0, "connection", "list", "--tenant", "globex"); strings.Contains(out, conn) {
			t.Errorf("globex's connections list acme's:\n%s", out)
		}
		through(conn, partA2, http.StatusOK, "/api/things/1") // still working

		// The proxied requests are the connection's activity (audited in
		// the background); there was no alert.
		var activity client.AuditPage
		runtest.Eventually(t, "the proxied requests in the activity", func() bool {
			activity = client.AuditPage{}
			return json.Unmarshal([]byte(acme(0, "connection", "activity", conn, "--output", "json")), &activity) == nil &&
				len(activity.Items) >= 7
		})
		if e := activity.Items[0]; e.Action != "connection.request" || e.Target != conn || e.Detail["path"] == "" {
			t.Errorf("activity: %+v", e)
		}
		if out = acme(0, "connection", "activity", conn, "--limit", "2"); !regexp.MustCompile(`(?m)^\S+\s+grt_\S+\s+GET\s+/things/1\s+200\s+success\s+-\s`).MatchString(out) ||
			!strings.Contains(out, "more: --cursor ") {
			t.Errorf("connection activity (table):\n%s", out)
		}
		if out = acme(0, "connection", "alerts", "--connection", conn); strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "ID ") {
			t.Errorf("connection alerts (none):\n%s", out)
		}

		// The third party replaced the token: the update re-splits both
		// grants; the old Part As stop working. Settings not given stay.
		api.setToken(newToken)
		through(conn, partA1, http.StatusUnauthorized, "bad token") // the upstream's own refusal
		out = cli(adminA, newToken+"\n", 0, "connection", "update", conn, "--tenant", "acme", "--token-stdin", "--allow-path", "any")
		grants, partAs = issued(out, 2)
		if !slices.Equal(slices.Sorted(slices.Values(grants)), slices.Sorted(slices.Values([]string{g1, g2}))) || !strings.Contains(out, "new Part A of grant") {
			t.Fatalf("connection update --token-stdin:\n%s", out)
		}
		for i, g := range grants {
			old := map[string]string{g1: partA1, g2: partA2}[g]
			through(conn, old, http.StatusUnauthorized, "invalid_part_a")
			through(conn, partAs[i], http.StatusOK, "/api/things/1")
		}
		if status, _ := proxied(t, env.ProxyURL, conn, "/other", partAs[0]); status != http.StatusOK {
			t.Errorf("--allow-path any: a path outside /things: %d", status)
		}
		if c := get(conn); c.TokenVersion != 2 || len(c.AllowedPaths) != 0 || !slices.Equal(c.AllowedMethods, []string{"GET"}) || c.Alerts.Sensitivity != 8 {
			t.Errorf("after the update: %+v", c)
		}
		if c := get(conn); c.Name != "crm" {
			t.Errorf("after the update, the name: %q", c.Name)
		}
		acme(0, "connection", "update", conn, "--sensitivity", "3", "--name", "crm-eu")
		if c := get(conn); c.Name != "crm-eu" || c.Alerts.Sensitivity != 3 || c.TokenVersion != 2 {
			t.Errorf("update --sensitivity --name: %+v", c)
		}

		// Deletions: a grant, then the connection; their Part As stop working.
		i2 := slices.Index(grants, g2)
		if out = acme(0, "connection", "grant", "delete", conn, g2); !strings.Contains(out, "deleted grant "+g2) {
			t.Errorf("grant delete:\n%s", out)
		}
		through(conn, partAs[i2], http.StatusUnauthorized, "invalid_part_a")
		through(conn, partAs[1-i2], http.StatusOK, "/api/things/1")
		if out = acme(0, "connection", "delete", conn); !strings.Contains(out, "deleted connection "+conn) {
			t.Errorf("connection delete:\n%s", out)
		}
		through(conn, partAs[1-i2], http.StatusUnauthorized, "invalid_part_a")
		if out = acme(1, "connection", "get", conn); !strings.Contains(out, "404 connection_not_found") {
			t.Errorf("get a deleted connection:\n%s", out)
		}
		if out = acme(0, "connection", "list"); strings.Contains(out, conn) {
			t.Errorf("list after delete:\n%s", out)
		}

		// No command printed a token.
		for _, tok := range []string{realToken, newToken} {
			if strings.Contains(printed.String(), tok) {
				t.Errorf("a command printed the upstream token %q", tok)
			}
		}
	})
}

// TestConnectionUsage checks the usage errors (exit 2) and help of the
// connection commands, which need no server.
func TestConnectionUsage(t *testing.T) {
	t.Setenv("BULKHEAD_TOKEN", "unused-token-0123456789abcdef")
	t.Setenv("BULKHEAD_ADDR", "http://127.0.0.1:1") // nothing listens: no call may be made
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run1 := func(args ...string) (int, string, string) { return runHere("", args...) }
	create := []string{"connection", "create", "crm", "--tenant", "acme", "--upstream-url", "https://api.example.com"}
	for _, c := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"connection"}, "connection needs a command"},
		{[]string{"connection", "fly"}, `unknown connection command "fly"`},
		{[]string{"connection", "list"}, "--tenant T is required"},
		{[]string{"connection", "get", "--tenant", "acme"}, "takes 1 argument(s), got 0"},
		{create, "create needs --upstream-url URL and the upstream token"},
		{slices.Concat(create, []string{"--token", "x", "--token-stdin"}), "--token-stdin: nothing to read in stdin"},
		{slices.Concat(create, []string{"--token-file", tokenFile, "--token-stdin"}), "exclude each other"},
		{slices.Concat(create, []string{"--token-file", tokenFile, "--placement", "cookie:x"}), "--placement must be bearer, header:NAME or query:NAME"},
		{slices.Concat(create, []string{"--token-file", tokenFile, "--placement", "header"}), "--placement must be"},
		{slices.Concat(create, []string{"--token-file", tokenFile, "--part-a-file", tokenFile}), "not defined: -part-a-file"},
		{[]string{"connection", "update", "con_x", "--tenant", "acme"}, "update needs something to change"},
		{[]string{"connection", "grant"}, "connection grant needs a command"},
		{[]string{"connection", "grant", "fly", "con_x"}, `unknown connection grant command "fly"`},
		{[]string{"connection", "grant", "create", "con_x", "--tenant", "acme"}, "create needs the upstream token"},
		{[]string{"connection", "grant", "rotate", "con_x", "grt_x", "--tenant", "acme"}, "rotate needs the upstream token"},
		{[]string{"connection", "grant", "rotate", "con_x", "--tenant", "acme", "--token-file", tokenFile}, "takes 2 argument(s), got 1"},
		{[]string{"connection", "grant", "resume", "con_x", "grt_x", "--tenant", "acme", "--reason", "r"}, "not defined: -reason"},
	} {
		code, _, errOut := run1(c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("bulkhead %s: exit %d; want 2 (usage) and %q\n%s", strings.Join(c.args, " "), code, c.want, errOut)
		}
	}
	for _, args := range [][]string{{"connection", "--help"}, {"connection", "help"}} {
		if code, out, _ := run1(args...); code != 0 || !strings.Contains(out, "Usage:\n  bulkhead connection create NAME") {
			t.Errorf("bulkhead %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	if code, out, _ := run1("connection", "grant", "-h"); code != 0 || !strings.Contains(out, "Usage:\n  bulkhead connection grant create CONNECTION") {
		t.Errorf("bulkhead connection grant -h: exit %d\n%s", code, out)
	}
	if code, _, errOut := run1("connection", "grant", "rotate", "--help"); code != 0 || !strings.Contains(errOut, "-part-a-file") {
		t.Errorf("bulkhead connection grant rotate --help: exit %d\n%s", code, errOut)
	}
	if code, out, _ := run1("help"); code != 0 || !strings.Contains(out, "bulkhead connection <command>") {
		t.Errorf("help lacks the connection commands:\n%s", out)
	}
}
