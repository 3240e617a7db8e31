package provider_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/identity/provider"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// logoutReceiver is an application's back-channel logout endpoint: it
// keeps the logout tokens whose signature verifies against the issuer's
// keys.
type logoutReceiver struct {
	mu      sync.Mutex
	tokens  []map[string]any
	handler http.Handler
}

func newLogoutReceiver(t *testing.T, ctx context.Context, issuer, clientID string) *logoutReceiver {
	l := &logoutReceiver{}
	keys := oidc.NewRemoteKeySet(ctx, issuer+"/keys")
	l.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.PostFormValue("logout_token")
		payload, err := keys.VerifySignature(r.Context(), tok)
		if err != nil {
			t.Errorf("%s: a logout token that does not verify: %v", clientID, err)
			http.Error(w, "bad token", http.StatusBadRequest)
			return
		}
		head, _, _ := strings.Cut(tok, ".")
		rawHead, _ := base64.RawURLEncoding.DecodeString(head)
		var h map[string]any
		json.Unmarshal(rawHead, &h)
		var c map[string]any
		json.Unmarshal(payload, &c)
		ev, _ := c["events"].(map[string]any)
		if h["typ"] != provider.LogoutTokenType || c["aud"] != clientID || c["iss"] != issuer || ev["http://schemas.openid.net/event/backchannel-logout"] == nil ||
			c["nonce"] != nil || c["sid"] == nil {
			t.Errorf("%s: a logout token not of the spec: %v %v", clientID, h, c)
		}
		l.mu.Lock()
		l.tokens = append(l.tokens, c)
		l.mu.Unlock()
	})
	return l
}

func (l *logoutReceiver) got() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]any(nil), l.tokens...)
}

