package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/console/consoletest"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

var fast = identity.Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

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
		b := consoletest.New(t, env.URL)
		status, body, _ := b.Get("/console/tenants/acme")
		if status != http.StatusOK || !strings.Contains(body, "Sign in with your organization") {
			t.Fatalf("signed out: %d %s", status, body)
		}
		status, page := b.SignIn("/console/signin?return=/console/tenants/acme/users", url.Values{"email": {"ann@acme.example"},
			"password": {"ann's long password"}, "new_password": {"ann's own new password"}})
		if status != http.StatusOK || !strings.Contains(page, "ann@acme.example") || !strings.Contains(page, "Users of acme") {
			t.Fatalf("after sign-in: %d %s", status, page)
		}
		csrf := consoletest.CSRF(t, page)

		// Another tenant's pages, operator pages, and nothing at all all
		// look the same.
		_, missing, _ := b.Get("/console/tenants/no-such-tenant")
		for _, p := range []string{"/console/tenants/globex", "/console/tenants/globex/users", "/console/tenants/globex/posture",
			"/console/tenants/no-such-tenant", "/console/tenants/globex/confirm/suspend", "/console/tenants",
			"/console/tenants/globex/policies", "/console/tenants/globex/keys", "/console/tenants/globex/audit", "/console/audit", "/console/posture",
			"/console/tenants/globex/policies/pol_aaaaaaaaaaaaaaaaaaaaaaaaaa/confirm-delete", "/console/tenants/globex/clients",
			"/console/tenants/globex/groups", "/console/tenants/globex/branding", "/console/tenants/globex/connections",
			"/console/tenants/globex/connections/con_aaaaaaaaaaaaaaaaaaaaaaaaaa", "/console/functions",
			"/console/tenants/globex/users/usr_aaaaaaaaaaaaaaaaaaaaaaaaaa/sessions"} {
			status, body, _ := b.Get(p)
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
			if status, body := b.Post("/console/tenants/acme/users", tc.form, tc.origin); status != http.StatusForbidden {
				t.Errorf("%s: %d %s", name, status, body)
			}
		}
		if status, body := b.Post("/console/tenants/globex/users", url.Values{"email": {"x@globex.example"}, "csrf": {csrf}}, origin); status != http.StatusNotFound || body != missing {
			t.Errorf("a user added to another tenant: %d %s", status, body)
		}
		status, body = b.Post("/console/tenants/acme/users", url.Values{"email": {"bob@acme.example"}, "csrf": {csrf}}, origin)
		if status != http.StatusOK || !strings.Contains(body, "Temporary password for bob@acme.example") {
			t.Fatalf("add user: %d %s", status, body)
		}
		// A client: registered, its secret shown once; deleted behind a
		// typed confirmation.
		status, body = b.Post("/console/tenants/acme/clients", url.Values{"csrf": {csrf}, "name": {"backend"},
			"grant": {"client_credentials"}, "scopes": {"kms:encrypt"}}, origin)
		if status != http.StatusOK || !strings.Contains(body, "shown once") {
			t.Fatalf("register a client: %d %s", status, body)
		}
		cs, err := env.Admin.ListOAuthClients(ctx, "acme")
		if err != nil || len(cs) != 1 {
			t.Fatalf("clients: %+v %v", cs, err)
		}
		if status, _ = b.Post("/console/tenants/acme/clients/"+cs[0].ClientID+"/delete", url.Values{"csrf": {csrf}, "confirm": {"nope"}}, origin); status != http.StatusBadRequest {
			t.Errorf("delete a client unconfirmed: %d", status)
		}
		if status, body = b.Post("/console/tenants/acme/clients/"+cs[0].ClientID+"/delete", url.Values{"csrf": {csrf}, "confirm": {cs[0].ClientID}}, origin); status != http.StatusOK ||
			!strings.Contains(body, "Client deleted") {
			t.Errorf("delete a client: %d %s", status, body)
		}
		// A group, and a member added by email.
		if status, body = b.Post("/console/tenants/acme/groups", url.Values{"csrf": {csrf}, "name": {"support"}}, origin); status != http.StatusOK || !strings.Contains(body, "Group created") {
			t.Errorf("create a group: %d %s", status, body)
		}
		if status, body = b.Post("/console/tenants/acme/groups", url.Values{"csrf": {csrf}, "group": {"support"}, "email": {"bob@acme.example"}}, origin); status != http.StatusOK ||
			!strings.Contains(body, "Member added") {
			t.Errorf("add a member: %d %s", status, body)
		}
		if status, body = b.Post("/console/tenants/acme/groups", url.Values{"csrf": {csrf}, "group": {"support"}, "email": {"nobody@acme.example"}}, origin); status != http.StatusBadRequest {
			t.Errorf("add an unknown member: %d %s", status, body)
		}
		// A connection: its requests per hour, and a grant suspended from
		// the console stops at the proxy.
		upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
		defer upstream.Close()
		con, err := env.Admin.CreateConnection(ctx, "acme", client.CreateConnection{Name: "crm", UpstreamURL: upstream.URL, Token: "crm-token-0123456789"})
		if err != nil {
			t.Fatal(err)
		}
		proxied := func() int {
			req, _ := http.NewRequest(http.MethodGet, env.ProxyURL+"/c/"+con.ID+"/contacts", nil)
			req.Header.Set("Authorization", "Bearer "+con.Grant.PartA)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		for range 3 {
			if st := proxied(); st != http.StatusOK {
				t.Fatalf("proxied: %d", st)
			}
		}
		// The proxy's audit events are written after the answers.
		runtest.Eventually(t, "the connection's page counts 3 requests", func() bool {
			status, body, _ = b.Get("/console/tenants/acme/connections/" + con.ID)
			return status == http.StatusOK && strings.Contains(body, "last 24 hours (3)") && strings.Contains(body, "GET /contacts")
		})
		if status, body = b.Post("/console/tenants/acme/connections/"+con.ID+"/grants/"+con.Grant.ID+"/suspend",
			url.Values{"csrf": {csrf}, "reason": {"laptop lost"}}, origin); status != http.StatusOK || !strings.Contains(body, "Grant suspended") {
			t.Errorf("suspend a grant: %d %s", status, body)
		}
		if st := proxied(); st != http.StatusForbidden {
			t.Errorf("a suspended grant at the proxy: %d", st)
		}
		// Ann sets up her own authenticator app: a QR code and its key, then
		// a code of it turns it on; a second set-up is refused.
		status, body = b.Post("/console/account/totp", url.Values{"csrf": {csrf}}, origin)
		key := regexp.MustCompile(`Key: <code>([A-Z2-7]+)</code>`).FindStringSubmatch(body)
		if status != http.StatusOK || key == nil || !strings.Contains(body, `<svg class="qr"`) {
			t.Fatalf("set up an authenticator app: %d %s", status, body)
		}
		code, err := totp.GenerateCode(key[1], time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if status, body = b.Post("/console/account/totp/confirm", url.Values{"csrf": {csrf}, "code": {"000000"}}, origin); status != http.StatusBadRequest {
			t.Errorf("a wrong code: %d", status)
		}
		if status, body = b.Post("/console/account/totp/confirm", url.Values{"csrf": {csrf}, "code": {code}}, origin); status != http.StatusOK ||
			!strings.Contains(body, "Your authenticator app is on") {
			t.Errorf("turn it on: %d %s", status, body)
		}
		if status, body = b.Post("/console/account/totp", url.Values{"csrf": {csrf}}, origin); !strings.Contains(body, "already has an authenticator app") {
			t.Errorf("a second set-up: %d %s", status, body)
		}
		// Ann's sign-in is a browser session at the provider: listed, and ended.
		status, body, _ = b.Get("/console/tenants/acme/users/" + ann.ID + "/sessions")
		sid := regexp.MustCompile(`/sessions/(sid_[a-z2-7]+)/end`).FindStringSubmatch(body)
		if status != http.StatusOK || sid == nil || !strings.Contains(body, "bulkhead-console") {
			t.Fatalf("ann's sessions: %d %s", status, body)
		}
		if status, body = b.Post("/console/tenants/acme/users/"+ann.ID+"/sessions/"+sid[1]+"/end", url.Values{"csrf": {csrf}}, origin); status != http.StatusOK ||
			!strings.Contains(body, "Session ended") || strings.Contains(body, sid[1]) {
			t.Errorf("end ann's session: %d %s", status, body)
		}
		// The audit trail names the person who acted.
		page2, err := env.Admin.ListTenantAudit(ctx, "acme", client.AuditQuery{Action: "user.created"})
		if err != nil || len(page2.Items) == 0 || page2.Items[0].Principal != "user:"+ann.ID {
			t.Errorf("audit of the console's create: %+v %v", page2.Items, err)
		}
		// Signing out ends the session on the server: the old cookie opens nothing.
		old := b.Jar.Get("__Host-bulkhead-console")
		if status, body := b.Post("/console/signout", url.Values{"csrf": {csrf}}, origin); status != http.StatusOK || !strings.Contains(body, "You are signed out") {
			t.Fatalf("sign out: %d %s", status, body)
		}
		b.Jar.Set(old)
		if status, body, _ := b.Get("/console/tenants/acme"); status != http.StatusOK || !strings.Contains(body, "Sign in with your organization") {
			t.Errorf("after sign-out: %d %s", status, body)
		}
		// The browser's session at the provider ended with it: signing in
		// again shows the login page.
		if _, body, _ := b.Get("/console/signin"); !strings.Contains(body, `name="authRequestID"`) {
			t.Errorf("after sign-out, a sign-in skipped the login page: %.300s", body)
		}
	})
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
		b := consoletest.New(t, env.URL)
		status, page, resp := b.Get("/console/signin?as=operator&return=/console/tenants")
		loginURL := resp.Request.URL.String()
		if status != http.StatusOK || !strings.Contains(page, "Sign in as an operator") {
			t.Fatalf("operator login page: %d %s", status, page)
		}
		// A tenant's user, or a wrong password, gets nowhere; no code is spent.
		if _, status, _ := b.LoginPost(loginURL, page, url.Values{"email": {"olga@ops.example"}, "password": {"wrong"}, "code": {code()}}); status != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d", status)
		}
		_, status, page = b.LoginPost(loginURL, page, url.Values{"email": {"olga@ops.example"}, "password": {olga.Password}})
		if status != http.StatusOK || !strings.Contains(page, `name="new_password"`) {
			t.Fatalf("first sign-in must ask for a new password: %d %s", status, page)
		}
		if _, status, page = b.LoginPost(loginURL, page, url.Values{"email": {"olga@ops.example"}, "password": {olga.Password},
			"new_password": {"olga's very own password"}}); status != http.StatusUnauthorized || !strings.Contains(page, "authenticator") {
			t.Fatalf("a sign-in without the code: %d %s", status, page)
		}
		where, status, page := b.LoginPost(loginURL, page, url.Values{"email": {"olga@ops.example"}, "password": {olga.Password},
			"new_password": {"olga's very own password"}, "code": {code()}})
		if status != http.StatusOK || !strings.HasSuffix(where, "/console/tenants") || !strings.Contains(page, "olga@ops.example") {
			t.Fatalf("operator sign-in: %s %d %s", where, status, page)
		}
		csrf := consoletest.CSRF(t, page)

		// Create a tenant; the audit trail names Olga's account.
		status, page = b.Post("/console/tenants", url.Values{"csrf": {csrf}, "id": {"acme"}, "name": {"Acme"}, "tier": {"standard"}}, env.URL)
		if status != http.StatusOK || !strings.Contains(page, `data-page="tenant"`) {
			t.Fatalf("create tenant: %d %s", status, page)
		}
		ev, err := env.Admin.ListAudit(ctx, client.AuditQuery{Tenant: "acme", Action: "tenant.onboarding.started"})
		if err != nil || len(ev.Items) != 1 || ev.Items[0].Principal != "operator:"+olga.ID {
			t.Errorf("audit of the create: %+v %v", ev.Items, err)
		}
		// The timeline shows her email beside her account's id.
		if status, page, _ = b.Get("/console/audit?tenant=acme"); status != http.StatusOK ||
			!strings.Contains(page, "olga@ops.example<br><code>operator:"+olga.ID+"</code>") {
			t.Errorf("the audit page's names: %d %s", status, page)
		}
		// Search finds it; a refused create says why and keeps the form.
		if status, page, _ = b.Get("/console/tenants?q=ac&tier=standard"); status != http.StatusOK || !strings.Contains(page, `href="/console/tenants/acme"`) {
			t.Errorf("search: %d %s", status, page)
		}
		if status, page = b.Post("/console/tenants", url.Values{"csrf": {csrf}, "id": {"Bad Id"}}, env.URL); status != http.StatusBadRequest ||
			!strings.Contains(page, `value="Bad Id"`) {
			t.Errorf("a refused create: %d %s", status, page)
		}

		if status, page, _ = b.Get("/console/functions"); status != http.StatusOK || !strings.Contains(page, "No functions") {
			t.Errorf("functions: %d %s", status, page)
		}

		// Suspend: the confirmation must be typed.
		if status, _ = b.Post("/console/tenants/acme/suspend", url.Values{"csrf": {csrf}, "confirm": {"acm"}}, env.URL); status != http.StatusBadRequest {
			t.Errorf("a wrong confirmation: %d", status)
		}
		if status, page = b.Post("/console/tenants/acme/suspend", url.Values{"csrf": {csrf}, "confirm": {"acme"}}, env.URL); status != http.StatusOK ||
			!strings.Contains(page, "Tenant suspended") {
			t.Fatalf("suspend: %d %s", status, page)
		}

		// Six minutes later, resuming asks for a fresh sign-in first.
		clk.Advance(6 * time.Minute)
		b.HTTP.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		req, _ := http.NewRequest(http.MethodPost, env.URL+"/console/tenants/acme/resume", strings.NewReader(url.Values{"csrf": {csrf}, "confirm": {"acme"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", env.URL)
		r2, err := b.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r2.Body.Close()
		b.HTTP.CheckRedirect = nil
		loc, _ := url.Parse(r2.Header.Get("Location"))
		if r2.StatusCode != http.StatusFound || loc.Query().Get("prompt") != "login" || loc.Query().Get("max_age") != "0" {
			t.Fatalf("an old sign-in was not asked again: %d %s", r2.StatusCode, loc)
		}
		_, page, resp = b.Get(loc.RequestURI())
		where, status, page = b.LoginPost(resp.Request.URL.String(), page, url.Values{"email": {"olga@ops.example"},
			"password": {"olga's very own password"}, "code": {code()}})
		if status != http.StatusOK || !strings.HasSuffix(where, "/console/tenants/acme/confirm/resume") {
			t.Fatalf("after the fresh sign-in: %s %d %s", where, status, page)
		}
		if status, page = b.Post("/console/tenants/acme/resume", url.Values{"csrf": {csrf}, "confirm": {"acme"}}, env.URL); status != http.StatusOK ||
			!strings.Contains(page, "Tenant resumed") {
			t.Fatalf("resume: %d %s", status, page)
		}

		// A disabled operator's session ends at its next page.
		if _, err := env.Admin.DisableOperator(ctx, olga.ID); err != nil {
			t.Fatal(err)
		}
		if status, page, _ = b.Get("/console/tenants"); !strings.Contains(page, "Sign in as an operator") {
			t.Errorf("a disabled operator's page: %d %s", status, page)
		}
	})
}

// TestSiloAdminConsole: a silo tenant's admin signs in to the console at
// the tenant's own issuer (its branded login page), sees their tenant,
// keeps working after the access token is refreshed there, and cannot
// use the silo issuer to reach another tenant.
func TestSiloAdminConsole(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		clk := clock.NewFake(time.Now().UTC().Truncate(time.Minute))
		env := apitest.New(t, dsn, apitest.Options{Argon2: fast, Clock: clk})
		ctx := context.Background()
		for _, tc := range []struct{ id, tier string }{{"bigco", "premium"}, {"acme", "standard"}} {
			if _, err := env.Admin.CreateTenant(ctx, client.CreateTenant{ID: tc.id, Tier: tc.tier, Domains: []string{tc.id + ".example"}}, ""); err != nil {
				t.Fatal(err)
			}
		}
		if err := env.Admin.Do(ctx, http.MethodPost, "/v1/tenants/bigco/users", nil,
			api.CreateUser{Email: "bea@bigco.example", Password: "bea's long password", Groups: []string{"admins"}}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Admin.SetBranding(ctx, "bigco", api.Branding{DisplayName: "BigCo"}); err != nil {
			t.Fatal(err)
		}
		b := consoletest.New(t, env.URL)
		status, page, resp := b.Get("/console/signin?org=bigco")
		if status != http.StatusOK || !strings.Contains(resp.Request.URL.Path, "/t/bigco/login") || !strings.Contains(page, `<p class="brand">BigCo</p>`) {
			t.Fatalf("the silo's login page: %d %s %s", status, resp.Request.URL, page)
		}
		where, status, page := b.LoginPost(resp.Request.URL.String(), page, url.Values{"email": {"bea@bigco.example"}, "password": {"bea's long password"}})
		if status != http.StatusOK || !strings.HasSuffix(where, "/console/tenants/bigco") {
			t.Fatalf("after the silo sign-in: %s %d %s", where, status, page)
		}
		// A bigco user who is not an admin reaches their own account at
		// bigco's issuer, and none of bigco's admin pages.
		var bob api.User
		if err := env.Admin.Do(ctx, http.MethodPost, "/v1/tenants/bigco/users", nil,
			api.CreateUser{Email: "bob@bigco.example", Password: "bob's long password"}, &bob); err != nil {
			t.Fatal(err)
		}
		bb := consoletest.New(t, env.URL)
		_, bobPage, bobResp := bb.Get("/console/signin?org=bigco")
		if where, status, page := bb.LoginPost(bobResp.Request.URL.String(), bobPage, url.Values{"email": {"bob@bigco.example"}, "password": {"bob's long password"}}); status != http.StatusOK ||
			!strings.HasSuffix(where, "/console/account") || !strings.Contains(page, "bob@bigco.example") {
			t.Fatalf("a silo member at the console: %s %d %s", where, status, page)
		}
		_, bobMissing, _ := bb.Get("/console/tenants/no-such-tenant")
		if status, page, _ := bb.Get("/console/tenants/bigco/users"); status != http.StatusNotFound || page != bobMissing {
			t.Errorf("a silo member on the users page: %d %s", status, page)
		}
		// Past the access token's life: the console refreshes it at the silo issuer.
		clk.Advance(20 * time.Minute)
		if status, page, _ = b.Get("/console/tenants/bigco/users"); status != http.StatusOK || !strings.Contains(page, "bea@bigco.example") {
			t.Errorf("after a refresh: %d %s", status, page)
		}
		_, missing, _ := b.Get("/console/tenants/no-such-tenant")
		if status, page, _ = b.Get("/console/tenants/acme"); status != http.StatusNotFound || page != missing {
			t.Errorf("another tenant from a silo session: %d", status)
		}
		// bigco's user at the platform issuer's sign-in (no org) is sent back to its own address.
		b2 := consoletest.New(t, env.URL)
		if status, page := b2.SignIn("/console/signin", url.Values{"email": {"bea@bigco.example"}, "password": {"bea's long password"}, "tenant": {""}}); status != http.StatusUnauthorized ||
			!strings.Contains(page, "own sign-in address") {
			t.Errorf("a silo admin at the platform's sign-in: %d %s", status, page)
		}
		// Offboarding bigco ends its admins' console sessions.
		if _, err := env.Admin.DeleteTenant(ctx, "bigco"); err != nil {
			t.Fatal(err)
		}
		runtest.Eventually(t, "bigco's console sessions to go with it", func() bool {
			var left int
			err := env.DB.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
				return tx.QueryRow(ctx, `SELECT COUNT(*) FROM console_sessions WHERE tenant_id = 'bigco'`).Scan(&left)
			})
			return err == nil && left == 0
		})
		// An org that is not silo (or does not exist) signs in at the platform's issuer.
		if _, _, resp := consoletest.New(t, env.URL).Get("/console/signin?org=acme"); resp.Request.URL.Path != "/login" {
			t.Errorf("a pool or bridge org's sign-in went to %s", resp.Request.URL)
		}
		if _, _, resp := consoletest.New(t, env.URL).Get("/console/signin?org=nope-co"); resp.Request.URL.Path != "/login" {
			t.Errorf("an unknown org's sign-in went to %s", resp.Request.URL)
		}
	})
}

