package console_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

var fast = identity.Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

// jar keeps one host's cookies as a browser on a loopback origin does:
// Go's cookiejar sends Secure cookies over https only, browsers also to
// http://127.0.0.1 and localhost (secure contexts). It checks the
// attributes the console must set.
type jar struct {
	t  *testing.T
	mu sync.Mutex
	m  map[string]*http.Cookie
}

func (j *jar) SetCookies(u *url.URL, cs []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, c := range cs {
		if strings.HasPrefix(c.Name, "__Host-") && (!c.Secure || c.Path != "/" || c.Domain != "") {
			j.t.Errorf("cookie %s breaks the __Host- rules: %+v", c.Name, c)
		}
		if c.MaxAge < 0 {
			delete(j.m, c.Name)
			continue
		}
		j.m[c.Name] = c
	}
}

func (j *jar) Cookies(u *url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []*http.Cookie
	for _, c := range j.m {
		out = append(out, c)
	}
	return out
}

type browser struct {
	t    *testing.T
	base string
	jar  *jar
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	j := &jar{t: t, m: map[string]*http.Cookie{}}
	return &browser{t: t, base: base, jar: j, c: &http.Client{Jar: j, Timeout: 20 * time.Second}}
}

func (b *browser) get(path string) (int, string, *http.Response) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp
}

func (b *browser) post(path string, form url.Values, origin string) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

var hiddenField = regexp.MustCompile(`name="(authRequestID|csrf)" value="([^"]+)"`)

// signIn goes from the console's sign-in link through the login page and
// back, posting fields, and returns the page it lands on.
func (b *browser) signIn(start string, fields url.Values) (int, string) {
	b.t.Helper()
	status, body, resp := b.get(start)
	for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
		fields.Set(m[1], m[2])
	}
	if fields.Get("authRequestID") == "" {
		b.t.Fatalf("no login form at the end of %s: %d %s", start, status, body)
	}
	post, _ := http.NewRequest(http.MethodPost, resp.Request.URL.String(), strings.NewReader(fields.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r2, err := b.c.Do(post)
	if err != nil {
		b.t.Fatal(err)
	}
	defer r2.Body.Close()
	page, _ := io.ReadAll(r2.Body)
	return r2.StatusCode, string(page)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the page: %s", page)
	}
	return m[1]
}

