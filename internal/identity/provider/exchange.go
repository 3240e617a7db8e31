package provider

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/sts"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// Token exchange (RFC 8693). A confidential client registered for the
// grant presents a user's access token of this issuer (subject_token, type
// access_token) and gets a short-lived access token for that user, in the
// user's tenant, with the session policy's scopes and an act claim naming
// the client. zitadel parses the request, authenticates the client,
// verifies the subject token's signature, issuer and expiry, and signs the
// result; ValidateTokenExchangeRequest applies Bulkhead's policy
// (internal/sts) to what zitadel verified.
//
// The provider serves the grant itself (tokenExchange) around zitadel's
// exported steps, for what the TokenExchangeStorage interface cannot say:
// the audience of the token (always the client and Bulkhead's API, never
// the request's), and an audit of every refusal, including those zitadel
// makes before the storage is asked.

// exchange is one token exchange's state, carried in its context from the
// handler to the storage calls zitadel makes for it.
type exchange struct {
	clientID string // as the request names it until authenticated; then the client's
	client   identity.Client
	tenantID tenant.ID // the subject token's (verified), once known
	userID   string
	tier     string
	groups   []string
	subject  string // the subject token's id (jti)
	scopes   []string
	audience []string
	expiry   time.Time
	tokenID  string // the issued token's id
	reason   string // why the exchange was refused, for the audit
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	st, _ := ctx.Value(exchangeKey{}).(*exchange)
	return st
}

// exchangeRequest is zitadel's validated request with the audience the
// policy chose.
type exchangeRequest struct {
	op.TokenExchangeRequest
	audience []string
}

func (r *exchangeRequest) GetAudience() []string { return r.audience }

