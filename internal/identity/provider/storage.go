package provider

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// issuerStorage implements op.Storage for one issuer: the platform issuer
// (tenant "") or a silo tenant's. Every client, user and token it handles
// must belong to that issuer: a silo issuer serves only its tenant; the
// platform issuer serves platform clients and pool and bridge tenants.
type issuerStorage struct {
	p      *Provider
	issuer signing.Issuer
}

var _ op.Storage = (*issuerStorage)(nil)
var _ op.ClientCredentialsStorage = (*issuerStorage)(nil)
var _ op.CanGetPrivateClaimsFromRequest = (*issuerStorage)(nil)
var _ op.CanSetUserinfoFromRequest = (*issuerStorage)(nil)

func hashToken(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

var errNotFound = errors.New("not found")

// belongs reports whether a client or user of tenant tid may use this issuer.
func (s *issuerStorage) belongs(ctx context.Context, tid tenant.ID) bool {
	if s.issuer.Tenant != "" || tid == "" {
		return s.belongsTo(tid, nil)
	}
	t, err := s.p.tenant(ctx, tid)
	return err == nil && s.belongsTo(tid, &t)
}

// belongsTo is belongs with the tenant already read (nil for none).
func (s *issuerStorage) belongsTo(tid tenant.ID, t *tenants.Tenant) bool {
	switch {
	case s.issuer.Tenant != "":
		return tid == s.issuer.Tenant
	case tid == "":
		return true // a platform client on the platform issuer
	default:
		return t != nil && t.ID == tid && t.Isolation != tenants.Silo
	}
}

// serverError is how an internal failure leaves the storage for zitadel.
// Given a plain error, zitadel answers server_error with the error's text
// as the error_description, which would tell any client key ids, unwrap
// failures or SQL; wrapped here, the answer says server_error alone and
// the cause stays in zitadel's log line. OAuth errors pass unchanged.
func serverError(err error) error {
	var oe *oidc.Error
	if err == nil || errors.As(err, &oe) {
		return err
	}
	return oidc.ErrServerError().WithParent(err)
}

// --- clients ---

func (s *issuerStorage) registeredClient(ctx context.Context, id string) (identity.Client, error) {
	if id == ConsoleClientID {
		// Built in, at every issuer: a silo tenant's admins sign in to
		// the console at their own (never as operators: see
		// CreateAuthRequest).
		return s.p.ConsoleClient(), nil
	}
	if !ids.Valid(id, "cli") {
		return identity.Client{}, errs.E(errs.NotFound, "client_not_found", "client not found")
	}
	c, err := s.p.cfg.Directory.ClientByIDAllTenants(ctx, id)
	if err != nil {
		return identity.Client{}, err
	}
	if !s.belongs(ctx, c.TenantID) {
		return identity.Client{}, errs.E(errs.NotFound, "client_not_found", "client not found")
	}
	return c, nil
}

func (s *issuerStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.registeredClient(ctx, id)
	if err != nil {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	return &client{Client: c, loginURL: s.p.loginPath(s.issuer), idTokenLifetime: s.p.cfg.IDTokenLifetime}, nil
}

func (s *issuerStorage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	if !ids.Valid(id, "cli") {
		return oidc.ErrInvalidClient().WithDescription("client authentication failed")
	}
	c, err := s.p.cfg.Directory.AuthenticateClientAllTenants(ctx, id, secret)
	if err != nil || !s.belongs(ctx, c.TenantID) {
		return oidc.ErrInvalidClient().WithDescription("client authentication failed")
	}
	return nil
}

func (s *issuerStorage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	if !ids.Valid(id, "cli") {
		return nil, oidc.ErrInvalidClient().WithDescription("client authentication failed")
	}
	c, err := s.p.cfg.Directory.AuthenticateClientAllTenants(ctx, id, secret)
	var t *tenants.Tenant
	if err == nil && c.TenantID != "" {
		tn, terr := s.p.tenant(ctx, c.TenantID)
		if terr != nil || tn.Status != tenants.Active {
			return nil, oidc.ErrInvalidClient().WithDescription("the client's tenant is not active")
		}
		t = &tn
	}
	if err != nil || !s.belongsTo(c.TenantID, t) {
		s.p.auditEvent(ctx, "", "oauth.client_credentials", id, audit.Denied, map[string]string{"issuer": s.p.issuerURL(s.issuer)})
		return nil, oidc.ErrInvalidClient().WithDescription("client authentication failed")
	}
	if !slices.Contains(c.GrantTypes, identity.GrantClientCredentials) {
		// Authenticated, but not registered for the grant: zitadel answers
		// unauthorized_client for the client returned (RFC 6749 §5.2).
		s.p.auditEvent(ctx, c.TenantID, "oauth.client_credentials", id, audit.Denied,
			map[string]string{"issuer": s.p.issuerURL(s.issuer), "reason": "grant type not registered"})
		return &client{Client: c, loginURL: s.p.loginPath(s.issuer), idTokenLifetime: s.p.cfg.IDTokenLifetime}, nil
	}
	s.p.authenticated.Store(c.ID, authenticatedClient{c, t, s.p.clock().Now()})
	return &client{Client: c, loginURL: s.p.loginPath(s.issuer), idTokenLifetime: s.p.cfg.IDTokenLifetime}, nil
}

// authenticatedClient is a client that ClientCredentials just checked, kept
// for the token request that follows in the same exchange.
type authenticatedClient struct {
	c  identity.Client
	t  *tenants.Tenant // the client's tenant as read then (nil for a platform client)
	at time.Time
}

func (s *issuerStorage) ClientCredentialsTokenRequest(ctx context.Context, id string, scopes []string) (op.TokenRequest, error) {
	var c identity.Client
	tier := ""
	if v, ok := s.p.authenticated.LoadAndDelete(id); ok && s.p.clock().Now().Sub(v.(authenticatedClient).at) < time.Second {
		c = v.(authenticatedClient).c
		if t := v.(authenticatedClient).t; t != nil {
			tier = t.Tier
		}
	} else {
		var err error
		if c, err = s.registeredClient(ctx, id); err != nil {
			return nil, oidc.ErrInvalidClient()
		}
	}
	for _, sc := range scopes {
		// Hostile review: a client registered with the operator scope
		// before registration refused it does not get it either.
		if !slices.Contains(c.Scopes, sc) || sc == OperatorScope {
			return nil, oidc.ErrInvalidScope().WithDescription("scope %q is not registered for the client", sc)
		}
	}
	s.p.auditIssued(ctx, c.TenantID, id, map[string]string{"grant": "client_credentials"})
	return &clientCredentialsRequest{clientID: c.ID, tenantID: c.TenantID, tier: tier, scopes: scopes, audience: s.p.audience(c, scopes)}, nil
}

// --- authorization requests ---

func (s *issuerStorage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	c, err := s.registeredClient(ctx, req.ClientID)
	if err != nil {
		return nil, oidc.ErrInvalidClient()
	}
	if len(req.State) > 1024 || len(req.Nonce) > 1024 || len(req.LoginHint) > 254 || len(req.Scopes) > 50 {
		return nil, oidc.ErrInvalidRequest().WithDescription("state, nonce, login_hint or scope is too long")
	}
	if c.Public && (req.CodeChallenge == "" || req.CodeChallengeMethod != oidc.CodeChallengeMethodS256) {
		return nil, oidc.ErrInvalidRequest().WithDescription("public clients must use PKCE with S256")
	}
	if slices.Contains(req.Scopes, OperatorScope) && (c.ID != ConsoleClientID || s.issuer.Tenant != "") {
		// Operators sign in to the console only.
		return nil, oidc.ErrInvalidScope().WithDescription("the scope %s is the console's", OperatorScope)
	}
	if len(req.ACRValues) > 10 {
		return nil, oidc.ErrInvalidRequest().WithDescription("acr_values has too many values")
	}
	// prompt=none is answered on the login page: at once from the
	// browser's session, else with login_required (OIDC Core §3.1.2.6).
	a := &authRequest{ID: ids.New("ar"), ClientID: req.ClientID, RedirectURI: req.RedirectURI, State: req.State, Nonce: req.Nonce,
		Scopes: req.Scopes, ResponseType: req.ResponseType, ResponseMode: req.ResponseMode, LoginHint: req.LoginHint,
		Prompt: req.Prompt, MaxAge: req.MaxAge, ACRValues: req.ACRValues,
		Audience: s.p.audience(c, req.Scopes), csrf: ids.Secret("csrf"), browser: browserFrom(ctx)}
	if a.browser == "" {
		return nil, oidc.ErrServerError().WithDescription("the authorization request is not bound to a browser")
	}
	if req.CodeChallenge != "" {
		a.CodeChallenge = &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}
	}
	if c.TenantID != "" {
		a.tenantID = c.TenantID // a tenant's client signs in that tenant's users only
	}
	raw, _ := json.Marshal(a)
	now := s.p.clock().Now()
	err = s.p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO oidc_auth_requests (id, issuer_tenant, client_id, tenant_id, request, csrf, browser, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.ID, string(s.issuer.Tenant), a.ClientID, string(a.tenantID), string(raw), a.csrf, a.browser,
			now.UnixMicro(), now.Add(authRequestLifetime).UnixMicro())
		return err
	})
	if err != nil {
		return nil, serverError(fmt.Errorf("provider: store auth request: %w", err))
	}
	return a, nil
}

