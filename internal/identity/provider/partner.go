package provider

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/partners"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// A partner assumes a tenant's trust with OAuth 2.0 Token Exchange (RFC
// 8693), authenticating as itself (its client credential is the actor):
//
//	grant_type=urn:ietf:params:oauth:grant-type:token-exchange
//	subject_token=<the trust's external id, bhx_…>
//	subject_token_type=urn:bulkhead:params:oauth:token-type:external-id
//	tenant=<tenant id>            (an extension parameter, RFC 6749 §8.2)
//	scope=…                       (optional: fewer than the trust's)
//	tag=key=value                 (optional, repeated: tags the trust lets the partner set)
//
// The subject is the trust (the tenant's delegation), presented as the
// token that stands for it, the external id; the actor is the partner.
// Token exchange says exactly that, and standard clients can send it (a
// dedicated grant would say nothing more). The token is an access token
// of the tenant's issuer: sub is the trust, act.sub and client_id the
// partner, tags the session tags; nbf is the epoch of the external id
// presented (to the microsecond), so that a rotation of the external id,
// or a resume, stops the tokens assumed with the one before, even those
// assumed while the change was being written.
//
// Every refusal up to the external id's check — an unknown tenant, one
// not active, one that does not trust the partner, another tenant's
// external id, a stale one, none — is the same invalid_grant, and each is
// audited (in the tenant's chain when the tenant exists).

// PartnerTokenType is the subject_token_type of a trust's external id.
const PartnerTokenType = "urn:bulkhead:params:oauth:token-type:external-id"

// clientAssertionType is RFC 7523's client assertion type.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// maxAssertionLife bounds a client assertion's exp from now: its jti is
// remembered until then.
const maxAssertionLife = 10 * time.Minute

// partnerRefused is the one answer to every refusal about the tenant,
// the trust or the external id.
func partnerRefused() *oidc.Error {
	return oidc.ErrInvalidGrant().WithDescription("no active trust of this tenant in the partner matches the external id")
}