// tokenExchange serves grant_type=urn:ietf:params:oauth:grant-type:token-exchange
// at an issuer's token endpoint.
func (p *Provider) tokenExchange(w http.ResponseWriter, r *http.Request, i signing.Issuer, o *op.Provider) {
	st := &exchange{}
	ctx := op.ContextWithIssuer(context.WithValue(r.Context(), exchangeKey{}, st), p.issuerURL(i))
	r = r.WithContext(ctx)
	resp, err := p.exchangeTokens(ctx, r, o, st)
	if err != nil {
		p.auditExchange(ctx, i, st, err)
		oauthError(w, http.StatusBadRequest, err)
		return
	}
	if err := p.auditExchange(ctx, i, st, nil); err != nil {
		// A token that cannot be audited is not handed out.
		oauthError(w, http.StatusInternalServerError, oidc.ErrServerError())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	httphelper.MarshalJSON(w, resp)
}

func (p *Provider) exchangeTokens(ctx context.Context, r *http.Request, o *op.Provider, st *exchange) (*oidc.TokenExchangeResponse, error) {
	if r.Method != http.MethodPost {
		st.reason = "not a POST"
		return nil, oidc.ErrInvalidRequest().WithDescription("the token endpoint takes POST")
	}
	req, id, secret, err := op.ParseTokenExchangeRequest(r, o.Decoder())
	if err != nil {
		st.reason = "unreadable request"
		return nil, err
	}
	if id == "" && secret == "" {
		// client_secret_post (zitadel reads only HTTP Basic for this grant).
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	st.clientID = truncate(id, 64)
	// Only access tokens are exchanged. Other kinds are refused before
	// zitadel looks them up (it would read a refresh token, say).
	if req.SubjectTokenType != oidc.AccessTokenType {
		st.reason = "subject_token_type " + truncate(string(req.SubjectTokenType), 64)
		return nil, oidc.ErrInvalidRequest().WithDescription("subject_token_type must be %s", oidc.AccessTokenType)
	}
	if req.ActorToken != "" || req.ActorTokenType != "" {
		st.reason = "actor_token"
		return nil, oidc.ErrInvalidRequest().WithDescription("actor_token is not accepted: the authenticated client is the actor")
	}
	treq, client, err := op.ValidateTokenExchangeRequest(ctx, req, id, secret, o)
	if err != nil {
		var oe *oidc.Error
		switch {
		case st.reason != "": // the policy's refusal
		case errors.As(err, &oe) && oe.ErrorType == oidc.InvalidClient:
			st.reason = "client authentication failed"
		case errors.As(err, &oe):
			st.reason = truncate(oe.Description, 200) // zitadel's: the subject token's signature, issuer or expiry
		default:
			st.reason = "error"
		}
		return nil, err
	}
	return op.CreateTokenExchangeResponse(ctx, &exchangeRequest{TokenExchangeRequest: treq, audience: st.audience}, client, o)
}

// auditExchange records an exchange (err nil) or its refusal in the user's
// tenant chain, or, before the subject token is verified, in the client's
// tenant's chain or the platform's.
func (p *Provider) auditExchange(ctx context.Context, i signing.Issuer, st *exchange, err error) error {
	tid := st.tenantID
	if tid == "" {
		tid = st.client.TenantID
	}
	detail := map[string]string{"issuer": p.issuerURL(i), "client_id": st.clientID}
	ev := audit.Event{TenantID: string(tid), Principal: "oidc", Action: "oauth.token_exchanged", Target: st.userID, Detail: detail}
	if err == nil {
		ev.Outcome = audit.Success
		detail["scopes"] = strings.Join(st.scopes, " ")
		detail["token_id"] = st.tokenID
		detail["subject_token_id"] = st.subject
		detail["expires_at"] = st.expiry.UTC().Format(time.RFC3339)
	} else {
		ev.Outcome = audit.Denied
		var oe *oidc.Error
		if errors.As(err, &oe) {
			detail["error"] = string(oe.ErrorType)
			if oe.ErrorType == oidc.ServerError {
				ev.Outcome = audit.Failure
			}
		} else {
			ev.Outcome = audit.Failure
		}
		if st.reason != "" {
			detail["reason"] = st.reason
		}
	}
	// An exchanged token changes nothing a cache keeps: Record, so that a
	// service exchanging tokens in a loop does not throw away this node's
	// cached reads (refusals are not changes either way).
	if aerr := p.cfg.Audit.Record(context.WithoutCancel(ctx), ev); aerr != nil {
		p.cfg.Logger.ErrorContext(ctx, "audit append failed", "err", aerr, "action", ev.Action)
		return aerr
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

var _ op.TokenExchangeStorage = (*issuerStorage)(nil)

// ValidateTokenExchangeRequest applies the exchange policy to a request
// whose client zitadel authenticated and whose subject token it verified
// (signature by this issuer's keys, iss, exp).
func (s *issuerStorage) ValidateTokenExchangeRequest(ctx context.Context, req op.TokenExchangeRequest) error {
	st := exchangeFrom(ctx)
	if st == nil {
		// Only tokenExchange serves the grant.
		return oidc.ErrUnsupportedGrantType()
	}
	// The subject token's problems all get one answer, so a client learns
	// nothing of another tenant's users; the audit keeps the reason.
	invalid := func(reason string) error {
		st.reason = reason
		return oidc.ErrInvalidRequest().WithDescription("subject_token is invalid")
	}
	c, err := s.registeredClient(ctx, req.GetClientID())
	if err != nil {
		st.reason = "unknown client"
		return oidc.ErrInvalidClient()
	}
	st.client, st.clientID = c, c.ID
	if c.Public || !slices.Contains(c.GrantTypes, identity.GrantTokenExchange) {
		st.reason = "client not registered for token exchange"
		return oidc.ErrUnauthorizedClient().WithDescription("the client is not registered for token exchange")
	}
	switch req.GetRequestedTokenType() {
	case "":
		req.SetRequestedTokenType(oidc.AccessTokenType)
	case oidc.AccessTokenType:
	default:
		st.reason = "requested_token_type " + string(req.GetRequestedTokenType())
		return oidc.ErrInvalidRequest().WithDescription("requested_token_type must be %s", oidc.AccessTokenType)
	}
	if req.GetExchangeSubjectTokenType() != oidc.AccessTokenType || req.GetExchangeActor() != "" {
		return invalid("not an access token")
	}

	// The subject token: an access token (never an ID token) of a user,
	// issued by this issuer, not itself a delegation, not revoked.
	claims := req.GetExchangeSubjectTokenClaims()
	if use, _ := claims["token_use"].(string); use != "access" {
		return invalid("not an access token (token_use)")
	}
	cid, _ := claims["client_id"].(string)
	if cid == "" {
		return invalid("not an access token (no client_id)")
	}
	if _, err := s.registeredClient(ctx, cid); err != nil {
		// A deleted client's tokens are dead everywhere, here too.
		return invalid("the subject token's client is no longer registered")
	}
	if _, ok := claims["act"]; ok {
		return invalid("already an exchanged token")
	}
	user := req.GetExchangeSubject()
	if !ids.Valid(user, "usr") {
		return invalid("the subject is not a user")
	}
	raw, _ := claims["tenant_id"].(string)
	tid, err := tenant.ParseID(raw)
	if err != nil {
		return invalid("no tenant")
	}
	st.tenantID, st.userID = tid, user
	st.subject, _ = claims["jti"].(string)
	if !ids.Valid(st.subject, "at") || s.revoked(ctx, st.subject) {
		return invalid("revoked")
	}
	if !audienceHas(claims["aud"], s.p.APIAudience()) && !audienceHas(claims["aud"], c.ID) {
		return invalid("the subject token is neither for Bulkhead's API nor for the client")
	}
	exp, ok := claims["exp"].(float64)
	if !ok {
		return invalid("no exp")
	}
	subjectExpiry := time.Unix(int64(exp), 0)

	// Today's records: the user is active in an active tenant that this
	// issuer serves.
	u, err := s.activeUser(ctx, tid, user)
	if err != nil {
		return invalid("the user or tenant is not active")
	}
	t, err := s.p.tenant(ctx, tid)
	if err != nil || t.Status != tenants.Active {
		return invalid("the tenant is not active")
	}
	st.tier, st.groups = t.Tier, u.Groups

	// What the requested token may be for: Bulkhead's API (and the client).
	for _, a := range append(slices.Clone(req.GetAudience()), req.GetResourses()...) {
		if a != s.p.APIAudience() && a != c.ID {
			st.reason = "audience or resource " + truncate(a, 100)
			return oidc.ErrInvalidTarget().WithDescription("the token can be for Bulkhead's API (%s) only", s.p.APIAudience())
		}
	}
	st.audience = []string{c.ID, s.p.APIAudience()}

	tenantAccess, _ := s.p.lifetimes(ctx, tid)
	g, err := sts.Decide(sts.Request{ClientTenant: c.TenantID, ClientScopes: c.Scopes, SubjectTenant: tid, Requested: req.GetScopes(),
		Now: s.p.clock().Now(), SubjectExpiry: subjectExpiry, Lifetime: s.p.cfg.ExchangeTokenLifetime, TenantLifetime: tenantAccess})
	switch {
	case errors.Is(err, sts.ErrCrossTenant):
		return invalid("the client belongs to another tenant")
	case errors.Is(err, sts.ErrExpired):
		return invalid("expired")
	case err != nil:
		st.reason = err.Error()
		return oidc.ErrInvalidScope().WithDescription("no requested scope is registered for the client and exchangeable (kms:…, data:…)")
	}
	st.scopes, st.expiry = g.Scopes, g.Expiry
	req.SetCurrentScopes(g.Scopes)
	return nil
}

// audienceHas reports whether a decoded aud claim (a string or a list)
// names a.
func audienceHas(aud any, a string) bool {
	switch v := aud.(type) {
	case string:
		return v == a
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok && s == a {
				return true
			}
		}
	}
	return false
}

// CreateTokenExchangeRequest has nothing to store: the exchange is audited
// once its token is signed.
func (s *issuerStorage) CreateTokenExchangeRequest(ctx context.Context, req op.TokenExchangeRequest) error {
	if exchangeFrom(ctx) == nil {
		return oidc.ErrUnsupportedGrantType()
	}
	return nil
}

// GetPrivateClaimsFromTokenExchangeRequest gives the exchanged token the
// user's tenant claims, the granted scopes and the actor.
func (s *issuerStorage) GetPrivateClaimsFromTokenExchangeRequest(ctx context.Context, req op.TokenExchangeRequest) (map[string]any, error) {
	st := exchangeFrom(ctx)
	if st == nil || st.tenantID == "" {
		return nil, oidc.ErrServerError()
	}
	return map[string]any{
		"tenant_id": string(st.tenantID),
		"tier":      st.tier,
		"groups":    st.groups,
		"token_use": "access",
		"scope":     strings.Join(st.scopes, " "),
		"act":       map[string]any{"sub": st.client.ID},
	}, nil
}

// SetUserinfoFromTokenExchangeRequest is never reached: only access tokens
// are issued by exchange.
func (s *issuerStorage) SetUserinfoFromTokenExchangeRequest(ctx context.Context, info *oidc.UserInfo, req op.TokenExchangeRequest) error {
	return oidc.ErrInvalidRequest().WithDescription("token exchange issues access tokens only")
}