// TestSingleSignOn: a browser signed in to one application is signed in
// to the tenant's others without the login page; prompt=none answers
// from the session or with login_required; prompt=login, max_age and
// acr_values ask again; end_session ends the session, tells both
// applications by back-channel logout (a logout token each, with the ID
// tokens' sid), and revokes its refresh tokens.
func TestSingleSignOn(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "standard", "acme.example")
		f.user(t, "acme", "ann@acme.example", "ann's long password")
		p, err := oidc.NewProvider(f.ctx, f.env.URL)
		if err != nil {
			t.Fatal(err)
		}
		var confs [2]oauth2.Config
		var receivers [2]*logoutReceiver
		for i := range confs {
			// The endpoint's address is registered before the client's id,
			// which its checks need, is known.
			mux := http.NewServeMux()
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			c := f.client(t, "acme", identity.CreateClientRequest{Name: "app", Public: true, GrantTypes: []string{"authorization_code", "refresh_token"},
				RedirectURIs: []string{redirectURI}, BackchannelLogoutURI: srv.URL + "/logout"})
			receivers[i] = newLogoutReceiver(t, f.ctx, f.env.URL, c.ID)
			mux.Handle("/logout", receivers[i].handler)
			confs[i] = oauth2.Config{ClientID: c.ID, Endpoint: p.Endpoint(), RedirectURL: redirectURI, Scopes: []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess}}
		}
		// authorize runs an authorization in browser b, following its
		// redirects until the client's redirect URI, a page, or the login
		// form; it returns the code (or error) or "form".
		authorize := func(b *browser, conf oauth2.Config, extra ...oauth2.AuthCodeOption) (code string, verifier string) {
			return authorizeIn(t, f.env.URL, b, conf, extra...)
		}
		b := newBrowser(t, redirectURI)
		if code, _ := authorize(b, confs[0]); code != "form" {
			t.Fatalf("a fresh browser skipped the login page: %q", code)
		}
		code, verifier := "", oauth2.GenerateVerifier()
		code, _, _ = b.signIn(confs[0].AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "ann@acme.example", "ann's long password", "")
		tok1, err := confs[0].Exchange(f.ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		id1, _ := claimsOf(t, f.ctx, f.env.URL, confs[0].ClientID, tok1.Extra("id_token").(string))
		if id1["sid"] == nil || id1["acr"] != provider.ACRPassword {
			t.Fatalf("the first ID token: %v", id1)
		}

		// The second application: no login page; the same session.
		code, verifier = authorize(b, confs[1])
		if code == "form" || strings.HasPrefix(code, "error") {
			t.Fatalf("the second application asked again: %q", code)
		}
		tok2, err := confs[1].Exchange(f.ctx, code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		id2, _ := claimsOf(t, f.ctx, f.env.URL, confs[1].ClientID, tok2.Extra("id_token").(string))
		if id2["sid"] != id1["sid"] || id2["auth_time"] != id1["auth_time"] {
			t.Errorf("the second ID token: %v; first %v", id2, id1)
		}
		// prompt=none: from the session here, login_required in a fresh browser.
		if code, _ := authorize(b, confs[1], oauth2.SetAuthURLParam("prompt", "none")); code == "form" || strings.HasPrefix(code, "error") {
			t.Errorf("prompt=none with a session: %q", code)
		}
		if code, _ := authorize(newBrowser(t, redirectURI), confs[1], oauth2.SetAuthURLParam("prompt", "none")); code != "error=login_required" {
			t.Errorf("prompt=none without a session: %q", code)
		}
		// Asking again: prompt=login, max_age=0, or a second factor the
		// session did not give.
		for name, opt := range map[string]oauth2.AuthCodeOption{"prompt=login": oauth2.SetAuthURLParam("prompt", "login"),
			"max_age=0": oauth2.SetAuthURLParam("max_age", "0"), "acr mfa": oauth2.SetAuthURLParam("acr_values", provider.ACRMFA)} {
			if code, _ := authorize(b, confs[1], opt); code != "form" {
				t.Errorf("%s: %q", name, code)
			}
		}

		// end_session without an id_token_hint (a link on any page) leaves
		// the browser's session alone.
		if status, _, _ := get(t, b.client, f.env.URL+"/end_session"); status != http.StatusFound {
			t.Errorf("end_session without a hint: %d", status)
		}
		if code, _ := authorize(b, confs[1], oauth2.SetAuthURLParam("prompt", "none")); code == "form" || strings.HasPrefix(code, "error") {
			t.Errorf("a hintless end_session ended the session: %q", code)
		}
		if n := len(receivers[0].got()) + len(receivers[1].got()); n != 0 {
			t.Errorf("%d logout tokens after a hintless end_session", n)
		}

		// end_session: both applications are told, the refresh tokens die,
		// and the browser is signed out.
		status, loc, _ := get(t, b.client, f.env.URL+"/end_session?id_token_hint="+url.QueryEscape(tok1.Extra("id_token").(string)))
		if status != http.StatusFound {
			t.Fatalf("end_session: %d %s", status, loc)
		}
		runtest.Eventually(t, "both applications got a logout token", func() bool {
			return len(receivers[0].got()) == 1 && len(receivers[1].got()) == 1
		})
		for i, r := range receivers {
			if lt := r.got()[0]; lt["sid"] != id1["sid"] || lt["sub"] != id1["sub"] {
				t.Errorf("application %d's logout token: %v", i, lt)
			}
		}
		for i, tok := range []*oauth2.Token{tok1, tok2} {
			if _, err := confs[i].TokenSource(f.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
				t.Errorf("application %d's refresh token outlived the session", i)
			}
		}
		if code, _ := authorize(b, confs[1], oauth2.SetAuthURLParam("prompt", "none")); code != "error=login_required" {
			t.Errorf("prompt=none after end_session: %q", code)
		}
	})
}

// authorizeIn starts a sign-in of conf's client in browser b at the node
// at base and follows it to the login form ("form") or the client's
// redirect URI: its code, or "error=" and the error.
func authorizeIn(t *testing.T, base string, b *browser, conf oauth2.Config, extra ...oauth2.AuthCodeOption) (code string, verifier string) {
	t.Helper()
	verifier = oauth2.GenerateVerifier()
	u := conf.AuthCodeURL("s", append(extra, oauth2.S256ChallengeOption(verifier))...)
	for range 10 {
		status, loc, body := get(t, b.client, u)
		switch {
		case status == http.StatusOK && strings.Contains(body, `name="authRequestID"`):
			return "form", verifier
		case status != http.StatusFound:
			t.Fatalf("authorize: %d %s", status, body)
		case strings.HasPrefix(loc, redirectURI):
			q, _ := url.Parse(loc)
			if e := q.Query().Get("error"); e != "" {
				return "error=" + e, verifier
			}
			return q.Query().Get("code"), verifier
		}
		next, _ := url.Parse(base)
		ref, _ := url.Parse(loc)
		u = next.ResolveReference(ref).String()
	}
	t.Fatal("authorize: too many redirects")
	return "", ""
}

