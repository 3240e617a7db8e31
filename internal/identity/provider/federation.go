package provider

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/oauth2"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// Federation: a tenant that connected its own OpenID provider has its users
// sign in there. The sign-in leaves for the upstream's authorization
// endpoint (code flow with PKCE and a nonce) and comes back to
// {issuer}/login/callback, where the upstream ID token is verified; the
// user is the one linked to the upstream's (issuer, subject), or a new
// one (see identity.FederatedUser for when an existing account is linked
// by email). A user with a confirmed TOTP factor gives the code on the
// login page afterwards, unless the tenant takes its provider's sign-in as
// enough. Nothing the upstream says decides the tenant, tier or groups.

// secretFor derives a per-sign-in secret (PKCE verifier, nonce) from the
// provider's key, so nothing of it is stored.
func (p *Provider) secretFor(purpose, authRequestID string) string {
	m := hmac.New(sha256.New, p.cfg.CryptoKey[:])
	m.Write([]byte(purpose + "\x00" + authRequestID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// callbackURL is where the tenant's provider sends the browser back: on
// the host the sign-in is on when that is a tenant's login subdomain
// (the browser's binding cookie is there), else on the issuer.
func (p *Provider) callbackURL(i signing.Issuer, host string) string {
	if i.Tenant == "" && p.loginSubdomain(host) != "" {
		u := *p.base
		u.Host = host
		return strings.TrimRight(u.String(), "/") + "/login/callback"
	}
	return p.issuerURL(i) + "/login/callback"
}

func (p *Provider) upstreamConfig(ctx context.Context, i signing.Issuer, tid tenant.ID, host string) (*oauth2.Config, *oidc.Provider, identity.IdP, bool, error) {
	idp, secret, ok, err := p.cfg.Directory.TenantIdP(ctx, tid)
	if err != nil || !ok {
		return nil, nil, idp, ok, err
	}
	up, err := p.upstreams.get(ctx, idp.Issuer)
	if err != nil {
		p.cfg.Logger.WarnContext(ctx, "federation: the tenant's provider is unavailable", "tenant_id", string(tid), "err", clipErr(err))
		p.auditEvent(ctx, tid, "login.failure", "", audit.Denied, map[string]string{"reason": "upstream discovery", "issuer": idp.Issuer})
		return nil, nil, idp, true, err
	}
	return &oauth2.Config{ClientID: idp.ClientID, ClientSecret: secret, Endpoint: up.Endpoint(),
		RedirectURL: p.callbackURL(i, host), Scopes: []string{oidc.ScopeOpenID, "email"}}, up, idp, true, nil
}

// federate sends the sign-in of auth request a, for tenant tid, to the
// tenant's upstream provider. It reports false when the tenant has none.
func (p *Provider) federate(w http.ResponseWriter, r *http.Request, issuer signing.Issuer, a *authRequest, tid tenant.ID) (bool, error) {
	ctx, cancel := p.upstreamContext(r.Context())
	defer cancel()
	conf, _, _, ok, err := p.upstreamConfig(ctx, issuer, tid, r.Host)
	if !ok || err != nil {
		return ok, err
	}
	state := ids.Secret("ups")
	err = p.cfg.DB.Update(r.Context(), storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(r.Context(), `UPDATE oidc_auth_requests SET upstream_state = ?, tenant_id = ? WHERE id = ? AND issuer_tenant = ? AND user_id = ''`,
			hashToken(state), string(tid), a.ID, string(issuer.Tenant))
		return err
	})
	if err != nil {
		return true, err
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(p.secretFor("pkce", a.ID)), oidc.Nonce(p.secretFor("nonce", a.ID))}
	// What the client asked of the sign-in's freshness, the tenant's
	// provider is asked too (its answer is checked: upstreamFresh).
	if slices.Contains(a.Prompt, "login") {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"))
	}
	if a.MaxAge != nil {
		opts = append(opts, oauth2.SetAuthURLParam("max_age", strconv.FormatUint(uint64(*a.MaxAge), 10)))
	}
	http.Redirect(w, r, conf.AuthCodeURL(state, opts...), http.StatusFound)
	return true, nil
}

// federationCallback finishes a federated sign-in.
func (p *Provider) federationCallback(w http.ResponseWriter, r *http.Request, issuer signing.Issuer, o *op.Provider) {
	w.Header().Set("Cache-Control", "no-store")
	ctx := r.Context()
	fail := func(msg string) { http.Error(w, msg, http.StatusBadRequest) }
	q := r.URL.Query()
	state, code := q.Get("state"), q.Get("code")
	if state == "" || code == "" || len(state) > 200 || len(code) > 2000 {
		fail("the sign-in could not be completed; start again from the application")
		return
	}
	s := &issuerStorage{p: p, issuer: issuer}
	a, err := s.loadAuthRequest(ctx, "upstream_state", hashToken(state))
	if err != nil || a.Done() || a.tenantID == "" {
		fail("this sign-in has expired or was already used; start again from the application")
		return
	}
	if !sameBrowser(r, a) {
		p.auditEvent(ctx, a.tenantID, "login.other_browser", "", audit.Denied,
			map[string]string{"client_id": a.ClientID, "source_ip": p.cfg.ClientIP.IP(r), "step": "federation_callback"})
		otherBrowser(w)
		return
	}
	ip := p.cfg.ClientIP.IP(r)
	idp, login, reason, err := p.upstreamIdentity(ctx, issuer, a, r.Host, code)
	if err != nil {
		if reason != "" {
			p.cfg.Logger.WarnContext(ctx, "federation: "+reason, "tenant_id", string(a.tenantID), "err", clipErr(err))
			p.auditEvent(ctx, a.tenantID, "login.failure", "", audit.Denied,
				map[string]string{"client_id": a.ClientID, "source_ip": ip, "reason": reason, "issuer": idp.Issuer})
		}
		fail("the organization's sign-in did not complete")
		return
	}
	u, outcome, err := p.cfg.Directory.FederatedUser(ctx, a.tenantID, login)
	if err == nil && u.Status != identity.UserActive {
		err = errs.E(errs.Forbidden, "user_disabled", "the user is disabled")
	}
	if err != nil {
		reason := identity.FederationRefusal(err)
		if e, ok := errs.As(err); ok && e.Code == "user_disabled" {
			reason = e.Code
		}
		if reason == "" {
			p.cfg.Logger.ErrorContext(ctx, "federation: find the user", "tenant_id", string(a.tenantID), "err", err)
			reason = "federated user"
		}
		p.auditEvent(ctx, a.tenantID, "login.failure", u.ID, audit.Denied, map[string]string{"client_id": a.ClientID, "source_ip": ip,
			"reason": reason, "issuer": login.Issuer, "upstream_subject": errs.Clip(login.Subject, 64)})
		fail("your account cannot sign in here; ask your organization's administrator")
		return
	}
	// The account's own second factor still applies, unless the tenant
	// takes its provider's sign-in as enough: the login page asks for the
	// code, in this browser, before the sign-in completes.
	if !idp.UpstreamMFASufficient {
		need, err := p.cfg.Directory.TOTPRequired(ctx, a.tenantID, u.ID)
		if err != nil {
			fail("the sign-in could not be completed")
			return
		}
		if need {
			err = p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
				_, err := tx.Exec(ctx, `UPDATE oidc_auth_requests SET pending_user_id = ?, upstream_state = ''
					WHERE id = ? AND issuer_tenant = ? AND user_id = ''`, u.ID, a.ID, string(issuer.Tenant))
				return err
			})
			if err != nil {
				fail("the sign-in could not be completed")
				return
			}
			http.Redirect(w, r, p.loginPath(issuer)+"?authRequestID="+url.QueryEscape(a.ID), http.StatusFound)
			return
		}
	}
	now := p.clock().Now()
	err = p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE oidc_auth_requests SET user_id = ?, auth_time = ?, upstream_state = ''
			WHERE id = ? AND issuer_tenant = ? AND user_id = ''`, u.ID, now.UnixMicro(), a.ID, string(issuer.Tenant))
		return err
	})
	if err != nil {
		fail("the sign-in could not be completed")
		return
	}
	p.auditEvent(ctx, a.tenantID, "login.success", u.ID, audit.Success, map[string]string{"client_id": a.ClientID, "source_ip": ip,
		"via": idp.Issuer, "federated": string(outcome)})
	// The provider's word that it asked more than one factor counts only
	// where the tenant takes its sign-in as enough (upstream_mfa_sufficient).
	amr := []string{"fed"}
	if login.MFA && idp.UpstreamMFASufficient {
		amr = append(amr, "mfa")
	}
	p.startSession(w, r, issuer, a, a.tenantID, u.ID, amr, now)
	p.redirectToCallback(w, r, issuer, o, a.ID)
}

// upstreamIdentity redeems code at the tenant's provider and returns the
// provider and what its verified ID token (and, for an email it lacks,
// userinfo) says about the user. Everything here talks to the tenant's
// provider, within one time budget. On failure, reason (when set) says
// which step failed, for the audit.
func (p *Provider) upstreamIdentity(ctx context.Context, issuer signing.Issuer, a *authRequest, host, code string) (
	idp identity.IdP, login identity.FederatedLogin, reason string, err error) {
	ctx, cancel := p.upstreamContext(ctx)
	defer cancel()
	conf, up, idp, ok, err := p.upstreamConfig(ctx, issuer, a.tenantID, host)
	if err != nil || !ok {
		return idp, login, "", fmt.Errorf("provider: the tenant's provider is unavailable: %w", err)
	}
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(p.secretFor("pkce", a.ID)))
	if err != nil {
		return idp, login, "upstream code exchange", err
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := up.Verifier(&oidc.Config{ClientID: idp.ClientID}).Verify(ctx, raw)
	if err == nil && subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(p.secretFor("nonce", a.ID))) != 1 {
		err = errors.New("provider: the upstream ID token's nonce is not this sign-in's")
	}
	if err != nil {
		return idp, login, "upstream id token", err
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return idp, login, "upstream id token", err
	}
	login = identity.FederatedLogin{Issuer: idt.Issuer, Subject: idt.Subject, Profile: map[string]string{}}
	login.Email, login.EmailVerified = emailOf(claims)
	login.MFA = upstreamMFA(claims["amr"]) && p.upstreamFresh(a, claims["auth_time"])
	for _, k := range []string{"name", "given_name", "family_name"} {
		if v, ok := claims[k].(string); ok {
			login.Profile[k] = v
		}
	}
	if login.Email == "" && up.UserInfoEndpoint() != "" {
		// Many providers put the email in userinfo rather than the ID
		// token. Userinfo is not signed and not bound to the ID token, so
		// its email counts only when it is about the same subject and
		// verified there.
		info, err := up.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		var extra map[string]any
		if err == nil && info.Subject == idt.Subject && info.Claims(&extra) == nil {
			if email, verified := emailOf(extra); verified {
				login.Email, login.EmailVerified = email, true
			}
		} else if err != nil {
			p.cfg.Logger.WarnContext(ctx, "federation: userinfo", "tenant_id", string(a.tenantID), "err", clipErr(err))
		}
	}
	return idp, login, "", nil
}

// factorKinds sorts RFC 8176 authentication method values into kinds of
// factor: something known, something held, something one is. "mfa" is a
// kind of its own that counts as two.
var factorKinds = map[string]string{
	"pwd": "know", "pin": "know", "kba": "know",
	"otp": "have", "hwk": "have", "swk": "have", "sms": "have", "tel": "have", "sc": "have", "pop": "have",
	"fpt": "are", "face": "are", "iris": "are", "retina": "are", "vbm": "are", "bio": "are",
}

// upstreamMFA reports whether a tenant's provider's amr claim (verified
// in its ID token) says the user gave more than one factor: "mfa", or
// methods of two kinds (a password and a one-time code, say). Anything
// but a JSON array of strings says nothing. The tenant's provider is
// trusted for this as for the user's identity: the tenant configured it.
func upstreamMFA(amr any) bool {
	list, ok := amr.([]any)
	if !ok || len(list) > 32 {
		return false
	}
	kinds := map[string]bool{}
	for _, v := range list {
		m, ok := v.(string)
		if !ok {
			continue
		}
		if m == "mfa" {
			return true
		}
		if k, ok := factorKinds[m]; ok {
			kinds[k] = true
		}
	}
	return len(kinds) >= 2
}

// upstreamFresh reports whether the tenant's provider's sign-in (its ID
// token's auth_time) is as fresh as a asked: since a began with
// prompt=login, within max_age with one, and anything without either. A
// provider that answered from an old session of its own does not make a
// fresh factor here. A minute of clock skew is allowed.
func (p *Provider) upstreamFresh(a *authRequest, authTime any) bool {
	login := slices.Contains(a.Prompt, "login")
	if !login && a.MaxAge == nil {
		return true
	}
	secs, ok := authTime.(float64)
	if !ok || secs <= 0 || secs > 1e11 {
		return false
	}
	at, skew := time.Unix(int64(secs), 0), time.Minute
	if login && at.Before(a.started.Add(-skew)) {
		return false
	}
	return a.MaxAge == nil || !at.Before(p.clock().Now().Add(-time.Duration(*a.MaxAge)*time.Second-skew))
}

// emailOf reads the email claims of an ID token or userinfo answer: the
// email, and whether email_verified is the JSON boolean true — an absent
// claim, "true" or "false" as strings, or anything else is not an
// assertion that the provider verified it.
func emailOf(claims map[string]any) (email string, verified bool) {
	email, _ = claims["email"].(string)
	v, ok := claims["email_verified"].(bool)
	return email, ok && v
}

// upstreamContext bounds the upstream part of a sign-in step and carries
// the federation client (see upstream.go).
func (p *Provider) upstreamContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.UpstreamTimeout)
	return p.upstreams.context(ctx), cancel
}

// clipErr shortens an upstream error for the log: libraries quote the
// upstream's answer in their errors, which is the upstream's text, of any
// length.
func clipErr(err error) string {
	if err == nil {
		return ""
	}
	return errs.Clip(err.Error(), 300)
}
