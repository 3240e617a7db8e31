package provider_test

// Hostile tests of operator sign-in and of the operator scope: what an
// attacker tries to get an operator's credential, or to use one where it
// must not work.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/identity/provider"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// consoleConf is the console's OAuth configuration at the platform issuer.
func consoleConf(t *testing.T, f *fixture, scopes ...string) oauth2.Config {
	t.Helper()
	p, err := oidc.NewProvider(f.ctx, f.env.URL)
	if err != nil {
		t.Fatal(err)
	}
	return oauth2.Config{ClientID: provider.ConsoleClientID, Endpoint: p.Endpoint(), RedirectURL: f.env.URL + provider.ConsoleCallbackPath,
		Scopes: append([]string{oidc.ScopeOpenID, oidc.ScopeEmail, provider.APIScope}, scopes...)}
}

// notLoginPage reports whether an authorize request was refused before
// any login page: an error at the redirect URI, or an error page.
func notLoginPage(t *testing.T, authURL string) (bool, string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	for range 5 {
		resp, err := c.Get(authURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			return resp.StatusCode >= 400, resp.Status
		}
		u, _ := resp.Request.URL.Parse(loc)
		if u.Query().Get("error") != "" {
			return true, u.Query().Get("error")
		}
		if strings.Contains(u.Path, "login") {
			return false, loc
		}
		authURL = u.String()
	}
	return false, "redirect loop"
}

// TestOperatorScopeIsTheConsoles: no client but the console's gets the
// operator scope, whether it asks at sign-in, with its own credentials, or
// was registered with it; at a silo tenant's issuer the console's client
// signs in the tenant's admins only.
func TestOperatorScopeIsTheConsoles(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		f.tenant(t, "bigco", "premium", "bigco.example")

		// Registration with the scope is refused, directly and through the API.
		for _, tid := range []string{"", "acme"} {
			for _, sc := range []string{provider.OperatorScope} {
				if c, err := f.env.Directory.CreateClient(f.ctx, tenant.ID(tid), identity.CreateClientRequest{Name: "sneaky", GrantTypes: []string{"client_credentials"},
					Scopes: []string{"orders:read", sc}}, op); err == nil {
					t.Errorf("tenant %q: a client registered with %s: %s", tid, sc, c.ID)
					cfg := clientcredentials.Config{ClientID: c.ID, ClientSecret: c.ClientSecret, TokenURL: f.env.URL + "/oauth/token", Scopes: []string{sc}}
					if _, err := cfg.Token(f.ctx); err == nil {
						t.Errorf("tenant %q: a client credentials token with %s", tid, sc)
					}
				}
			}
		}
		body := map[string]any{"name": "sneaky", "grant_types": []string{"client_credentials"}, "scopes": []string{provider.OperatorScope}}
		for _, path := range []string{"/v1/tenants/acme/clients", "/v1/clients"} {
			if status := postJSON(t, f.env.URL, apitest.AdminToken, path, body, nil); status < 400 || status >= 500 {
				t.Errorf("POST %s with the operator scope: %d", path, status)
			}
		}

		// A client asking for the scope it does not have.
		svc := f.client(t, "", identity.CreateClientRequest{Name: "svc", GrantTypes: []string{"client_credentials"}, Scopes: []string{"orders:read"}})
		cfg := clientcredentials.Config{ClientID: svc.ID, ClientSecret: svc.ClientSecret, TokenURL: f.env.URL + "/oauth/token", Scopes: []string{provider.OperatorScope}}
		if _, err := cfg.Token(f.ctx); err == nil {
			t.Error("client credentials with the operator scope")
		}

		// Sign-in: a platform app asking for the scope gets a token without it.
		f.user(t, "acme", "ann@acme.example", "ann's long password", "admins")
		_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}, Scopes: []string{provider.APIScope}},
			oidc.ScopeOpenID, provider.APIScope, provider.OperatorScope)
		if tok := f.signIn(t, conf, "ann@acme.example", "ann's long password"); tok != nil {
			claims, err := claimsOf(t, f.ctx, f.env.URL, "", tok.AccessToken)
			if err != nil || strings.Contains(fmt.Sprint(claims["scope"]), provider.OperatorScope) {
				t.Errorf("a platform app's token: %v %v", claims, err)
			}
		}
		cc := consoleConf(t, f, provider.OperatorScope)
		silo := cc
		silo.Endpoint.AuthURL = f.env.URL + "/t/bigco/authorize"
		// At a silo issuer the console signs the tenant's admins in, never an operator.
		silo.Scopes = []string{oidc.ScopeOpenID, provider.OperatorScope}
		if refused, why := notLoginPage(t, silo.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); !refused {
			t.Errorf("the console's client at a silo issuer with the operator scope reached %s", why)
		}
		silo.Scopes = []string{oidc.ScopeOpenID, provider.APIScope}
		if refused, why := notLoginPage(t, silo.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))); refused {
			t.Errorf("the console's client at a silo issuer, for the tenant's admins, was refused: %s", why)
		}
		// The console without PKCE.
		if refused, why := notLoginPage(t, cc.AuthCodeURL("s")); !refused {
			t.Errorf("the console's client without PKCE reached %s", why)
		}
	})
}

var formNoise = regexp.MustCompile(`value="(ar|csrf)_[^"]*"`)

