package api

import "time"

// Domain is a tenant's custom domain. The gateway serves it, and may get a
// certificate for it, once its state is "verified".
type Domain struct {
	Name     string `json:"name"`      // canonical: A-label form, lower case
	TenantID string `json:"tenant_id"` //
	State    string `json:"state"`     // pending or verified
	// Token proves control: serve it at
	// http://{name}/.well-known/bulkhead-domain/{token} (the gateway does
	// when the name points at it), or publish it as a TXT record at
	// _bulkhead.{name}.
	Token      string     `json:"token"`
	Method     string     `json:"method,omitempty"` // how it was verified: http or dns
	CreatedAt  time.Time  `json:"created_at"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
}

// CreateDomain claims a custom domain for a tenant.
type CreateDomain struct {
	Name string `json:"name"`
}
