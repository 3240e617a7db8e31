package provider_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/identity/provider"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// formFields reads the hidden fields of a login page.
func formFields(t *testing.T, resp *http.Response) (url.Values, string) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	v := url.Values{}
	for _, m := range hidden.FindAllStringSubmatch(string(body), -1) {
		v.Set(m[1], m[2])
	}
	return v, string(body)
}

// TestFederation: a bridge tenant connects its own OpenID provider. With
// a silo tenant's issuer of the same Bulkhead as that provider (zitadel's
// OP against go-oidc and x/oauth2), the whole round trip runs — PKCE,
// client authentication, nonce, ID token verification — and ends in a
// refusal, audited: Bulkhead does not verify emails, so as an upstream it
// vouches for none, and a new federated user needs one. With a provider
// that vouches for the email, the user signs in there and gets a Bulkhead
// token of the bridge tenant, created on first sign-in; the upstream's
// own tenant, tier and groups claims do not carry over.
func TestFederation(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "idp-co", "premium") // the upstream provider's side
		f.tenant(t, "bridge-co", "standard", "bridge.example")
		f.user(t, "idp-co", "bob@bridge.example", "bob's upstream password")
		upstreamClient := f.client(t, "idp-co", identity.CreateClientRequest{Name: "bulkhead federation",
			GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{f.env.URL + "/login/callback"}})
		if _, err := f.env.Directory.SetIdP(f.ctx, "bridge-co", identity.IdPRequest{Issuer: f.env.URL + "/t/idp-co",
			ClientID: upstreamClient.ID, ClientSecret: upstreamClient.ClientSecret}, op); err != nil {
			t.Fatal(err)
		}
		app, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)
		b := newBrowser(t, redirectURI)

		// 1. Bulkhead's login page: the email's domain routes to bridge-co, whose users sign in upstream.
		resp, err := b.client.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if err != nil {
			t.Fatal(err)
		}
		fields, _ := formFields(t, resp)
		fields.Set("email", "bob@bridge.example")
		resp, err = b.client.PostForm(resp.Request.URL.String(), fields)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(resp.Request.URL.Path, "/t/idp-co/login") {
			t.Fatalf("the sign-in did not go to the tenant's provider: %s", resp.Request.URL)
		}
		// 2. The upstream's login page.
		up, page := formFields(t, resp)
		if up.Get("authRequestID") == "" {
			t.Fatalf("upstream login page: %s", page)
		}
		up.Set("email", "bob@bridge.example")
		up.Set("password", "bob's upstream password")
		resp, err = b.client.PostForm(resp.Request.URL.String(), up)
		if err != nil {
			t.Fatal(err)
		}
		_, page = formFields(t, resp)
		// 3. Back at Bulkhead: the upstream ID token verified, its email unverified.
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(resp.Request.URL.Path, "/login/callback") ||
			!strings.Contains(page, "cannot sign in here") {
			t.Fatalf("a new user without a verified email: %d at %s: %s", resp.StatusCode, resp.Request.URL, page)
		}
		events, err := f.env.Audit.ListAllTenants(f.ctx, audit.Filter{Tenant: "bridge-co", Action: "login.failure", Limit: 10})
		if err != nil || len(events.Items) != 1 || events.Items[0].Detail["reason"] != "federated_email_missing" ||
			events.Items[0].Detail["issuer"] != f.env.URL+"/t/idp-co" {
			t.Fatalf("the refusal's audit: %+v %v", events.Items, err)
		}

		// 4. A provider that vouches for the email, and claims a tenant, a
		// tier and groups of its own.
		fake := newUpstreamIdP(t)
		if _, err := f.env.Directory.SetIdP(f.ctx, "bridge-co", identity.IdPRequest{Issuer: fake.issuer(),
			ClientID: upstreamClientID, ClientSecret: upstreamClientSecret}, op); err != nil {
			t.Fatal(err)
		}
		fake.says(map[string]any{"sub": "bob", "email": "bob@bridge.example", "email_verified": true, "name": "Bob",
			"tenant_id": "idp-co", "tier": "premium", "groups": []string{"admins"}})
		v := oauth2.GenerateVerifier()
		code, page, status, at := federatedSignIn(t, newBrowser(t, redirectURI), conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)),
			"bob@bridge.example")
		if code == "" {
			t.Fatalf("the federated sign-in did not come back with a code: %d at %s: %s", status, at, page)
		}
		// Bulkhead's own token, of bridge-co.
		tok, err := conf.Exchange(f.ctx, code, oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		claims, err := claimsOf(t, f.ctx, f.env.URL, app.ID, tok.Extra("id_token").(string))
		if err != nil {
			t.Fatal(err)
		}
		users, err := f.env.Directory.ListUsers(f.ctx, "bridge-co", identity.ListOptions{Email: "bob@bridge.example"})
		if err != nil || len(users.Items) != 1 {
			t.Fatalf("bridge-co's user was not created: %+v %v", users.Items, err)
		}
		if claims["tenant_id"] != "bridge-co" || claims["tier"] != "standard" || claims["sub"] != users.Items[0].ID || claims["iss"] != f.env.URL {
			t.Errorf("federated token claims = %v; want bridge-co's user, from the platform issuer", claims)
		}
		if len(users.Items[0].Groups) != 0 || !strings.Contains(string(users.Items[0].Attributes), `"upstream_name":"Bob"`) {
			t.Errorf("federated user: groups %v, attributes %s", users.Items[0].Groups, users.Items[0].Attributes)
		}
		if users.Items[0].PasswordSet {
			t.Error("a federated user got a password")
		}
		// The callback refuses a replayed or forged state.
		resp, err = http.Get(f.env.URL + "/login/callback?state=forged&code=x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("forged callback: %d", resp.StatusCode)
		}
	})
}

