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
	v      *auth.Validator
	tenant func(context.Context, tenant.ID) (tenant.Tenant, error)
}

// NewTenantTokens returns the verifier. get reads a tenant (its status and
// tier come from Bulkhead's records, not from the token).
func NewTenantTokens(v *auth.Validator, get func(context.Context, tenant.ID) (tenant.Tenant, error)) *TenantTokens {
	return &TenantTokens{v: v, tenant: get}
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
	tn, err := t.tenant(ctx, tid)
	if err != nil || tn.Status != tenant.Active {
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the token's tenant is not active")
	}
	principal := "user:" + c.Subject
	if c.ClientID != "" && c.Subject == c.ClientID {
		principal = "client:" + c.ClientID
	}
	return tenant.NewContext(ctx, tenant.Context{TenantID: tid, Principal: principal, Tier: tn.Tier, Groups: c.Groups, Scopes: c.Scopes}), nil
}
