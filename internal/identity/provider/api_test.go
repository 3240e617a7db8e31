package provider_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/identity/provider"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	apiclient "github.com/bulkhead-dev/bulkhead/sdk/client"
)

// apiCall sends GET path with a bearer token and returns the status and problem code.
func apiCall(t *testing.T, base, token, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		Code string `json:"code"`
	}
	json.NewDecoder(resp.Body).Decode(&p)
	return resp.StatusCode, p.Code
}

// TestAPIAcceptsTenantTokens: Bulkhead's API takes the provider's tokens
// (validated as the SDK validates them) as tenant credentials: a tenant's
// token reaches that tenant only, an admin's token its directory, and a
// suspended tenant's tokens nothing.
func TestAPIAcceptsTenantTokens(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		f.tenant(t, "globex", "basic", "globex.example")
		f.tenant(t, "bigco", "premium")
		f.user(t, "acme", "ann@acme.example", "ann's long password", "admins")
		f.user(t, "acme", "bob@acme.example", "bob's long password")
		app := f.client(t, "", identity.CreateClientRequest{Name: "app", Public: true, Scopes: []string{provider.APIScope},
			GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{redirectURI}})
		svc := identity.CreateClientRequest{Name: "svc", GrantTypes: []string{"client_credentials"}}
		acmeSvc, platformSvc, bigcoSvc := f.client(t, "acme", svc), f.client(t, "", svc), f.client(t, "bigco", svc)

		p, err := oidc.NewProvider(f.ctx, f.env.URL)
		if err != nil {
			t.Fatal(err)
		}
		conf := oauth2.Config{ClientID: app.ID, Endpoint: p.Endpoint(), RedirectURL: redirectURI, Scopes: []string{oidc.ScopeOpenID, provider.APIScope}}
		// Without the API scope, a platform client's user token is no API credential.
		{
			plain := conf
			plain.Scopes = []string{oidc.ScopeOpenID}
			v := oauth2.GenerateVerifier()
			code, _, _ := newBrowser(t, redirectURI).signIn(plain.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), "ann@acme.example", "ann's long password", "")
			tok, err := plain.Exchange(f.ctx, code, oauth2.VerifierOption(v))
			if err != nil {
				t.Fatal(err)
			}
			if status, _ := apiCall(t, f.env.URL, tok.AccessToken, "/v1/tenants/acme"); status != 401 {
				t.Errorf("a token without the API scope at the API: %d; want 401", status)
			}
		}
		userToken := func(email, password string) string {
			t.Helper()
			v := oauth2.GenerateVerifier()
			code, page, _ := newBrowser(t, redirectURI).signIn(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), email, password, "")
			if code == "" {
				t.Fatalf("sign-in of %s: %s", email, page)
			}
			tok, err := conf.Exchange(f.ctx, code, oauth2.VerifierOption(v))
			if err != nil {
				t.Fatal(err)
			}
			return tok.AccessToken
		}
		ccToken := func(c identity.CreatedClient, tokenURL string) string {
			t.Helper()
			tok, err := (&clientcredentials.Config{ClientID: c.ID, ClientSecret: c.ClientSecret, TokenURL: tokenURL}).Token(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return tok.AccessToken
		}
		ann, bob := userToken("ann@acme.example", "ann's long password"), userToken("bob@acme.example", "bob's long password")
		// An ID token is no API credential, though it is signed by the same issuer.
		{
			v := oauth2.GenerateVerifier()
			code, _, _ := newBrowser(t, redirectURI).signIn(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), "ann@acme.example", "ann's long password", "")
			tok, err := conf.Exchange(f.ctx, code, oauth2.VerifierOption(v))
			if err != nil {
				t.Fatal(err)
			}
			idToken, _ := tok.Extra("id_token").(string)
			if status, code := apiCall(t, f.env.URL, idToken, "/v1/tenants/acme"); status != 401 || code != "invalid_token" {
				t.Errorf("an ID token at the API: %d %s; want 401 invalid_token", status, code)
			}
		}
		acmeCC, platformCC := ccToken(acmeSvc, f.env.URL+"/oauth/token"), ccToken(platformSvc, f.env.URL+"/oauth/token")
		auditor := f.client(t, "acme", identity.CreateClientRequest{Name: "siem", GrantTypes: []string{"client_credentials"}, Scopes: []string{"audit:read"}})
		auditCC, err := (&clientcredentials.Config{ClientID: auditor.ID, ClientSecret: auditor.ClientSecret, TokenURL: f.env.URL + "/oauth/token",
			Scopes: []string{"audit:read"}}).Token(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		bigcoCC := ccToken(bigcoSvc, f.env.URL+"/t/bigco/oauth/token")

		for _, tc := range []struct {
			who, token, path string
			status           int
			code             string
		}{
			{"acme admin", ann, "/v1/tenants/acme", 200, ""},
			{"acme admin", ann, "/v1/tenants/acme/users", 200, ""},
			{"acme admin", ann, "/v1/tenants/globex/users", 404, "tenant_not_found"},
			{"acme admin", ann, "/v1/tenants/globex", 404, "tenant_not_found"},
			{"acme admin", ann, "/v1/tenants/nobody/users", 404, "tenant_not_found"},
			{"acme admin", ann, "/v1/tenants", 403, "operator_required"},
			{"acme user", bob, "/v1/tenants/acme/users", 403, "tenant_admin_required"},
			{"acme user", bob, "/v1/tenants/acme", 200, ""},
			{"acme service", acmeCC, "/v1/tenants/acme", 200, ""},
			{"acme admin", ann, "/v1/tenants/acme/audit", 200, ""},
			{"acme user", bob, "/v1/tenants/acme/audit", 403, "audit_reader_required"},
			{"acme service", acmeCC, "/v1/tenants/acme/audit", 403, "audit_reader_required"},
			{"acme audit reader", auditCC.AccessToken, "/v1/tenants/acme/audit", 200, ""},
			{"acme audit reader", auditCC.AccessToken, "/v1/tenants/acme/users", 403, "tenant_admin_required"},
			{"acme service", acmeCC, "/v1/tenants/globex", 404, "tenant_not_found"},
			{"bigco service (silo issuer)", bigcoCC, "/v1/tenants/bigco", 200, ""},
			{"bigco service (silo issuer)", bigcoCC, "/v1/tenants/acme", 404, "tenant_not_found"},
			{"platform service", platformCC, "/v1/tenants/acme", 401, "invalid_token"},
			{"tampered", tamper(ann), "/v1/tenants/acme", 401, "invalid_token"},
		} {
			if status, code := apiCall(t, f.env.URL, tc.token, tc.path); status != tc.status || code != tc.code {
				t.Errorf("%s GET %s: %d %s; want %d %s", tc.who, tc.path, status, code, tc.status, tc.code)
			}
		}
		// Introspection and revocation answer only the client a token belongs to.
		globexSvc := f.client(t, "globex", svc)
		if !introspect(t, f.env.URL, acmeSvc, acmeCC) || introspect(t, f.env.URL, globexSvc, acmeCC) {
			t.Error("introspection: active for acme's client, inactive for globex's, expected")
		}
		revoke(t, f.env.URL, globexSvc, acmeCC)
		if status, _ := apiCall(t, f.env.URL, acmeCC, "/v1/tenants/acme"); status != 200 {
			t.Error("globex's client revoked acme's token")
		}
		revoke(t, f.env.URL, acmeSvc, acmeCC)
		if status, _ := apiCall(t, f.env.URL, acmeCC, "/v1/tenants/acme"); status != 401 || introspect(t, f.env.URL, acmeSvc, acmeCC) {
			t.Error("a revoked access token still works")
		}
		// Today's records decide, not the token's claims: a disabled user,
		// an admin removed from admins.
		bobUser, _ := f.env.Directory.ListUsers(f.ctx, "acme", identity.ListOptions{Email: "bob@acme.example"})
		disabled := identity.UserDisabled
		if _, err := f.env.Directory.UpdateUser(f.ctx, "acme", bobUser.Items[0].ID, identity.UserPatch{Status: &disabled}, op); err != nil {
			t.Fatal(err)
		}
		if status, _ := apiCall(t, f.env.URL, bob, "/v1/tenants/acme"); status != 401 {
			t.Errorf("a disabled user's token: %d", status)
		}
		annUser, _ := f.env.Directory.ListUsers(f.ctx, "acme", identity.ListOptions{Email: "ann@acme.example"})
		if err := f.env.Directory.SetMember(f.ctx, "acme", "admins", annUser.Items[0].ID, false, op); err != nil {
			t.Fatal(err)
		}
		if status, code := apiCall(t, f.env.URL, ann, "/v1/tenants/acme/users"); status != 403 || code != "tenant_admin_required" {
			t.Errorf("a former admin's token: %d %s", status, code)
		}
		// A suspended tenant's tokens stop working at once.
		if _, err := f.env.Tenants.Suspend(f.ctx, "acme", op); err != nil {
			t.Fatal(err)
		}
		if status, code := apiCall(t, f.env.URL, ann, "/v1/tenants/acme"); status != 401 || code != "invalid_token" {
			t.Errorf("a suspended tenant's token: %d %s", status, code)
		}
	})
}

