package provider_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/zitadel/oidc/v3/pkg/client/rs"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/identity/provider"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
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

// form posts fields to base+path, authenticated with HTTP Basic when
// basic is set, and returns the answer's status, headers and JSON body.
func form(t *testing.T, method, url string, basic *[2]string, fields url.Values) (int, http.Header, map[string]any) {
	t.Helper()
	var body io.Reader
	if fields != nil {
		body = strings.NewReader(fields.Encode())
	}
	req, _ := http.NewRequest(method, url, body)
	if fields != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if basic != nil {
		req.SetBasicAuth(basic[0], basic[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &out) != nil {
		out = map[string]any{"<not json>": string(raw)}
	}
	return resp.StatusCode, resp.Header, out
}

// TestIntrospectionAndRevocationOwnClientOnly: a token is introspected and
// revoked only by the client it was issued to (RFC 7662 §2.1, RFC 7009
// §2.1). Another client of the same tenant (a client-credentials service)
// learns {"active":false} and its revocation is a 200 that changes
// nothing.
func TestIntrospectionAndRevocationOwnClientOnly(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		f.user(t, "acme", "ann@acme.example", "ann's long password")
		web := f.client(t, "acme", identity.CreateClientRequest{Name: "web", GrantTypes: []string{"authorization_code", "refresh_token"},
			RedirectURIs: []string{redirectURI}})
		svc := f.client(t, "acme", identity.CreateClientRequest{Name: "svc", GrantTypes: []string{"client_credentials"}})
		p, err := oidc.NewProvider(f.ctx, f.env.URL)
		if err != nil {
			t.Fatal(err)
		}
		conf := oauth2.Config{ClientID: web.ID, ClientSecret: web.ClientSecret, Endpoint: p.Endpoint(), RedirectURL: redirectURI,
			Scopes: []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess}}
		tok := f.signIn(t, conf, "ann@acme.example", "ann's long password")
		active := func(c identity.CreatedClient, token string) bool {
			t.Helper()
			server, err := rs.NewResourceServerClientCredentials(f.ctx, f.env.URL, c.ID, c.ClientSecret)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := rs.Introspect[*zoidc.IntrospectionResponse](f.ctx, server, token)
			if err != nil {
				t.Fatalf("introspect as %s: %v", c.Name, err)
			}
			return resp.Active
		}
		if active(svc, tok.AccessToken) {
			t.Error("another client of the tenant introspected the web app's user token as active")
		}
		if !active(web, tok.AccessToken) {
			t.Error("the web app's own token is not active for it")
		}
		// Revocation by the other client: 200, and nothing is revoked.
		for _, token := range []string{tok.AccessToken, tok.RefreshToken} {
			if status, _, body := form(t, "POST", f.env.URL+"/revoke", &[2]string{svc.ID, svc.ClientSecret}, url.Values{"token": {token}}); status != 200 {
				t.Fatalf("revocation by another client: %d %v; want 200", status, body)
			}
		}
		if status, code := apiCall(t, f.env.URL, tok.AccessToken, "/v1/tenants/acme"); status != 200 {
			t.Errorf("after another client's revocation the token is refused: %d %s", status, code)
		}
		if !active(web, tok.AccessToken) {
			t.Error("after another client's revocation the token is inactive")
		}
		stale := *tok
		stale.Expiry = time.Now().Add(-time.Minute)
		refreshed, err := conf.TokenSource(f.ctx, &stale).Token()
		if err != nil {
			t.Fatalf("after another client's revocation the refresh token is refused: %v", err)
		}
		// The web app revokes its own: the access token stops at the API.
		if status, _, body := form(t, "POST", f.env.URL+"/revoke", &[2]string{web.ID, web.ClientSecret}, url.Values{"token": {refreshed.AccessToken}}); status != 200 {
			t.Fatalf("revocation by the token's client: %d %v", status, body)
		}
		if status, _ := apiCall(t, f.env.URL, refreshed.AccessToken, "/v1/tenants/acme"); status != 401 {
			t.Errorf("a revoked token at the API: %d; want 401", status)
		}
		if active(web, refreshed.AccessToken) {
			t.Error("a revoked token is active")
		}
	})
}

