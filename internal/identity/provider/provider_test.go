package provider_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

var fast = identity.Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

var op = tenant.Actor{Principal: "operator:test"}

type fixture struct {
	env *apitest.Env
	ctx context.Context
}

func newFixture(t *testing.T, dsn string) *fixture {
	t.Helper()
	return &fixture{env: apitest.New(t, dsn, apitest.Options{Argon2: fast}), ctx: context.Background()}
}

func (f *fixture) tenant(t *testing.T, id, tier string, domains ...string) {
	t.Helper()
	if _, _, err := f.env.Tenants.Create(f.ctx, tenants.CreateRequest{ID: id, Tier: tier, Domains: domains}, "", op); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) user(t *testing.T, tid tenant.ID, email, password string, groups ...string) identity.User {
	t.Helper()
	u, err := f.env.Directory.CreateUser(f.ctx, tid, identity.CreateUserRequest{Email: email, Password: password, Groups: groups}, op)
	if err != nil {
		t.Fatal(err)
	}
	return u.User
}

func (f *fixture) client(t *testing.T, tid tenant.ID, req identity.CreateClientRequest) identity.CreatedClient {
	t.Helper()
	c, err := f.env.Directory.CreateClient(f.ctx, tid, req, op)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// publicApp registers a public platform client (PKCE, redirect URI
// redirectURI) and returns it with an oauth2 configuration asking for scopes.
func (f *fixture) publicApp(t *testing.T, req identity.CreateClientRequest, scopes ...string) (identity.CreatedClient, oauth2.Config) {
	t.Helper()
	req.Name, req.Public, req.RedirectURIs = "app", true, []string{redirectURI}
	app := f.client(t, "", req)
	p, err := oidc.NewProvider(f.ctx, f.env.URL)
	if err != nil {
		t.Fatal(err)
	}
	return app, oauth2.Config{ClientID: app.ID, Endpoint: p.Endpoint(), RedirectURL: redirectURI, Scopes: scopes}
}

// signIn signs a user in through the hosted login page with conf (PKCE)
// and returns the tokens.
func (f *fixture) signIn(t *testing.T, conf oauth2.Config, email, password string) *oauth2.Token {
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
	return tok
}

// claimsOf verifies a JWT against the issuer's published keys (go-oidc's
// verifier, as a relying party would) and returns its claims.
func claimsOf(t *testing.T, ctx context.Context, issuer, clientID, token string) (map[string]any, error) {
	t.Helper()
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery of %s: %v", issuer, err)
	}
	cfg := &oidc.Config{ClientID: clientID, SkipClientIDCheck: clientID == ""}
	idt, err := p.Verifier(cfg).Verify(ctx, token)
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	return claims, nil
}