// authRequestLifetime bounds how long a sign-in may take.
const authRequestLifetime = 15 * time.Minute

func (s *issuerStorage) loadAuthRequest(ctx context.Context, where string, arg string) (*authRequest, error) {
	a := &authRequest{}
	var raw, tid, amrText string
	var authTime, expires int64
	err := s.p.cfg.DB.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT id, request, tenant_id, user_id, pending_user_id, csrf, browser, auth_time, expires_at, sid, amr
			FROM oidc_auth_requests WHERE issuer_tenant = ? AND `+where+` = ?`, string(s.issuer.Tenant), arg).
			Scan(&a.ID, &raw, &tid, &a.userID, &a.pendingUser, &a.csrf, &a.browser, &authTime, &expires, &a.sid, &amrText)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("provider: load auth request: %w", err)
	}
	if s.p.clock().Now().UnixMicro() > expires {
		return nil, errNotFound
	}
	id := a.ID
	if err := json.Unmarshal([]byte(raw), a); err != nil {
		return nil, fmt.Errorf("provider: stored auth request unreadable: %w", err)
	}
	a.ID, a.tenantID = id, tenant.ID(tid)
	if amrText != "" {
		a.amr = strings.Fields(amrText)
	}
	if authTime != 0 {
		a.authTime = time.UnixMicro(authTime).UTC()
	}
	a.started = time.UnixMicro(expires).Add(-authRequestLifetime).UTC()
	return a, nil
}

func (s *issuerStorage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	a, err := s.loadAuthRequest(ctx, "id", id)
	if err != nil {
		return nil, oidc.ErrInvalidRequest().WithDescription("unknown or expired authorization request")
	}
	return a, nil
}

// AuthRequestByCode redeems a code: it is used up here, atomically, so that
// concurrent exchanges of one code cannot both succeed.
func (s *issuerStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	bad := oidc.ErrInvalidGrant().WithDescription("the code is unknown, expired or already used")
	if code == "" || len(code) > 512 {
		return nil, bad
	}
	a, err := s.loadAuthRequest(ctx, "code_hash", hashToken(code))
	if err != nil {
		// Unknown, expired or already redeemed (its request is gone).
		s.p.auditEvent(ctx, "", "oauth.code_rejected", "", audit.Denied, map[string]string{"issuer": s.p.issuerURL(s.issuer)})
		return nil, bad
	}
	var used bool
	err = s.p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE oidc_auth_requests SET code_hash = 'redeemed' WHERE id = ? AND issuer_tenant = ? AND code_hash = ?`,
			a.ID, string(s.issuer.Tenant), hashToken(code))
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		used = n == 1
		return nil
	})
	if err != nil || !used {
		if err == nil {
			s.p.auditEvent(ctx, a.tenantID, "oauth.code_reused", a.userID, audit.Denied, map[string]string{"client_id": a.ClientID})
		}
		return nil, bad
	}
	return a, nil
}

