package console_test

// Hostile tests of the console: what an attacker tries against the
// sign-in flow, the session, the routes, the headers and the templates.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/console/consoletest"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// syncBuffer collects a node's logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type hostileEnv struct {
	env  *apitest.Env
	clk  *clock.Fake
	logs *syncBuffer
}

// hostileSetup starts a node with tenants acme and globex, ann (admin of
// acme), bob (a plain user of acme) and carl (admin of globex), whose
// passwords are their own (no change at the first sign-in).
func hostileSetup(t *testing.T, dsn string) *hostileEnv {
	t.Helper()
	logs := &syncBuffer{}
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Minute))
	env := apitest.New(t, dsn, apitest.Options{Argon2: fast, Clock: clk,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx := context.Background()
	for _, id := range []string{"acme", "globex"} {
		if _, err := env.Admin.CreateTenant(ctx, client.CreateTenant{ID: id, Name: strings.ToUpper(id), Tier: "standard",
			Domains: []string{id + ".example"}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	op := tenant.Actor{Principal: "operator:test"}
	for _, u := range []struct {
		tid, email string
		groups     []string
	}{{"acme", "ann@acme.example", []string{"admins"}}, {"acme", "bob@acme.example", nil}, {"globex", "carl@globex.example", []string{"admins"}}} {
		if _, err := env.Directory.CreateUser(ctx, tenant.ID(u.tid), identity.CreateUserRequest{Email: u.email,
			Password: u.email + "'s long password", Groups: u.groups}, op); err != nil {
			t.Fatal(err)
		}
	}
	return &hostileEnv{env: env, clk: clk, logs: logs}
}

// stopAt makes b's client stop before following a redirect away from a
// response to path (the response is returned as is).
// browser is consoletest's, with the hostile tests' own moves.
type browser struct {
	*consoletest.Browser
	t *testing.T
}

func newBrowser(t *testing.T, base string) *browser { return &browser{consoletest.New(t, base), t} }

func (b *browser) get(path string) (int, string, *http.Response) { return b.Get(path) }
func (b *browser) post(path string, form url.Values, origin string) (int, string) {
	return b.Post(path, form, origin)
}
func (b *browser) signIn(start string, fields url.Values) (int, string) {
	return b.SignIn(start, fields)
}

var hiddenField = regexp.MustCompile(`name="(authRequestID|csrf)" value="([^"]+)"`)

func (b *browser) stopAt(path string) {
	b.HTTP.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if via[len(via)-1].URL.Path == path {
			return http.ErrUseLastResponse
		}
		return nil
	}
}

// toCallback starts a sign-in at start, posts the login form as email and
// stops at the console's callback: it returns the callback's URL (with
// the provider's code and state). b keeps the flow cookie.
func (b *browser) toCallback(start, email string) *url.URL {
	b.t.Helper()
	old := b.HTTP.CheckRedirect
	defer func() { b.HTTP.CheckRedirect = old }()
	b.HTTP.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == "/console/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	_, body, resp := b.get(start)
	if loc, err := resp.Request.URL.Parse(resp.Header.Get("Location")); err == nil && loc.Path == "/console/callback" {
		return loc // the browser's session at the provider signed it in
	}
	fields := url.Values{"email": {email}, "password": {email + "'s long password"}}
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		fields.Set(m[1], m[2])
	}
	if fields.Get("authRequestID") == "" {
		b.t.Fatalf("no login form at the end of %s: %s", start, body)
	}
	post, _ := http.NewRequest(http.MethodPost, resp.Request.URL.String(), strings.NewReader(fields.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r2, err := b.HTTP.Do(post)
	if err != nil {
		b.t.Fatal(err)
	}
	page, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	loc, err := r2.Request.URL.Parse(r2.Header.Get("Location"))
	if err != nil || loc.Path != "/console/callback" {
		b.t.Fatalf("the sign-in did not reach the callback: %d %s %s", r2.StatusCode, r2.Header.Get("Location"), page)
	}
	return loc
}

// raw sends a request and returns the response with its body read.
func (b *browser) raw(method, u string, body io.Reader, hdr map[string]string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(method, u, body)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.HTTP.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

// roundTrip sends one request with b's cookies and follows nothing (a
// Location Go's client cannot parse is returned as is).
func (b *browser) roundTrip(method, u string) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	for _, c := range b.Jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

// browserTarget resolves a Location header as a browser does: tabs and
// newlines removed, backslashes taken for slashes, %2e for a dot.
func browserTarget(base *url.URL, loc string) (*url.URL, error) {
	loc = strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/", "%2e", ".", "%2E", ".").Replace(loc)
	ref, err := url.Parse(loc)
	if err != nil {
		return nil, err
	}
	return base.ResolveReference(ref), nil
}

// TestHostileReturnPaths: the return parameter of a sign-in can only send
// the browser back to one of the console's own pages on the console's
// own origin, however it is spelled.
func TestHostileReturnPaths(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		h := hostileSetup(t, dsn)
		base, _ := url.Parse(h.env.URL)
		for _, ret := range []string{
			"//evil.example", "/console/../..", "/console/../../evil", "/console/..//evil.example", "/console/%2e%2e/%2e%2e/v1/tenants",
			"/console/%2e%2e//evil.example", "/console/\\evil.example", "/console/\t/evil.example", "/console/..\t//evil.example",
			"https://evil.example/console/", "javascript:alert(1)", "/console/%0d%0aSet-Cookie:x=y", "%2fconsole%2f",
			"/console/.././../evil", "/console/./../static/../../x",
		} {
			h.clk.Advance(time.Minute) // the login form's per-address limit
			b := newBrowser(t, h.env.URL)
			cb := b.toCallback("/console/signin?return="+url.QueryEscape(ret), "ann@acme.example")
			resp, body := b.roundTrip(http.MethodGet, cb.String())
			loc := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusFound {
				t.Errorf("return %q: the callback answered %d %s", ret, resp.StatusCode, body)
				continue
			}
			target, err := browserTarget(cb, loc)
			if err != nil || target.Scheme != base.Scheme || target.Host != base.Host || !strings.HasPrefix(target.Path, "/console/") ||
				strings.ContainsAny(loc, "\t\r\n\\") {
				t.Errorf("return %q: the callback sends the browser to %q (%v)", ret, loc, target)
			}
		}
	})
}

// TestHostileLoginCSRF: a victim's browser cannot be made to finish a
// sign-in that an attacker started (login CSRF), a callback works once,
// and a code works only with the PKCE verifier of its own flow.
func TestHostileLoginCSRF(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		h := hostileSetup(t, dsn)
		attacker := newBrowser(t, h.env.URL)
		cb := attacker.toCallback("/console/signin", "ann@acme.example")

		noSession := func(who string, b *browser) {
			t.Helper()
			if b.Jar.Get("__Host-bulkhead-console") != nil {
				t.Errorf("%s: a session cookie was set", who)
			}
		}
		// A victim with no flow of their own.
		victim := newBrowser(t, h.env.URL)
		victim.stopAt("/console/callback")
		if resp, body := victim.raw(http.MethodGet, cb.String(), nil, nil); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("the attacker's callback in a fresh browser: %d %s", resp.StatusCode, body)
		}
		noSession("fresh victim", victim)
		// A victim whose own sign-in is under way.
		victim.stopAt("/console/signin")
		if resp, _ := victim.raw(http.MethodGet, h.env.URL+"/console/signin", nil, nil); resp.StatusCode != http.StatusFound {
			t.Fatalf("start a sign-in: %d", resp.StatusCode)
		}
		victim.stopAt("/console/callback")
		if resp, body := victim.raw(http.MethodGet, cb.String(), nil, nil); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("the attacker's callback in a browser with its own flow: %d %s", resp.StatusCode, body)
		}
		noSession("victim with a flow", victim)

		// The attacker's own browser finishes; the same callback again does not.
		flowCookie := attacker.Jar.Get("__Host-bulkhead-console-flow")
		attacker.stopAt("/console/callback")
		if resp, body := attacker.raw(http.MethodGet, cb.String(), nil, nil); resp.StatusCode != http.StatusFound {
			t.Fatalf("the sign-in's own callback: %d %s", resp.StatusCode, body)
		}
		session := attacker.Jar.Get("__Host-bulkhead-console")
		attacker.Jar.Delete("__Host-bulkhead-console")
		if resp, _ := attacker.raw(http.MethodGet, cb.String(), nil, nil); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("a replayed callback: %d", resp.StatusCode)
		}
		// Even with the flow cookie put back, the code is spent.
		attacker.Jar.Set(flowCookie)
		if resp, _ := attacker.raw(http.MethodGet, cb.String(), nil, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a replayed callback with its flow cookie: %d", resp.StatusCode)
		}
		noSession("replay", attacker)

		// Two flows in one browser: flow X's code with flow Y's state and
		// cookie is refused (PKCE binds the code to X's verifier).
		h.clk.Advance(time.Minute)
		b := newBrowser(t, h.env.URL)
		x := b.toCallback("/console/signin", "ann@acme.example")
		y := b.toCallback("/console/signin", "ann@acme.example")
		mixed := *y
		q := y.Query()
		q.Set("code", x.Query().Get("code"))
		mixed.RawQuery = q.Encode()
		b.stopAt("/console/callback")
		if resp, body := b.raw(http.MethodGet, mixed.String(), nil, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("flow X's code with flow Y's state: %d %s", resp.StatusCode, body)
		}
		noSession("mixed flows", b)

		// Nothing of the session or the flow is in the node's log.
		for name, v := range map[string]string{"session": session.Value, "flow": flowCookie.Value, "code": cb.Query().Get("code"),
			"state": cb.Query().Get("state")} {
			if v != "" && strings.Contains(h.logs.String(), v) {
				t.Errorf("the %s secret is in the log", name)
			}
		}
	})
}

