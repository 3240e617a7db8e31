package authn

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/lru"
	"github.com/bulkhead-dev/bulkhead/internal/ratelimit"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/auth"
)

// TenantTokens verifies access tokens of Bulkhead's own OpenID provider with
// the same validator the SDK gives SaaS services (signature against the
// issuer's JWKS, iss bound to the tenant, aud, exp), and yields the tenant
// context of the token's tenant. A platform client's token (no tenant) and
// a token of a tenant that is not active are refused.
type TenantTokens struct {
	v     *auth.Validator
	state TokenState
	opts  StateCache
	log   *slog.Logger
	// warnings bounds the warnings about refused issuers: anyone can send
	// tokens naming any issuer, and the log must not be theirs to fill.
	warnings *ratelimit.Limiter

	verdicts *lru.Cache[string, verdict] // by token id

	operators *operatorAccounts // nil: operator accounts' tokens are refused (WithOperators)
}

// StateCache lets TenantTokens keep, for a short time, what it read of a
// token's state (tenant status, revocation, the client's registration, the
// user's status and groups),
// so that a token used many times a second does not read the database
// each time.
type StateCache struct {
	// TTL is how long a read is kept (0: no cache). Changes made on other
	// nodes reach this one within TTL.
	TTL time.Duration
	// Changes counts the state changes made on this node (audit.Log.Changes);
	// a read made before a change is not used after it, so changes made here
	// apply at once.
	Changes func() uint64
	// Size bounds the tokens remembered (default 10,000); none is kept
	// past TTL, and expired ones are dropped as new ones arrive, so memory
	// follows the rate of distinct tokens times TTL, at most Size.
	Size int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

type verdict struct {
	tc     tenant.Context
	issuer string // the token's, checked against its tenant's when read
	client string
	at     time.Time
	change uint64
}

// TokenState is what a signature cannot tell: Bulkhead's current records.
type TokenState interface {
	// ClientActive returns nil while the OAuth client that a token was
	// issued to is still registered, for tenant tid or platform-wide; an
	// error once it is deleted (its tokens stop with it).
	ClientActive(ctx context.Context, tid tenant.ID, clientID string) error
	// Tenant reads a tenant (its status and tier).
	Tenant(ctx context.Context, id tenant.ID) (tenants.Tenant, error)
	// IssuerOf is the issuer a tenant's tokens must carry now.
	IssuerOf(t tenants.Tenant) string
	// PriorIssuerOf is the issuer a tier migration moved the tenant
	// away from ("" if none): its tokens issued before the move stay
	// valid until they expire.
	PriorIssuerOf(t tenants.Tenant) string
	// Revoked reports whether an access token was revoked.
	Revoked(ctx context.Context, tokenID string) bool
	// UserGroups returns an active user's current groups (an error for a
	// user that is disabled or gone).
	UserGroups(ctx context.Context, tid tenant.ID, userID string) ([]string, error)
	// PartnerSession checks a partner's token now: its trust (trustID, of
	// tenant tid) is active and the partner's (partnerID, still
	// registered), and the token was assumed with the trust's current
	// external id (its notBefore is that external id's epoch; a token
	// without one was issued after the epoch began). It returns the
	// trust's networks and Cedar bound.
	PartnerSession(ctx context.Context, tid tenant.ID, trustID, partnerID string, issuedAt, notBefore time.Time) (tenant.PartnerSession, error)
}

// partnerPrefix starts a partner's id, which is its tokens' client_id.
const partnerPrefix = "prt_"

// NewTenantTokens returns the verifier. It warns in log (nil: nowhere)
// when it refuses a token for its issuer, the refusal an operator has to
// act on (nodes with different public URLs).
func NewTenantTokens(v *auth.Validator, state TokenState, cache StateCache, log *slog.Logger) *TenantTokens {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cache.Size <= 0 {
		cache.Size = 10000
	}
	if cache.Now == nil {
		cache.Now = time.Now
	}
	if cache.Changes == nil {
		cache.TTL = 0 // without a change count, a cache could hide this node's own changes
	}
	return &TenantTokens{v: v, state: state, opts: cache, log: log, warnings: ratelimit.New(issuerWarningRate, issuerWarningBurst, 4),
		verdicts: lru.New[string, verdict](lru.Options[verdict]{Size: cache.Size, MaxAge: max(cache.TTL, time.Nanosecond), Now: cache.Now})}
}

// Warnings about refused issuers: a burst of issuerWarningBurst, then one
// every 10 s per reason, each saying how many were left out before it.
const (
	issuerWarningRate  = 0.1
	issuerWarningBurst = 5
)

// warnIssuer logs, at warn level, why a token was refused for its issuer.
// It names the issuer this node expected, never anything of the token
// (whose claims are not even verified when its issuer is unknown).
func (t *TenantTokens) warnIssuer(ctx context.Context, reason, msg string, attrs ...any) {
	ok, left := t.warnings.Allow(reason, t.opts.Now())
	if !ok {
		return
	}
	attrs = append(attrs, "reason", reason)
	if left > 0 {
		attrs = append(attrs, "unlogged_before", left)
	}
	t.log.WarnContext(ctx, msg, attrs...)
}

// cached returns the tenant context kept for the token c, if still good:
// kept for a token with c's id, tenant, issuer, client and subject.
func (t *TenantTokens) cached(c *auth.Claims, tid tenant.ID) (tenant.Context, bool) {
	if t.opts.TTL <= 0 || c.ID == "" {
		return tenant.Context{}, false
	}
	v, ok := t.verdicts.Get(c.ID)
	ttl := t.opts.TTL
	if v.tc.Partner != nil {
		// A partner's session is another company's bearer token: its
		// trust's revocation reaches other nodes in half the time.
		ttl /= 2
	}
	if !ok || v.change != t.opts.Changes() || t.opts.Now().Sub(v.at) >= ttl ||
		v.tc.TenantID != tid || v.issuer != c.Issuer || v.client != c.ClientID || v.subject() != c.Subject || v.tc.Actor != actor(c) {
		return tenant.Context{}, false
	}
	return v.tc, true
}

// actor names the client acting for the token's user, for a token made by
// token exchange ("" otherwise).
func actor(c *auth.Claims) string {
	switch {
	case c.Actor == "":
		return ""
	case strings.HasPrefix(c.Actor, partnerPrefix):
		return "partner:" + c.Actor
	}
	return "client:" + c.Actor
}

// subject is the token subject the verdict was made for.
func (v verdict) subject() string {
	if id, ok := strings.CutPrefix(v.tc.Principal, "user:"); ok {
		return id
	}
	if id, ok := strings.CutPrefix(v.tc.Principal, "trust:"); ok {
		return id
	}
	return v.client
}

// keep remembers the tenant context of token c, read while the change
// count was change.
func (t *TenantTokens) keep(c *auth.Claims, tc tenant.Context, at time.Time, change uint64) {
	if t.opts.TTL <= 0 || c.ID == "" {
		return
	}
	t.verdicts.Put(c.ID, verdict{tc: tc, issuer: c.Issuer, client: c.ClientID, at: at, change: change}, t.verdicts.Generation())
}

// Verify implements Verifier.
func (t *TenantTokens) Verify(ctx context.Context, token string) (context.Context, error) {
	if strings.Count(token, ".") != 2 {
		return nil, ErrUnknownToken // not a JWT: another verifier's
	}
	c, err := t.v.Validate(ctx, token)
	if err != nil {
		if errors.Is(err, auth.ErrIssuer) {
			t.warnIssuer(ctx, "foreign_issuer", "token refused: its issuer is not this node's public URL, nor a silo issuer under it; "+
				"every node of a deployment must run with the same --public-url, and tokens of another deployment are refused",
				"expected_issuer", t.v.Issuer())
		}
		return nil, &errs.Error{Kind: errs.Unauthenticated, Code: "invalid_token", Detail: "the bearer token is not valid", Err: err}
	}
	if c.ClientID == "" {
		// Access tokens carry client_id; ID tokens (azp) do not, and are no API credential.
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the bearer token is not an access token")
	}
	if c.TenantID == "" {
		return t.operatorContext(ctx, c)
	}
	if c.Actor != "" && (c.Actor != c.ClientID || c.Subject == c.ClientID) {
		// Token exchange names its client as the actor for a user; nothing
		// else is a delegation Bulkhead made.
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the bearer token's actor is not its client")
	}
	tid, err := tenant.ParseID(c.TenantID)
	if err != nil {
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the bearer token is not valid")
	}
	// The cache is keyed by token id, and the signature, expiry and
	// audience were checked above for this very token.
	if tc, ok := t.cached(c, tid); ok {
		return tenant.NewContext(ctx, tc), nil
	}
	var change uint64
	if t.opts.Changes != nil {
		change = t.opts.Changes() // before reading: a change during the reads invalidates them
	}
	at := t.opts.Now()
	tn, err := t.state.Tenant(ctx, tid)
	if err != nil || tn.Status != tenants.Active {
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the token's tenant is not active")
	}
	if want := t.state.IssuerOf(tn); c.Issuer != want && !issuedBeforeMove(c, tn, t.state.PriorIssuerOf(tn)) {
		// A tenant moved to silo accepts only its own issuer's tokens.
		t.warnIssuer(ctx, "tenant_issuer", "token refused: it was issued by an issuer that is no longer its tenant's "+
			"(the tenant's isolation changed since)", "tenant_id", string(tid), "expected_issuer", want)
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the token's issuer is not its tenant's")
	}
	if t.state.Revoked(ctx, c.ID) {
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the token was revoked")
	}
	if strings.HasPrefix(c.ClientID, partnerPrefix) {
		tc, err := t.partnerContext(ctx, c, tid, tn)
		if err != nil {
			return nil, err
		}
		t.keep(c, tc, at, change)
		return tenant.NewContext(ctx, tc), nil
	}
	// A deleted client's tokens (its own, and those its users obtained
	// through it) stop at once: nobody could revoke them any more.
	if err := t.state.ClientActive(ctx, tid, c.ClientID); err != nil {
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the token's client is no longer registered")
	}
	tc := tenant.Context{TenantID: tid, Principal: "client:" + c.ClientID, Tier: tn.Tier, Scopes: c.Scopes, Actor: actor(c)}
	if c.Subject != c.ClientID {
		// A user's token: the user must still be active, and their groups
		// are today's, not the token's.
		groups, err := t.state.UserGroups(ctx, tid, c.Subject)
		if err != nil {
			return nil, errs.E(errs.Unauthenticated, "invalid_token", "the token's user cannot sign in")
		}
		tc.Principal, tc.Groups = "user:"+c.Subject, groups
	}
	t.keep(c, tc, at, change)
	return tenant.NewContext(ctx, tc), nil
}

// partnerContext is the tenant context of a partner's token: its
// principal is the trust, its actor the partner, and it carries the
// session tags and the trust's networks and Cedar bound of now.
func (t *TenantTokens) partnerContext(ctx context.Context, c *auth.Claims, tid tenant.ID, tn tenants.Tenant) (tenant.Context, error) {
	if c.Actor != c.ClientID || !strings.HasPrefix(c.Subject, "trs_") {
		return tenant.Context{}, errs.E(errs.Unauthenticated, "invalid_token", "the bearer token is not valid")
	}
	ps, err := t.state.PartnerSession(ctx, tid, c.Subject, c.ClientID, c.IssuedAt, c.NotBefore)
	if err != nil {
		return tenant.Context{}, errs.E(errs.Unauthenticated, "invalid_token", "the partner's trust is no longer active, or the token predates its external id")
	}
	ps.PartnerID, ps.TrustID, ps.Tags = c.ClientID, c.Subject, maps.Clone(c.Tags)
	// A scope the tenant has since taken off the trust no longer counts.
	scopes := []string{}
	for _, sc := range c.Scopes {
		if slices.Contains(ps.Scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	return tenant.Context{TenantID: tid, Principal: "trust:" + c.Subject, Tier: tn.Tier, Scopes: scopes, Actor: actor(c), Partner: &ps}, nil
}

// issuedBeforeMove reports whether token c comes from the issuer that a
// tier migration moved its tenant away from, and was issued before the
// move: such a token stays valid until it expires (its expiry was
// checked with its signature).
func issuedBeforeMove(c *auth.Claims, tn tenants.Tenant, prior string) bool {
	// iat counts whole seconds: a token of the move's own second could
	// come after it (a node whose tenant read was a moment stale), so it
	// is refused.
	return prior != "" && c.Issuer == prior && !c.IssuedAt.IsZero() && c.IssuedAt.Before(tn.IsolationChangedAt.Truncate(time.Second))
}
