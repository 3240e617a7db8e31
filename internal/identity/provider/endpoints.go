package provider

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// The protocol endpoints' answers. The token, introspection and revocation
// endpoints answer errors as RFC 6749 §5.2 JSON ({"error",
// "error_description"}), 401 with a WWW-Authenticate challenge, and never
// with Go error text; every answer of theirs is Cache-Control: no-store.
// Introspection and revocation are served here rather than by zitadel:
// zitadel tells the storage a token's id and subject but not its client,
// and only the client a token was issued to may introspect or revoke it
// (RFC 7662 §2.1, RFC 7009 §2.1).

// maxFormBody bounds the form of a protocol request.
const maxFormBody = 64 << 10

// realm names the provider in WWW-Authenticate challenges.
const realm = "bulkhead"

// genericDescription is the error_description of an error whose own
// description is not fit for a client (a server error's, say).
var genericDescription = map[string]string{
	string(oidc.InvalidRequest):       "the request is malformed",
	string(oidc.InvalidClient):        "client authentication failed",
	string(oidc.InvalidGrant):         "the grant is invalid, expired or revoked",
	string(oidc.UnauthorizedClient):   "the client is not registered for this grant type",
	string(oidc.UnsupportedGrantType): "the grant type is not supported",
	string(oidc.InvalidScope):         "the requested scope is invalid",
	string(oidc.ServerError):          "the server could not complete the request",
	string(oidc.AccessDenied):         "the request was denied",
	string(oidc.InvalidTarget):        "the requested audience or resource is invalid",
}

// writeOAuthError answers the error code with description desc as RFC 6749
// §5.2 JSON. A server error's description is replaced, and so is any that
// carries Go error text.
func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	if code == string(oidc.ServerError) || strings.Contains(desc, "ErrorType=") || strings.Contains(desc, "Parent=") ||
		strings.Contains(desc, "provider:") || len(desc) > 300 {
		desc = genericDescription[code]
	}
	switch code {
	case string(oidc.InvalidClient):
		status = http.StatusUnauthorized
	case string(oidc.ServerError):
		status = http.StatusInternalServerError
	}
	h := w.Header()
	if status == http.StatusUnauthorized {
		// RFC 6749 §5.2: a client that failed to authenticate is challenged
		// with the scheme it may use (client_secret_basic).
		h.Set("WWW-Authenticate", `Basic realm="`+realm+`", charset="UTF-8"`)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{code, desc})
}

// oauthError answers err (an *oidc.Error, or anything else as a server
// error) as writeOAuthError does, with the status RFC 6749 gives it.
func oauthError(w http.ResponseWriter, status int, err error) {
	var oe *oidc.Error
	if !errors.As(err, &oe) {
		// An internal failure: its text is for the log, never the client.
		oe, status = oidc.ErrServerError(), http.StatusInternalServerError
	}
	writeOAuthError(w, status, string(oe.ErrorType), oe.Description)
}

// tokenWriter holds zitadel's answer at the token endpoint, so that it
// leaves no-store, and, when it is an error, in the form writeOAuthError
// gives it.
type tokenWriter struct {
	w      http.ResponseWriter
	header http.Header
	status int
	body   bytes.Buffer
}

func newTokenWriter(w http.ResponseWriter) *tokenWriter {
	return &tokenWriter{w: w, header: http.Header{}}
}

func (t *tokenWriter) Header() http.Header { return t.header }
func (t *tokenWriter) WriteHeader(status int) {
	if t.status == 0 {
		t.status = status
	}
}
func (t *tokenWriter) Write(b []byte) (int, error) {
	if t.status == 0 {
		t.status = http.StatusOK
	}
	return t.body.Write(b)
}

// finish sends the answer.
func (t *tokenWriter) finish() {
	if t.status == 0 {
		t.status = http.StatusOK
	}
	if t.status >= 400 {
		if allow := t.header.Get("Allow"); allow != "" {
			t.w.Header().Set("Allow", allow) // a 405 names the methods it takes (RFC 9110 §15.5.6)
		}
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(t.body.Bytes(), &e) != nil || e.Error == "" {
			e.Error, e.Description = string(oidc.ServerError), ""
		}
		writeOAuthError(t.w, t.status, e.Error, e.Description)
		return
	}
	h := t.w.Header()
	for k, v := range t.header {
		h[k] = v
	}
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	t.w.WriteHeader(t.status)
	t.w.Write(t.body.Bytes())
}

// supportedGrants are the grant types the token endpoint serves; any other
// is unsupported_grant_type before zitadel sees it (it would try the JWT
// profile grant, which Bulkhead does not offer).
var supportedGrants = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeClientCredentials, oidc.GrantTypeTokenExchange}