func TestClientCredentials(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic")
		svc := identity.CreateClientRequest{Name: "acme backend", GrantTypes: []string{"client_credentials"}, Scopes: []string{"orders:read"}}
		tc := f.client(t, "acme", svc)
		pc := f.client(t, "", svc)
		cfg := clientcredentials.Config{ClientID: tc.ID, ClientSecret: tc.ClientSecret, TokenURL: f.env.URL + "/oauth/token", Scopes: []string{"orders:read"}}
		tok, err := cfg.Token(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		claims, err := claimsOf(t, f.ctx, f.env.URL, "", tok.AccessToken)
		if err != nil {
			t.Fatalf("verify access token: %v", err)
		}
		if claims["tenant_id"] != "acme" || claims["tier"] != "basic" || claims["sub"] != tc.ID || claims["iss"] != f.env.URL {
			t.Errorf("tenant client's token claims = %v", claims)
		}
		// A platform client's token carries no tenant.
		cfg.ClientID, cfg.ClientSecret = pc.ID, pc.ClientSecret
		tok, err = cfg.Token(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		claims, _ = claimsOf(t, f.ctx, f.env.URL, "", tok.AccessToken)
		if _, has := claims["tenant_id"]; has {
			t.Errorf("platform client's token has a tenant: %v", claims)
		}
		// Refused: a wrong secret, another client's secret, an unregistered scope.
		for name, c := range map[string]clientcredentials.Config{
			"wrong secret":   {ClientID: tc.ID, ClientSecret: tc.ClientSecret + "x", TokenURL: cfg.TokenURL},
			"other's secret": {ClientID: tc.ID, ClientSecret: pc.ClientSecret, TokenURL: cfg.TokenURL},
			"unknown scope":  {ClientID: tc.ID, ClientSecret: tc.ClientSecret, TokenURL: cfg.TokenURL, Scopes: []string{"admin:all"}},
		} {
			if _, err := c.Token(f.ctx); err == nil {
				t.Errorf("%s: a token was issued", name)
			}
		}
		// A suspended tenant's clients get no tokens.
		if _, err := f.env.Tenants.Suspend(f.ctx, "acme", op); err != nil {
			t.Fatal(err)
		}
		cfg.ClientID, cfg.ClientSecret = tc.ID, tc.ClientSecret
		if _, err := cfg.Token(f.ctx); err == nil {
			t.Error("a suspended tenant's client got a token")
		}
	})
}

// browser signs a user in through the hosted login page, as a person's
// browser would, and returns the authorization code.
type browser struct {
	t            *testing.T
	client       *http.Client
	stopAt       string
	lastLocation string // the Location of the last answer post saw
}

func newBrowser(t *testing.T, redirectURI string) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, stopAt: redirectURI}
	b.client = &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), b.stopAt) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

var hidden = regexp.MustCompile(`name="(authRequestID|csrf)" value="([^"]+)"`)

// signIn opens authURL, posts the login form, and returns the code (or the
// login page's answer when the sign-in is refused).
func (b *browser) signIn(authURL, email, password, org string) (code string, page string, status int) {
	b.t.Helper()
	return b.post(authURL, url.Values{"email": {email}, "password": {password}, "tenant": {org}})
}

// signInWithCode signs in with a second-factor code too.
func (b *browser) signInWithCode(authURL, email, password, code string) (string, string, int) {
	b.t.Helper()
	return b.post(authURL, url.Values{"email": {email}, "password": {password}, "code": {code}})
}