// TestSignedOutPage: end_session without a page of the application's own
// sends the browser to its issuer's signed-out page — the silo tenant's
// own, with its branding — under the public URL's base path.
func TestSignedOutPage(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{Argon2: fast, BasePath: "/auth"})
		ctx := context.Background()
		if _, _, err := env.Tenants.Create(ctx, tenants.CreateRequest{ID: "bigco", Tier: "premium"}, "", op); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Admin.SetBranding(ctx, "bigco", api.Branding{DisplayName: "BigCo"}); err != nil {
			t.Fatal(err)
		}
		for issuer, brand := range map[string]string{env.URL + "/auth": "", env.URL + "/auth/t/bigco": "BigCo"} {
			status, loc, _ := get(t, http.DefaultClient, issuer+"/end_session")
			if status != http.StatusFound || loc != issuer+"/login?logged_out=1" {
				t.Errorf("end_session at %s: %d %s", issuer, status, loc)
				continue
			}
			status, _, page := get(t, http.DefaultClient, loc)
			if status != http.StatusOK || !strings.Contains(page, "You are signed out") || (brand != "" && !strings.Contains(page, brand)) {
				t.Errorf("the signed-out page of %s: %d %s", issuer, status, page)
			}
		}
	})
}

// TestSessionsAPI: a user lists their browser sessions and ends one; an
// admin lists and ends a user's; each ending revokes the session's
// refresh tokens; another user's session is not found.
func TestSessionsAPI(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "standard", "acme.example")
		ann := f.user(t, "acme", "ann@acme.example", "ann's long password", "admins")
		bob := f.user(t, "acme", "bob@acme.example", "bob's long password")
		_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code", "refresh_token"},
			Scopes: []string{provider.APIScope}}, oidc.ScopeOpenID, oidc.ScopeOfflineAccess, provider.APIScope)
		annTok := f.signIn(t, conf, "ann@acme.example", "ann's long password")
		annTok2 := f.signIn(t, conf, "ann@acme.example", "ann's long password") // a second browser
		bobTok := f.signIn(t, conf, "bob@acme.example", "bob's long password")
		annAPI, bobAPI := f.env.Client(annTok.AccessToken), f.env.Client(bobTok.AccessToken)

		mine, err := annAPI.MySessions(f.ctx)
		if err != nil || len(mine) != 2 || mine[0].UserID != ann.ID || len(mine[0].Clients) != 1 || mine[0].Clients[0] != conf.ClientID || mine[0].ACR != provider.ACRPassword {
			t.Fatalf("ann's sessions: %+v %v", mine, err)
		}
		bobs, err := bobAPI.MySessions(f.ctx)
		if err != nil || len(bobs) != 1 {
			t.Fatalf("bob's sessions: %+v %v", bobs, err)
		}
		// Bob cannot end ann's session, nor see it.
		if err := bobAPI.EndMySession(f.ctx, mine[0].ID); err == nil || !strings.Contains(err.Error(), "session_not_found") {
			t.Errorf("bob ended ann's session: %v", err)
		}
		// Ann ends one of hers: its refresh token dies, the other's lives.
		var ended, kept *oauth2.Token
		for _, tok := range []*oauth2.Token{annTok, annTok2} {
			claims, _ := claimsOf(t, f.ctx, f.env.URL, conf.ClientID, tok.Extra("id_token").(string))
			if claims["sid"] == mine[0].ID {
				ended = tok
			} else {
				kept = tok
			}
		}
		if err := annAPI.EndMySession(f.ctx, mine[0].ID); err != nil {
			t.Fatal(err)
		}
		if _, err := conf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: ended.RefreshToken}).Token(); err == nil {
			t.Error("the ended session's refresh token still works")
		}
		if _, err := conf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: kept.RefreshToken}).Token(); err != nil {
			t.Errorf("the other session's refresh token: %v", err)
		}
		// A session is ended under its own user only: ann's remaining one,
		// named under bob, is "not found" and lives on.
		if err := annAPI.EndUserSession(f.ctx, "acme", bob.ID, mine[1].ID); err == nil || !strings.Contains(err.Error(), "session_not_found") {
			t.Errorf("ann's session ended under bob: %v", err)
		}
		if left, err := annAPI.MySessions(f.ctx); err != nil || len(left) != 1 || left[0].ID != mine[1].ID {
			t.Errorf("ann's sessions after one was named under bob: %+v %v", left, err)
		}
		// An admin (ann, of acme) ends bob's.
		if got, err := annAPI.UserSessions(f.ctx, "acme", bob.ID); err != nil || len(got) != 1 {
			t.Fatalf("bob's sessions as the admin sees them: %+v %v", got, err)
		}
		if err := annAPI.EndUserSession(f.ctx, "acme", bob.ID, bobs[0].ID); err != nil {
			t.Fatal(err)
		}
		if got, _ := annAPI.UserSessions(f.ctx, "acme", bob.ID); len(got) != 0 {
			t.Errorf("bob's session after the admin ended it: %+v", got)
		}
		// Bob, not an admin, cannot list ann's.
		if _, err := bobAPI.UserSessions(f.ctx, "acme", ann.ID); err == nil {
			t.Error("a user listed another's sessions")
		}
	})
}