// TestHostileTenantAdminRoutes: a tenant's admin reaches neither another
// tenant nor an operator's page through any route, GET or POST (all
// answer as for a tenant that does not exist); a suspended tenant's admin
// loses their session.
func TestHostileTenantAdminRoutes(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		h := hostileSetup(t, dsn)
		ctx := context.Background()
		b := newBrowser(t, h.env.URL)
		status, page := b.signIn("/console/signin", url.Values{"email": {"ann@acme.example"}, "password": {"ann@acme.example's long password"}})
		if status != http.StatusOK || !strings.Contains(page, `data-page="tenant"`) {
			t.Fatalf("sign-in: %d %s", status, page)
		}
		csrf := consoletest.CSRF(t, page)
		_, missing, _ := b.get("/console/tenants/no-such-tenant")
		for _, p := range []string{"/console/tenants/globex", "/console/tenants/globex/users", "/console/tenants/globex/posture",
			"/console/tenants/globex/confirm/suspend", "/console/tenants/globex/confirm/delete", "/console/tenants/acme/confirm/suspend",
			"/console/tenants/acme/confirm/delete", "/console/tenants", "/console/posture", "/console/tenants?q=glob",
			"/console/tenants/GLOBEX", "/console/tenants/globex%2fusers", "/console/tenants/acme/confirm/nope", "/console/nothing"} {
			if status, body, _ := b.get(p); status != http.StatusNotFound || body != missing {
				t.Errorf("GET %s: %d, differs from no such tenant: %v", p, status, body != missing)
			}
		}
		for _, p := range []string{"/console/tenants/globex/users", "/console/tenants/globex/suspend", "/console/tenants/globex/delete",
			"/console/tenants/acme/suspend", "/console/tenants/acme/delete", "/console/tenants/acme/resume", "/console/tenants",
			"/console/posture/scan", "/console/tenants/no-such-tenant/suspend", "/console/tenants/acme/nope", "/console/tenants/acme/tier",
			"/console/tenants/globex/tier"} {
			form := url.Values{"csrf": {csrf}, "confirm": {"acme"}, "email": {"mallory@acme.example"}, "id": {"evil"}, "tier": {"standard"}}
			if status, body := b.post(p, form, h.env.URL); status != http.StatusNotFound || body != missing {
				t.Errorf("POST %s: %d, differs from no such tenant: %v\n%s", p, status, body != missing, body)
			}
		}
		if tn, err := h.env.Admin.GetTenant(ctx, "acme"); err != nil || tn.Status != "active" {
			t.Errorf("acme after the posts: %+v %v", tn, err)
		}
		// An operator's act in acme's chain: ann's timeline shows its id, and
		// looking at it asks nothing an admin's token may not (no refused
		// operator list in the trail).
		if err := h.env.Audit.Append(ctx, audit.Event{TenantID: "acme", Principal: "operator:opr_aaaaaaaaaaaaaaaaaaaaaaaaaa", Action: "user.created",
			Target: "usr_x", Outcome: audit.Success}); err != nil {
			t.Fatal(err)
		}
		if status, body, _ := b.get("/console/tenants/acme/audit"); status != http.StatusOK || !strings.Contains(body, "operator:opr_aaaaaaaaaaaaaaaaaaaaaaaaaa") {
			t.Errorf("ann's timeline: %d", status)
		}
		if refused, err := h.env.Admin.ListAudit(ctx, client.AuditQuery{Action: "operator.list"}); err != nil || len(refused.Items) != 0 {
			t.Errorf("ann's timeline asked for the operators: %+v %v", refused.Items, err)
		}

		// Suspended: ann's live session ends; a new sign-in is refused.
		if _, err := h.env.Admin.SuspendTenant(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if status, body, _ := b.get("/console/tenants/acme"); !strings.Contains(body, "Sign in with your organization") || strings.Contains(body, "ann@acme.example") {
			t.Errorf("a suspended tenant's admin's page: %d %s", status, body)
		}
		h.clk.Advance(time.Minute)
		again := newBrowser(t, h.env.URL)
		if status, page := again.signIn("/console/signin", url.Values{"email": {"ann@acme.example"}, "password": {"ann@acme.example's long password"}}); status == http.StatusOK && strings.Contains(page, `data-page="tenant"`) {
			t.Errorf("a suspended tenant's admin signed in: %d", status)
		}
	})
}

