package provider_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
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

// TestFederation: a bridge tenant connects its own OpenID provider (here a
// silo tenant's issuer of the same Bulkhead, standing in for the tenant's
// IdP). Its user signs in there and gets a Bulkhead token of the bridge
// tenant, created on first sign-in; the upstream's own tenant claims do not
// carry over.
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
		v := oauth2.GenerateVerifier()
		b := newBrowser(t, redirectURI)

		// 1. Bulkhead's login page: the email's domain routes to bridge-co, whose users sign in upstream.
		resp, err := b.client.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)))
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
		dbg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		code := loc.Query().Get("code")
		if resp.StatusCode != http.StatusFound || code == "" {
			t.Fatalf("the federated sign-in did not come back with a code: %d %s at %s: %s", resp.StatusCode, loc, resp.Request.URL, dbg)
		}
		// 3. Bulkhead's own token, of bridge-co.
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