// wantOAuthError checks an RFC 6749 §5.2 error answer: JSON with error (and
// at most error_description), no Go error text, no-store, and a
// WWW-Authenticate challenge on a 401.
func wantOAuthError(t *testing.T, what string, status int, h http.Header, body map[string]any, wantStatus int, wantError string) {
	t.Helper()
	if status != wantStatus || body["error"] != wantError {
		t.Errorf("%s: %d %v; want %d %s", what, status, body, wantStatus, wantError)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	for k, v := range body {
		if k != "error" && k != "error_description" {
			t.Errorf("%s: unexpected member %q in %v", what, k, body)
		}
		if s, _ := v.(string); strings.Contains(s, "ErrorType=") || strings.Contains(s, "Parent=") || strings.Contains(s, "provider:") {
			t.Errorf("%s: Go error text in the answer: %q", what, s)
		}
	}
	if cc := h.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: Cache-Control %q; want no-store", what, cc)
	}
	if wantStatus == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("%s: 401 without a Basic challenge: %q", what, h.Get("WWW-Authenticate"))
	}
}

// TestProtocolErrors: the token, introspection and revocation endpoints
// answer every error as RFC 6749 §5.2 JSON (401 with a challenge, never Go
// error text), token answers are no-store, a grant the client is not
// registered for is unauthorized_client, and introspection takes
// client_secret_post as the token endpoint does.
func TestProtocolErrors(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		svc := f.client(t, "acme", identity.CreateClientRequest{Name: "svc", GrantTypes: []string{"client_credentials"}})
		web := f.client(t, "acme", identity.CreateClientRequest{Name: "web", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{redirectURI}})
		pub := f.client(t, "acme", identity.CreateClientRequest{Name: "spa", Public: true, GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{redirectURI}})
		tokenURL, introURL, revokeURL := f.env.URL+"/oauth/token", f.env.URL+"/oauth/introspect", f.env.URL+"/revoke"
		good := &[2]string{svc.ID, svc.ClientSecret}
		wrong := &[2]string{svc.ID, svc.ClientSecret + "x"}
		cc := url.Values{"grant_type": {"client_credentials"}}

		// A token, no-store; and what x/oauth2 makes of a refusal.
		status, h, body := form(t, "POST", tokenURL, good, cc)
		if status != 200 || body["access_token"] == nil || h.Get("Cache-Control") != "no-store" || h.Get("Pragma") != "no-cache" {
			t.Errorf("token: %d %v %v", status, h, body)
		}
		access, _ := body["access_token"].(string)
		_, err := (&clientcredentials.Config{ClientID: web.ID, ClientSecret: web.ClientSecret, TokenURL: tokenURL}).Token(f.ctx)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "unauthorized_client" {
			t.Errorf("client_credentials by a client registered for authorization_code only: %v; want unauthorized_client", err)
		}
		_, err = (&clientcredentials.Config{ClientID: svc.ID, ClientSecret: "wrong", TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams}).Token(f.ctx)
		if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || re.Response.StatusCode != 401 {
			t.Errorf("client_secret_post with a wrong secret: %v; want 401 invalid_client", err)
		}

		for _, c := range []struct {
			what   string
			method string
			url    string
			basic  *[2]string
			fields url.Values
			status int
			error  string
		}{
			{"token: wrong secret (basic)", "POST", tokenURL, wrong, cc, 401, "invalid_client"},
			{"token: wrong secret (post)", "POST", tokenURL, nil, url.Values{"grant_type": {"client_credentials"}, "client_id": {svc.ID}, "client_secret": {"x"}}, 401, "invalid_client"},
			{"token: unknown client", "POST", tokenURL, &[2]string{"cli_aaaaaaaaaaaaaaaaaaaaaaaaaa", "x"}, cc, 401, "invalid_client"},
			{"token: no client", "POST", tokenURL, nil, cc, 401, "invalid_client"},
			{"token: not registered for the grant", "POST", tokenURL, &[2]string{web.ID, web.ClientSecret}, cc, 400, "unauthorized_client"},
			{"token: no grant_type", "POST", tokenURL, good, url.Values{}, 400, "invalid_request"},
			{"token: password grant", "POST", tokenURL, good, url.Values{"grant_type": {"password"}, "username": {"a"}, "password": {"b"}}, 400, "unsupported_grant_type"},
			{"token: JWT bearer grant", "POST", tokenURL, good, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {"x.y.z"}}, 400, "unsupported_grant_type"},
			{"token: device code grant", "POST", tokenURL, good, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {"x"}}, 400, "unsupported_grant_type"},
			{"token: bad code", "POST", tokenURL, &[2]string{web.ID, web.ClientSecret}, url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "redirect_uri": {redirectURI}}, 400, "invalid_grant"},
			{"token: bad refresh token", "POST", tokenURL, &[2]string{web.ID, web.ClientSecret}, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}}, 400, "unauthorized_client"},
			{"token: GET", "GET", tokenURL + "?grant_type=client_credentials", good, nil, 405, "invalid_request"},
			{"introspection: no client", "POST", introURL, nil, url.Values{"token": {access}}, 401, "invalid_client"},
			{"introspection: wrong secret (basic)", "POST", introURL, wrong, url.Values{"token": {access}}, 401, "invalid_client"},
			{"introspection: wrong secret (post)", "POST", introURL, nil, url.Values{"token": {access}, "client_id": {svc.ID}, "client_secret": {"x"}}, 401, "invalid_client"},
			{"introspection: a public client", "POST", introURL, nil, url.Values{"token": {access}, "client_id": {pub.ID}}, 401, "invalid_client"},
			{"introspection: two methods", "POST", introURL, good, url.Values{"token": {access}, "client_id": {svc.ID}, "client_secret": {svc.ClientSecret}}, 400, "invalid_request"},
			{"introspection: no token", "POST", introURL, good, url.Values{}, 400, "invalid_request"},
			{"introspection: GET", "GET", introURL + "?token=" + access, good, nil, 405, "invalid_request"},
			{"revocation: wrong secret", "POST", revokeURL, wrong, url.Values{"token": {access}}, 401, "invalid_client"},
			{"revocation: no client", "POST", revokeURL, nil, url.Values{"token": {access}}, 401, "invalid_client"},
			{"revocation: a confidential client without its secret", "POST", revokeURL, nil, url.Values{"token": {access}, "client_id": {svc.ID}}, 401, "invalid_client"},
			{"revocation: no token", "POST", revokeURL, good, url.Values{}, 400, "invalid_request"},
			{"revocation: GET", "GET", revokeURL + "?token=" + access, good, nil, 405, "invalid_request"},
		} {
			status, h, body := form(t, c.method, c.url, c.basic, c.fields)
			wantOAuthError(t, c.what, status, h, body, c.status, c.error)
		}

		// Introspection by client_secret_post (openid-client's default), and by Basic.
		for name, basic := range map[string]*[2]string{"post": nil, "basic": good} {
			fields := url.Values{"token": {access}}
			if basic == nil {
				fields.Set("client_id", svc.ID)
				fields.Set("client_secret", svc.ClientSecret)
			}
			status, h, body := form(t, "POST", introURL, basic, fields)
			if status != 200 || body["active"] != true || body["client_id"] != svc.ID || body["tenant_id"] != "acme" || h.Get("Cache-Control") != "no-store" {
				t.Errorf("introspection by client_secret_%s: %d %v", name, status, body)
			}
		}
		// Revocation answers 200 for a token it does not know.
		if status, _, _ := form(t, "POST", revokeURL, good, url.Values{"token": {"garbage"}}); status != 200 {
			t.Errorf("revocation of garbage: %d; want 200", status)
		}
		if status, _, body := form(t, "POST", introURL, good, url.Values{"token": {"garbage"}}); status != 200 || body["active"] != false {
			t.Errorf("introspection of garbage: %d %v", status, body)
		}
	})
}