// tamper changes one character of a JWT's payload.
func tamper(jwt string) string {
	parts := strings.Split(jwt, ".")
	b := []byte(parts[1])
	if b[10] == 'A' {
		b[10] = 'B'
	} else {
		b[10] = 'A'
	}
	parts[1] = string(b)
	return strings.Join(parts, ".")
}

// TestInitialAdmin: a tenant created with an admin_email gets its first
// admin, whose temporary password (shown once, in the create's answer)
// signs in, and whose token administers the tenant.
func TestInitialAdmin(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		created, err := f.env.Admin.CreateTenant(f.ctx, apiclient.CreateTenant{ID: "initech", Domains: []string{"initech.example"},
			AdminEmail: "peter@initech.example"}, "key-1")
		if err != nil {
			t.Fatal(err)
		}
		a := created.InitialAdmin
		if created.Status != "active" || a == nil || a.Email != "peter@initech.example" || len(a.TemporaryPassword) != 24 {
			t.Fatalf("create with admin_email: %+v %+v", created, a)
		}
		// A replay with the same Idempotency-Key shows no password: it would be a new, unused one.
		replay, err := f.env.Admin.CreateTenant(f.ctx, apiclient.CreateTenant{ID: "initech", Domains: []string{"initech.example"},
			AdminEmail: "peter@initech.example"}, "key-1")
		if err != nil || replay.InitialAdmin != nil {
			t.Fatalf("replay: %+v %v", replay.InitialAdmin, err)
		}
		_, conf := f.publicApp(t, identity.CreateClientRequest{Scopes: []string{provider.APIScope}, GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID, provider.APIScope)
		v := oauth2.GenerateVerifier()
		authURL := conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v))
		// The temporary password alone does not complete a sign-in: a new one must be chosen.
		if code, page, _ := newBrowser(t, redirectURI).signIn(authURL, a.Email, a.TemporaryPassword, ""); code != "" || !strings.Contains(page, "new_password") {
			t.Fatalf("a temporary password signed in without a change (code %q)", code)
		}
		if code, _, _ := newBrowser(t, redirectURI).post(authURL, url.Values{"email": {a.Email}, "password": {a.TemporaryPassword},
			"new_password": {"short"}}); code != "" {
			t.Fatal("a weak new password was accepted")
		}
		const mine = "peter's own long password"
		code, page, _ := newBrowser(t, redirectURI).post(authURL, url.Values{"email": {a.Email}, "password": {a.TemporaryPassword},
			"new_password": {mine}})
		if code == "" {
			t.Fatalf("the first admin cannot sign in: %s", page)
		}
		// The temporary password is gone; the new one signs in without a prompt.
		if code, _, _ := newBrowser(t, redirectURI).signIn(authURL, a.Email, a.TemporaryPassword, ""); code != "" {
			t.Error("the temporary password still works")
		}
		if code, _, _ := newBrowser(t, redirectURI).signIn(conf.AuthCodeURL("s2", oauth2.S256ChallengeOption(v)), a.Email, mine, ""); code == "" {
			t.Error("the chosen password does not sign in")
		}
		tok, err := conf.Exchange(f.ctx, code, oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		if status, code := apiCall(t, f.env.URL, tok.AccessToken, "/v1/tenants/initech/users"); status != 200 {
			t.Errorf("the first admin lists the tenant's users: %d %s", status, code)
		}
	})
}

