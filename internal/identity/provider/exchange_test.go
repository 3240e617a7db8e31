package provider_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/auth/authtest"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/identity/provider"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const (
	tokenExchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange"
	accessTokenType    = "urn:ietf:params:oauth:token-type:access_token"
	idTokenType        = "urn:ietf:params:oauth:token-type:id_token"
	refreshTokenType   = "urn:ietf:params:oauth:token-type:refresh_token"
)

// exchangeAnswer is the token endpoint's answer to a token exchange.
type exchangeAnswer struct {
	status int
	body   struct {
		AccessToken     string `json:"access_token"`
		IssuedTokenType string `json:"issued_token_type"`
		TokenType       string `json:"token_type"`
		ExpiresIn       int64  `json:"expires_in"`
		Scope           string `json:"scope"`
		RefreshToken    string `json:"refresh_token"`
		Error           string `json:"error"`
		Description     string `json:"error_description"`
	}
}

func (a exchangeAnswer) String() string {
	return fmt.Sprintf("%d %s %s", a.status, a.body.Error, a.body.Description)
}

// exchange posts a token exchange form to tokenURL as client c (HTTP Basic).
func exchange(t *testing.T, tokenURL string, c identity.CreatedClient, form url.Values) exchangeAnswer {
	t.Helper()
	form.Set("grant_type", tokenExchangeGrant)
	req, _ := http.NewRequest("POST", tokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.ID != "" {
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.ClientSecret))
	}
	return doExchange(t, req)
}

func doExchange(t *testing.T, req *http.Request) exchangeAnswer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := exchangeAnswer{status: resp.StatusCode}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("token exchange answer %d is not JSON: %s", resp.StatusCode, raw)
	}
	return a
}

// subject is the form of an exchange of an access token for scopes.
func subject(token string, scopes ...string) url.Values {
	v := url.Values{"subject_token": {token}, "subject_token_type": {accessTokenType}}
	if len(scopes) > 0 {
		v.Set("scope", strings.Join(scopes, " "))
	}
	return v
}

// mint signs claims with the platform issuer's own active key, as only
// Bulkhead could: it makes tokens the provider never issues (expired
// ones, ones naming another tenant) to show the exchange refuses them for
// what they say, not for their signature.
func mint(t *testing.T, f *fixture, issuer signing.Issuer, claims map[string]any) string {
	t.Helper()
	k, err := f.env.Signing.Active(f.ctx, issuer)
	if err != nil {
		t.Fatal(err)
	}
	return signJWT(t, k.Algorithm, k.Private, k.ID, claims)
}