func (s *issuerStorage) SaveAuthCode(ctx context.Context, id, code string) error {
	return serverError(s.p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE oidc_auth_requests SET code_hash = ? WHERE id = ? AND issuer_tenant = ?`,
			hashToken(code), id, string(s.issuer.Tenant))
		return err
	}))
}

// DeleteAuthRequest ends an authorization request once its code is redeemed,
// so a code works once.
func (s *issuerStorage) DeleteAuthRequest(ctx context.Context, id string) error {
	return serverError(s.p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM oidc_auth_requests WHERE id = ? AND issuer_tenant = ?`, id, string(s.issuer.Tenant))
		return err
	}))
}

// --- tokens ---

func requestTenant(r any) tenant.ID {
	if t, ok := r.(tenantOf); ok {
		return t.tenant()
	}
	return ""
}

func clientOf(r any) string {
	switch r := r.(type) {
	case *authRequest:
		return r.ClientID
	case *refreshRequest:
		return r.clientID
	case *clientCredentialsRequest:
		return r.clientID
	}
	return ""
}

func (s *issuerStorage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	if _, ok := req.(op.TokenExchangeRequest); ok {
		st := exchangeFrom(ctx)
		if st == nil || st.expiry.IsZero() {
			return "", time.Time{}, oidc.ErrServerError()
		}
		st.tokenID = ids.New("at")
		if err := s.signAccessToken(ctx, req, st.tokenID, st.expiry); err != nil {
			return "", time.Time{}, err
		}
		return st.tokenID, st.expiry, nil
	}
	access, _ := s.p.lifetimes(ctx, requestTenant(req))
	id, exp := ids.New("at"), s.p.clock().Now().Add(access)
	if err := s.signAccessToken(ctx, req, id, exp); err != nil {
		return "", time.Time{}, err
	}
	if a, ok := req.(*authRequest); ok {
		// A code redeemed without offline_access gets no refresh token, so
		// CreateAccessAndRefreshTokens, which audits the others, is not
		// asked; client credentials are audited when the client is.
		s.p.auditIssued(ctx, a.tenantID, a.userID, map[string]string{"client_id": a.ClientID, "grant": "authorization_code"})
	}
	return id, exp, nil
}