// TestFederatedMFA: a federated sign-in's acr says MFA when the tenant's
// provider says the user gave more than one factor (RFC 8176 amr: "mfa",
// or two kinds of factor), and only then; the session it starts serves a
// later acr_values=mfa without the login page.
func TestFederatedMFA(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "bridge-co", "standard", "bridge.example")
		fake := newUpstreamIdP(t)
		setIdP := func(sufficient bool) {
			if _, err := f.env.Directory.SetIdP(f.ctx, "bridge-co", identity.IdPRequest{Issuer: fake.issuer(),
				ClientID: upstreamClientID, ClientSecret: upstreamClientSecret, IdPSettings: api.IdPSettings{UpstreamMFASufficient: sufficient}}, op); err != nil {
				t.Fatal(err)
			}
		}
		setIdP(true)
		app, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)
		// acrIn signs bob in through the provider, which says claims, in
		// browser b, and returns the acr of Bulkhead's ID token.
		acrIn := func(b *browser, claims map[string]any, extra ...oauth2.AuthCodeOption) any {
			t.Helper()
			fake.says(claims)
			v := oauth2.GenerateVerifier()
			code, page, status, at := federatedSignIn(t, b, conf.AuthCodeURL("s", append(extra, oauth2.S256ChallengeOption(v))...), "bob@bridge.example")
			if code == "" {
				t.Fatalf("no code: %d at %s: %s", status, at, page)
			}
			tok, err := conf.Exchange(f.ctx, code, oauth2.VerifierOption(v))
			if err != nil {
				t.Fatal(err)
			}
			got, err := claimsOf(t, f.ctx, f.env.URL, app.ID, tok.Extra("id_token").(string))
			if err != nil {
				t.Fatal(err)
			}
			return got["acr"]
		}
		for _, c := range []struct {
			name string
			amr  any
			mfa  bool
		}{
			{"no amr", nil, false},
			{"password", []string{"pwd"}, false},
			{"password and code", []string{"pwd", "otp"}, true},
			{"mfa", []string{"mfa"}, true},
			{"password and face", []string{"face", "pwd"}, true},
			{"one kind twice", []string{"otp", "sms"}, false},
			{"a string", "mfa", false},
			{"unknown values", []string{"pwd", "magic"}, false},
			{"not strings", []any{1, true, map[string]any{"mfa": true}}, false},
		} {
			claims := map[string]any{"sub": "bob", "email": "bob@bridge.example", "email_verified": true}
			if c.amr != nil {
				claims["amr"] = c.amr
			}
			b := newBrowser(t, redirectURI)
			got := acrIn(b, claims)
			want := provider.ACRPassword
			if c.mfa {
				want = provider.ACRMFA
			}
			if got != want {
				t.Errorf("%s: acr %v; want %s", c.name, got, want)
			}
			// The browser's session is reused for acr_values=mfa only if it had MFA.
			code, _ := authorizeIn(t, f.env.URL, b, conf, oauth2.SetAuthURLParam("acr_values", provider.ACRMFA),
				oauth2.SetAuthURLParam("prompt", "none"))
			if reused := code != "error=login_required"; reused != c.mfa {
				t.Errorf("%s: session reused for acr mfa: %v (%s)", c.name, reused, code)
			}
		}

		// A fresh sign-in asked for (prompt=login, max_age): the provider's
		// factors count only if its auth_time is that fresh.
		mfa := func(authTime int64) map[string]any {
			return map[string]any{"sub": "bob", "email": "bob@bridge.example", "email_verified": true, "amr": []string{"pwd", "otp"}, "auth_time": authTime}
		}
		now := time.Now().Unix()
		for _, c := range []struct {
			name   string
			claims map[string]any
			opt    oauth2.AuthCodeOption
			want   string
		}{
			{"prompt=login, fresh", mfa(now), oauth2.SetAuthURLParam("prompt", "login"), provider.ACRMFA},
			{"prompt=login, an hour old", mfa(now - 3600), oauth2.SetAuthURLParam("prompt", "login"), provider.ACRPassword},
			{"max_age=600, 5 minutes old", mfa(now - 300), oauth2.SetAuthURLParam("max_age", "600"), provider.ACRMFA},
			{"max_age=60, an hour old", mfa(now - 3600), oauth2.SetAuthURLParam("max_age", "60"), provider.ACRPassword},
			{"max_age=60, no auth_time", map[string]any{"sub": "bob", "email": "bob@bridge.example", "email_verified": true, "amr": []string{"mfa"}},
				oauth2.SetAuthURLParam("max_age", "60"), provider.ACRPassword},
		} {
			if got := acrIn(newBrowser(t, redirectURI), c.claims, c.opt); got != c.want {
				t.Errorf("%s: acr %v, want %s", c.name, got, c.want)
			}
		}
		// A tenant that does not take its provider's sign-in as enough does
		// not take its word on factors either.
		setIdP(false)
		if got := acrIn(newBrowser(t, redirectURI), mfa(now)); got != provider.ACRPassword {
			t.Errorf("upstream_mfa_sufficient off: acr %v", got)
		}
	})
}