func signJWT(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// payload decodes a JWT's claims without verifying it.
func payload(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	raw, err := decodeSegment(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

var with = authtest.With

func expOf(t *testing.T, claims map[string]any) time.Time {
	t.Helper()
	exp, ok := claims["exp"].(float64)
	if !ok {
		t.Fatalf("no exp in %v", claims)
	}
	return time.Unix(int64(exp), 0)
}

func setLifetime(t *testing.T, f *fixture, tid, lifetime string) {
	t.Helper()
	if err := f.env.Admin.Do(f.ctx, "PATCH", "/v1/tenants/"+tid+"/identity-config", nil,
		map[string]string{"access_token_lifetime": lifetime}, nil); err != nil {
		t.Fatal(err)
	}
}

// exchangeEvents returns the audited token exchanges of every chain, newest first.
func exchangeEvents(t *testing.T, f *fixture) []audit.Event {
	t.Helper()
	p, err := f.env.Audit.ListAllTenants(f.ctx, audit.Filter{Action: "oauth.token_exchanged", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return p.Items
}

// TestTokenExchange: a registered service exchanges a signed-in user's
// access token (RFC 8693) for a short-lived token of the user's tenant,
// with the session policy's scopes, naming the service as its actor; the
// token is an API credential for that tenant only.
func TestTokenExchange(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		f.tenant(t, "globex", "basic", "globex.example")
		ann := f.user(t, "acme", "ann@acme.example", "ann's long password", "admins")
		gus := f.user(t, "globex", "gus@globex.example", "gus's long password")
		setLifetime(t, f, "acme", "1h") // the user's tokens outlive the exchange's bound
		_, conf := f.publicApp(t, identity.CreateClientRequest{Scopes: []string{provider.APIScope}, GrantTypes: []string{"authorization_code"}},
			oidc.ScopeOpenID, provider.APIScope)
		svcReq := identity.CreateClientRequest{Name: "orders service", GrantTypes: []string{identity.GrantTokenExchange},
			Scopes: []string{"kms:encrypt", "kms:decrypt", "data:read", "orders:read"}}
		acmeSvc, globexSvc, platformSvc := f.client(t, "acme", svcReq), f.client(t, "globex", svcReq), f.client(t, "", svcReq)
		tokenURL := f.env.URL + "/oauth/token"

		tok := f.signIn(t, conf, "ann@acme.example", "ann's long password")
		subjectClaims, err := claimsOf(t, f.ctx, f.env.URL, "", tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}

		// The happy path: the scopes asked for, less those the service lacks.
		before := time.Now()
		a := exchange(t, tokenURL, acmeSvc, subject(tok.AccessToken, "kms:encrypt", "data:read", "data:write", "orders:read"))
		if a.status != 200 || a.body.Scope != "kms:encrypt data:read" || a.body.IssuedTokenType != accessTokenType ||
			!strings.EqualFold(a.body.TokenType, "bearer") || a.body.RefreshToken != "" || a.body.ExpiresIn > 15*60 || a.body.ExpiresIn < 14*60 {
			t.Fatalf("exchange: %v %+v", a, a.body)
		}
		claims, err := claimsOf(t, f.ctx, f.env.URL, "", a.body.AccessToken)
		if err != nil {
			t.Fatalf("the exchanged token does not verify: %v", err)
		}
		act, _ := claims["act"].(map[string]any)
		if claims["tenant_id"] != "acme" || claims["sub"] != ann.ID || claims["client_id"] != acmeSvc.ID || act["sub"] != acmeSvc.ID ||
			claims["scope"] != "kms:encrypt data:read" || claims["token_use"] != "access" || claims["tier"] != "basic" || claims["iss"] != f.env.URL {
			t.Errorf("exchanged token claims = %v", claims)
		}
		if aud := fmt.Sprint(claims["aud"]); !strings.Contains(aud, f.env.URL) || !strings.Contains(aud, acmeSvc.ID) {
			t.Errorf("exchanged token audience = %v", claims["aud"])
		}
		exp := expOf(t, claims)
		if exp.After(time.Now().Add(15*time.Minute)) || exp.Before(before.Add(14*time.Minute)) || exp.After(expOf(t, subjectClaims)) {
			t.Errorf("exchanged token expires %v (subject %v); want about 15 minutes from now", exp, expOf(t, subjectClaims))
		}
		if claims["jti"] == subjectClaims["jti"] {
			t.Error("the exchanged token reuses the subject token's id")
		}

		// It is an API credential for ann's tenant, acting as ann via the
		// service: valid (403, not 401) but only for the data routes its
		// scopes name; other tenants do not exist for it (404).
		for path, want := range map[string]int{"/v1/tenants/acme": 403, "/v1/tenants/globex": 404, "/v1/tenants/nobody": 404} {
			if status, code := apiCall(t, f.env.URL, a.body.AccessToken, path); status != want {
				t.Errorf("exchanged token GET %s: %d %s; want %d", path, status, code, want)
			}
		}
		// A delegated credential has its scopes, not ann's admin rights.
		err = f.env.Client(a.body.AccessToken).Do(f.ctx, "POST", "/v1/tenants/acme/groups", nil,
			identity.CreateGroupRequest{Name: "made-by-service"}, nil)
		if e, ok := err.(*client.Error); !ok || e.Code != "delegated_token_not_allowed" {
			t.Errorf("the exchanged token of an admin creates a group: %v", err)
		}
		if err := f.env.Client(a.body.AccessToken).Do(f.ctx, "POST", "/v1/kms/encrypt", nil, map[string]any{"key_id": "alias/customer-acme",
			"plaintext": []byte("x"), "encryption_context": map[string]string{"tenant_id": "acme"}}, nil); err != nil {
			t.Fatal(err)
		}
		want := "user:" + ann.ID + " via client:" + acmeSvc.ID
		runtest.Eventually(t, "the service's act audited as "+want, func() bool {
			made, _ := f.env.Audit.ListAllTenants(f.ctx, audit.Filter{Tenant: "acme", Action: "kms.encrypt"})
			return len(made.Items) > 0 && made.Items[0].Principal == want
		})

		// The exchange is audited in ann's tenant's chain.
		evs := exchangeEvents(t, f)
		if len(evs) != 1 || evs[0].TenantID != "acme" || evs[0].Outcome != audit.Success || evs[0].Target != ann.ID ||
			evs[0].Detail["client_id"] != acmeSvc.ID || evs[0].Detail["scopes"] != "kms:encrypt data:read" ||
			evs[0].Detail["token_id"] != claims["jti"] || evs[0].Detail["subject_token_id"] != subjectClaims["jti"] {
			t.Errorf("audited exchanges: %+v", evs)
		}

		// No scope asked for: every data-plane scope the service registered.
		if a := exchange(t, tokenURL, acmeSvc, subject(tok.AccessToken)); a.status != 200 || a.body.Scope != "kms:encrypt kms:decrypt data:read" {
			t.Errorf("exchange without scope: %v %q", a, a.body.Scope)
		}
		// Only scopes the service lacks: refused.
		if a := exchange(t, tokenURL, acmeSvc, subject(tok.AccessToken, "data:write", "orders:read")); a.status != 400 || a.body.Error != "invalid_scope" {
			t.Errorf("exchange for scopes the service lacks: %v; want invalid_scope", a)
		}
		// client_secret_post works as well as HTTP Basic.
		form := subject(tok.AccessToken, "kms:decrypt")
		form.Set("client_id", acmeSvc.ID)
		form.Set("client_secret", acmeSvc.ClientSecret)
		if a := exchange(t, tokenURL, identity.CreatedClient{}, form); a.status != 200 || a.body.Scope != "kms:decrypt" {
			t.Errorf("exchange with client_secret_post: %v", a)
		}
		// The audience may name Bulkhead's API (or the service), nothing else.
		form = subject(tok.AccessToken, "kms:encrypt")
		form.Set("audience", f.env.URL)
		if a := exchange(t, tokenURL, acmeSvc, form); a.status != 200 {
			t.Errorf("exchange for the API audience: %v", a)
		}
		form.Set("audience", "https://elsewhere.example")
		if a := exchange(t, tokenURL, acmeSvc, form); a.status != 400 || a.body.Error != "invalid_target" {
			t.Errorf("exchange for another audience: %v; want invalid_target", a)
		}
		form = subject(tok.AccessToken, "kms:encrypt")
		form.Set("resource", "https://elsewhere.example/api")
		if a := exchange(t, tokenURL, acmeSvc, form); a.status != 400 || a.body.Error != "invalid_target" {
			t.Errorf("exchange for another resource: %v; want invalid_target", a)
		}
		// Only access tokens are issued.
		for _, tt := range []string{refreshTokenType, idTokenType, "urn:ietf:params:oauth:token-type:jwt", "urn:example:other"} {
			form := subject(tok.AccessToken, "kms:encrypt")
			form.Set("requested_token_type", tt)
			if a := exchange(t, tokenURL, acmeSvc, form); a.status != 400 || a.body.AccessToken != "" {
				t.Errorf("requested_token_type %s: %v", tt, a)
			}
		}

		// A platform service registered for the grant acts in any pool
		// tenant, for that tenant's users.
		gusTok := f.signIn(t, conf, "gus@globex.example", "gus's long password")
		if a := exchange(t, tokenURL, platformSvc, subject(gusTok.AccessToken, "data:read")); a.status != 200 {
			t.Errorf("platform service exchange: %v", a)
		} else if c := payload(t, a.body.AccessToken); c["tenant_id"] != "globex" || c["sub"] != gus.ID {
			t.Errorf("platform service's token claims: %v", c)
		} else if status, code := apiCall(t, f.env.URL, a.body.AccessToken, "/v1/tenants/globex"); status != 403 || code != "delegated_token_not_allowed" {
			t.Errorf("platform service's token at the API: %d %s", status, code)
		}

		// A tenant's service never gets a token for another tenant's user,
		// and learns nothing from the refusal; ann's tenant sees the attempt.
		a = exchange(t, tokenURL, globexSvc, subject(tok.AccessToken, "kms:encrypt"))
		if a.status != 400 || a.body.Error != "invalid_request" || a.body.AccessToken != "" {
			t.Errorf("globex's service exchanged ann's token: %v", a)
		}
		if evs := exchangeEvents(t, f); evs[0].TenantID != "acme" || evs[0].Outcome != audit.Denied ||
			evs[0].Detail["client_id"] != globexSvc.ID || evs[0].Detail["reason"] == "" {
			t.Errorf("the cross-tenant attempt is audited as %+v", evs[0])
		}
		if a2 := exchange(t, tokenURL, acmeSvc, subject(gusTok.AccessToken, "kms:encrypt")); a2.status != 400 || a2.body.Description != a.body.Description {
			t.Errorf("acme's service with gus's token: %v", a2)
		}
		// ...not even with a token that names another tenant than its user's.
		forged := mint(t, f, signing.Platform, with(subjectClaims, "tenant_id", "globex", "jti", "at_aaaaaaaaaaaaaaaaaaaaaaaaaa"))
		if a := exchange(t, tokenURL, globexSvc, subject(forged, "kms:encrypt")); a.status != 400 {
			t.Errorf("a token naming globex for acme's user: %v", a)
		}
	})
}

// TestTokenExchangeRefusals: what is not a live access token of an active
// user of this issuer, or comes from a client not registered for the
// grant, gets no token; each refusal is audited.
func TestTokenExchangeRefusals(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		f.tenant(t, "initech", "basic", "initech.example")
		f.user(t, "acme", "ann@acme.example", "ann's long password")
		bob := f.user(t, "acme", "bob@acme.example", "bob's long password")
		f.user(t, "initech", "peter@initech.example", "peter's long password")
		app, conf := f.publicApp(t, identity.CreateClientRequest{Scopes: []string{provider.APIScope}, GrantTypes: []string{"authorization_code"}},
			oidc.ScopeOpenID, provider.APIScope)
		svcReq := identity.CreateClientRequest{Name: "svc", GrantTypes: []string{identity.GrantTokenExchange}, Scopes: []string{"kms:encrypt"}}
		svc := f.client(t, "acme", svcReq)
		initechSvc := f.client(t, "initech", svcReq)
		ccOnly := f.client(t, "acme", identity.CreateClientRequest{Name: "cc", GrantTypes: []string{"client_credentials"}, Scopes: []string{"kms:encrypt"}})
		tokenURL := f.env.URL + "/oauth/token"
		tok := f.signIn(t, conf, "ann@acme.example", "ann's long password")
		if a := exchange(t, tokenURL, svc, subject(tok.AccessToken, "kms:encrypt")); a.status != 200 {
			t.Fatalf("exchange: %v", a)
		}
		annClaims := payload(t, tok.AccessToken)
		audited := len(exchangeEvents(t, f))

		refused := func(name string, c identity.CreatedClient, form url.Values, wantError string) {
			t.Helper()
			a := exchange(t, tokenURL, c, form)
			if a.status < 400 || a.body.AccessToken != "" || (wantError != "" && a.body.Error != wantError) {
				t.Errorf("%s: %v; want %s", name, a, wantError)
			}
			evs := exchangeEvents(t, f)
			if len(evs) != audited+1 || evs[0].Outcome == audit.Success {
				t.Errorf("%s: refusal not audited: %d events, newest %+v", name, len(evs), evs[0])
			}
			audited = len(evs)
		}

		// The client: registered for the grant, with its secret.
		refused("a client without the grant", ccOnly, subject(tok.AccessToken, "kms:encrypt"), "unauthorized_client")
		refused("a wrong secret", identity.CreatedClient{Client: svc.Client, ClientSecret: "bhs_wrong"}, subject(tok.AccessToken), "invalid_client")
		refused("no client", identity.CreatedClient{}, subject(tok.AccessToken), "invalid_client")

		// The subject token: an access token, not an ID token.
		idTok, _ := tok.Extra("id_token").(string)
		refused("an ID token", svc, url.Values{"subject_token": {idTok}, "subject_token_type": {idTokenType}}, "invalid_request")
		refused("an ID token called an access token", svc, subject(idTok), "invalid_request")
		refused("a refresh token type", svc, url.Values{"subject_token": {tok.AccessToken}, "subject_token_type": {refreshTokenType}}, "invalid_request")
		refused("no subject_token_type", svc, url.Values{"subject_token": {tok.AccessToken}}, "invalid_request")
		refused("an actor token", svc, with2(subject(tok.AccessToken), "actor_token", tok.AccessToken, "actor_token_type", accessTokenType), "invalid_request")

		// Forged, tampered, expired, and signed-but-unacceptable tokens.
		stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		k, _ := f.env.Signing.Active(f.ctx, signing.Platform)
		refused("forged (another key, the issuer's kid)", svc, subject(signJWT(t, jose.ES256, stranger, k.ID, annClaims)), "invalid_request")
		refused("tampered", svc, subject(tamper(tok.AccessToken)), "invalid_request")
		refused("garbage", svc, subject("not-a-token"), "invalid_request")
		now := time.Now().Unix()
		refused("expired", svc, subject(mint(t, f, signing.Platform, with(annClaims, "iat", now-3600, "nbf", now-3600, "exp", now-60))), "invalid_request")
		refused("another issuer", svc, subject(mint(t, f, signing.Platform, with(annClaims, "iss", "https://id.elsewhere.example"))), "invalid_request")
		refused("no token_use", svc, subject(mint(t, f, signing.Platform, with(annClaims, "token_use", nil))), "invalid_request")
		refused("an exchanged token", svc, subject(mint(t, f, signing.Platform, with(annClaims, "act", map[string]any{"sub": svc.ID}))), "invalid_request")
		refused("a client's own token", svc, subject(mint(t, f, signing.Platform, with(annClaims, "sub", svc.ID))), "invalid_request")
		refused("no tenant", svc, subject(mint(t, f, signing.Platform, with(annClaims, "tenant_id", nil))), "invalid_request")
		refused("an unknown user", svc, subject(mint(t, f, signing.Platform, with(annClaims, "sub", "usr_aaaaaaaaaaaaaaaaaaaaaaaaaa"))), "invalid_request")

		// A token not meant for Bulkhead's API nor for the service: the
		// user signed in to an app without the API scope.
		_, plainConf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)
		plain := f.signIn(t, plainConf, "ann@acme.example", "ann's long password")
		refused("a token for another app", svc, subject(plain.AccessToken), "invalid_request")

		// Revoked (by the app it was issued to).
		revoked := f.signIn(t, conf, "ann@acme.example", "ann's long password")
		revoke(t, f.env.URL, app, revoked.AccessToken)
		refused("revoked", svc, subject(revoked.AccessToken), "invalid_request")

		// A disabled user.
		bobTok := f.signIn(t, conf, "bob@acme.example", "bob's long password")
		disabled := identity.UserDisabled
		if _, err := f.env.Directory.UpdateUser(f.ctx, "acme", bob.ID, identity.UserPatch{Status: &disabled}, op); err != nil {
			t.Fatal(err)
		}
		refused("a disabled user", svc, subject(bobTok.AccessToken), "invalid_request")

		// Not by GET.
		q := subject(tok.AccessToken)
		q.Set("grant_type", tokenExchangeGrant)
		req, _ := http.NewRequest("GET", tokenURL+"?"+q.Encode(), nil)
		req.SetBasicAuth(svc.ID, svc.ClientSecret)
		if a := doExchange(t, req); a.status != 405 || a.body.Error != "invalid_request" || a.body.AccessToken != "" {
			t.Errorf("exchange by GET: %v; want 405 invalid_request", a)
		}
		audited = len(exchangeEvents(t, f))

		// A suspended tenant: its users' tokens are exchanged no more.
		peter := f.signIn(t, conf, "peter@initech.example", "peter's long password")
		if a := exchange(t, tokenURL, initechSvc, subject(peter.AccessToken)); a.status != 200 {
			t.Fatalf("initech exchange: %v", a)
		}
		audited++
		if _, err := f.env.Tenants.Suspend(f.ctx, "initech", op); err != nil {
			t.Fatal(err)
		}
		refused("a suspended tenant", initechSvc, subject(peter.AccessToken), "invalid_request")

		// Every refusal above is in the platform's or acme's chain; none in another tenant's.
		for _, e := range exchangeEvents(t, f) {
			if e.Outcome != audit.Success && e.TenantID != "" && e.TenantID != "acme" && e.TenantID != "initech" {
				t.Errorf("a refusal audited in %q: %+v", e.TenantID, e)
			}
		}
	})
}