func (b *browser) post(authURL string, fields url.Values) (code string, page string, status int) {
	b.t.Helper()
	resp, err := b.client.Get(authURL)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range hidden.FindAllStringSubmatch(string(body), -1) {
		fields.Set(m[1], m[2])
	}
	if fields.Get("authRequestID") == "" {
		return "", string(body), resp.StatusCode
	}
	resp, err = b.client.PostForm(resp.Request.URL.String(), fields)
	if err != nil {
		b.t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	b.lastLocation = resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound {
		return "", string(body), resp.StatusCode
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if e := loc.Query().Get("error"); e != "" {
		return "", e, resp.StatusCode
	}
	return loc.Query().Get("code"), "", resp.StatusCode
}

const redirectURI = "http://127.0.0.1:9/callback"

func TestAuthorizationCodeFlow(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "standard", "acme.example")
		f.tenant(t, "globex", "basic", "globex.example")
		ann := f.user(t, "acme", "ann@acme.example", "ann's long password", "admins")
		f.user(t, "globex", "gus@globex.example", "gus's long password")
		app := f.client(t, "", identity.CreateClientRequest{Name: "the SaaS app", Public: true,
			GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{redirectURI}})
		acmeApp := f.client(t, "acme", identity.CreateClientRequest{Name: "acme's app", Public: true,
			GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{redirectURI}})
		p, err := oidc.NewProvider(f.ctx, f.env.URL)
		if err != nil {
			t.Fatal(err)
		}
		conf := oauth2.Config{ClientID: app.ID, Endpoint: p.Endpoint(), RedirectURL: redirectURI, Scopes: []string{oidc.ScopeOpenID, "email", oidc.ScopeOfflineAccess}}

		// Sign in; the tenant comes from the email's domain.
		verifier := oauth2.GenerateVerifier()
		code, page, status := newBrowser(t, redirectURI).signIn(conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier)), "ann@acme.example", "ann's long password", "")
		if code == "" {
			t.Fatalf("sign-in: %d %s", status, page)
		}
		tok, err := conf.Exchange(f.ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		idToken, _ := tok.Extra("id_token").(string)
		claims, err := claimsOf(t, f.ctx, f.env.URL, app.ID, idToken)
		if err != nil {
			t.Fatalf("verify id token: %v", err)
		}
		if claims["sub"] != ann.ID || claims["tenant_id"] != "acme" || claims["tier"] != "standard" || fmt.Sprint(claims["groups"]) != "[admins]" {
			t.Errorf("id token claims = %v", claims)
		}
		access, err := claimsOf(t, f.ctx, f.env.URL, "", tok.AccessToken)
		if err != nil || access["tenant_id"] != "acme" || access["sub"] != ann.ID {
			t.Errorf("access token claims = %v (%v)", access, err)
		}
		// The code works once.
		if _, err := conf.Exchange(f.ctx, code, oauth2.VerifierOption(verifier)); err == nil {
			t.Error("a redeemed code was accepted again")
		}
		// Refresh rotates; the old refresh token replayed revokes the family.
		first := tok.RefreshToken
		if first == "" {
			t.Fatal("no refresh token")
		}
		tok.Expiry = time.Now().Add(-time.Minute)
		tok2, err := conf.TokenSource(f.ctx, tok).Token()
		if err != nil || tok2.RefreshToken == "" || tok2.RefreshToken == first {
			t.Fatalf("refresh: %v", err)
		}
		replay := &oauth2.Token{RefreshToken: first, Expiry: time.Now().Add(-time.Minute)}
		if _, err := conf.TokenSource(f.ctx, replay).Token(); err == nil {
			t.Fatal("a rotated refresh token was accepted")
		}
		tok2.Expiry = time.Now().Add(-time.Minute)
		if _, err := conf.TokenSource(f.ctx, tok2).Token(); err == nil {
			t.Fatal("after the replay, the family's newest refresh token still works")
		}

		// PKCE is required of public clients, and the verifier must match.
		b := newBrowser(t, redirectURI)
		if code, _, _ := b.signIn(conf.AuthCodeURL("s"), "ann@acme.example", "ann's long password", ""); code != "" {
			t.Error("a public client signed in without PKCE")
		}
		code, _, _ = newBrowser(t, redirectURI).signIn(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "ann@acme.example", "ann's long password", "")
		if _, err := conf.Exchange(f.ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
			t.Error("a code was redeemed with the wrong PKCE verifier")
		}

		// Wrong password; a user of globex through acme's own client.
		if code, _, status := newBrowser(t, redirectURI).signIn(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "ann@acme.example", "wrong password!!", ""); code != "" || status != http.StatusUnauthorized {
			t.Errorf("wrong password: code %q status %d", code, status)
		}
		acmeConf := conf
		acmeConf.ClientID = acmeApp.ID
		if code, _, status := newBrowser(t, redirectURI).signIn(acmeConf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "gus@globex.example", "gus's long password", ""); code != "" || status == http.StatusFound {
			t.Errorf("globex's user signed in through acme's client: status %d", status)
		}
		// ...and gus cannot pick acme with the organization code either.
		if code, _, _ := newBrowser(t, redirectURI).signIn(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "gus@globex.example", "gus's long password", "acme"); code != "" {
			t.Error("globex's user signed in to acme with an organization code")
		}
		// A redirect URI that differs by a trailing slash is refused.
		bad := conf
		bad.RedirectURL = redirectURI + "/"
		if code, _, _ := newBrowser(t, redirectURI).signIn(bad.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "ann@acme.example", "ann's long password", ""); code != "" {
			t.Error("a redirect URI with a trailing slash was accepted")
		}
		refused, err := f.env.Audit.ListAllTenants(f.ctx, audit.Filter{Action: "oauth.authorize_refused"})
		if err != nil || len(refused.Items) == 0 || refused.Items[0].Target != app.ID {
			t.Errorf("the refused authorization is not audited: %+v %v", refused.Items, err)
		}
	})
}