// token serves an issuer's token endpoint.
func (p *Provider) token(w http.ResponseWriter, r *http.Request, issuer signing.Issuer, o *op.Provider) {
	tw := newTokenWriter(w)
	defer tw.finish()
	if r.Method != http.MethodPost {
		tw.Header().Set("Allow", http.MethodPost)
		oauthError(tw, http.StatusMethodNotAllowed, oidc.ErrInvalidRequest().WithDescription("the token endpoint takes POST"))
		return
	}
	r.Body = http.MaxBytesReader(tw, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		oauthError(tw, http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("the request body is not a form"))
		return
	}
	switch grant := oidc.GrantType(r.PostForm.Get("grant_type")); {
	case grant == "":
		oauthError(tw, http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("grant_type is missing"))
	case !slices.Contains(supportedGrants, grant):
		oauthError(tw, http.StatusBadRequest, oidc.ErrUnsupportedGrantType().WithDescription("grant_type is not supported"))
	case grant == oidc.GrantTypeTokenExchange && r.PostForm.Get("subject_token_type") == PartnerTokenType:
		p.partnerExchange(tw, r, issuer)
	case grant == oidc.GrantTypeTokenExchange:
		p.tokenExchange(tw, r, issuer, o)
	default:
		o.ServeHTTP(tw, r)
	}
}

// clientCredentials reads a confidential client's credentials from HTTP
// Basic (client_secret_basic, form-encoded as RFC 6749 §2.3.1 says) or from
// the form (client_secret_post); using both is an invalid request.
func clientCredentials(r *http.Request) (id, secret string, err *oidc.Error) {
	formID, formSecret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if r.PostForm.Get("client_assertion") != "" || r.PostForm.Get("client_assertion_type") != "" {
		return "", "", oidc.ErrInvalidClient().WithDescription("private_key_jwt client authentication is not supported")
	}
	if bid, bsecret, ok := r.BasicAuth(); ok {
		if formSecret != "" {
			return "", "", oidc.ErrInvalidRequest().WithDescription("the client authenticated by more than one method")
		}
		var e1, e2 error
		id, e1 = url.QueryUnescape(bid)
		secret, e2 = url.QueryUnescape(bsecret)
		if e1 != nil || e2 != nil || (formID != "" && formID != id) {
			return "", "", oidc.ErrInvalidClient().WithDescription("client authentication failed")
		}
		return id, secret, nil
	}
	return formID, formSecret, nil
}

// introspect serves an issuer's introspection endpoint (RFC 7662). Only a
// confidential client may ask, by client_secret_basic or
// client_secret_post, and a token is active only for the client it was
// issued to: every other answer is {"active":false}.
func (p *Provider) introspect(w http.ResponseWriter, r *http.Request, issuer signing.Issuer, o *op.Provider) {
	ctx := op.ContextWithIssuer(r.Context(), p.issuerURL(issuer))
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oauthError(w, http.StatusMethodNotAllowed, oidc.ErrInvalidRequest().WithDescription("the introspection endpoint takes POST"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("the request body is not a form"))
		return
	}
	id, secret, cerr := clientCredentials(r)
	if cerr != nil {
		oauthError(w, http.StatusBadRequest, cerr)
		return
	}
	s := &issuerStorage{p: p, issuer: issuer}
	if id == "" || secret == "" {
		oauthError(w, http.StatusUnauthorized, oidc.ErrInvalidClient().WithDescription("the client must authenticate"))
		return
	}
	if err := s.AuthorizeClientIDSecret(ctx, id, secret); err != nil {
		oauthError(w, http.StatusUnauthorized, oidc.ErrInvalidClient().WithDescription("client authentication failed"))
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		oauthError(w, http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("token is missing"))
		return
	}
	resp := s.introspection(ctx, o, token, id)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	httphelper.MarshalJSON(w, resp)
}

// introspection answers for token, asked by the client clientID.
func (s *issuerStorage) introspection(ctx context.Context, o *op.Provider, token, clientID string) *oidc.IntrospectionResponse {
	inactive := &oidc.IntrospectionResponse{}
	c, err := s.p.accessToken(ctx, o, token)
	if err != nil || c.ClientID != clientID || s.revoked(ctx, c.JWTID) {
		return inactive
	}
	user := c.Subject
	if ids.Valid(c.Subject, "cli") {
		if c.Subject != c.ClientID {
			return inactive
		}
		user = ""
	}
	raw, _ := c.Claims["tenant_id"].(string)
	tid := tenant.ID(raw)
	if tid != "" {
		if t, err := s.p.tenant(ctx, tid); err != nil || t.Status != tenants.Active || !s.belongsTo(tid, &t) {
			return inactive
		}
	}
	claims, err := s.tenantClaims(ctx, tid, user)
	if err != nil {
		return inactive
	}
	return &oidc.IntrospectionResponse{Active: true, Scope: c.Scopes, ClientID: c.ClientID, TokenType: oidc.BearerToken,
		Expiration: c.Expiration, IssuedAt: c.IssuedAt, NotBefore: c.NotBefore, Subject: c.Subject, Audience: c.Audience,
		Issuer: c.Issuer, JWTID: c.JWTID, Actor: c.Actor, Claims: claims}
}

