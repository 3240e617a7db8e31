package provider_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/identity/provider"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// typOf returns the JOSE header typ of a compact JWS.
func typOf(t *testing.T, jwt string) string {
	t.Helper()
	head, _, _ := strings.Cut(jwt, ".")
	raw, err := decodeSegment(head)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h.Typ
}

// TestAccessTokenType: every access token, whatever the grant, carries the
// JOSE header typ at+jwt (RFC 9068 §2.1) and verifies with a relying
// party's verifier; ID tokens keep typ JWT.
func TestAccessTokenType(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		f.user(t, "acme", "ann@acme.example", "ann's long password")
		svc := f.client(t, "acme", identity.CreateClientRequest{Name: "svc", GrantTypes: []string{"client_credentials"}})
		sts := f.client(t, "acme", identity.CreateClientRequest{Name: "sts", GrantTypes: []string{identity.GrantTokenExchange}, Scopes: []string{"kms:encrypt"}})
		app, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code", "refresh_token"},
			Scopes: []string{provider.APIScope}}, oidc.ScopeOpenID, oidc.ScopeOfflineAccess, provider.APIScope)
		cc, err := (&clientcredentials.Config{ClientID: svc.ID, ClientSecret: svc.ClientSecret, TokenURL: f.env.URL + "/oauth/token"}).Token(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		code := f.signIn(t, conf, "ann@acme.example", "ann's long password")
		code.Expiry = time.Now().Add(-time.Minute)
		refreshed, err := conf.TokenSource(f.ctx, code).Token()
		if err != nil {
			t.Fatal(err)
		}
		ex := exchange(t, f.env.URL+"/oauth/token", sts, subject(code.AccessToken, "kms:encrypt"))
		if ex.status != 200 {
			t.Fatalf("exchange: %s", ex)
		}
		for grant, token := range map[string]string{"client_credentials": cc.AccessToken, "authorization_code": code.AccessToken,
			"refresh_token": refreshed.AccessToken, "token-exchange": ex.body.AccessToken} {
			if typ := typOf(t, token); typ != "at+jwt" {
				t.Errorf("%s access token: typ %q; want at+jwt", grant, typ)
			}
			if claims, err := claimsOf(t, f.ctx, f.env.URL, "", token); err != nil || claims["token_use"] != "access" {
				t.Errorf("%s access token does not verify: %v %v", grant, claims, err)
			}
		}
		idToken, _ := code.Extra("id_token").(string)
		if typ := typOf(t, idToken); typ != "JWT" {
			t.Errorf("ID token: typ %q; want JWT", typ)
		}
		// The ID token's at_hash is of the token handed out (go-oidc checks it).
		p, _ := oidc.NewProvider(f.ctx, f.env.URL)
		idt, err := p.Verifier(&oidc.Config{ClientID: app.ID}).Verify(f.ctx, idToken)
		if err != nil {
			t.Fatal(err)
		}
		if err := idt.VerifyAccessToken(code.AccessToken); err != nil {
			t.Errorf("at_hash: %v", err)
		}
	})
}
