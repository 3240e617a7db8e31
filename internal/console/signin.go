package console

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/bulkhead-dev/bulkhead/internal/httpx"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/identity/provider"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// flow is a sign-in in progress, kept sealed in a short-lived cookie of
// the browser that started it: the state, nonce and PKCE verifier never
// leave it, and a callback in another browser finds none.
type flow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Operator bool   `json:"o,omitempty"`
	Return   string `json:"r,omitempty"`
	Reauth   bool   `json:"a,omitempty"` // a fresh sign-in for the current session
	Issuer   string `json:"i,omitempty"` // a silo tenant whose own issuer signs in ("": the platform's)
	Expires  int64  `json:"e"`
}

const flowLifetime = 15 * time.Minute

var flowBinding = []byte("bulkhead-console\x00flow")

// client is an HTTP client that reaches the node's own handler in
// process, as the browser's address.
func (c *Console) client(r *http.Request) *http.Client {
	return &http.Client{Transport: httpx.Loopback{Handler: c.cfg.Backend, RemoteAddr: c.remoteAddr(r)},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 30 * time.Second}
}

// issuerURL is the issuer of a silo tenant ("": the platform issuer).
func (c *Console) issuerURL(silo string) string {
	if silo == "" {
		return c.base.String()
	}
	return c.base.String() + "/t/" + silo
}

// oidcProvider discovers an issuer (the platform's, or a silo tenant's
// own) through the loopback. Only issuers that exist are kept, so the
// cache is bounded by the silo tenants.
func (c *Console) oidcProvider(ctx context.Context, r *http.Request, silo string) (*oidc.Provider, error) {
	c.mu.Lock()
	p, ok := c.oid[silo]
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	// Discovered without the lock: one sign-in's discovery does not hold
	// up the others'. Two at once both discover; either result is good.
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, c.client(r)), c.issuerURL(silo))
	if err != nil {
		return nil, fmt.Errorf("console: discover the issuer: %w", err)
	}
	c.mu.Lock()
	c.oid[silo] = p
	c.mu.Unlock()
	return p, nil
}

func (c *Console) oauthConfig(p *oidc.Provider, operator bool) *oauth2.Config {
	scopes := []string{oidc.ScopeOpenID, "email", oidc.ScopeOfflineAccess, provider.APIScope}
	if operator {
		scopes = append(scopes, provider.OperatorScope)
	}
	return &oauth2.Config{ClientID: provider.ConsoleClientID, Endpoint: p.Endpoint(),
		RedirectURL: c.base.String() + provider.ConsoleCallbackPath, Scopes: scopes}
}

// localReturn keeps a return path only if it is one of the console's own
// pages (no scheme, no host, no //, no backslash).
//
// Hostile review: a prefix check alone let "/console/../../x" (cleaned
// by http.Redirect to "/x"), "/console/%2e%2e/x" (browsers read %2e as a
// dot) and control characters (browsers drop tabs) through, sending the
// browser out of the console. The path, decoded, must have no empty, "."
// or ".." segment and no control character.
func (c *Console) localReturn(p string) string {
	if !strings.HasPrefix(p, c.prefix+"/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") || len(p) > 512 ||
		!cleanPath(p) {
		return c.prefix + "/"
	}
	return p
}

// cleanPath reports whether p's path, percent-decoded, has no control
// character, backslash, or empty, "." or ".." segment (a trailing slash
// is allowed).
func cleanPath(p string) bool {
	pathPart, _, _ := strings.Cut(p, "?")
	dec, err := url.PathUnescape(pathPart)
	if err != nil || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) ||
		strings.ContainsFunc(dec, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return false
	}
	segs := strings.Split(strings.TrimSuffix(strings.TrimPrefix(dec, "/"), "/"), "/")
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return false
		}
	}
	return true
}

// signin starts a sign-in: GET /console/signin[?as=operator][&org=T][&return=…].
// With org, the admins of a silo tenant sign in at its own issuer; an org
// that has none (not silo, or no such tenant: the issuer's discovery is
// public either way) signs in at the platform's, as without it.
func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	operator, silo := q.Get("as") == "operator", ""
	if id, err := tenant.ParseID(strings.ToLower(strings.TrimSpace(q.Get("org")))); err == nil && !operator {
		ctx, cancel := withTimeout(r.Context())
		if _, err := c.oidcProvider(ctx, r, string(id)); err == nil {
			silo = string(id)
		}
		cancel()
	}
	c.startFlow(w, r, operator, false, silo, c.localReturn(q.Get("return")))
}

