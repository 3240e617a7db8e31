package provider

import (
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// authRequest is a pending or completed authorization request.
type authRequest struct {
	ID            string              `json:"-"`
	ClientID      string              `json:"client_id"`
	RedirectURI   string              `json:"redirect_uri"`
	State         string              `json:"state"`
	Nonce         string              `json:"nonce"`
	Scopes        []string            `json:"scopes"`
	ResponseType  oidc.ResponseType   `json:"response_type"`
	ResponseMode  oidc.ResponseMode   `json:"response_mode"`
	CodeChallenge *oidc.CodeChallenge `json:"code_challenge,omitempty"`
	LoginHint     string              `json:"login_hint,omitempty"`
	Audience      []string            `json:"audience"`
	// What the client asked of the sign-in (OIDC Core §3.1.2.1): prompt
	// (none, login), max_age in seconds, and acr_values.
	Prompt    []string `json:"prompt,omitempty"`
	MaxAge    *uint    `json:"max_age,omitempty"`
	ACRValues []string `json:"acr_values,omitempty"`

	tenantID tenant.ID
	userID   string
	authTime time.Time
	started  time.Time // when the sign-in began
	csrf     string
	browser  string // hash of the binding cookie of the browser that started it
	// pendingUser is the user a tenant's provider identified, waiting for
	// their second factor on the login page (the sign-in is not done).
	pendingUser string
	// sid is the browser session the sign-in belongs to; amr how the
	// user authenticated (set when the sign-in is done).
	sid string
	amr []string
}

func (a *authRequest) GetID() string                         { return a.ID }
func (a *authRequest) GetACR() string                        { return acrOf(a.GetAMR()) }
func (a *authRequest) GetAudience() []string                 { return a.Audience }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.ClientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.CodeChallenge }
func (a *authRequest) GetNonce() string                      { return a.Nonce }
func (a *authRequest) GetRedirectURI() string                { return a.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.ResponseMode }
func (a *authRequest) GetScopes() []string                   { return a.Scopes }
func (a *authRequest) GetState() string                      { return a.State }
func (a *authRequest) GetSubject() string                    { return a.userID }
func (a *authRequest) Done() bool                            { return a.userID != "" }
func (a *authRequest) GetAMR() []string {
	switch {
	case isOperator(a.tenantID, a.userID):
		return []string{"pwd", "otp"} // operators always give a second factor
	case len(a.amr) > 0:
		return a.amr
	case a.Done():
		return []string{"pwd"}
	}
	return nil
}

// The authentication context classes Bulkhead's tokens name (acr), by how
// the user signed in: with a second factor or not. A client asks for one
// with acr_values; a browser session that has less is not reused for it.
const (
	ACRPassword = "urn:bulkhead:acr:pwd"
	ACRMFA      = "urn:bulkhead:acr:mfa"
)

// acrOf is the acr of a sign-in with these amr values ("" before one).
func acrOf(amr []string) string {
	switch {
	case len(amr) == 0:
		return ""
	case slices.Contains(amr, "otp"), slices.Contains(amr, "mfa"): // a code here, or a federated sign-in with more than one factor
		return ACRMFA
	}
	return ACRPassword
}

// tenantOf lets claim code find the tenant of any request type.
type tenantOf interface{ tenant() tenant.ID }

func (a *authRequest) tenant() tenant.ID { return a.tenantID }

// clientCredentialsRequest is the token request of a client acting for itself.
type clientCredentialsRequest struct {
	clientID string
	tenantID tenant.ID
	tier     string // set when the tenant was read while authenticating the client
	scopes   []string
	audience []string
}

func (c *clientCredentialsRequest) GetSubject() string    { return c.clientID }
func (c *clientCredentialsRequest) GetAudience() []string { return c.audience }
func (c *clientCredentialsRequest) GetScopes() []string   { return c.scopes }
func (c *clientCredentialsRequest) tenant() tenant.ID     { return c.tenantID }

// refreshRequest is the token request behind a refresh token.
type refreshRequest struct {
	id       string // hash of the refresh token
	familyID string
	clientID string
	tenantID tenant.ID
	userID   string
	scopes   []string
	audience []string
	amr      []string
	authTime time.Time
	sid      string // the browser session of the sign-in behind it
}

func (r *refreshRequest) GetAMR() []string            { return r.amr }
func (r *refreshRequest) GetAudience() []string       { return r.audience }
func (r *refreshRequest) GetAuthTime() time.Time      { return r.authTime }
func (r *refreshRequest) GetClientID() string         { return r.clientID }
func (r *refreshRequest) GetScopes() []string         { return r.scopes }
func (r *refreshRequest) GetSubject() string          { return r.userID }
func (r *refreshRequest) SetCurrentScopes(s []string) { r.scopes = s }
func (r *refreshRequest) tenant() tenant.ID           { return r.tenantID }

// client adapts a registered client to the provider.
type client struct {
	identity.Client
	loginURL        string // the issuer's login page
	idTokenLifetime time.Duration
}

func (c *client) GetID() string                    { return c.ID }
func (c *client) RedirectURIs() []string           { return c.Client.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return c.Client.RedirectURIs }
func (c *client) ApplicationType() op.ApplicationType {
	if c.Public {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}
func (c *client) AuthMethod() oidc.AuthMethod {
	if c.Public {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}
func (c *client) ResponseTypes() []oidc.ResponseType {
	if slices.Contains(c.Client.GrantTypes, identity.GrantAuthorizationCode) {
		return []oidc.ResponseType{oidc.ResponseTypeCode}
	}
	return nil
}
func (c *client) GrantTypes() []oidc.GrantType {
	out := make([]oidc.GrantType, 0, len(c.Client.GrantTypes))
	for _, g := range c.Client.GrantTypes {
		switch g {
		case identity.GrantAuthorizationCode:
			out = append(out, oidc.GrantTypeCode)
		case identity.GrantRefreshToken:
			out = append(out, oidc.GrantTypeRefreshToken)
		case identity.GrantClientCredentials:
			out = append(out, oidc.GrantTypeClientCredentials)
		case identity.GrantTokenExchange:
			out = append(out, oidc.GrantTypeTokenExchange)
		}
	}
	return out
}
func (c *client) LoginURL(id string) string { return c.loginURL + "?authRequestID=" + id }
func (c *client) AccessTokenType() op.AccessTokenType {
	// Bearer in zitadel's terms: the token is the at+jwt JWT the storage
	// signed, handed out by the provider's Crypto (see accesstoken.go).
	return op.AccessTokenTypeBearer
}
func (c *client) IDTokenLifetime() time.Duration       { return c.idTokenLifetime }
func (c *client) DevMode() bool                        { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed allows the scopes the client was registered with, beyond
// the standard OpenID ones the provider handles itself.
func (c *client) IsScopeAllowed(scope string) bool { return slices.Contains(c.Scopes, scope) }

// signingKey adapts a signing.Key to the provider.
type signingKey struct{ k *signing.Key }

func (s signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return s.k.Algorithm }
func (s signingKey) Key() any                                    { return s.k.Private }
func (s signingKey) ID() string                                  { return s.k.ID }

// publicKey adapts a published JWK to the provider.
type publicKey struct{ k jose.JSONWebKey }

func (p publicKey) ID() string                         { return p.k.KeyID }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.SignatureAlgorithm(p.k.Algorithm) }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return p.k.Key }