func with2(v url.Values, kv ...string) url.Values {
	for i := 0; i < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// TestTokenExchangeLifetime: an exchanged token never outlives its subject
// token, nor the tenant's access token lifetime.
func TestTokenExchangeLifetime(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		f.user(t, "acme", "ann@acme.example", "ann's long password")
		_, conf := f.publicApp(t, identity.CreateClientRequest{Scopes: []string{provider.APIScope}, GrantTypes: []string{"authorization_code"}},
			oidc.ScopeOpenID, provider.APIScope)
		svc := f.client(t, "acme", identity.CreateClientRequest{Name: "svc", GrantTypes: []string{identity.GrantTokenExchange}, Scopes: []string{"data:read"}})
		tokenURL := f.env.URL + "/oauth/token"

		// The tenant's 2-minute tokens: the exchange's too.
		setLifetime(t, f, "acme", "2m")
		tok := f.signIn(t, conf, "ann@acme.example", "ann's long password")
		subjectExp := expOf(t, payload(t, tok.AccessToken))
		a := exchange(t, tokenURL, svc, subject(tok.AccessToken))
		if a.status != 200 || a.body.ExpiresIn > 120 {
			t.Fatalf("exchange under a 2m tenant lifetime: %v, expires in %ds", a, a.body.ExpiresIn)
		}
		// The tenant now allows an hour (the provider reads it again
		// after a second): the subject token still bounds the exchange.
		setLifetime(t, f, "acme", "1h")
		time.Sleep(1100 * time.Millisecond)
		a = exchange(t, tokenURL, svc, subject(tok.AccessToken))
		if a.status != 200 {
			t.Fatalf("exchange: %v", a)
		}
		if exp := expOf(t, payload(t, a.body.AccessToken)); exp.After(subjectExp) || a.body.ExpiresIn > 120 {
			t.Errorf("the exchanged token expires %v, after its subject token (%v)", exp, subjectExp)
		}
		// A new sign-in lives an hour; its exchange, 15 minutes.
		long := f.signIn(t, conf, "ann@acme.example", "ann's long password")
		if a := exchange(t, tokenURL, svc, subject(long.AccessToken)); a.status != 200 || a.body.ExpiresIn > 15*60 || a.body.ExpiresIn < 14*60 {
			t.Errorf("exchange of an hour-long token: %v, expires in %ds", a, a.body.ExpiresIn)
		}
	})
}