func (c *Console) startFlow(w http.ResponseWriter, r *http.Request, operator, reauth bool, silo, ret string) {
	ctx, cancel := withTimeout(r.Context())
	defer cancel()
	p, err := c.oidcProvider(ctx, r, silo)
	if err != nil {
		c.cfg.Logger.ErrorContext(ctx, "console sign-in", "err", err)
		c.fail(w, r, nil, http.StatusServiceUnavailable, "Sign-in is not available right now. Try again in a minute.")
		return
	}
	f := flow{State: ids.Secret("st"), Nonce: ids.Secret("nc"), Verifier: oauth2.GenerateVerifier(), Operator: operator,
		Return: ret, Reauth: reauth, Issuer: silo, Expires: c.now().Add(flowLifetime).Unix()}
	raw, _ := json.Marshal(f)
	sealed, err := c.cfg.Sealer.Wrap(raw, flowBinding)
	if err != nil {
		c.fail(w, r, nil, http.StatusInternalServerError, "Sign-in failed. Try again.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: c.flowCookie, Value: base64.RawURLEncoding.EncodeToString(sealed), Path: "/",
		MaxAge: int(flowLifetime / time.Second), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.Verifier), oidc.Nonce(f.Nonce)}
	if reauth {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0"))
	}
	http.Redirect(w, r, c.oauthConfig(p, operator).AuthCodeURL(f.State, opts...), http.StatusFound)
}

// readFlow opens the browser's flow cookie and clears it.
func (c *Console) readFlow(w http.ResponseWriter, r *http.Request) (flow, bool) {
	var f flow
	ck, err := r.Cookie(c.flowCookie)
	http.SetCookie(w, &http.Cookie{Name: c.flowCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	if err != nil || len(ck.Value) > 4096 {
		return f, false
	}
	sealed, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return f, false
	}
	raw, err := c.cfg.Sealer.Unwrap(sealed, flowBinding)
	if err != nil || json.Unmarshal(raw, &f) != nil || c.now().Unix() > f.Expires {
		return f, false
	}
	return f, true
}

// idClaims are the ID token's claims the console reads.
type idClaims struct {
	Email    string   `json:"email"`
	TenantID string   `json:"tenant_id"`
	Groups   []string `json:"groups"`
	AuthTime int64    `json:"auth_time"`
}

// callback finishes a sign-in: GET /console/callback?code=…&state=….
func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := withTimeout(r.Context())
	defer cancel()
	q := r.URL.Query()
	if q.Get("state") == signedOutState && !q.Has("code") {
		c.render(w, r, nil, http.StatusOK, "signedout", view{Title: "Signed out"})
		return
	}
	f, ok := c.readFlow(w, r)
	if !ok || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		c.fail(w, r, nil, http.StatusBadRequest, "This sign-in expired or was started in another browser. Start again.")
		return
	}
	if e := q.Get("error"); e != "" {
		msg := "The sign-in did not complete. Start again."
		if e == "access_denied" {
			msg = "Your account may not use the console."
		}
		c.fail(w, r, nil, http.StatusUnauthorized, msg)
		return
	}
	p, err := c.oidcProvider(ctx, r, f.Issuer)
	if err != nil {
		c.fail(w, r, nil, http.StatusServiceUnavailable, "Sign-in is not available right now. Try again in a minute.")
		return
	}
	octx := oidc.ClientContext(ctx, c.client(r))
	tok, err := c.oauthConfig(p, f.Operator).Exchange(octx, q.Get("code"), oauth2.VerifierOption(f.Verifier))
	if err != nil {
		c.cfg.Logger.WarnContext(ctx, "console sign-in: code exchange", "err", err)
		c.fail(w, r, nil, http.StatusUnauthorized, "The sign-in did not complete. Start again.")
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&oidc.Config{ClientID: provider.ConsoleClientID, Now: c.now}).Verify(octx, rawID)
	var claims idClaims
	if err == nil {
		err = idt.Claims(&claims)
	}
	if err != nil || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		c.cfg.Logger.WarnContext(ctx, "console sign-in: ID token refused", "err", err)
		c.fail(w, r, nil, http.StatusUnauthorized, "The sign-in did not complete. Start again.")
		return
	}
	if claims.Email == "" {
		// The ID token carries no userinfo claims: ask the userinfo endpoint.
		if ui, err := p.UserInfo(octx, oauth2.StaticTokenSource(tok)); err == nil && ui.Subject == idt.Subject {
			claims.Email = ui.Email
		}
	}
	s := &session{Subject: idt.Subject, Email: claims.Email, access: tok.AccessToken, refresh: tok.RefreshToken, idToken: rawID,
		accessExpires: tok.Expiry, AuthTime: time.Unix(claims.AuthTime, 0)}
	switch {
	case f.Operator && claims.TenantID == "" && ids.Valid(idt.Subject, "opr"):
		s.Kind = kindOperator
	case !f.Operator && claims.TenantID != "" && (f.Issuer == "" || claims.TenantID == f.Issuer) && ids.Valid(idt.Subject, "usr"):
		tid, err := tenant.ParseID(claims.TenantID)
		if err != nil {
			c.fail(w, r, nil, http.StatusUnauthorized, "The sign-in did not complete. Start again.")
			return
		}
		// An admin works on the tenant; any other user reaches only their
		// own account (authenticator app, sessions).
		s.Kind, s.TenantID, s.Issuer = kindMember, tid, f.Issuer
		if slices.Contains(claims.Groups, identity.AdminsGroup) {
			s.Kind = kindTenant
		}
	default:
		c.revoke(ctx, r, f.Issuer, tok.RefreshToken)
		c.fail(w, r, nil, http.StatusForbidden, "This account may not use the console. Sign in with your organization's account.")
		return
	}
	if claims.AuthTime == 0 {
		s.AuthTime = c.now()
	}
	if f.Reauth {
		c.finishReauth(w, r, s, f.Return)
		return
	}
	secret, err := c.createSession(ctx, s)
	if err != nil {
		c.cfg.Logger.ErrorContext(ctx, "console sign-in", "err", err)
		c.fail(w, r, nil, http.StatusInternalServerError, "Sign-in failed. Try again.")
		return
	}
	c.setSessionCookie(w, secret)
	ret := f.Return
	if ret == c.prefix+"/" && s.Kind == kindTenant {
		ret = c.prefix + "/tenants/" + string(s.TenantID)
	}
	http.Redirect(w, r, c.localReturn(ret), http.StatusFound)
}