// TestUserinfoErrors: userinfo refuses as RFC 6750 §3 says: no token is a
// bare Bearer challenge; a token that is not a live access token (garbage,
// an ID token, a revoked one, a disabled user's) is 401 invalid_token
// with the challenge naming the error, not 403.
func TestUserinfoErrors(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		ann := f.user(t, "acme", "ann@acme.example", "ann's long password")
		f.user(t, "acme", "bob@acme.example", "bob's long password")
		app, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID, "email")
		call := func(token string) (int, string, map[string]any) {
			t.Helper()
			req, _ := http.NewRequest("GET", f.env.URL+"/userinfo", nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			json.NewDecoder(resp.Body).Decode(&body)
			return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body
		}
		tok := f.signIn(t, conf, "ann@acme.example", "ann's long password")
		if status, _, body := call(tok.AccessToken); status != 200 || body["sub"] != ann.ID || body["email"] != "ann@acme.example" {
			t.Fatalf("userinfo: %d %v", status, body)
		}
		if status, challenge, _ := call(""); status != 401 || !strings.HasPrefix(challenge, "Bearer ") || strings.Contains(challenge, "error=") {
			t.Errorf("no token: %d %q; want 401 and a bare Bearer challenge", status, challenge)
		}
		idToken, _ := tok.Extra("id_token").(string)
		revoked := f.signIn(t, conf, "ann@acme.example", "ann's long password")
		revoke(t, f.env.URL, app, revoked.AccessToken)
		bob := f.signIn(t, conf, "bob@acme.example", "bob's long password")
		bobUser, _ := f.env.Directory.ListUsers(f.ctx, "acme", identity.ListOptions{Email: "bob@acme.example"})
		disabled := identity.UserDisabled
		if _, err := f.env.Directory.UpdateUser(f.ctx, "acme", bobUser.Items[0].ID, identity.UserPatch{Status: &disabled}, op); err != nil {
			t.Fatal(err)
		}
		for name, token := range map[string]string{"garbage": "garbage", "tampered": tamper(tok.AccessToken), "an ID token": idToken,
			"revoked": revoked.AccessToken, "a disabled user's": bob.AccessToken} {
			status, challenge, body := call(token)
			if status != 401 || !strings.HasPrefix(challenge, "Bearer ") || !strings.Contains(challenge, `error="invalid_token"`) || body["error"] != "invalid_token" {
				t.Errorf("%s token: %d %q %v; want 401 invalid_token", name, status, challenge, body)
			}
		}
		// go-oidc, as a relying party, gets an error (not claims) for a revoked token.
		p, _ := oidc.NewProvider(f.ctx, f.env.URL)
		if _, err := p.UserInfo(f.ctx, oauth2.StaticTokenSource(revoked)); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("go-oidc's userinfo with a revoked token: %v; want a 401", err)
		}
	})
}