// TestOperatorLoginHostile: the operator form tells an unknown account
// from a wrong password in nothing, takes no tenant user, spends a TOTP
// code once, and the operator's token is no credential for exchange or
// another client's introspection.
func TestOperatorLoginHostile(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		f.user(t, "acme", "ann@acme.example", "ann's long password", "admins")
		olga, err := f.env.Directory.CreateOperator(f.ctx, "olga@ops.example", "Olga", op)
		if err != nil {
			t.Fatal(err)
		}
		// Ann is also an operator's email at acme: the two stay apart.
		if _, err := f.env.Directory.CreateUser(f.ctx, "acme", identity.CreateUserRequest{Email: "olga@acme.example", Password: "olga's tenant password"}, op); err != nil {
			t.Fatal(err)
		}
		conf := consoleConf(t, f, provider.OperatorScope, oidc.ScopeOfflineAccess)
		authURL := func() (string, string) {
			v := oauth2.GenerateVerifier()
			return conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oidc.Nonce("n")), v
		}
		b := newBrowser(t, conf.RedirectURL)
		attempt := func(fields url.Values) (string, string, int) {
			t.Helper()
			u, _ := authURL()
			return b.post(u, fields)
		}
		// Enumeration: an unknown account and a wrong password look alike.
		_, unknown, s1 := attempt(url.Values{"email": {"nobody@ops.example"}, "password": {"guess"}, "code": {"123456"}})
		_, wrong, s2 := attempt(url.Values{"email": {"olga@ops.example"}, "password": {"guess"}, "code": {"123456"}})
		norm := func(p, email string) string {
			return formNoise.ReplaceAllString(strings.ReplaceAll(p, email, "EMAIL"), "")
		}
		if s1 != s2 || norm(unknown, "nobody@ops.example") != norm(wrong, "olga@ops.example") {
			t.Errorf("unknown account %d vs wrong password %d:\n%s\n---\n%s", s1, s2, unknown, wrong)
		}
		// A tenant user's credentials on the operator form.
		for _, fields := range []url.Values{
			{"email": {"ann@acme.example"}, "password": {"ann's long password"}},
			{"email": {"olga@acme.example"}, "password": {"olga's tenant password"}},
			{"email": {"ann@acme.example"}, "password": {"ann's long password"}, "tenant": {"acme"}},
		} {
			if code, page, status := attempt(fields); code != "" || status != http.StatusUnauthorized {
				t.Errorf("a tenant user on the operator form: %q %d %s", code, status, page)
			}
		}
		// The operator's credentials on the tenant form (the console without the operator scope).
		tenantConf := consoleConf(t, f)
		if code, page, status := newBrowser(t, conf.RedirectURL).post(tenantConf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())),
			url.Values{"email": {"olga@ops.example"}, "password": {olga.Password}}); code != "" {
			t.Errorf("an operator on the tenant form: %d %s", status, page)
		}
		// Skipping the password change: the code alone with the old password does not sign in.
		code := func() string {
			c, err := totp.GenerateCode(olga.TOTP.Secret, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		if c, page, status := attempt(url.Values{"email": {"olga@ops.example"}, "password": {olga.Password}, "code": {code()}}); c != "" {
			t.Errorf("a sign-in skipped the password change: %d %s", status, page)
		}
		// The first sign-in, then the same code again.
		u, verifier := authURL()
		first := code()
		c, page, status := b.post(u, url.Values{"email": {"olga@ops.example"}, "password": {olga.Password}, "new_password": {"olga's very own password"}, "code": {first}})
		if c == "" {
			t.Fatalf("operator sign-in: %d %s", status, page)
		}
		if c2, _, _ := attempt(url.Values{"email": {"olga@ops.example"}, "password": {"olga's very own password"}, "code": {first}}); c2 != "" {
			t.Error("a TOTP code was accepted twice")
		}
		tok, err := conf.Exchange(f.ctx, c, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if status, _ := apiCall(t, f.env.URL, tok.AccessToken, "/v1/tenants/acme"); status != http.StatusOK {
			t.Fatalf("the operator's token at the API: %d", status)
		}

		// The operator's token exchanged by a tenant's or the platform's service.
		svcReq := identity.CreateClientRequest{Name: "svc", GrantTypes: []string{identity.GrantTokenExchange, "client_credentials"},
			Scopes: []string{"kms:encrypt", "data:read", provider.APIScope}}
		for _, svc := range []identity.CreatedClient{f.client(t, "acme", svcReq), f.client(t, "", svcReq)} {
			if a := exchange(t, f.env.URL+"/oauth/token", svc, subject(tok.AccessToken, "kms:encrypt")); a.status == http.StatusOK {
				t.Errorf("an operator's token exchanged by %s: %v", svc.ID, a)
			}
			if introspect(t, f.env.URL, svc, tok.AccessToken) {
				t.Errorf("%s introspects the console's operator token as active", svc.ID)
			}
			// Revoking it as another client changes nothing.
			for _, token := range []string{tok.AccessToken, tok.RefreshToken} {
				req, _ := http.NewRequest(http.MethodPost, f.env.URL+"/revoke", strings.NewReader(url.Values{"token": {token}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(svc.ID, svc.ClientSecret)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}
		if status, _ := apiCall(t, f.env.URL, tok.AccessToken, "/v1/tenants/acme"); status != http.StatusOK {
			t.Errorf("after another client's revocation: %d", status)
		}
		if _, err := conf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); tok.RefreshToken != "" && err != nil {
			t.Errorf("the refresh token after another client's revocation: %v", err)
		}
		// The operator's token at a silo or tenant issuer's userinfo is nobody's.
		f.tenant(t, "bigco", "premium")
		req, _ := http.NewRequest(http.MethodGet, f.env.URL+"/t/bigco/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var out map[string]any
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Errorf("the operator's token at a silo issuer's userinfo: %v", out)
			}
		}
	})
}
