package authn

import (
	"context"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
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
}

// TokenState is what a signature cannot tell: Bulkhead's current records.
type TokenState interface {
	// Tenant reads a tenant (its status and tier).
	Tenant(ctx context.Context, id tenant.ID) (tenant.Tenant, error)
	// IssuerOf is the issuer a tenant's tokens must carry now.
	IssuerOf(t tenant.Tenant) string
	// Revoked reports whether an access token was revoked.
	Revoked(ctx context.Context, tokenID string) bool
	// UserGroups returns an active user's current groups (an error for a
	// user that is disabled or gone).
	UserGroups(ctx context.Context, tid tenant.ID, userID string) ([]string, error)
}

// NewTenantTokens returns the verifier.
func NewTenantTokens(v *auth.Validator, state TokenState) *TenantTokens {
	return &TenantTokens{v: v, state: state}
}

// Verify implements Verifier.
func (t *TenantTokens) Verify(ctx context.Context, token string) (context.Context, error) {
	if strings.Count(token, ".") != 2 {
		return nil, ErrUnknownToken // not a JWT: another verifier's
	}
	c, err := t.v.Validate(ctx, token)
	if err != nil {
		return nil, &errs.Error{Kind: errs.Unauthenticated, Code: "invalid_token", Detail: "the bearer token is not valid", Err: err}
	}
	if c.ClientID == "" {
		// Access tokens carry client_id; ID tokens (azp) do not, and are no API credential.
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the bearer token is not an access token")
	}
	if c.TenantID == "" {
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "a platform client's token does not act for a tenant")
	}
	tid, err := tenant.ParseID(c.TenantID)
	if err != nil {
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the bearer token is not valid")
	}
	tn, err := t.state.Tenant(ctx, tid)
	if err != nil || tn.Status != tenant.Active {
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the token's tenant is not active")
	}
	if c.Issuer != t.state.IssuerOf(tn) {
		// A tenant moved to silo accepts only its own issuer's tokens.
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the token's issuer is not its tenant's")
	}
	if t.state.Revoked(ctx, c.ID) {
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the token was revoked")
	}
	tc := tenant.Context{TenantID: tid, Principal: "client:" + c.ClientID, Tier: tn.Tier, Scopes: c.Scopes}
	if c.Subject != c.ClientID {
		// A user's token: the user must still be active, and their groups
		// are today's, not the token's.
		groups, err := t.state.UserGroups(ctx, tid, c.Subject)
		if err != nil {
			return nil, errs.E(errs.Unauthenticated, "invalid_token", "the token's user cannot sign in")
		}
		tc.Principal, tc.Groups = "user:"+c.Subject, groups
	}
	return tenant.NewContext(ctx, tc), nil
}