// TestDiscoveryAdvertisesWhatIsServed: the discovery documents of the
// platform and a silo issuer name only endpoints that answer, the code
// flow alone, the grants the token endpoint serves, and the client
// authentication methods each endpoint accepts.
func TestDiscoveryAdvertisesWhatIsServed(t *testing.T) {
	f := newFixture(t, storagetest.DSN(t, storage.SQLite))
	f.tenant(t, "bigco", "premium")
	for _, issuer := range []string{f.env.URL, f.env.URL + "/t/bigco"} {
		p, err := oidc.NewProvider(f.ctx, issuer) // go-oidc checks the issuer and reads the document
		if err != nil {
			t.Fatal(err)
		}
		var d map[string]any
		if err := p.Claims(&d); err != nil {
			t.Fatal(err)
		}
		list := func(k string) []string {
			var out []string
			for _, v := range d[k].([]any) {
				out = append(out, v.(string))
			}
			return out
		}
		if _, ok := d["device_authorization_endpoint"]; ok {
			t.Errorf("%s advertises a device authorization endpoint", issuer)
		}
		if got := list("response_types_supported"); !slices.Equal(got, []string{"code"}) {
			t.Errorf("%s response_types_supported = %v; want [code]", issuer, got)
		}
		if got := list("grant_types_supported"); !slices.Equal(got, []string{"authorization_code", "refresh_token", "client_credentials",
			"urn:ietf:params:oauth:grant-type:token-exchange"}) {
			t.Errorf("%s grant_types_supported = %v", issuer, got)
		}
		for k, want := range map[string][]string{
			"token_endpoint_auth_methods_supported":         {"none", "client_secret_basic", "client_secret_post"},
			"introspection_endpoint_auth_methods_supported": {"client_secret_basic", "client_secret_post"},
			"revocation_endpoint_auth_methods_supported":    {"none", "client_secret_basic", "client_secret_post"},
			"code_challenge_methods_supported":              {"S256"},
		} {
			if got := list(k); !slices.Equal(got, want) {
				t.Errorf("%s %s = %v; want %v", issuer, k, got, want)
			}
		}
		for _, k := range []string{"introspection_endpoint_auth_signing_alg_values_supported", "revocation_endpoint_auth_signing_alg_values_supported",
			"token_endpoint_auth_signing_alg_values_supported", "request_object_signing_alg_values_supported", "check_session_iframe"} {
			if _, ok := d[k]; ok {
				t.Errorf("%s advertises %s: %v", issuer, k, d[k])
			}
		}
		for _, sc := range []string{"profile", "phone", "address"} {
			if slices.Contains(list("scopes_supported"), sc) {
				t.Errorf("%s advertises the scope %s, which it does not serve", issuer, sc)
			}
		}
		// Every advertised endpoint is routed (no 404).
		for k, v := range d {
			u, ok := v.(string)
			if !ok || !strings.HasSuffix(k, "_endpoint") && k != "jwks_uri" {
				continue
			}
			resp, err := http.Post(u, "application/x-www-form-urlencoded", strings.NewReader(""))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				t.Errorf("%s: %s %s answers 404", issuer, k, u)
			}
		}
	}
}