// TestSiloIssuer: a silo tenant has an issuer, keys and clients of its own;
// its tokens do not verify against the platform issuer, and neither issuer
// serves the other's clients.
func TestSiloIssuer(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "bigco", "premium")
		f.tenant(t, "acme", "basic")
		svc := identity.CreateClientRequest{Name: "svc", GrantTypes: []string{"client_credentials"}}
		silo := f.client(t, "bigco", svc)
		pool := f.client(t, "acme", svc)
		siloIssuer := f.env.URL + "/t/bigco"
		p, err := oidc.NewProvider(f.ctx, siloIssuer)
		if err != nil {
			t.Fatalf("silo discovery: %v", err)
		}
		cfg := clientcredentials.Config{ClientID: silo.ID, ClientSecret: silo.ClientSecret, TokenURL: p.Endpoint().TokenURL}
		tok, err := cfg.Token(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		claims, err := claimsOf(t, f.ctx, siloIssuer, "", tok.AccessToken)
		if err != nil || claims["iss"] != siloIssuer || claims["tenant_id"] != "bigco" {
			t.Fatalf("silo token: %v %v", claims, err)
		}
		if _, err := claimsOf(t, f.ctx, f.env.URL, "", tok.AccessToken); err == nil {
			t.Error("a silo token verified against the platform issuer")
		}
		// The platform issuer does not serve the silo tenant's client, nor the silo issuer a pool tenant's.
		if _, err := (&clientcredentials.Config{ClientID: silo.ID, ClientSecret: silo.ClientSecret, TokenURL: f.env.URL + "/oauth/token"}).Token(f.ctx); err == nil {
			t.Error("the platform issuer issued a token to a silo tenant's client")
		}
		if _, err := (&clientcredentials.Config{ClientID: pool.ID, ClientSecret: pool.ClientSecret, TokenURL: p.Endpoint().TokenURL}).Token(f.ctx); err == nil {
			t.Error("the silo issuer issued a token to another tenant's client")
		}
		// A pool tenant has no issuer of its own; an unknown tenant neither.
		for _, path := range []string{"/t/acme/.well-known/openid-configuration", "/t/nobody/.well-known/openid-configuration", "/t/BAD/keys"} {
			resp, err := http.Get(f.env.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET %s: %d; want 404", path, resp.StatusCode)
			}
		}
		// Rotation: tokens signed before and after verify while both keys are published.
		if _, err := f.env.Signing.Rotate(f.ctx, signingIssuer("bigco")); err != nil {
			t.Fatal(err)
		}
		tok2, err := cfg.Token(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, at := range []string{tok.AccessToken, tok2.AccessToken} {
			if _, err := claimsOf(t, f.ctx, siloIssuer, "", at); err != nil {
				t.Errorf("token %d after rotation: %v", i, err)
			}
		}
		if kidOf(t, tok.AccessToken) == kidOf(t, tok2.AccessToken) {
			t.Error("the token after rotation is signed with the old key")
		}
	})
}

func kidOf(t *testing.T, jwt string) string {
	t.Helper()
	head, _, _ := strings.Cut(jwt, ".")
	raw, err := decodeSegment(head)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	json.Unmarshal(raw, &h)
	return h.Kid
}