func (s *issuerStorage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	accessID := ids.New("at")
	now := s.p.clock().Now()
	refresh := ids.Secret("bhr")
	var r refreshRequest
	switch q := req.(type) {
	case *authRequest:
		r = refreshRequest{familyID: ids.New("fam"), clientID: q.ClientID, tenantID: q.tenantID, userID: q.userID,
			scopes: q.Scopes, audience: q.GetAudience(), amr: q.GetAMR(), authTime: q.authTime, sid: q.sid}
	case *refreshRequest:
		r = *q
	default:
		return "", "", time.Time{}, oidc.ErrInvalidGrant()
	}
	accessTTL, refreshTTL := s.p.lifetimes(ctx, r.tenantID)
	scopes, _ := json.Marshal(r.scopes)
	aud, _ := json.Marshal(r.audience)
	amr, _ := json.Marshal(r.amr)
	err := s.p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		if current != "" {
			// Rotation: the presented token must be active; it becomes rotated.
			res, err := tx.Exec(ctx, `UPDATE oidc_refresh_tokens SET status = 'rotated' WHERE id = ? AND status = 'active' AND tenant_id = ?`,
				hashToken(current), string(r.tenantID))
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return oidc.ErrInvalidGrant().WithDescription("the refresh token was already used")
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO oidc_refresh_tokens (id, family_id, issuer_tenant, tenant_id, client_id, user_id, scopes, audience, amr,
			auth_time, access_token_id, status, created_at, expires_at, sid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)`,
			hashToken(refresh), r.familyID, string(s.issuer.Tenant), string(r.tenantID), r.clientID, r.userID, string(scopes), string(aud),
			string(amr), r.authTime.UnixMicro(), accessID, now.UnixMicro(), now.Add(refreshTTL).UnixMicro(), r.sid)
		return err
	})
	if err != nil {
		var oe *oidc.Error
		if errors.As(err, &oe) {
			return "", "", time.Time{}, oe
		}
		return "", "", time.Time{}, serverError(fmt.Errorf("provider: store refresh token: %w", err))
	}
	if err := s.signAccessToken(ctx, req, accessID, now.Add(accessTTL)); err != nil {
		return "", "", time.Time{}, err
	}
	s.p.auditIssued(ctx, r.tenantID, r.userID, map[string]string{"client_id": r.clientID, "grant": grantOf(current)})
	return accessID, refresh, now.Add(accessTTL), nil
}

func grantOf(current string) string {
	if current == "" {
		return "authorization_code"
	}
	return "refresh_token"
}

// TokenRequestByRefreshToken finds an active refresh token. Presenting one
// that was already rotated means it was copied: the whole family (every
// token descended from the same sign-in) is revoked.
func (s *issuerStorage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	r := &refreshRequest{id: hashToken(token)}
	var tid, issuerTenant, status, scopes, aud, amr string
	var authTime, expires int64
	err := s.p.cfg.DB.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT family_id, issuer_tenant, tenant_id, client_id, user_id, scopes, audience, amr, auth_time, status, expires_at, sid
			FROM oidc_refresh_tokens WHERE id = ?`, r.id).
			Scan(&r.familyID, &issuerTenant, &tid, &r.clientID, &r.userID, &scopes, &aud, &amr, &authTime, &status, &expires, &r.sid)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, op.ErrInvalidRefreshToken
	}
	if err != nil {
		return nil, serverError(fmt.Errorf("provider: load refresh token: %w", err))
	}
	r.tenantID = tenant.ID(tid)
	// A refresh token is its issuer's, or, once a tier migration moved
	// its tenant to another issuer, that issuer's: it moves there on its
	// next use (the new one is issued there). Any other issuer does not
	// know it.
	if issuerTenant != string(s.issuer.Tenant) && !s.belongs(ctx, r.tenantID) {
		return nil, op.ErrInvalidRefreshToken
	}
	if status == "rotated" {
		s.revokeFamily(ctx, r.familyID)
		s.p.auditEvent(ctx, r.tenantID, "oauth.refresh_token_reused", r.userID, audit.Denied, map[string]string{"client_id": r.clientID})
		return nil, op.ErrInvalidRefreshToken
	}
	if status != "active" || s.p.clock().Now().UnixMicro() > expires {
		return nil, op.ErrInvalidRefreshToken
	}
	if err := errors.Join(json.Unmarshal([]byte(scopes), &r.scopes), json.Unmarshal([]byte(aud), &r.audience), json.Unmarshal([]byte(amr), &r.amr)); err != nil {
		return nil, serverError(fmt.Errorf("provider: stored refresh token unreadable: %w", err))
	}
	r.authTime = time.UnixMicro(authTime).UTC()
	if isOperator(r.tenantID, r.userID) {
		o, err := s.activeOperator(ctx, r.userID)
		if err != nil || o.PasswordChangedAt.After(r.authTime) {
			return nil, op.ErrInvalidRefreshToken
		}
		return r, nil
	}
	u, err := s.activeUser(ctx, r.tenantID, r.userID)
	if err != nil || u.PasswordChangedAt.After(r.authTime) {
		// A password change (say, after a compromise) ends the sessions before it.
		return nil, op.ErrInvalidRefreshToken
	}
	return r, nil
}