// TestPromptNone: without a browser session (Bulkhead keeps none yet),
// prompt=none is answered with error=login_required at the client's
// registered redirect URI, with its state, not with the login page; an
// unregistered redirect URI still gets no redirect.
func TestPromptNone(t *testing.T) {
	f := newFixture(t, storagetest.DSN(t, storage.SQLite))
	_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)
	v := oauth2.GenerateVerifier()
	b := newBrowser(t, redirectURI)
	resp, err := b.client.Get(conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("prompt", "none")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), redirectURI) || loc.Query().Get("error") != "login_required" ||
		loc.Query().Get("state") != "st4te" || loc.Query().Get("code") != "" {
		t.Errorf("prompt=none: %d %s; want a redirect to %s with error=login_required&state=st4te", resp.StatusCode, loc, redirectURI)
	}
	bad := conf
	bad.RedirectURL = "http://127.0.0.1:9/elsewhere"
	resp, err = b.client.Get(bad.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("prompt", "none")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusFound {
		t.Errorf("prompt=none with an unregistered redirect URI was redirected to %s", resp.Header.Get("Location"))
	}
}

// TestLoginPageCSP: the login page is styled under its own strict
// Content-Security-Policy: every <style> element's SHA-256 is allowed by
// style-src, nothing is 'unsafe-inline', and no element carries a style
// attribute (which a hash does not allow), on the form and on an error.
func TestLoginPageCSP(t *testing.T) {
	f := newFixture(t, storagetest.DSN(t, storage.SQLite))
	_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)
	b := newBrowser(t, redirectURI)
	resp, err := b.client.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pages := map[string]struct {
		csp  string
		body string
	}{"the form": {resp.Header.Get("Content-Security-Policy"), string(page)}}
	fields := url.Values{"email": {"nobody@example.com"}, "password": {"wrong password!!"}}
	for _, m := range hidden.FindAllStringSubmatch(string(page), -1) {
		fields.Set(m[1], m[2])
	}
	resp, err = b.client.PostForm(resp.Request.URL.String(), fields)
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `role="alert"`) {
		t.Fatalf("the refused sign-in shows no error: %s", page)
	}
	pages["an error"] = struct {
		csp  string
		body string
	}{resp.Header.Get("Content-Security-Policy"), string(page)}

	styleElem := regexp.MustCompile(`(?is)<style(\s[^>]*)?>(.*?)</style\s*>`)
	styleAttr := regexp.MustCompile(`(?i)<[^>]*\sstyle\s*=`)
	for name, p := range pages {
		directives := map[string][]string{}
		for _, d := range strings.Split(p.csp, ";") {
			if fs := strings.Fields(d); len(fs) > 0 {
				directives[strings.ToLower(fs[0])] = fs[1:]
			}
		}
		if !slices.Equal(directives["default-src"], []string{"'none'"}) || !slices.Equal(directives["frame-ancestors"], []string{"'none'"}) {
			t.Errorf("%s: CSP %q; want default-src and frame-ancestors 'none'", name, p.csp)
		}
		if strings.Contains(p.csp, "unsafe-") {
			t.Errorf("%s: CSP %q allows unsafe sources", name, p.csp)
		}
		allowed := map[string]bool{}
		for _, src := range directives["style-src"] {
			if h, ok := strings.CutPrefix(src, "'sha256-"); ok {
				allowed[strings.TrimSuffix(h, "'")] = true
			}
		}
		styles := styleElem.FindAllStringSubmatch(p.body, -1)
		if len(styles) == 0 {
			t.Errorf("%s: the page has no <style>: it is unstyled", name)
		}
		for _, m := range styles {
			sum := sha256.Sum256([]byte(m[2]))
			if !allowed[base64.StdEncoding.EncodeToString(sum[:])] {
				t.Errorf("%s: the CSP %q blocks the <style> %q", name, p.csp, m[2])
			}
		}
		if styleAttr.MatchString(p.body) {
			t.Errorf("%s: an element has a style attribute, which the CSP blocks", name)
		}
		if strings.Contains(strings.ToLower(p.body), "<link") || strings.Contains(strings.ToLower(p.body), "<script") {
			t.Errorf("%s: the page loads a stylesheet or script", name)
		}
	}
}