// TestOffboardingRevokesTokens: once a tenant is offboarded, its users'
// refresh tokens stop working.
func TestOffboardingRevokesTokens(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		f.user(t, "acme", "ann@acme.example", "ann's long password")
		_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code", "refresh_token"}}, oidc.ScopeOpenID, oidc.ScopeOfflineAccess)
		verifier := oauth2.GenerateVerifier()
		code, page, _ := newBrowser(t, redirectURI).signIn(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "ann@acme.example", "ann's long password", "")
		if code == "" {
			t.Fatalf("sign-in: %s", page)
		}
		tok, err := conf.Exchange(f.ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.env.Tenants.Delete(f.ctx, "acme", op); err != nil {
			t.Fatal(err)
		}
		runtest.Eventually(t, "acme's offboarding", func() bool {
			tn, _ := f.env.Tenants.Get(f.ctx, "acme")
			return tn.Status == tenants.Deleted
		})
		tok.Expiry = time.Now().Add(-time.Minute)
		if _, err := conf.TokenSource(f.ctx, tok).Token(); err == nil {
			t.Fatal("an offboarded tenant's refresh token still works")
		}
		// Its users' browser sessions leave with it.
		for _, table := range []string{"oidc_browser_sessions", "oidc_session_clients"} {
			var left int
			if err := f.env.DB.View(f.ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
				return tx.QueryRow(f.ctx, `SELECT COUNT(*) FROM `+table+` WHERE tenant_id = 'acme'`).Scan(&left)
			}); err != nil || left != 0 {
				t.Errorf("%s of the offboarded tenant: %d rows (%v)", table, left, err)
			}
		}
	})
}

// TestCodeRedeemedOnceUnderConcurrency: of many simultaneous exchanges of
// one authorization code, exactly one gets tokens.
func TestCodeRedeemedOnceUnderConcurrency(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		f.user(t, "acme", "ann@acme.example", "ann's long password")
		_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)
		v := oauth2.GenerateVerifier()
		code, page, _ := newBrowser(t, redirectURI).signIn(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), "ann@acme.example", "ann's long password", "")
		if code == "" {
			t.Fatal(page)
		}
		const n = 10
		results := make(chan error, n)
		for range n {
			go func() {
				_, err := conf.Exchange(f.ctx, code, oauth2.VerifierOption(v))
				results <- err
			}()
		}
		ok := 0
		for range n {
			if <-results == nil {
				ok++
			}
		}
		if ok != 1 {
			t.Fatalf("%d of %d concurrent exchanges of one code got tokens; want 1", ok, n)
		}
	})
}

// TestPasswordResetEndsSessions: after an admin sets a new password (say,
// after a compromise), refresh tokens from earlier sign-ins stop working.
func TestPasswordResetEndsSessions(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		ann := f.user(t, "acme", "ann@acme.example", "ann's long password")
		_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code", "refresh_token"}}, oidc.ScopeOpenID, oidc.ScopeOfflineAccess)
		tok := f.signIn(t, conf, "ann@acme.example", "ann's long password")
		time.Sleep(2 * time.Millisecond) // the reset comes strictly after the sign-in
		pw := "a brand new password"
		if _, err := f.env.Directory.UpdateUser(f.ctx, "acme", ann.ID, identity.UserPatch{Password: &pw}, op); err != nil {
			t.Fatal(err)
		}
		tok.Expiry = time.Now().Add(-time.Minute)
		if _, err := conf.TokenSource(f.ctx, tok).Token(); err == nil {
			t.Fatal("a refresh token from before the password reset still works")
		}
	})
}