func (s *issuerStorage) revokeFamily(ctx context.Context, family string) {
	_ = s.p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE oidc_refresh_tokens SET status = 'revoked' WHERE family_id = ?`, family)
		return err
	})
}

func (s *issuerStorage) TerminateSession(ctx context.Context, userID, clientID string) error {
	return serverError(s.p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE oidc_refresh_tokens SET status = 'revoked' WHERE user_id = ? AND client_id = ? AND issuer_tenant = ?`,
			userID, clientID, string(s.issuer.Tenant))
		return err
	}))
}

func (s *issuerStorage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	var userID, cid string
	err := s.p.cfg.DB.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT user_id, client_id FROM oidc_refresh_tokens WHERE id = ? AND issuer_tenant = ?`,
			hashToken(token), string(s.issuer.Tenant)).Scan(&userID, &cid)
	})
	if err != nil || cid != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return userID, hashToken(token), nil
}

// RevokeToken is zitadel's revocation hook, which the provider does not
// use: /revoke is served by Provider.revoke, which knows the client an
// access token was issued to (zitadel passes only its id and subject). It
// revokes a refresh token of clientID (by the token or its id), never an
// access token.
func (s *issuerStorage) RevokeToken(ctx context.Context, tokenOrID, userID, clientID string) *oidc.Error {
	if len(tokenOrID) > 4096 {
		return nil
	}
	for _, id := range []string{tokenOrID, hashToken(tokenOrID)} {
		if found, err := s.revokeRefreshToken(ctx, id, clientID); err != nil {
			return oidc.ErrServerError()
		} else if found {
			return nil
		}
	}
	return nil
}

func (s *issuerStorage) revoked(ctx context.Context, tokenID string) bool {
	var n int
	err := s.p.cfg.DB.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT COUNT(*) FROM oidc_revoked_tokens WHERE token_id = ?`, tokenID).Scan(&n)
	})
	return err != nil || n > 0
}