// TestWorkflowProgress: a tenant's page refreshes itself while one of its
// workflows runs, so its steps' progress shows; not once they are done.
func TestWorkflowProgress(t *testing.T) {
	release := make(chan struct{})
	slow := tenants.Step{Name: "slow", Run: func(ctx context.Context, _ *storage.Tx, _ tenants.Tenant) error {
		select {
		case <-release:
			return nil
		default:
			return errors.New("not yet")
		}
	}}
	env := apitest.New(t, storagetest.DSN(t, storage.SQLite), apitest.Options{Argon2: fast, OnboardingSteps: []tenants.Step{slow},
		OnboardingWait: 10 * time.Millisecond})
	ctx := context.Background()
	op, err := env.Admin.CreateOperator(ctx, client.CreateOperator{Email: "olga@ops.example", Name: "Olga"})
	if err != nil {
		t.Fatal(err)
	}
	b := consoletest.New(t, env.URL)
	if status, page := b.SignInOperator("olga@ops.example", op.Password, "olga's very own password", op.TOTP.Secret, time.Now()); status != http.StatusOK {
		t.Fatalf("sign in: %d %s", status, page)
	}
	if _, err := env.Admin.CreateTenant(ctx, client.CreateTenant{ID: "slowco"}, ""); err != nil {
		t.Fatal(err)
	}
	_, page, _ := b.Get("/console/tenants/slowco")
	if !strings.Contains(page, `<meta http-equiv="refresh" content="2">`) || !strings.Contains(page, "A workflow is running") ||
		!strings.Contains(page, `<li class="step done">`) || !strings.HasSuffix(strings.TrimSpace(page), "</html>") {
		t.Errorf("a running onboarding's page does not refresh: %s", page)
	}
	close(release)
	runtest.Eventually(t, "the onboarding to finish", func() bool {
		tn, err := env.Admin.GetTenant(ctx, "slowco")
		return err == nil && tn.Status == "active"
	})
	if _, page, _ = b.Get("/console/tenants/slowco"); strings.Contains(page, `http-equiv="refresh"`) {
		t.Error("a finished onboarding's page still refreshes")
	}
}

