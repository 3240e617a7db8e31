package provider

import (
	"net/http"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/bulkhead-dev/bulkhead/internal/signing"
)

// supportedScopes are the scopes the provider acts on itself; clients add
// their own registered scopes (kms:encrypt, …) to those.
var supportedScopes = []string{oidc.ScopeOpenID, oidc.ScopeEmail, oidc.ScopeOfflineAccess, APIScope}

// supportedClaims are the claims the provider's tokens and userinfo carry.
var supportedClaims = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "nonce", "amr", "at_hash", "azp",
	"client_id", "scope", "act", "email", "email_verified", "tenant_id", "tier", "groups", "token_use"}

// discovery serves an issuer's discovery document: zitadel's, which its
// op.Config shapes (scopes, claims, client authentication), less what
// zitadel advertises whatever it is configured with and Bulkhead does not
// serve: the device authorization endpoint (it is not routed), the
// implicit flow's response types and grant, the JWT profile and device
// grants, and private_key_jwt at introspection and revocation.
func (p *Provider) discovery(w http.ResponseWriter, r *http.Request, issuer signing.Issuer, o *op.Provider) {
	ctx := op.ContextWithIssuer(r.Context(), p.issuerURL(issuer))
	d := op.CreateDiscoveryConfig(ctx, o, &issuerStorage{p: p, issuer: issuer})
	d.DeviceAuthorizationEndpoint = ""
	d.CheckSessionIframe = ""
	d.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	d.ResponseModesSupported = []string{"query"}
	d.GrantTypesSupported = supportedGrants
	d.IntrospectionEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost}
	d.IntrospectionEndpointAuthSigningAlgValuesSupported = nil
	d.RevocationEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodNone, oidc.AuthMethodBasic, oidc.AuthMethodPost}
	d.RevocationEndpointAuthSigningAlgValuesSupported = nil
	d.TokenEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodNone, oidc.AuthMethodBasic, oidc.AuthMethodPost}
	d.TokenEndpointAuthSigningAlgValuesSupported = nil
	d.ACRValuesSupported = []string{ACRPassword, ACRMFA}
	d.BackChannelLogoutSupported, d.BackChannelLogoutSessionSupported = true, true
	op.Discover(w, d)
}