// TestTokenExchangeSilo: a silo tenant's users' tokens are exchanged at
// the tenant's own issuer, by the tenant's services, into tokens of that
// issuer; the platform issuer and platform services take no part.
func TestTokenExchangeSilo(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "bigco", "premium", "bigco.example")
		f.user(t, "bigco", "bea@bigco.example", "bea's long password")
		app := f.client(t, "bigco", identity.CreateClientRequest{Name: "bigco app", Public: true, GrantTypes: []string{"authorization_code"},
			RedirectURIs: []string{redirectURI}})
		siloIssuer := f.env.URL + "/t/bigco"
		p, err := oidc.NewProvider(f.ctx, siloIssuer)
		if err != nil {
			t.Fatal(err)
		}
		tok := f.signIn(t, oauth2.Config{ClientID: app.ID, Endpoint: p.Endpoint(), RedirectURL: redirectURI, Scopes: []string{oidc.ScopeOpenID}},
			"bea@bigco.example", "bea's long password")
		svcReq := identity.CreateClientRequest{Name: "svc", GrantTypes: []string{identity.GrantTokenExchange}, Scopes: []string{"kms:encrypt"}}
		svc, platformSvc := f.client(t, "bigco", svcReq), f.client(t, "", svcReq)

		a := exchange(t, p.Endpoint().TokenURL, svc, subject(tok.AccessToken))
		if a.status != 200 {
			t.Fatalf("silo exchange: %v", a)
		}
		claims, err := claimsOf(t, f.ctx, siloIssuer, "", a.body.AccessToken)
		if err != nil || claims["tenant_id"] != "bigco" || claims["iss"] != siloIssuer {
			t.Errorf("silo exchanged token: %v %v", claims, err)
		}
		if status, code := apiCall(t, f.env.URL, a.body.AccessToken, "/v1/tenants/bigco"); status != 403 || code != "delegated_token_not_allowed" {
			t.Errorf("silo exchanged token at the API: %d %s (want the token accepted, the route refused)", status, code)
		}
		// The platform issuer does not know the silo's tokens, nor the silo issuer platform clients.
		if a := exchange(t, f.env.URL+"/oauth/token", platformSvc, subject(tok.AccessToken)); a.status == 200 {
			t.Error("the platform issuer exchanged a silo tenant's token")
		}
		if a := exchange(t, p.Endpoint().TokenURL, platformSvc, subject(tok.AccessToken)); a.status != 401 {
			t.Errorf("a platform client at the silo issuer: %v", a)
		}
	})
}

// TestTokenExchangeDiscovery: the issuers advertise the grant.
func TestTokenExchangeDiscovery(t *testing.T) {
	f := newFixture(t, storagetest.DSN(t, storage.SQLite))
	resp, err := http.Get(f.env.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		GrantTypes []string `json:"grant_types_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || !slices.Contains(d.GrantTypes, tokenExchangeGrant) {
		t.Errorf("grant_types_supported = %v (%v)", d.GrantTypes, err)
	}
}
