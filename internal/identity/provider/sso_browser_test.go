package provider_test

import (
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/bulkhead-dev/bulkhead/internal/browsertest"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// rp is a relying party served over loopback for the browser test: its
// callback redeems the code (PKCE with its one verifier) and shows the ID
// token's sid; its back-channel logout endpoint counts logout tokens.
type rp struct {
	srv      *httptest.Server
	conf     oauth2.Config
	verifier string
	mu       sync.Mutex
	idToken  string
	logouts  *logoutReceiver
}

func newRP(t *testing.T, f *fixture, p *oidc.Provider, name string) *rp {
	r := &rp{verifier: oauth2.GenerateVerifier()}
	mux := http.NewServeMux()
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	c := f.client(t, "acme", identity.CreateClientRequest{Name: name, Public: true, GrantTypes: []string{"authorization_code"},
		RedirectURIs: []string{r.srv.URL + "/cb"}, BackchannelLogoutURI: r.srv.URL + "/logout"})
	r.conf = oauth2.Config{ClientID: c.ID, Endpoint: p.Endpoint(), RedirectURL: r.srv.URL + "/cb", Scopes: []string{oidc.ScopeOpenID}}
	r.logouts = newLogoutReceiver(t, f.ctx, f.env.URL, c.ID)
	mux.Handle("/logout", r.logouts.handler)
	mux.HandleFunc("/cb", func(w http.ResponseWriter, req *http.Request) {
		tok, err := r.conf.Exchange(req.Context(), req.URL.Query().Get("code"), oauth2.VerifierOption(r.verifier))
		if err != nil {
			http.Error(w, "exchange: "+err.Error(), http.StatusBadGateway)
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		claims, err := claimsOf(t, context.Background(), f.env.URL, c.ID, raw)
		if err != nil {
			http.Error(w, "id token: "+err.Error(), http.StatusBadGateway)
			return
		}
		r.mu.Lock()
		r.idToken = raw
		r.mu.Unlock()
		sid, _ := claims["sid"].(string)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><html lang="en"><head><title>` + name + `</title></head><body><main><h1>` + name +
			`</h1><p id="sid">` + html.EscapeString(sid) + `</p></main></body></html>`))
	})
	return r
}

func (r *rp) authURL() string {
	return r.conf.AuthCodeURL("s", oauth2.S256ChallengeOption(r.verifier))
}

// TestBrowserSingleSignOn drives Chromium through single sign-on across
// two applications of a tenant and back-channel logout reaching both.
func TestBrowserSingleSignOn(t *testing.T) {
	f := newFixture(t, storagetest.DSN(t, storage.SQLite))
	f.tenant(t, "acme", "standard", "acme.example")
	f.user(t, "acme", "ann@acme.example", "ann's long password")
	p, err := oidc.NewProvider(f.ctx, f.env.URL)
	if err != nil {
		t.Fatal(err)
	}
	crm, wiki := newRP(t, f, p, "CRM"), newRP(t, f, p, "Wiki")
	b := browsertest.New(t)
	tab := b.Tab(t)
	if err := chromedp.Do(tab, chromedp.Navigate(crm.authURL()), chromedp.WaitVisible(chromedp.CSS(`input[name="email"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "ann@acme.example"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "ann's long password"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("sid"))); err != nil {
		t.Fatalf("sign in to the CRM: %v", err)
	}
	sid1, err := chromedp.Run(tab, chromedp.Text(chromedp.ID("sid")))
	if err != nil || sid1 == "" {
		t.Fatalf("the CRM's sid: %q %v", sid1, err)
	}
	// The wiki: no login page, the same session.
	if err := chromedp.Do(tab, chromedp.Navigate(wiki.authURL()), chromedp.WaitVisible(chromedp.ID("sid"))); err != nil {
		t.Fatalf("the wiki asked to sign in again: %v", err)
	}
	sid2, _ := chromedp.Run(tab, chromedp.Text(chromedp.ID("sid")))
	if sid2 != sid1 {
		t.Errorf("the wiki's sid %q, the CRM's %q", sid2, sid1)
	}
	b.Screenshot(tab, t, "wiki-signed-in")
	// Sign out from the CRM: both applications hear of it.
	crm.mu.Lock()
	hint := crm.idToken
	crm.mu.Unlock()
	if err := chromedp.Do(tab, chromedp.Navigate(f.env.URL+"/end_session?id_token_hint="+url.QueryEscape(hint)),
		chromedp.WaitVisible(chromedp.CSS("main"))); err != nil {
		t.Fatalf("end_session: %v", err)
	}
	if body, _ := chromedp.Run(tab, chromedp.Text(chromedp.CSS("main"))); !strings.Contains(body, "signed out") {
		t.Errorf("after end_session: %q", body)
	}
	browsertest.RequireNoSerious(t, b.Axe(tab, t))
	runtest.Eventually(t, "both applications got a logout token", func() bool {
		return len(crm.logouts.got()) == 1 && len(wiki.logouts.got()) == 1
	})
	for name, r := range map[string]*rp{"CRM": crm, "wiki": wiki} {
		if lt := r.logouts.got()[0]; lt["sid"] != sid1 {
			t.Errorf("the %s's logout token: %v", name, lt)
		}
	}
	// Signed out: the wiki asks again.
	ctx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(wiki.authURL()), chromedp.WaitVisible(chromedp.CSS(`input[name="email"]`))); err != nil {
		t.Errorf("after sign-out, the wiki did not ask to sign in: %v", err)
	}
}