// TestTierChange: an operator changes a tenant's tier on its page — at
// once within an isolation model, by a tier migration across models,
// whose steps and status the page then shows (refreshing while it runs);
// a tier that does not exist is refused on the form; a tenant's admin
// has no such form and their post answers as a page that does not exist.
func TestTierChange(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		var f struct {
			Tiers []tenants.Tier `json:"tiers"`
		}
		for _, tr := range tenants.DefaultTiers() {
			tr.RateLimitRPS, tr.RateLimitBurst = 1e6, 1e6
			f.Tiers = append(f.Tiers, tr)
			if tr.Name == "basic" {
				tr.Name = "basic-plus" // a second pool tier
				f.Tiers = append(f.Tiers, tr)
			}
		}
		raw, _ := json.Marshal(f)
		tiersFile := filepath.Join(t.TempDir(), "tiers.json")
		if err := os.WriteFile(tiersFile, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		env := apitest.New(t, dsn, apitest.Options{Argon2: fast, TiersFile: tiersFile})
		ctx := context.Background()
		if _, err := env.Admin.CreateTenant(ctx, client.CreateTenant{ID: "acme", Name: "Acme", Tier: "basic"}, ""); err != nil {
			t.Fatal(err)
		}
		op, err := env.Admin.CreateOperator(ctx, client.CreateOperator{Email: "olga@ops.example", Name: "Olga"})
		if err != nil {
			t.Fatal(err)
		}
		b := consoletest.New(t, env.URL)
		status, page := b.SignInOperator("olga@ops.example", op.Password, "olga's very own password", op.TOTP.Secret, time.Now())
		if status != http.StatusOK {
			t.Fatalf("sign in: %d %s", status, page)
		}
		csrf := consoletest.CSRF(t, page)
		_, page, _ = b.Get("/console/tenants/acme")
		if !strings.Contains(page, `<option value="basic-plus">basic-plus (pool)</option>`) || strings.Contains(page, `<option value="basic">`) ||
			!strings.HasSuffix(strings.TrimSpace(page), "</html>") {
			t.Fatalf("the tier form: %s", page)
		}
		if status, page = b.Post("/console/tenants/acme/tier", url.Values{"csrf": {csrf}, "tier": {"no-such-tier"}}, env.URL); status != http.StatusBadRequest ||
			!strings.Contains(page, "Choose one of the other tiers") {
			t.Errorf("an unknown tier: %d %s", status, page)
		}
		// Within the pool model: at once.
		if status, page = b.Post("/console/tenants/acme/tier", url.Values{"csrf": {csrf}, "tier": {"basic-plus"}}, env.URL); status != http.StatusOK ||
			!strings.Contains(page, "Tier changed") {
			t.Errorf("pool to pool: %d %s", status, page)
		}
		if tn, err := env.Admin.GetTenant(ctx, "acme"); err != nil || tn.Tier != "basic-plus" {
			t.Errorf("after pool to pool: %+v %v", tn, err)
		}
		// To a bridge tier: a migration, its progress on the page.
		if status, page = b.Post("/console/tenants/acme/tier", url.Values{"csrf": {csrf}, "tier": {"standard"}}, env.URL); status != http.StatusOK ||
			!strings.Contains(page, "Tier migration started") || !strings.Contains(page, "basic-plus (pool) → standard (bridge)") {
			t.Fatalf("pool to bridge: %d %s", status, page)
		}
		runtest.Eventually(t, "the migration to finish", func() bool {
			ms, err := env.Admin.ListMigrations(ctx, "acme")
			return err == nil && len(ms) == 1 && ms[0].Status == "done"
		})
		_, page, _ = b.Get("/console/tenants/acme")
		if !strings.Contains(page, "→ standard (bridge): done") || strings.Contains(page, `http-equiv="refresh"`) ||
			!strings.Contains(page, `<li class="step done">`) || !strings.HasSuffix(strings.TrimSpace(page), "</html>") {
			t.Errorf("the finished migration's page: %s", page)
		}

		// A tenant admin: no form, and the post is "not found".
		if _, err := env.Directory.CreateUser(ctx, "acme", identity.CreateUserRequest{Email: "ann@acme.example",
			Password: "ann's long password", Groups: []string{"admins"}}, tenant.Actor{Principal: "operator:test"}); err != nil {
			t.Fatal(err)
		}
		ab := consoletest.New(t, env.URL)
		status, page = ab.SignIn("/console/signin", url.Values{"email": {"ann@acme.example"}, "password": {"ann's long password"}, "tenant": {"acme"}})
		if status != http.StatusOK || strings.Contains(page, "Change tier") {
			t.Fatalf("the admin's tenant page: %d %s", status, page)
		}
		_, missing, _ := ab.Get("/console/tenants/no-such-tenant")
		if status, page = ab.Post("/console/tenants/acme/tier", url.Values{"csrf": {consoletest.CSRF(t, page)}, "tier": {"premium"}}, env.URL); status != http.StatusNotFound || page != missing {
			t.Errorf("an admin's tier change: %d %s", status, page)
		}
	})
}