// TestSubdomainRouting: with a login domain, a sign-in started at
// acme.{domain} signs in acme's users (and no one else's), without an
// organization code or a claimed email domain.
func TestSubdomainRouting(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := &fixture{env: apitest.New(t, dsn, apitest.Options{Argon2: fast, LoginDomain: "login.example"}), ctx: context.Background()}
		f.tenant(t, "acme", "basic")
		f.tenant(t, "globex", "basic")
		f.user(t, "acme", "ann@gmail.example", "ann's long password")
		f.user(t, "globex", "gus@gmail.example", "gus's long password")
		app := f.client(t, "", identity.CreateClientRequest{Name: "app", Public: true,
			GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{redirectURI}})
		server, _ := url.Parse(f.env.URL)
		conf := oauth2.Config{ClientID: app.ID, RedirectURL: redirectURI, Scopes: []string{"openid"}}
		start := func(host string) string {
			conf.Endpoint = oauth2.Endpoint{AuthURL: "http://" + host + ":" + server.Port() + "/authorize"}
			return conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		}
		// Every host name reaches the test server, as DNS would send them.
		b := func() *browser {
			b := newBrowser(t, redirectURI)
			b.client.Transport = &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, server.Host)
			}}
			return b
		}
		if code, page, _ := b().signIn(start("acme.login.example"), "ann@gmail.example", "ann's long password", ""); code == "" {
			t.Fatalf("sign-in at acme's subdomain: %s", page)
		}
		if code, _, _ := b().signIn(start("globex.login.example"), "ann@gmail.example", "ann's long password", ""); code != "" {
			t.Error("acme's user signed in at globex's subdomain")
		}
		if code, _, _ := b().signIn(start("acme.login.example"), "gus@gmail.example", "gus's long password", "globex"); code != "" {
			t.Error("an organization code overrode the subdomain")
		}
		if code, _, _ := b().signIn(start("127.0.0.1"), "ann@gmail.example", "ann's long password", ""); code != "" {
			t.Error("without a subdomain, code or claimed domain, a tenant was guessed")
		}
	})
}

// TestPurge: expired sign-ins and tokens are deleted, live ones kept.
func TestPurge(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		f.user(t, "acme", "ann@acme.example", "ann's long password")
		_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code", "refresh_token"}}, oidc.ScopeOpenID, oidc.ScopeOfflineAccess)
		tok := f.signIn(t, conf, "ann@acme.example", "ann's long password")
		// A pending sign-in that is never finished.
		newBrowser(t, redirectURI).signIn(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "", "", "")
		if n, err := f.env.Provider.Purge(f.ctx, time.Now()); err != nil || n != 0 {
			t.Fatalf("purge now: %d %v; want nothing deleted", n, err)
		}
		tok.Expiry = time.Now().Add(-time.Minute)
		if _, err := conf.TokenSource(f.ctx, tok).Token(); err != nil {
			t.Fatalf("the live refresh token was purged: %v", err)
		}
		n, err := f.env.Provider.Purge(f.ctx, time.Now().Add(31*24*time.Hour))
		if err != nil || n < 3 {
			t.Fatalf("purge a month later: %d %v; want the sign-ins and refresh tokens", n, err)
		}
		// The browser session of the sign-in, and its record of clients, are gone too.
		for _, table := range []string{"oidc_browser_sessions", "oidc_session_clients"} {
			var left int
			if err := f.env.DB.View(f.ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
				return tx.QueryRow(f.ctx, `SELECT COUNT(*) FROM `+table).Scan(&left)
			}); err != nil || left != 0 {
				t.Errorf("%s after the purge: %d rows (%v)", table, left, err)
			}
		}
	})
}