// TestTenantAdminConsole signs a tenant's admin in through the provider
// and checks what they can reach: their tenant, not another's (404
// byte-identical to a tenant that does not exist), no operator page, no
// post without the session's CSRF token or from another origin.
func TestTenantAdminConsole(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{Argon2: fast})
		ctx := context.Background()
		for _, id := range []string{"acme", "globex"} {
			if _, err := env.Admin.CreateTenant(ctx, client.CreateTenant{ID: id, Name: strings.ToUpper(id), Tier: "standard",
				Domains: []string{id + ".example"}}, ""); err != nil {
				t.Fatal(err)
			}
		}
		var ann api.User
		if err := env.Admin.Do(ctx, http.MethodPost, "/v1/tenants/acme/users", nil,
			api.CreateUser{Email: "ann@acme.example", Password: "ann's long password", Groups: []string{"admins"}}, &ann); err != nil {
			t.Fatal(err)
		}
		b := newBrowser(t, env.URL)
		status, body, _ := b.get("/console/tenants/acme")
		if status != http.StatusOK || !strings.Contains(body, "Sign in as an organization") {
			t.Fatalf("signed out: %d %s", status, body)
		}
		status, page := b.signIn("/console/signin?return=/console/tenants/acme/users", url.Values{"email": {"ann@acme.example"},
			"password": {"ann's long password"}, "new_password": {"ann's own new password"}})
		if status != http.StatusOK || !strings.Contains(page, "ann@acme.example") || !strings.Contains(page, "Users of acme") {
			t.Fatalf("after sign-in: %d %s", status, page)
		}
		csrf := csrfOf(t, page)

		// Another tenant's pages, operator pages, and nothing at all all
		// look the same.
		_, missing, _ := b.get("/console/tenants/no-such-tenant")
		for _, p := range []string{"/console/tenants/globex", "/console/tenants/globex/users", "/console/tenants/globex/posture",
			"/console/tenants/no-such-tenant", "/console/tenants/globex/confirm/suspend", "/console/tenants",
			"/console/tenants/globex/policies", "/console/tenants/globex/keys", "/console/tenants/globex/audit", "/console/audit", "/console/posture",
			"/console/tenants/globex/policies/pol_aaaaaaaaaaaaaaaaaaaaaaaaaa/confirm-delete"} {
			status, body, _ := b.get(p)
			if status != http.StatusNotFound || body != missing {
				t.Errorf("%s: %d, differs from no such tenant: %v\n%s", p, status, body != missing, body)
			}
		}
		origin := env.URL
		for name, tc := range map[string]struct {
			form   url.Values
			origin string
		}{
			"no csrf":        {url.Values{"email": {"x@acme.example"}}, origin},
			"wrong csrf":     {url.Values{"email": {"x@acme.example"}, "csrf": {csrf + "x"}}, origin},
			"foreign origin": {url.Values{"email": {"x@acme.example"}, "csrf": {csrf}}, "https://evil.example"},
		} {
			if status, body := b.post("/console/tenants/acme/users", tc.form, tc.origin); status != http.StatusForbidden {
				t.Errorf("%s: %d %s", name, status, body)
			}
		}
		if status, body := b.post("/console/tenants/globex/users", url.Values{"email": {"x@globex.example"}, "csrf": {csrf}}, origin); status != http.StatusNotFound || body != missing {
			t.Errorf("a user added to another tenant: %d %s", status, body)
		}
		status, body = b.post("/console/tenants/acme/users", url.Values{"email": {"bob@acme.example"}, "csrf": {csrf}}, origin)
		if status != http.StatusOK || !strings.Contains(body, "Temporary password for bob@acme.example") {
			t.Fatalf("add user: %d %s", status, body)
		}
		// The audit trail names the person who acted.
		page2, err := env.Admin.ListTenantAudit(ctx, "acme", client.AuditQuery{Action: "user.created"})
		if err != nil || len(page2.Items) == 0 || page2.Items[0].Principal != "user:"+ann.ID {
			t.Errorf("audit of the console's create: %+v %v", page2.Items, err)
		}
		// Signing out ends the session on the server: the old cookie opens nothing.
		old := b.jar.m["__Host-bulkhead-console"]
		if status, _ := b.post("/console/signout", url.Values{"csrf": {csrf}}, origin); status != http.StatusOK {
			t.Fatalf("sign out: %d", status)
		}
		b.jar.m["__Host-bulkhead-console"] = old
		if status, body, _ := b.get("/console/tenants/acme"); status != http.StatusOK || !strings.Contains(body, "Sign in as an organization") {
			t.Errorf("after sign-out: %d %s", status, body)
		}
	})
}

