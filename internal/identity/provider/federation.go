package provider

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

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
// user is the tenant's user with that email (created on first sign-in).
// Nothing the upstream says decides the tenant, tier or groups.

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
	idp, email, claims, reason, err := p.upstreamIdentity(ctx, issuer, a, r.Host, code)
	if err != nil {
		if reason != "" {
			p.cfg.Logger.WarnContext(ctx, "federation: "+reason, "tenant_id", string(a.tenantID), "err", clipErr(err))
			p.auditEvent(ctx, a.tenantID, "login.failure", "", audit.Denied, map[string]string{"client_id": a.ClientID, "reason": reason})
		}
		fail("the organization's sign-in did not complete")
		return
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

// upstreamIdentity redeems code at the tenant's provider and returns the
// provider, the email it vouches for and its verified ID token's claims.
// Everything here talks to the tenant's provider, within one time budget.
// On failure, reason (when set) says which step failed, for the audit.
func (p *Provider) upstreamIdentity(ctx context.Context, issuer signing.Issuer, a *authRequest, host, code string) (
	idp identity.IdP, email string, claims map[string]any, reason string, err error) {
	ctx, cancel := p.upstreamContext(ctx)
	defer cancel()
	conf, up, idp, ok, err := p.upstreamConfig(ctx, issuer, a.tenantID, host)
	if err != nil || !ok {
		return idp, "", nil, "", fmt.Errorf("provider: the tenant's provider is unavailable: %w", err)
	}
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(p.secretFor("pkce", a.ID)))
	if err != nil {
		return idp, "", nil, "upstream code exchange", err
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := up.Verifier(&oidc.Config{ClientID: idp.ClientID}).Verify(ctx, raw)
	if err == nil && idt.Nonce != p.secretFor("nonce", a.ID) {
		err = errors.New("provider: the upstream ID token's nonce is not this sign-in's")
	}
	if err != nil {
		return idp, "", nil, "upstream id token", err
	}
	if err := idt.Claims(&claims); err != nil {
		return idp, "", nil, "upstream id token", err
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
	email, _ = claims["email"].(string)
	if verified, present := claims["email_verified"].(bool); present && !verified {
		email = ""
	}
	return idp, email, claims, "", nil
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