// TestHostileMemberSelfService: a user who is not an admin reaches their
// own account and nothing else — every tenant, operator and admin page,
// GET or POST, of their tenant or another, answers as a page that does
// not exist — turns on an authenticator app there (asked at their next
// sign-in), and ends their own sessions but not another user's.
func TestHostileMemberSelfService(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		h := hostileSetup(t, dsn)
		ctx := context.Background()
		b := newBrowser(t, h.env.URL)
		status, page := b.signIn("/console/signin", url.Values{"email": {"bob@acme.example"}, "password": {"bob@acme.example's long password"}})
		if status != http.StatusOK || !strings.Contains(page, `data-page="account"`) || !strings.Contains(page, "bob@acme.example") ||
			!strings.Contains(page, "this browser") || strings.Contains(page, "admin of") {
			t.Fatalf("a member's sign-in: %d %s", status, page)
		}
		csrf := consoletest.CSRF(t, page)
		if status, body, _ := b.get("/console/"); status != http.StatusOK || !strings.Contains(body, `data-page="account"`) {
			t.Errorf("a member's home: %d", status)
		}
		_, missing, _ := b.get("/console/tenants/no-such-tenant")
		for _, p := range []string{"/console/tenants/acme", "/console/tenants/acme/users", "/console/tenants/acme/groups",
			"/console/tenants/acme/clients", "/console/tenants/acme/policies", "/console/tenants/acme/keys", "/console/tenants/acme/audit",
			"/console/tenants/acme/connections", "/console/tenants/acme/branding", "/console/tenants/acme/posture",
			"/console/tenants/acme/confirm/suspend", "/console/tenants/globex", "/console/tenants", "/console/posture",
			"/console/audit", "/console/functions", "/console/tenants/acme/users/x/sessions"} {
			if status, body, _ := b.get(p); status != http.StatusNotFound || body != missing {
				t.Errorf("GET %s: %d, differs from no such tenant: %v", p, status, body != missing)
			}
		}
		for _, p := range []string{"/console/tenants/acme/users", "/console/tenants/acme/groups", "/console/tenants/acme/clients",
			"/console/tenants/acme/policies", "/console/tenants/acme/keys", "/console/tenants/acme/branding", "/console/tenants/acme/suspend",
			"/console/tenants", "/console/posture/scan", "/console/audit/verify", "/console/tenants/acme/policies/try", "/console/tenants/acme/tier"} {
			form := url.Values{"csrf": {csrf}, "confirm": {"acme"}, "email": {"mallory@acme.example"}, "name": {"evil"}, "id": {"evil"}}
			if status, body := b.post(p, form, h.env.URL); status != http.StatusNotFound || body != missing {
				t.Errorf("POST %s: %d, differs from no such tenant: %v", p, status, body != missing)
			}
		}
		// The editor's check (JSON, CSRF in a header) answers a member as a missing page too.
		req, _ := http.NewRequest(http.MethodPost, h.env.URL+"/console/tenants/acme/policies/validate", strings.NewReader(`{"statement":"permit(principal, action, resource);"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", h.env.URL)
		req.Header.Set("X-CSRF-Token", csrf)
		resp, err := b.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		vb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || string(vb) != missing {
			t.Errorf("a member's policy check: %d %s", resp.StatusCode, vb)
		}
		if page, err := h.env.Admin.ListUsers(ctx, "acme", 0, "", "mallory@acme.example"); err != nil || len(page.Items) != 0 {
			t.Errorf("a member's posts made a user: %+v %v", page.Items, err)
		}

		// Bob turns on his authenticator app; his next sign-in asks for it.
		status, body := b.post("/console/account/totp", url.Values{"csrf": {csrf}}, h.env.URL)
		key := regexp.MustCompile(`Key: <code>([A-Z2-7]+)</code>`).FindStringSubmatch(body)
		if status != http.StatusOK || key == nil || !strings.Contains(body, `<svg class="qr"`) {
			t.Fatalf("a member sets up an app: %d %s", status, body)
		}
		code, err := totp.GenerateCode(key[1], h.clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		if status, body = b.post("/console/account/totp/confirm", url.Values{"csrf": {csrf}, "code": {code}}, h.env.URL); status != http.StatusOK ||
			!strings.Contains(body, "Your authenticator app is on") {
			t.Fatalf("a member turns it on: %d %s", status, body)
		}
		if u, err := h.env.Admin.ListUsers(ctx, "acme", 0, "", "bob@acme.example"); err != nil || len(u.Items) != 1 || !u.Items[0].TOTPConfirmed {
			t.Errorf("bob's record after the set-up: %+v %v", u.Items, err)
		}
		h.clk.Advance(time.Minute)
		again := newBrowser(t, h.env.URL)
		fields := url.Values{"email": {"bob@acme.example"}, "password": {"bob@acme.example's long password"}}
		if status, page := again.signIn("/console/signin", fields); status == http.StatusOK || !strings.Contains(page, "authenticator app") {
			t.Errorf("bob's sign-in without his code: %d %s", status, page)
		}
		code, _ = totp.GenerateCode(key[1], h.clk.Now())
		fields.Set("code", code)
		again = newBrowser(t, h.env.URL)
		if status, page := again.signIn("/console/signin", fields); status != http.StatusOK || !strings.Contains(page, `data-page="account"`) ||
			!strings.Contains(page, "pwd + otp") {
			t.Errorf("bob's sign-in with his code: %d %s", status, page)
		}

		// Ann's session is not Bob's to end: the same answer as no session.
		ann := newBrowser(t, h.env.URL)
		if status, _ := ann.signIn("/console/signin", url.Values{"email": {"ann@acme.example"}, "password": {"ann@acme.example's long password"}}); status != http.StatusOK {
			t.Fatalf("ann's sign-in: %d", status)
		}
		annUser, err := h.env.Admin.ListUsers(ctx, "acme", 0, "", "ann@acme.example")
		if err != nil || len(annUser.Items) != 1 {
			t.Fatal(annUser, err)
		}
		annSessions, err := h.env.Admin.UserSessions(ctx, "acme", annUser.Items[0].ID)
		if err != nil || len(annSessions) == 0 {
			t.Fatalf("ann's sessions: %v %v", annSessions, err)
		}
		_, noSession := b.post("/console/account/sessions/sid_aaaaaaaaaaaaaaaaaaaaaaaaaa/end", url.Values{"csrf": {csrf}}, h.env.URL)
		if status, body := b.post("/console/account/sessions/"+annSessions[0].ID+"/end", url.Values{"csrf": {csrf}}, h.env.URL); status != http.StatusNotFound || body != noSession {
			t.Errorf("bob ends ann's session: %d %s", status, body)
		}
		if after, err := h.env.Admin.UserSessions(ctx, "acme", annUser.Items[0].ID); err != nil || len(after) != len(annSessions) {
			t.Errorf("ann's sessions after bob's try: %d %v", len(after), err)
		}
		// Bob ends his own (this browser's) session.
		_, page, _ = b.get("/console/account")
		sid := regexp.MustCompile(`/account/sessions/(sid_[a-z2-7]+)/end`).FindStringSubmatch(page)
		if sid == nil {
			t.Fatalf("bob's sessions: %s", page)
		}
		if status, body := b.post("/console/account/sessions/"+sid[1]+"/end", url.Values{"csrf": {csrf}}, h.env.URL); status != http.StatusOK ||
			!strings.Contains(body, "Session ended") || strings.Contains(body, sid[1]) {
			t.Errorf("bob ends his session: %d %s", status, body)
		}
	})
}

// TestHostileDisabledUserSession: a tenant admin disabled while signed in
// sees nothing of the tenant at their next page.
func TestHostileDisabledUserSession(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		h := hostileSetup(t, dsn)
		ctx := context.Background()
		b := newBrowser(t, h.env.URL)
		if status, page := b.signIn("/console/signin", url.Values{"email": {"ann@acme.example"}, "password": {"ann@acme.example's long password"}}); status != http.StatusOK {
			t.Fatalf("sign-in: %d %s", status, page)
		}
		users, err := h.env.Directory.ListUsers(ctx, "acme", identity.ListOptions{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users.Items {
			if u.Email == "ann@acme.example" {
				disabled := identity.UserDisabled
				if _, err := h.env.Directory.UpdateUser(ctx, "acme", u.ID, identity.UserPatch{Status: &disabled}, tenant.Actor{Principal: "operator:test"}); err != nil {
					t.Fatal(err)
				}
			}
		}
		h.clk.Advance(2 * time.Second) // past the token state cache
		if status, body, _ := b.get("/console/tenants/acme/users"); strings.Contains(body, "bob@acme.example") {
			t.Errorf("a disabled admin's session still lists users: %d", status)
		}
	})
}

// TestHostileHeaders: every console answer carries the security headers;
// pages are not cached; posts from elsewhere, without an origin, or too
// large are refused.
func TestHostileHeaders(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		h := hostileSetup(t, dsn)
		b := newBrowser(t, h.env.URL)
		b.stopAt("/console/signin")
		check := func(what string, resp *http.Response, static bool) {
			t.Helper()
			hd := resp.Header
			if !strings.Contains(hd.Get("Content-Security-Policy"), "default-src 'none'") || !strings.Contains(hd.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
				hd.Get("X-Frame-Options") != "DENY" || hd.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: security headers missing: %v", what, hd)
			}
			if !static && hd.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: Cache-Control %q", what, hd.Get("Cache-Control"))
			}
		}
		for _, c := range []struct {
			method, path string
			static       bool
		}{{"GET", "/console/", false}, {"GET", "/console/nothing", false}, {"GET", "/console/static/console.css", true},
			{"GET", "/console/static/nothing.js", true}, {"GET", "/console/callback?state=x&code=y", false}, {"PUT", "/console/tenants/acme", false},
			{"DELETE", "/console/signout", false}, {"OPTIONS", "/console/", false}, {"TRACE", "/console/", false}, {"GET", "/console/signin", false},
			{"POST", "/console/signout", false}, {"GET", "/console/tenants/%3Cscript%3E", false}} {
			resp, _ := b.raw(c.method, h.env.URL+c.path, nil, nil)
			check(c.method+" "+c.path, resp, c.static)
		}
		// The flow cookie and, after sign-in, the session cookie.
		resp, _ := b.raw("GET", h.env.URL+"/console/signin", nil, nil)
		for _, ck := range resp.Cookies() {
			if ck.Name == "__Host-bulkhead-console-flow" && (!ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteLaxMode) {
				t.Errorf("flow cookie: %+v", ck)
			}
		}
		b.HTTP.CheckRedirect = nil
		status, page := b.signIn("/console/signin", url.Values{"email": {"ann@acme.example"}, "password": {"ann@acme.example's long password"}})
		if status != http.StatusOK {
			t.Fatalf("sign-in: %d", status)
		}
		s := b.Jar.Get("__Host-bulkhead-console")
		if s == nil || !s.HttpOnly || !s.Secure || s.SameSite != http.SameSiteStrictMode || s.Path != "/" || s.Domain != "" {
			t.Errorf("session cookie: %+v", s)
		}
		csrf := consoletest.CSRF(t, page)
		form := url.Values{"csrf": {csrf}, "email": {"mallory@acme.example"}}.Encode()
		ct := "application/x-www-form-urlencoded"
		for name, hdr := range map[string]map[string]string{
			"no origin, no referer":          {"Content-Type": ct},
			"another site's referer":         {"Content-Type": ct, "Referer": "https://evil.example/console/"},
			"a referer on another port":      {"Content-Type": ct, "Referer": strings.Replace(h.env.URL, "127.0.0.1:", "127.0.0.1:1", 1) + "/console/"},
			"origin null":                    {"Content-Type": ct, "Origin": "null"},
			"origin with a path":             {"Content-Type": ct, "Origin": h.env.URL + "/"},
			"another origin, good referer":   {"Content-Type": ct, "Origin": "https://evil.example", "Referer": h.env.URL + "/console/"},
			"a referer that only starts so":  {"Content-Type": ct, "Referer": h.env.URL + ".evil.example/console/"},
			"a referer with user info in it": {"Content-Type": ct, "Referer": "http://" + strings.TrimPrefix(h.env.URL, "http://") + "@evil.example/"},
		} {
			if resp, body := b.raw("POST", h.env.URL+"/console/tenants/acme/users", strings.NewReader(form), hdr); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: %d %s", name, resp.StatusCode, body)
			}
		}
		// A good referer without an Origin (old browsers) is taken.
		// Oversized bodies are refused, wherever the CSRF token sits.
		big := "csrf=" + url.QueryEscape(csrf) + "&email=mallory%40acme.example&pad=" + strings.Repeat("a", 80<<10)
		if resp, body := b.raw("POST", h.env.URL+"/console/tenants/acme/users", strings.NewReader(big), map[string]string{"Content-Type": ct, "Origin": h.env.URL}); resp.StatusCode < 400 {
			t.Errorf("an oversized form: %d %s", resp.StatusCode, body)
		}
		if resp, _ := b.raw("POST", h.env.URL+"/console/signout", strings.NewReader("csrf="+url.QueryEscape(csrf)+"&pad="+strings.Repeat("a", 1<<20)),
			map[string]string{"Content-Type": ct, "Origin": h.env.URL}); resp.StatusCode < 400 {
			t.Errorf("an oversized sign-out: %d (the console caps forms at 64 KiB)", resp.StatusCode)
		}
		if _, body, _ := b.get("/console/tenants/acme/users"); strings.Contains(body, "mallory@acme.example") {
			t.Error("a refused post created a user")
		}
	})
}

// TestHostileInjection: what the API or the URL gives is escaped, and a
// notice shows only the console's own messages.
func TestHostileInjection(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		h := hostileSetup(t, dsn)
		ctx := context.Background()
		const evil = `<script>alert(1)</script><img src=x onerror=alert(2)>"'`
		if _, err := h.env.Admin.CreateTenant(ctx, client.CreateTenant{ID: "evilco", Name: evil, Tier: "standard", Domains: []string{"evilco.example"}}, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := h.env.Directory.CreateUser(ctx, "evilco", identity.CreateUserRequest{Email: "eve@evilco.example",
			Password: "eve@evilco.example's long password", Groups: []string{"admins"}}, tenant.Actor{Principal: "operator:test"}); err != nil {
			t.Fatal(err)
		}
		// Signed out: the sign-in page repeats the URL in its links.
		b := newBrowser(t, h.env.URL)
		_, body, _ := b.get(`/console/tenants/acme?x="><script>alert(3)</script>&notice=<b>owned</b>`)
		if strings.Contains(body, "<script>alert") || strings.Contains(body, `"><script`) || strings.Contains(body, "<b>owned") {
			t.Errorf("the sign-in page reflects the URL unescaped: %s", body)
		}
		status, page := b.signIn("/console/signin", url.Values{"email": {"eve@evilco.example"}, "password": {"eve@evilco.example's long password"}})
		if status != http.StatusOK {
			t.Fatalf("sign-in: %d %s", status, page)
		}
		for _, p := range []string{"/console/tenants/evilco", "/console/tenants/evilco?notice=<script>alert(1)</script>",
			"/console/tenants/evilco?notice=Your+account+is+compromised", "/console/tenants/evilco?notice=created%00"} {
			_, body, _ := b.get(p)
			if strings.Contains(body, "<script>") || strings.Contains(body, "<img") || strings.Contains(body, "compromised") {
				t.Errorf("%s: unescaped or foreign text on the page:\n%s", p, body)
			}
		}
		if _, body, _ := b.get("/console/tenants/evilco?notice=created"); !strings.Contains(body, "Tenant created.") {
			t.Error("a known notice is not shown")
		}
	})
}

// TestHostileSessionRows: a session's sealed tokens are bound to its row:
// swapped between two sessions in the database, they open neither, and
// neither person sees the other's tenant.
func TestHostileSessionRows(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		h := hostileSetup(t, dsn)
		ctx := context.Background()
		ann, carl := newBrowser(t, h.env.URL), newBrowser(t, h.env.URL)
		if status, _ := ann.signIn("/console/signin", url.Values{"email": {"ann@acme.example"}, "password": {"ann@acme.example's long password"}}); status != http.StatusOK {
			t.Fatal("ann's sign-in")
		}
		if status, _ := carl.signIn("/console/signin", url.Values{"email": {"carl@globex.example"}, "password": {"carl@globex.example's long password"}}); status != http.StatusOK {
			t.Fatal("carl's sign-in")
		}
		err := h.env.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
			type row struct{ id, access, refresh string }
			var rows []row
			rs, err := tx.Query(ctx, `SELECT id, access_sealed, refresh_sealed FROM console_sessions ORDER BY id`)
			if err != nil {
				return err
			}
			for rs.Next() {
				var r row
				if err := rs.Scan(&r.id, &r.access, &r.refresh); err != nil {
					return err
				}
				rows = append(rows, r)
			}
			rs.Close()
			if len(rows) != 2 {
				return errors.New("want two sessions")
			}
			for i, r := range rows {
				o := rows[1-i]
				if _, err := tx.Exec(ctx, `UPDATE console_sessions SET access_sealed = ?, refresh_sealed = ? WHERE id = ?`, o.access, o.refresh, r.id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for who, c := range map[string]struct {
			b     *browser
			other string
		}{"ann": {ann, "/console/tenants/globex/users"}, "carl": {carl, "/console/tenants/acme/users"}} {
			for _, p := range []string{c.other, "/console/tenants/acme/users", "/console/tenants/globex/users"} {
				if status, body, _ := c.b.get(p); strings.Contains(body, "@acme.example</td>") || strings.Contains(body, "@globex.example</td>") {
					t.Errorf("%s with swapped tokens at %s: %d\n%s", who, p, status, body)
				}
			}
		}
	})
}