// TestTOTPSignIn: a user with a confirmed TOTP factor signs in only with a
// current code (used once) or an unused recovery code (used once).
func TestTOTPSignIn(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		f.tenant(t, "globex", "basic", "globex.example")
		ann := f.user(t, "acme", "ann@acme.example", "ann's long password")
		_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)
		signIn := func(code string) bool {
			t.Helper()
			v := oauth2.GenerateVerifier()
			got, _, _ := newBrowser(t, redirectURI).signInWithCode(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), "ann@acme.example", "ann's long password", code)
			return got != ""
		}
		// Enrollment: not enforced until confirmed; another tenant's scope cannot touch it.
		if _, err := f.env.Directory.EnrollTOTP(f.ctx, "globex", ann.ID, op); err == nil {
			t.Fatal("globex's scope enrolled acme's user")
		}
		e, err := f.env.Directory.EnrollTOTP(f.ctx, "acme", ann.ID, op)
		if err != nil || len(e.RecoveryCodes) != 10 || e.Secret == "" {
			t.Fatalf("enroll: %+v %v", e, err)
		}
		if !signIn("") {
			t.Fatal("an unconfirmed factor blocked the sign-in")
		}
		if err := f.env.Directory.ConfirmTOTP(f.ctx, "acme", ann.ID, "000000", op); err == nil {
			t.Fatal("a wrong code confirmed the factor")
		}
		now, _ := totp.GenerateCode(e.Secret, time.Now())
		if err := f.env.Directory.ConfirmTOTP(f.ctx, "acme", ann.ID, now, op); err != nil {
			t.Fatalf("confirm: %v", err)
		}
		if signIn("") || signIn("000000") {
			t.Fatal("signed in without the second factor")
		}
		// The confirming code was used; the next step's code works once.
		next, _ := totp.GenerateCode(e.Secret, time.Now().Add(30*time.Second))
		if signIn(now) {
			t.Error("the confirmation code was accepted again")
		}
		if !signIn(next) {
			t.Fatal("a fresh code was refused")
		}
		if signIn(next) {
			t.Error("a TOTP code was accepted twice")
		}
		if !signIn(e.RecoveryCodes[3]) || signIn(e.RecoveryCodes[3]) {
			t.Error("a recovery code must work exactly once")
		}
		// Removed: the password alone works again.
		if err := f.env.Directory.RemoveTOTP(f.ctx, "acme", ann.ID, op); err != nil || !signIn("") {
			t.Errorf("after removal: %v", err)
		}
	})
}