// loginPost posts fields to the login form on page (the provider's, at
// loginURL) and returns where the browser ends and what it shows.
func (b *browser) loginPost(loginURL, page string, fields url.Values) (string, int, string) {
	b.t.Helper()
	for _, m := range hiddenField.FindAllStringSubmatch(page, -1) {
		fields.Set(m[1], m[2])
	}
	req, _ := http.NewRequest(http.MethodPost, loginURL, strings.NewReader(fields.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.Request.URL.String(), resp.StatusCode, string(body)
}

// TestOperatorConsole signs an operator in (password change and TOTP at
// the first sign-in), creates and suspends a tenant through the console,
// and checks that the audit trail names the person, that a destructive
// action after five minutes asks for a fresh sign-in of the same person,
// and that a disabled operator's session stops.
func TestOperatorConsole(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		clk := clock.NewFake(time.Now().UTC().Truncate(time.Minute))
		env := apitest.New(t, dsn, apitest.Options{Argon2: fast, Clock: clk})
		ctx := context.Background()
		olga, err := env.Directory.CreateOperator(ctx, "olga@ops.example", "Olga", tenant.Actor{Principal: "operator:test"})
		if err != nil {
			t.Fatal(err)
		}
		code := func() string {
			c, err := totp.GenerateCode(olga.TOTP.Secret, clk.Now())
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		b := newBrowser(t, env.URL)
		status, page, resp := b.get("/console/signin?as=operator&return=/console/tenants")
		loginURL := resp.Request.URL.String()
		if status != http.StatusOK || !strings.Contains(page, "Sign in as an operator") {
			t.Fatalf("operator login page: %d %s", status, page)
		}
		// A tenant's user, or a wrong password, gets nowhere; no code is spent.
		if _, status, _ := b.loginPost(loginURL, page, url.Values{"email": {"olga@ops.example"}, "password": {"wrong"}, "code": {code()}}); status != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d", status)
		}
		_, status, page = b.loginPost(loginURL, page, url.Values{"email": {"olga@ops.example"}, "password": {olga.Password}})
		if status != http.StatusOK || !strings.Contains(page, `name="new_password"`) {
			t.Fatalf("first sign-in must ask for a new password: %d %s", status, page)
		}
		if _, status, page = b.loginPost(loginURL, page, url.Values{"email": {"olga@ops.example"}, "password": {olga.Password},
			"new_password": {"olga's very own password"}}); status != http.StatusUnauthorized || !strings.Contains(page, "authenticator") {
			t.Fatalf("a sign-in without the code: %d %s", status, page)
		}
		where, status, page := b.loginPost(loginURL, page, url.Values{"email": {"olga@ops.example"}, "password": {olga.Password},
			"new_password": {"olga's very own password"}, "code": {code()}})
		if status != http.StatusOK || !strings.HasSuffix(where, "/console/tenants") || !strings.Contains(page, "olga@ops.example") {
			t.Fatalf("operator sign-in: %s %d %s", where, status, page)
		}
		csrf := csrfOf(t, page)

		// Create a tenant; the audit trail names Olga's account.
		status, page = b.post("/console/tenants", url.Values{"csrf": {csrf}, "id": {"acme"}, "name": {"Acme"}, "tier": {"standard"}}, env.URL)
		if status != http.StatusOK || !strings.Contains(page, `data-page="tenant"`) {
			t.Fatalf("create tenant: %d %s", status, page)
		}
		ev, err := env.Admin.ListAudit(ctx, client.AuditQuery{Tenant: "acme", Action: "tenant.onboarding.started"})
		if err != nil || len(ev.Items) != 1 || ev.Items[0].Principal != "operator:"+olga.ID {
			t.Errorf("audit of the create: %+v %v", ev.Items, err)
		}
		// Search finds it; a refused create says why and keeps the form.
		if status, page, _ = b.get("/console/tenants?q=ac&tier=standard"); status != http.StatusOK || !strings.Contains(page, `href="/console/tenants/acme"`) {
			t.Errorf("search: %d %s", status, page)
		}
		if status, page = b.post("/console/tenants", url.Values{"csrf": {csrf}, "id": {"Bad Id"}}, env.URL); status != http.StatusBadRequest ||
			!strings.Contains(page, `value="Bad Id"`) {
			t.Errorf("a refused create: %d %s", status, page)
		}

		// Suspend: the confirmation must be typed.
		if status, _ = b.post("/console/tenants/acme/suspend", url.Values{"csrf": {csrf}, "confirm": {"acm"}}, env.URL); status != http.StatusBadRequest {
			t.Errorf("a wrong confirmation: %d", status)
		}
		if status, page = b.post("/console/tenants/acme/suspend", url.Values{"csrf": {csrf}, "confirm": {"acme"}}, env.URL); status != http.StatusOK ||
			!strings.Contains(page, "Tenant suspended") {
			t.Fatalf("suspend: %d %s", status, page)
		}

		// Six minutes later, resuming asks for a fresh sign-in first.
		clk.Advance(6 * time.Minute)
		b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		req, _ := http.NewRequest(http.MethodPost, env.URL+"/console/tenants/acme/resume", strings.NewReader(url.Values{"csrf": {csrf}, "confirm": {"acme"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", env.URL)
		r2, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r2.Body.Close()
		b.c.CheckRedirect = nil
		loc, _ := url.Parse(r2.Header.Get("Location"))
		if r2.StatusCode != http.StatusFound || loc.Query().Get("prompt") != "login" || loc.Query().Get("max_age") != "0" {
			t.Fatalf("an old sign-in was not asked again: %d %s", r2.StatusCode, loc)
		}
		status, page, resp = b.get(loc.RequestURI())
		where, status, page = b.loginPost(resp.Request.URL.String(), page, url.Values{"email": {"olga@ops.example"},
			"password": {"olga's very own password"}, "code": {code()}})
		if status != http.StatusOK || !strings.HasSuffix(where, "/console/tenants/acme/confirm/resume") {
			t.Fatalf("after the fresh sign-in: %s %d %s", where, status, page)
		}
		if status, page = b.post("/console/tenants/acme/resume", url.Values{"csrf": {csrf}, "confirm": {"acme"}}, env.URL); status != http.StatusOK ||
			!strings.Contains(page, "Tenant resumed") {
			t.Fatalf("resume: %d %s", status, page)
		}

		// A disabled operator's session ends at its next page.
		if _, err := env.Admin.DisableOperator(ctx, olga.ID); err != nil {
			t.Fatal(err)
		}
		if status, page, _ = b.get("/console/tenants"); !strings.Contains(page, "Sign in as an operator") {
			t.Errorf("a disabled operator's page: %d %s", status, page)
		}
	})
}