// --- keys ---

func (s *issuerStorage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	k, err := s.p.cfg.Signing.Active(ctx, s.issuer)
	if err != nil {
		return nil, serverError(err)
	}
	return signingKey{k}, nil
}

func (s *issuerStorage) SignatureAlgorithms(ctx context.Context) ([]jose.SignatureAlgorithm, error) {
	k, err := s.p.cfg.Signing.Active(ctx, s.issuer)
	if err != nil {
		return nil, serverError(err)
	}
	return []jose.SignatureAlgorithm{k.Algorithm}, nil
}

func (s *issuerStorage) KeySet(ctx context.Context) ([]op.Key, error) {
	if _, err := s.p.cfg.Signing.Active(ctx, s.issuer); err != nil { // an issuer publishes a key from its first request
		return nil, serverError(err)
	}
	set, err := s.p.cfg.Signing.JWKS(ctx, s.issuer)
	if err != nil {
		return nil, serverError(err)
	}
	out := make([]op.Key, len(set.Keys))
	for i, k := range set.Keys {
		out[i] = publicKey{k}
	}
	return out, nil
}

// --- claims ---

// activeUser returns a user of tenant tid who may still hold tokens.
func (s *issuerStorage) activeUser(ctx context.Context, tid tenant.ID, userID string) (identity.User, error) {
	if tid == "" || !s.belongs(ctx, tid) {
		return identity.User{}, errNotFound
	}
	t, err := s.p.tenant(ctx, tid)
	if err != nil || t.Status != tenants.Active {
		return identity.User{}, errNotFound
	}
	u, err := s.p.cfg.Directory.GetUser(ctx, tid, userID)
	if err != nil || u.Status != identity.UserActive {
		return identity.User{}, errNotFound
	}
	return u, nil
}

// tenantClaims are set by Bulkhead from its own records, never copied from
// user-editable attributes.
func (s *issuerStorage) tenantClaims(ctx context.Context, tid tenant.ID, userID string) (map[string]any, error) {
	if tid == "" {
		return map[string]any{}, nil
	}
	t, err := s.p.tenant(ctx, tid)
	if err != nil {
		return nil, serverError(err)
	}
	claims := map[string]any{"tenant_id": string(tid), "tier": t.Tier}
	if userID != "" {
		u, err := s.activeUser(ctx, tid, userID)
		if err != nil {
			return nil, oidc.ErrAccessDenied().WithDescription("the user cannot sign in")
		}
		claims["groups"] = u.Groups
	}
	return claims, nil
}