// finishReauth takes a fresh sign-in for the current session: it must be
// the same person, and it only renews the session's sign-in time (and
// tokens).
func (c *Console) finishReauth(w http.ResponseWriter, r *http.Request, fresh *session, ret string) {
	s, err := c.loadSession(r.Context(), r)
	if err != nil || s.Subject != fresh.Subject || s.Kind != fresh.Kind || s.TenantID != fresh.TenantID || s.Issuer != fresh.Issuer {
		c.revoke(r.Context(), r, fresh.Issuer, fresh.refresh)
		c.fail(w, r, nil, http.StatusForbidden, "You signed in as someone else. Sign out and start again.")
		return
	}
	old := s.refresh
	s.access, s.refresh, s.accessExpires, s.AuthTime, s.idToken = fresh.access, fresh.refresh, fresh.accessExpires, fresh.AuthTime, fresh.idToken
	if err := c.saveTokens(r.Context(), s); err != nil {
		c.fail(w, r, s, http.StatusInternalServerError, "Sign-in failed. Try again.")
		return
	}
	c.revoke(r.Context(), r, s.Issuer, old)
	http.Redirect(w, r, c.localReturn(ret), http.StatusFound)
}

func (c *Console) setSessionCookie(w http.ResponseWriter, secret string) {
	http.SetCookie(w, &http.Cookie{Name: c.cookieName, Value: secret, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(c.cfg.AbsoluteTimeout / time.Second)})
}

// revoke revokes a refresh token at the issuer that gave it (the
// platform's, or silo tenant silo's) (RFC 7009), best effort.
func (c *Console) revoke(ctx context.Context, r *http.Request, silo, token string) {
	if token == "" {
		return
	}
	form := url.Values{"token": {token}, "token_type_hint": {"refresh_token"}, "client_id": {provider.ConsoleClientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.issuerURL(silo)+"/revoke", strings.NewReader(form.Encode()))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := c.client(r).Do(req); err == nil {
		resp.Body.Close()
	}
}

// signout ends the session: POST /console/signout.
func (c *Console) signout(w http.ResponseWriter, r *http.Request) {
	// Hostile review: sign-out is served outside serve, which caps form
	// bodies at 64 KiB; without the cap here ParseForm read up to 10 MB.
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	s, ok := c.session(w, r, true)
	if !ok {
		return
	}
	c.deleteSession(r.Context(), s.id)
	c.revoke(r.Context(), r, s.Issuer, s.refresh)
	http.SetCookie(w, &http.Cookie{Name: c.cookieName, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	if s.idToken == "" {
		c.render(w, r, nil, http.StatusOK, "signedout", view{Title: "Signed out"})
		return
	}
	// The browser's session at the provider ends too (RP-initiated
	// logout with the sign-in's ID token), and the provider sends the
	// browser back to the callback, which shows it is signed out.
	q := url.Values{"id_token_hint": {s.idToken}, "client_id": {provider.ConsoleClientID},
		"post_logout_redirect_uri": {c.base.String() + provider.ConsoleCallbackPath}, "state": {signedOutState}}
	http.Redirect(w, r, c.issuerURL(s.Issuer)+"/end_session?"+q.Encode(), http.StatusSeeOther)
}

// signedOutState is the state end_session sends back after a sign-out.
const signedOutState = "signed-out"

// tokenFor returns the session's access token, refreshed first when it
// expires within a minute. A refresh that fails ends the session.
func (c *Console) tokenFor(ctx context.Context, r *http.Request, s *session) (string, error) {
	if c.now().Add(time.Minute).Before(s.accessExpires) {
		return s.access, nil
	}
	if s.refresh == "" {
		return "", errNoSession
	}
	p, err := c.oidcProvider(ctx, r, s.Issuer)
	if err != nil {
		return "", err
	}
	octx := oidc.ClientContext(ctx, c.client(r))
	tok, err := c.oauthConfig(p, s.Operator()).TokenSource(octx, &oauth2.Token{RefreshToken: s.refresh}).Token()
	if err != nil {
		c.deleteSession(ctx, s.id)
		return "", errNoSession
	}
	s.access, s.accessExpires = tok.AccessToken, tok.Expiry
	if tok.RefreshToken != "" {
		s.refresh = tok.RefreshToken
	}
	if err := c.saveTokens(ctx, s); err != nil {
		return "", err
	}
	return s.access, nil
}
