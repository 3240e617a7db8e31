package provider

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/oauth2"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
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
// user is the tenant's user with that email (created on first sign-in).
// Nothing the upstream says decides the tenant, tier or groups.

// upstreams caches upstream providers' discovery by issuer URL.
type upstreams struct{ m sync.Map } // issuer → *oidc.Provider

func (u *upstreams) get(ctx context.Context, issuer string) (*oidc.Provider, error) {
	if p, ok := u.m.Load(issuer); ok {
		return p.(*oidc.Provider), nil
	}
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return nil, err
	}
	u.m.Store(issuer, p)
	return p, nil
}

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
		return nil, nil, idp, true, err
	}
	return &oauth2.Config{ClientID: idp.ClientID, ClientSecret: secret, Endpoint: up.Endpoint(),
		RedirectURL: p.callbackURL(i, host), Scopes: []string{oidc.ScopeOpenID, "email"}}, up, idp, true, nil
}

// federate sends the sign-in of auth request a, for tenant tid, to the
// tenant's upstream provider. It reports false when the tenant has none.
func (p *Provider) federate(w http.ResponseWriter, r *http.Request, issuer signing.Issuer, a *authRequest, tid tenant.ID) (bool, error) {
	conf, _, _, ok, err := p.upstreamConfig(r.Context(), issuer, tid, r.Host)
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
	http.Redirect(w, r, conf.AuthCodeURL(state, oauth2.S256ChallengeOption(p.secretFor("pkce", a.ID)),
		oidc.Nonce(p.secretFor("nonce", a.ID))), http.StatusFound)
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
	conf, up, idp, ok, err := p.upstreamConfig(ctx, issuer, a.tenantID, r.Host)
	if err != nil || !ok {
		fail("the organization's sign-in is not available")
		return
	}
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(p.secretFor("pkce", a.ID)))
	if err != nil {
		p.auditEvent(ctx, a.tenantID, "login.failure", "", audit.Denied, map[string]string{"client_id": a.ClientID, "reason": "upstream code exchange"})
		fail("the organization's sign-in did not complete")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := up.Verifier(&oidc.Config{ClientID: idp.ClientID}).Verify(ctx, raw)
	if err != nil || idt.Nonce != p.secretFor("nonce", a.ID) {
		p.auditEvent(ctx, a.tenantID, "login.failure", "", audit.Denied, map[string]string{"client_id": a.ClientID, "reason": "upstream id token"})
		fail("the organization's sign-in did not complete")
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		fail("the organization's sign-in did not complete")
		return
	}
	if _, ok := claims["email"]; !ok {
		// Many providers put the email in userinfo rather than the ID token.
		info, err := up.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err == nil && info.Subject == idt.Subject {
			claims["email"] = info.Email
			var extra map[string]any
			if info.Claims(&extra) == nil {
				if v, ok := extra["email_verified"]; ok {
					claims["email_verified"] = v
				}
			}
		}
	}
	email, _ := claims["email"].(string)
	if verified, present := claims["email_verified"].(bool); present && !verified {
		email = ""
	}
	u, err := p.cfg.Directory.FederatedUser(ctx, a.tenantID, email, claims)
	if err != nil || u.Status != identity.UserActive {
		p.auditEvent(ctx, a.tenantID, "login.failure", u.ID, audit.Denied, map[string]string{"client_id": a.ClientID, "reason": "federated user"})
		fail("your account cannot sign in here")
		return
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
	p.auditEvent(ctx, a.tenantID, "login.success", u.ID, audit.Success, map[string]string{"client_id": a.ClientID, "via": idp.Issuer})
	p.redirectToCallback(w, r, issuer, o, a.ID)
}