// introspect asks the provider, as client c, whether token is active.
func introspect(t *testing.T, base string, c identity.CreatedClient, token string) bool {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/oauth/introspect", strings.NewReader("token="+token))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(c.ID, c.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Active bool `json:"active"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("introspection answer: %d %v", resp.StatusCode, err)
	}
	return out.Active
}

// revoke asks the provider, as client c, to revoke token (RFC 7009: the
// answer is 200 either way). A public client names itself in the form.
func revoke(t *testing.T, base string, c identity.CreatedClient, token string) {
	t.Helper()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	if c.Public {
		form.Set("client_id", c.ID)
	}
	req, _ := http.NewRequest("POST", base+"/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if !c.Public {
		req.SetBasicAuth(c.ID, c.ClientSecret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
}

// TestPerTenantLifetimes: a tenant's configured access token lifetime
// applies to its tokens only.
func TestPerTenantLifetimes(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic")
		f.tenant(t, "globex", "basic")
		var cfg identity.Config
		if err := f.env.Admin.Do(f.ctx, "PATCH", "/v1/tenants/acme/identity-config", nil,
			map[string]string{"access_token_lifetime": "2m", "refresh_token_lifetime": "48h"}, &cfg); err != nil {
			t.Fatal(err)
		}
		if time.Duration(cfg.AccessTokenLifetime) != 2*time.Minute || time.Duration(cfg.RefreshTokenLifetime) != 48*time.Hour {
			t.Fatalf("config = %+v", cfg)
		}
		for _, bad := range []map[string]any{{"access_token_lifetime": "10s"}, {"access_token_lifetime": "48h"},
			{"refresh_token_lifetime": "2161h"}, {"refresh_token_lifetime": "5m"}, {"access_token_lifetime": 60}, {"password_min_length": 4}} {
			err := f.env.Admin.Do(f.ctx, "PATCH", "/v1/tenants/acme/identity-config", nil, bad, nil)
			var ce *apiclient.Error
			if !errors.As(err, &ce) || ce.Status != 400 {
				t.Errorf("PATCH %v: %v; want 400", bad, err)
			}
		}
		svc := identity.CreateClientRequest{Name: "svc", GrantTypes: []string{"client_credentials"}}
		lifetime := func(tid string) time.Duration {
			c := f.client(t, tenant.ID(tid), svc)
			tok, err := (&clientcredentials.Config{ClientID: c.ID, ClientSecret: c.ClientSecret, TokenURL: f.env.URL + "/oauth/token"}).Token(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			claims, err := claimsOf(t, f.ctx, f.env.URL, "", tok.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			return time.Duration(claims["exp"].(float64)-claims["iat"].(float64)) * time.Second
		}
		if got := lifetime("acme"); got < 119*time.Second || got > 121*time.Second {
			t.Errorf("acme's token lives %v; want 2m", got)
		}
		if got := lifetime("globex"); got < 14*time.Minute {
			t.Errorf("globex's token lives %v; want the 15m default", got)
		}
	})
}

// TestSelfServiceTOTP: a signed-in user enrolls their own second factor
// with their token; no other credential can, and a confirmed factor is not
// replaced that way.
func TestSelfServiceTOTP(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		ann := f.user(t, "acme", "ann@acme.example", "ann's long password")
		_, conf := f.publicApp(t, identity.CreateClientRequest{Scopes: []string{provider.APIScope}, GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID, provider.APIScope)
		tok := f.signIn(t, conf, "ann@acme.example", "ann's long password")
		c := apiclient.New(f.env.URL, tok.AccessToken)
		var u identity.User
		if err := c.Do(f.ctx, "GET", "/v1/me", nil, nil, &u); err != nil || u.ID != ann.ID {
			t.Fatalf("GET /v1/me: %+v %v", u, err)
		}
		var e identity.TOTPEnrollment
		if err := c.Do(f.ctx, "POST", "/v1/me/totp", nil, nil, &e); err != nil || e.Secret == "" {
			t.Fatalf("enroll: %v", err)
		}
		code, _ := totp.GenerateCode(e.Secret, time.Now())
		if err := c.Do(f.ctx, "POST", "/v1/me/totp/confirm", nil, map[string]string{"code": code}, nil); err != nil {
			t.Fatalf("confirm: %v", err)
		}
		var ce *apiclient.Error
		if err := c.Do(f.ctx, "POST", "/v1/me/totp", nil, nil, nil); !errors.As(err, &ce) || ce.Code != "totp_already_enabled" {
			t.Errorf("re-enrollment over a confirmed factor: %v", err)
		}
		for name, other := range map[string]*apiclient.Client{"operator": f.env.Admin} {
			if err := other.Do(f.ctx, "GET", "/v1/me", nil, nil, nil); !errors.As(err, &ce) || ce.Code != "user_token_required" {
				t.Errorf("%s at /v1/me: %v", name, err)
			}
		}
		if on, _ := f.env.Directory.TOTPRequired(f.ctx, "acme", ann.ID); !on {
			t.Error("the self-enrolled factor is not on")
		}
	})
}