// TestSessionOfDisabledUser: a browser session whose user was disabled
// since signs nobody in: prompt=none gets login_required.
func TestSessionOfDisabledUser(t *testing.T) {
	f := newFixture(t, storagetest.DSN(t, storage.SQLite))
	f.tenant(t, "acme", "standard", "acme.example")
	ann := f.user(t, "acme", "ann@acme.example", "ann's long password")
	_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)
	b := newBrowser(t, redirectURI)
	if code, page, _ := b.signIn(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "ann@acme.example", "ann's long password", ""); code == "" {
		t.Fatalf("sign in: %s", page)
	}
	// prompt=none follows redirects until the client's redirect URI.
	promptNone := func() string {
		u := conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none"))
		for range 10 {
			status, loc, body := get(t, b.client, u)
			if status != http.StatusFound {
				t.Fatalf("prompt=none: %d %s", status, body)
			}
			if strings.HasPrefix(loc, redirectURI) {
				q, _ := url.Parse(loc)
				if e := q.Query().Get("error"); e != "" {
					return e
				}
				return "code"
			}
			u = f.env.URL + loc
		}
		t.Fatal("prompt=none: too many redirects")
		return ""
	}
	if got := promptNone(); got != "code" {
		t.Fatalf("prompt=none with a live session: %s", got)
	}
	disabled := identity.UserDisabled
	if _, err := f.env.Directory.UpdateUser(f.ctx, "acme", ann.ID, identity.UserPatch{Status: &disabled}, op); err != nil {
		t.Fatal(err)
	}
	if got := promptNone(); got != "login_required" {
		t.Errorf("prompt=none with a disabled user's session: %s", got)
	}
}

// TestBackchannelLogoutGuarded: a logout token goes out through the same
// guarded dialer as federation. On a node that does not allow private
// upstreams, a client whose back-channel logout URI is on a private
// address (loopback here) is never connected to; the delivery is audited
// as failed, and the session still ends.
func TestBackchannelLogoutGuarded(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := &fixture{env: apitest.New(t, dsn, apitest.Options{Argon2: fast, DenyPrivateUpstreams: true}), ctx: context.Background()}
		f.tenant(t, "acme", "standard", "acme.example")
		f.user(t, "acme", "ann@acme.example", "ann's long password")
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
		t.Cleanup(srv.Close)
		c := f.client(t, "acme", identity.CreateClientRequest{Name: "app", Public: true, GrantTypes: []string{"authorization_code", "refresh_token"},
			RedirectURIs: []string{redirectURI}, BackchannelLogoutURI: srv.URL + "/logout"})
		p, err := oidc.NewProvider(f.ctx, f.env.URL)
		if err != nil {
			t.Fatal(err)
		}
		conf := oauth2.Config{ClientID: c.ID, Endpoint: p.Endpoint(), RedirectURL: redirectURI, Scopes: []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess}}
		b := newBrowser(t, redirectURI)
		v := oauth2.GenerateVerifier()
		code, page, _ := b.signIn(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), "ann@acme.example", "ann's long password", "")
		if code == "" {
			t.Fatalf("sign-in: %s", page)
		}
		tok, err := conf.Exchange(f.ctx, code, oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		if status, loc, _ := get(t, b.client, f.env.URL+"/end_session?id_token_hint="+url.QueryEscape(tok.Extra("id_token").(string))); status != http.StatusFound {
			t.Fatalf("end_session: %d %s", status, loc)
		}
		// The delivery ran within end_session.
		evs, err := f.env.Audit.ListAllTenants(f.ctx, audit.Filter{Tenant: "acme", Action: "oauth.backchannel_logout", Limit: 10})
		if err != nil || len(evs.Items) != 1 || evs.Items[0].Outcome != audit.Failure {
			t.Errorf("the delivery's audit: %+v %v", evs.Items, err)
		}
		if n := hits.Load(); n != 0 {
			t.Errorf("the private logout endpoint was reached %d times", n)
		}
		if _, err := conf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
			t.Error("the ended session's refresh token still works")
		}
	})
}