// TestLoginPageBranding: a tenant's own client's login page wears the
// tenant's branding (name, logo, colour, support link) under a CSP that
// allows exactly its style; a platform client's page, where anyone may
// type any organization, wears Bulkhead's.
func TestLoginPageBranding(t *testing.T) {
	f := newFixture(t, storagetest.DSN(t, storage.SQLite))
	f.tenant(t, "acme", "standard", "acme.example")
	const logo = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
	if _, err := f.env.Directory.SetBranding(f.ctx, "acme", identity.Branding{DisplayName: "Acme <Rockets>", Logo: logo,
		PrimaryColor: "#7c2d12", SupportURL: "https://help.acme.example/sign-in"}, op); err != nil {
		t.Fatal(err)
	}
	acmeApp := f.client(t, "acme", identity.CreateClientRequest{Name: "acme's app", Public: true,
		GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{redirectURI}})
	_, platform := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)
	p, err := oidc.NewProvider(f.ctx, f.env.URL)
	if err != nil {
		t.Fatal(err)
	}
	page := func(conf oauth2.Config) (string, string) {
		resp, err := newBrowser(t, redirectURI).client.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body), resp.Header.Get("Content-Security-Policy")
	}
	body, csp := page(oauth2.Config{ClientID: acmeApp.ID, Endpoint: p.Endpoint(), RedirectURL: redirectURI, Scopes: []string{oidc.ScopeOpenID}})
	for _, want := range []string{`<p class="brand">Acme &lt;Rockets&gt;</p>`, `<img src="data:image/png;base64,iVBORw0KGgo`,
		`href="https://help.acme.example/sign-in"`, `--brand:#7c2d12`, `<main>`} {
		if !strings.Contains(body, want) {
			t.Errorf("acme's login page lacks %q:\n%s", want, body)
		}
	}
	m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("acme's page has no style")
	}
	sum := sha256.Sum256([]byte(m[1]))
	if !strings.Contains(csp, "style-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") || !strings.Contains(csp, "img-src data:") {
		t.Errorf("acme's CSP %q does not allow exactly its style", csp)
	}
	body, _ = page(platform)
	if strings.Contains(body, "Acme") || !strings.Contains(body, `<p class="brand">Bulkhead</p>`) || strings.Contains(body, "<img") {
		t.Errorf("a platform client's page wears a tenant's branding:\n%s", body)
	}
}