// partnerExchange serves the partner token exchange at an issuer's token
// endpoint (the form is parsed).
func (p *Provider) partnerExchange(w http.ResponseWriter, r *http.Request, i signing.Issuer) {
	ctx := r.Context()
	st := &partnerState{}
	resp, err := p.assumeTrust(ctx, r, i, st)
	if err != nil {
		p.auditPartner(ctx, st, err)
		oauthError(w, http.StatusBadRequest, err)
		return
	}
	if err := p.auditPartner(ctx, st, nil); err != nil {
		oauthError(w, http.StatusInternalServerError, oidc.ErrServerError())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	httphelper.MarshalJSON(w, resp)
}

// partnerState is one assumption's facts, for its audit event.
type partnerState struct {
	partner  string // the authenticated partner
	tenantID tenant.ID
	exists   bool // the tenant exists (its chain holds the event)
	trust    string
	tokenID  string
	scopes   []string
	expiry   time.Time
	reason   string
	sourceIP string
}

func (p *Provider) assumeTrust(ctx context.Context, r *http.Request, i signing.Issuer, st *partnerState) (*oidc.TokenExchangeResponse, error) {
	if p.cfg.Partners == nil {
		st.reason = "partners are not configured"
		return nil, oidc.ErrUnsupportedGrantType().WithDescription("partner token exchange is not enabled")
	}
	st.sourceIP = p.cfg.ClientIP.IP(r)
	form := r.PostForm
	partner, err := p.authenticatePartner(ctx, r, i)
	if err != nil {
		st.reason = "client authentication failed"
		if e := (*oidc.Error)(nil); errors.As(err, &e) {
			return nil, err
		}
		return nil, oidc.ErrInvalidClient().WithDescription("client authentication failed")
	}
	st.partner = partner.ID
	for _, single := range []string{"subject_token", "tenant", "scope", "requested_token_type"} {
		if len(form[single]) > 1 {
			st.reason = "repeated " + single
			return nil, oidc.ErrInvalidRequest().WithDescription("%s is given more than once", single)
		}
	}
	if form.Get("actor_token") != "" || form.Get("actor_token_type") != "" {
		st.reason = "actor_token"
		return nil, oidc.ErrInvalidRequest().WithDescription("actor_token is not accepted: the authenticated partner is the actor")
	}
	if rt := form.Get("requested_token_type"); rt != "" && rt != string(oidc.AccessTokenType) {
		st.reason = "requested_token_type"
		return nil, oidc.ErrInvalidRequest().WithDescription("requested_token_type must be %s", oidc.AccessTokenType)
	}
	for _, a := range append(slices.Clone(form["audience"]), form["resource"]...) {
		if a != p.APIAudience() {
			st.reason = "audience or resource " + truncate(a, 100)
			return nil, oidc.ErrInvalidTarget().WithDescription("the token can be for Bulkhead's API (%s) only", p.APIAudience())
		}
	}
	tags := map[string]string{}
	if len(form["tag"]) > partners.MaxTags {
		st.reason = "too many tags"
		return nil, oidc.ErrInvalidRequest().WithDescription("at most %d tags", partners.MaxTags)
	}
	for _, kv := range form["tag"] {
		k, v, ok := strings.Cut(kv, "=")
		if _, dup := tags[k]; !ok || k == "" || dup {
			st.reason = "malformed tag"
			return nil, oidc.ErrInvalidRequest().WithDescription("a tag is key=value, each key once")
		}
		tags[k] = v
	}
	tid, err := tenant.ParseID(form.Get("tenant"))
	if err != nil {
		st.reason = "no valid tenant"
		return nil, oidc.ErrInvalidRequest().WithDescription("tenant must name the tenant the partner acts for")
	}
	st.tenantID = tid
	// The trust is read whatever the tenant's state, so that an unknown or
	// inactive tenant takes as long as one that does not trust the
	// partner: the answer's time tells nothing either.
	t, terr := p.tenant(ctx, tid)
	ip, _ := netip.ParseAddr(st.sourceIP)
	g, err := p.cfg.Partners.Assume(ctx, partners.AssumeRequest{Partner: partner, Tenant: tid, ExternalID: form.Get("subject_token"),
		SourceIP: ip, Scopes: strings.Fields(form.Get("scope")), Tags: tags})
	switch {
	case errs.Is(terr, "tenant_not_found"):
		st.reason = "no such tenant"
		return nil, partnerRefused()
	case terr != nil:
		return nil, terr
	}
	var refusal *partners.Refusal
	noTrust := errors.As(err, &refusal) && refusal.NoTrust
	// A tenant's chain holds the refusals of partners it trusts; those of
	// any other partner naming it go to the platform's, so that a partner
	// cannot fill the chain of a tenant that never trusted it.
	st.exists = !noTrust
	if t.Status != tenants.Active {
		st.reason = "the tenant is not active"
		return nil, partnerRefused()
	}
	tokenIssuer := signing.Platform
	if t.Isolation == tenants.Silo {
		tokenIssuer = signing.Issuer{Tenant: tid}
	}
	if i.Tenant != "" && i.Tenant != tid {
		// A silo issuer issues for its own tenant only; the platform's
		// endpoint serves every tenant (and signs as the tenant's issuer).
		st.reason = "another silo tenant's issuer"
		return nil, partnerRefused()
	}
	switch {
	case refusal != nil:
		st.reason = refusal.Reason
		switch {
		case !refusal.Trusted:
			return nil, partnerRefused()
		case refusal.Scope:
			return nil, oidc.ErrInvalidScope().WithDescription("%s", refusal.Reason)
		default:
			return nil, oidc.ErrInvalidRequest().WithDescription("%s", refusal.Reason)
		}
	case err != nil:
		return nil, err
	}
	st.trust, st.scopes = g.Trust.ID, g.Scopes
	now := p.clock().Now()
	st.expiry = now.Add(g.Lifetime).Truncate(time.Second)
	st.tokenID = ids.New("at")
	// nbf is the epoch of the external id the partner presented (when the
	// trust got it, or was last resumed): the API takes the token while
	// that is still the trust's external id.
	claims := map[string]any{
		"iss": p.issuerURL(tokenIssuer), "sub": g.Trust.ID, "aud": []string{partner.ID, p.APIAudience()},
		"exp": st.expiry.Unix(), "iat": float64(now.UnixMicro()) / 1e6, "jti": st.tokenID,
		"nbf": float64(g.Trust.ExternalIDRotatedAt.UnixMicro()) / 1e6, "client_id": partner.ID, "tenant_id": string(tid), "tier": t.Tier, "token_use": "access",
		"scope": strings.Join(g.Scopes, " "), "act": map[string]any{"sub": partner.ID}, "tags": g.Tags,
	}
	token, err := p.signAccessJWT(ctx, tokenIssuer, claims)
	if err != nil {
		return nil, err
	}
	return &oidc.TokenExchangeResponse{AccessToken: token, IssuedTokenType: oidc.AccessTokenType, TokenType: oidc.BearerToken,
		ExpiresIn: uint64(st.expiry.Sub(now).Seconds()), Scopes: g.Scopes}, nil
}

// auditPartner records an assumption or its refusal: in the tenant's
// chain when the tenant exists, else the platform's. The principal is the
// partner when it authenticated.
func (p *Provider) auditPartner(ctx context.Context, st *partnerState, err error) error {
	principal := "oidc"
	if st.partner != "" {
		principal = "partner:" + st.partner
	}
	ev := audit.Event{Principal: principal, Action: "partner.session_assumed", Target: st.trust, SourceIP: st.sourceIP,
		Detail: map[string]string{"partner": st.partner, "tenant": string(st.tenantID)}}
	if st.exists {
		ev.TenantID = string(st.tenantID)
	}
	if err == nil {
		ev.Outcome = audit.Success
		ev.Detail["token_id"] = st.tokenID
		ev.Detail["scopes"] = strings.Join(st.scopes, " ")
		ev.Detail["expires_at"] = st.expiry.UTC().Format(time.RFC3339)
	} else {
		ev.Outcome = audit.Denied
		var oe *oidc.Error
		if errors.As(err, &oe) {
			ev.Detail["error"] = string(oe.ErrorType)
			if oe.ErrorType == oidc.ServerError {
				ev.Outcome = audit.Failure
			}
		} else {
			ev.Outcome = audit.Failure
		}
		if st.reason != "" {
			ev.Detail["reason"] = st.reason
		}
	}
	// An assumed session changes no state that a cache keeps (an access
	// token issued): Record, so that a partner assuming again and again
	// does not throw away this node's cached reads. Refusals change
	// nothing either (Append does not count them).
	write := p.cfg.Audit.Append
	if err == nil {
		write = p.cfg.Audit.Record
	}
	if aerr := write(context.WithoutCancel(ctx), ev); aerr != nil {
		p.cfg.Logger.ErrorContext(ctx, "audit append failed", "err", aerr, "action", ev.Action)
		return aerr
	}
	return nil
}

// authenticatePartner authenticates the partner making the request: by
// its client secret (HTTP Basic or the form), or by a client assertion
// signed with a key at its JWKS URL (private_key_jwt, RFC 7523).
func (p *Provider) authenticatePartner(ctx context.Context, r *http.Request, i signing.Issuer) (partners.Partner, error) {
	form := r.PostForm
	if form.Get("client_assertion") != "" || form.Get("client_assertion_type") != "" {
		if _, _, basic := r.BasicAuth(); basic || form.Get("client_secret") != "" {
			return partners.Partner{}, oidc.ErrInvalidRequest().WithDescription("the client authenticated by more than one method")
		}
		if form.Get("client_assertion_type") != clientAssertionType || len(form["client_assertion"]) != 1 {
			return partners.Partner{}, oidc.ErrInvalidClient().WithDescription("client_assertion_type must be %s", clientAssertionType)
		}
		return p.partnerAssertion(ctx, form.Get("client_assertion"), form.Get("client_id"), i)
	}
	id, secret, cerr := clientCredentials(r)
	if cerr != nil {
		return partners.Partner{}, cerr
	}
	if !ids.Valid(id, partners.PartnerPrefix) || secret == "" {
		return partners.Partner{}, partners.ErrClient
	}
	return p.cfg.Partners.AuthenticateSecret(ctx, id, secret)
}

// partnerAssertion checks a private_key_jwt client assertion: signed by
// a key the partner publishes, iss and sub the partner, aud this token
// endpoint or its issuer, not expired nor too long-lived, its jti never
// seen before.
func (p *Provider) partnerAssertion(ctx context.Context, assertion, clientID string, i signing.Issuer) (partners.Partner, error) {
	if len(assertion) > 16<<10 {
		return partners.Partner{}, partners.ErrClient
	}
	// The issuer is read before the signature is checked only to find
	// whose keys to check it with.
	tok, err := jwt.ParseSigned(assertion, assertionAlgorithms)
	if err != nil {
		return partners.Partner{}, partners.ErrClient
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil || !ids.Valid(unverified.Issuer, partners.PartnerPrefix) {
		return partners.Partner{}, partners.ErrClient
	}
	partner, err := p.cfg.Partners.KeyPartner(ctx, unverified.Issuer)
	if err != nil {
		return partners.Partner{}, err
	}
	jws, err := jose.ParseSignedCompact(assertion, assertionAlgorithms)
	if err != nil {
		return partners.Partner{}, partners.ErrClient
	}
	payload, err := p.partnerKeySet(partner.JWKSURL).verify(ctx, p.clock().Now(), jws)
	if err != nil {
		return partners.Partner{}, partners.ErrClient
	}
	var c jwt.Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return partners.Partner{}, partners.ErrClient
	}
	now := p.clock().Now()
	endpoint := p.issuerURL(i) + "/oauth/token"
	audOK := c.Audience.Contains(endpoint) || c.Audience.Contains(p.issuerURL(i))
	if c.Issuer != partner.ID || c.Subject != partner.ID || !audOK || c.Expiry == nil || c.ID == "" || len(c.ID) > 256 ||
		(clientID != "" && clientID != partner.ID) {
		return partners.Partner{}, partners.ErrClient
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Time: now}, 30*time.Second); err != nil || c.Expiry.Time().After(now.Add(maxAssertionLife)) {
		return partners.Partner{}, partners.ErrClient
	}
	if err := p.cfg.Partners.UseAssertion(ctx, partner.ID, c.ID, c.Expiry.Time().Add(time.Minute)); err != nil {
		return partners.Partner{}, partners.ErrClient
	}
	return partner, nil
}

// assertionAlgorithms are the signature algorithms of client assertions:
// asymmetric only (a partner's keys are public).
var assertionAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// partnerKeySet returns the key set at a partner's JWKS URL.
func (p *Provider) partnerKeySet(url string) *partnerKeySet {
	if ks, ok := p.partnerKeys.Get(url); ok {
		return ks
	}
	gen := p.partnerKeys.Generation()
	ks := &partnerKeySet{url: url, client: p.upstreams.client}
	p.partnerKeys.Put(url, ks, gen)
	return ks
}