func (s *issuerStorage) GetPrivateClaimsFromRequest(ctx context.Context, req op.TokenRequest, scopes []string) (map[string]any, error) {
	tid := requestTenant(req)
	var claims map[string]any
	if cc, ok := req.(*clientCredentialsRequest); ok && cc.tier != "" {
		// The client and its active tenant were read for this very request.
		claims = map[string]any{"tenant_id": string(tid), "tier": cc.tier}
	} else {
		user := ""
		if !ok {
			user = req.GetSubject()
		}
		var err error
		if claims, err = s.tenantClaims(ctx, tid, user); err != nil {
			return nil, err
		}
	}
	claims["token_use"] = "access" // resource servers take access tokens only, never ID tokens
	if len(scopes) > 0 {
		claims["scope"] = joinScopes(req.GetScopes())
	}
	return claims, nil
}

func (s *issuerStorage) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	return nil, errors.New("provider: claims need the token request")
}

func (s *issuerStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.setUserinfo(ctx, info, requestTenant(req), req.GetSubject(), scopes); err != nil {
		return err
	}
	// The ID token names its browser session (OIDC Back-Channel Logout §2.4).
	if sid := sessionOf(req); sid != "" {
		info.AppendClaims("sid", sid)
	}
	return nil
}

// sessionOf is the browser session behind a token request ("" if none).
func sessionOf(req any) string {
	switch r := req.(type) {
	case *authRequest:
		return r.sid
	case *refreshRequest:
		return r.sid
	}
	return ""
}

func (s *issuerStorage) setUserinfo(ctx context.Context, info *oidc.UserInfo, tid tenant.ID, userID string, scopes []string) error {
	if isOperator(tid, userID) {
		o, err := s.activeOperator(ctx, userID)
		if err != nil {
			return oidc.ErrAccessDenied().WithDescription("the user cannot sign in")
		}
		info.Subject = o.ID
		if slices.Contains(scopes, oidc.ScopeEmail) {
			info.Email, info.EmailVerified = o.Email, false
		}
		return nil
	}
	u, err := s.activeUser(ctx, tid, userID)
	if err != nil {
		return oidc.ErrAccessDenied().WithDescription("the user cannot sign in")
	}
	info.Subject = u.ID
	if slices.Contains(scopes, oidc.ScopeEmail) {
		info.Email, info.EmailVerified = u.Email, false
	}
	claims, err := s.tenantClaims(ctx, tid, userID)
	if err != nil {
		return err
	}
	for k, v := range claims {
		info.AppendClaims(k, v)
	}
	return nil
}

func (s *issuerStorage) SetUserinfoFromScopes(ctx context.Context, info *oidc.UserInfo, userID, clientID string, scopes []string) error {
	return nil // SetUserinfoFromRequest does the work
}

func (s *issuerStorage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	if s.revoked(ctx, tokenID) {
		return oidc.ErrAccessDenied().WithDescription("the token was revoked")
	}
	tid, err := s.p.userTenant(ctx, subject)
	if err != nil {
		return oidc.ErrAccessDenied()
	}
	return s.setUserinfo(ctx, info, tid, subject, []string{oidc.ScopeOpenID, oidc.ScopeEmail})
}

// SetIntrospectionFromToken is zitadel's introspection hook, which the
// provider does not use: /oauth/introspect is served by
// Provider.introspect, which knows the client a token was issued to. It
// reports every token inactive.
func (s *issuerStorage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	return errors.New("provider: introspection is served by Provider.introspect")
}

func (s *issuerStorage) GetKeyByIDAndClientID(ctx context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	return nil, errors.New("provider: private_key_jwt client authentication is not supported")
}

func (s *issuerStorage) ValidateJWTProfileScopes(ctx context.Context, userID string, scopes []string) ([]string, error) {
	return nil, errors.New("provider: the JWT profile grant is not supported")
}

func (s *issuerStorage) Health(ctx context.Context) error { return s.p.cfg.DB.Ping(ctx) }

func joinScopes(s []string) string {
	out := ""
	for i, sc := range s {
		if i > 0 {
			out += " "
		}
		out += sc
	}
	return out
}