// revoke serves an issuer's revocation endpoint (RFC 7009). A client
// authenticates as at the token endpoint (a public client by its id); a
// token is revoked only when it was issued to that client. Any other
// token, unknown, invalid or another client's, is answered 200 as well
// and changes nothing (§2.2).
func (p *Provider) revoke(w http.ResponseWriter, r *http.Request, issuer signing.Issuer, o *op.Provider) {
	ctx := op.ContextWithIssuer(r.Context(), p.issuerURL(issuer))
	r = r.WithContext(ctx)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		oauthError(w, http.StatusMethodNotAllowed, oidc.ErrInvalidRequest().WithDescription("the revocation endpoint takes POST"))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("the request body is not a form"))
		return
	}
	if _, _, cerr := clientCredentials(r); cerr != nil {
		oauthError(w, http.StatusBadRequest, cerr)
		return
	}
	// zitadel authenticates the client: HTTP Basic, the form, or a public
	// client's id alone.
	token, _, clientID, err := op.ParseTokenRevocationRequest(r, o)
	if err != nil {
		oauthError(w, http.StatusBadRequest, err)
		return
	}
	if token == "" {
		oauthError(w, http.StatusBadRequest, oidc.ErrInvalidRequest().WithDescription("token is missing"))
		return
	}
	s := &issuerStorage{p: p, issuer: issuer}
	if err := s.revokeToken(ctx, o, token, clientID); err != nil {
		p.cfg.Logger.ErrorContext(ctx, "revoke a token", "err", err)
		oauthError(w, http.StatusInternalServerError, oidc.ErrServerError())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
}

// revokeToken revokes token, a refresh token (its whole family) or an
// access token (until it expires), if it was issued to clientID.
func (s *issuerStorage) revokeToken(ctx context.Context, o *op.Provider, token, clientID string) error {
	if len(token) > 8<<10 {
		return nil
	}
	if found, err := s.revokeRefreshToken(ctx, hashToken(token), clientID); found || err != nil {
		return err
	}
	c, err := s.p.accessToken(ctx, o, token)
	if err != nil || c.ClientID != clientID {
		return nil
	}
	raw, _ := c.Claims["tenant_id"].(string)
	return s.p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		// The entry lives as long as the token, whatever its tenant's lifetime.
		res, err := tx.Exec(ctx, `INSERT INTO oidc_revoked_tokens (token_id, tenant_id, expires_at) VALUES (?, ?, ?)
			ON CONFLICT (token_id) DO NOTHING`, c.JWTID, raw, c.Expiration.AsTime().UnixMicro())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // revoked before
		}
		return s.p.cfg.Audit.AppendTx(ctx, tx, audit.Event{TenantID: raw, Principal: "oidc",
			Action: "oauth.token_revoked", Target: c.Subject, Detail: map[string]string{"client_id": clientID, "token_id": c.JWTID}})
	})
}

// revokeRefreshToken revokes the family of the refresh token with id (its
// hash) if it belongs to clientID. found says whether it is a refresh
// token of this issuer at all.
func (s *issuerStorage) revokeRefreshToken(ctx context.Context, id, clientID string) (found bool, err error) {
	var family, cid, tid, user string
	err = s.p.cfg.DB.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT family_id, client_id, tenant_id, user_id FROM oidc_refresh_tokens WHERE id = ? AND issuer_tenant = ?`,
			id, string(s.issuer.Tenant)).Scan(&family, &cid, &tid, &user)
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, err
	case cid != clientID:
		return true, nil
	}
	s.revokeFamily(ctx, family)
	s.p.auditEvent(ctx, tenant.ID(tid), "oauth.token_revoked", user, audit.Success, map[string]string{"client_id": clientID})
	return true, nil
}

// accessToken verifies token as an access token of the issuer in ctx: its
// signature by the issuer's keys, iss, exp, the JOSE header typ at+jwt and
// token_use access (an ID token is none), a client and a token id.
func (p *Provider) accessToken(ctx context.Context, o *op.Provider, token string) (*oidc.AccessTokenClaims, error) {
	if len(token) > 8<<10 {
		return nil, errors.New("provider: token too large")
	}
	c, err := op.VerifyAccessToken[*oidc.AccessTokenClaims](ctx, token, o.AccessTokenVerifier(ctx))
	if err != nil {
		return nil, err
	}
	if !isAccessTokenType(jwtType(token)) {
		return nil, errors.New("provider: not an access token (typ)")
	}
	if use, _ := c.Claims["token_use"].(string); use != "access" || c.ClientID == "" || !ids.Valid(c.JWTID, "at") {
		return nil, errors.New("provider: not an access token")
	}
	return c, nil
}

// jwtType returns the JOSE header typ of a compact JWS ("" if none). Read
// it only of a token whose signature was verified.
func jwtType(token string) string {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Typ string `json:"typ"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return ""
	}
	return h.Typ
}

// isAccessTokenType reports whether typ is at+jwt, or application/at+jwt,
// in any case.
func isAccessTokenType(typ string) bool {
	return strings.TrimPrefix(strings.ToLower(typ), "application/") == AccessTokenType
}