// TestTenantPicker: the picker is off by default; when on, it lists active
// pool and bridge tenants (not silo or suspended ones), and picking one
// routes the sign-in.
func TestTenantPicker(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		for _, on := range []bool{false, true} {
			f := &fixture{env: apitest.New(t, freshDSN(t, dsn, on), apitest.Options{Argon2: fast, TenantPicker: on}), ctx: context.Background()}
			f.tenant(t, "acme", "basic")
			f.tenant(t, "globex", "standard")
			f.tenant(t, "bigco", "premium")
			f.tenant(t, "sleepy", "basic")
			if _, err := f.env.Tenants.Suspend(f.ctx, "sleepy", op); err != nil {
				t.Fatal(err)
			}
			f.user(t, "globex", "gus@gmail.example", "gus's long password")
			app := f.client(t, "", identity.CreateClientRequest{Name: "app", Public: true,
				GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{redirectURI}})
			conf := oauth2.Config{ClientID: app.ID, RedirectURL: redirectURI, Scopes: []string{"openid"}, Endpoint: oauth2.Endpoint{AuthURL: f.env.URL + "/authorize"}}
			authURL := conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
			resp, err := newBrowser(t, redirectURI).client.Get(authURL)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			page := string(body)
			listed := strings.Contains(page, `<option value="acme"`) && strings.Contains(page, `<option value="globex"`)
			if listed != on || strings.Contains(page, `value="bigco"`) || strings.Contains(page, `value="sleepy"`) {
				t.Errorf("picker on=%v: page lists acme/globex=%v, or a silo or suspended tenant:\n%s", on, listed, page)
			}
			if on {
				if code, page, _ := newBrowser(t, redirectURI).signIn(authURL, "gus@gmail.example", "gus's long password", "globex"); code == "" {
					t.Errorf("sign-in with the picked tenant: %s", page)
				}
			}
		}
	})
}

// freshDSN returns dsn for a test's first node, and a new database of the
// same kind for a second one.
func freshDSN(t *testing.T, dsn string, second bool) string {
	switch {
	case !second:
		return dsn
	case storage.IsPostgres(dsn):
		return storagetest.PostgresDSN(t)
	default:
		return dsn + ".second"
	}
}

// TestEndSessionAndUserinfo: userinfo answers for a live access token with
// the tenant's claims, and end-session with an ID token hint ends the
// session and sends the browser to the registered post-logout URI.
func TestEndSessionAndUserinfo(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		ann := f.user(t, "acme", "ann@acme.example", "ann's long password", "admins")
		_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID, "email")
		tok := f.signIn(t, conf, "ann@acme.example", "ann's long password")
		p, err := oidc.NewProvider(f.ctx, f.env.URL)
		if err != nil {
			t.Fatal(err)
		}
		info, err := p.UserInfo(f.ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatal(err)
		}
		var claims map[string]any
		info.Claims(&claims)
		if info.Subject != ann.ID || info.Email != "ann@acme.example" || claims["tenant_id"] != "acme" {
			t.Errorf("userinfo = %v", claims)
		}
		q := url.Values{"id_token_hint": {tok.Extra("id_token").(string)}, "post_logout_redirect_uri": {redirectURI}, "state": {"bye"}}
		b := newBrowser(t, redirectURI)
		resp, err := b.client.Get(f.env.URL + "/end_session?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, redirectURI) || !strings.Contains(loc, "state=bye") {
			t.Errorf("end_session: %d %s", resp.StatusCode, loc)
		}
	})
}

// TestCodeWithoutRefreshTokenAudited: a code redeemed without
// offline_access (so no refresh token) is audited as an issued token in
// the user's tenant, like every other token.
func TestCodeWithoutRefreshTokenAudited(t *testing.T) {
	f := newFixture(t, storagetest.DSN(t, storage.SQLite))
	f.tenant(t, "acme", "standard", "acme.example")
	ann := f.user(t, "acme", "ann@acme.example", "ann's long password")
	app, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)
	tok := f.signIn(t, conf, "ann@acme.example", "ann's long password")
	if tok.RefreshToken != "" {
		t.Fatal("a refresh token without offline_access")
	}
	p, err := f.env.Audit.ListAllTenants(f.ctx, audit.Filter{Tenant: "acme", Action: "oauth.token_issued"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 1 || p.Items[0].Target != ann.ID || p.Items[0].Detail["client_id"] != app.ID || p.Items[0].Detail["grant"] != "authorization_code" {
		t.Fatalf("acme's oauth.token_issued events: %+v", p.Items)
	}
}
