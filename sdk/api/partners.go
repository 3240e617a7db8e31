package api

import "time"

// Partner authentication methods at the token endpoint.
const (
	// PartnerClientSecret: HTTP Basic (or client_secret_post) with the
	// secret Bulkhead made at registration.
	PartnerClientSecret = "client_secret_basic"
	// PartnerPrivateKeyJWT: a JWT signed with one of the keys the
	// partner publishes at its JWKS URL (RFC 7523 client authentication).
	PartnerPrivateKeyJWT = "private_key_jwt"
)

// CreatePartner registers an integration partner: a third-party service
// that tenants may trust to act in their tenant. AuthMethod is
// client_secret_basic (the default: Bulkhead makes a secret, shown once)
// or private_key_jwt (JWKSURL names the partner's public keys, https).
type CreatePartner struct {
	Name       string `json:"name"`
	AuthMethod string `json:"auth_method,omitempty"`
	JWKSURL    string `json:"jwks_url,omitempty"`
}

// Partner is a registered partner. Its ID (prt_…) is also its OAuth
// client_id.
type Partner struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	AuthMethod string    `json:"auth_method"`
	JWKSURL    string    `json:"jwks_url,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// PartnerCreated is a new partner with its client secret (bhp_…), shown
// this once (client_secret_basic only).
type PartnerCreated struct {
	Partner
	ClientSecret string `json:"client_secret,omitempty"`
}

// PartnerPage is a page of partners, by id.
type PartnerPage struct {
	Items      []Partner `json:"items"`
	NextCursor string    `json:"next_cursor"`
}

// CreateTrust is a tenant's trust in a partner: what the partner may do
// in the tenant when it assumes the trust.
type CreateTrust struct {
	// Partner is the partner's id (prt_…).
	Partner     string `json:"partner"`
	Description string `json:"description,omitempty"`
	// Scopes bound the partner's tokens (it may ask for fewer).
	Scopes []string `json:"scopes"`
	// Policy, when set, is Cedar (permit and forbid statements) that
	// bounds every decision about the partner's sessions: a decision is
	// allow only if the tenant's policies allow it and this policy does.
	Policy string `json:"policy,omitempty"`
	// MaxSessionSeconds bounds a token's life (60 to 3600; default 900).
	MaxSessionSeconds int `json:"max_session_seconds,omitempty"`
	// SourceNetworks, when set, are the networks (CIDR) the partner may
	// assume the trust and use its tokens from.
	SourceNetworks []string `json:"source_networks,omitempty"`
	// Tags are session tags the tenant sets on every session.
	Tags map[string]string `json:"tags,omitempty"`
	// PartnerTags are the tag keys the partner may set when it assumes
	// the trust (tag=key=value at the token endpoint).
	PartnerTags []string `json:"partner_tags,omitempty"`
}

// PatchTrust changes a trust; a field left out is kept.
type PatchTrust struct {
	Description       *string            `json:"description,omitempty"`
	Scopes            []string           `json:"scopes,omitempty"`
	Policy            *string            `json:"policy,omitempty"`
	MaxSessionSeconds *int               `json:"max_session_seconds,omitempty"`
	SourceNetworks    *[]string          `json:"source_networks,omitempty"`
	Tags              *map[string]string `json:"tags,omitempty"`
	PartnerTags       *[]string          `json:"partner_tags,omitempty"`
}

// Trust states.
const (
	TrustActive    = "active"
	TrustSuspended = "suspended"
)

// Trust is a tenant's trust in a partner. The external id is never shown
// again after creation or rotation; ExternalIDHint is its last four
// characters, to tell which one a partner holds.
type Trust struct {
	ID                  string            `json:"id"`
	TenantID            string            `json:"tenant_id"`
	Partner             string            `json:"partner"`
	PartnerName         string            `json:"partner_name,omitempty"`
	Description         string            `json:"description,omitempty"`
	Scopes              []string          `json:"scopes"`
	Policy              string            `json:"policy,omitempty"`
	MaxSessionSeconds   int               `json:"max_session_seconds"`
	SourceNetworks      []string          `json:"source_networks"`
	Tags                map[string]string `json:"tags"`
	PartnerTags         []string          `json:"partner_tags"`
	Status              string            `json:"status"`
	ExternalIDHint      string            `json:"external_id_hint"`
	ExternalIDRotatedAt time.Time         `json:"external_id_rotated_at"`
	CreatedAt           time.Time         `json:"created_at"`
	UpdatedAt           time.Time         `json:"updated_at"`
}

// TrustCreated is a trust with its external id (bhx_…), shown this once:
// the tenant hands it to the partner, who stores it for this tenant and
// presents it with every token request.
type TrustCreated struct {
	Trust
	ExternalID string `json:"external_id"`
}

// TrustPage is a page of a tenant's trusts, by id.
type TrustPage struct {
	Items      []Trust `json:"items"`
	NextCursor string  `json:"next_cursor"`
}
