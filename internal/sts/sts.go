// Package sts is the policy of Bulkhead's security token service: OAuth 2.0
// Token Exchange (RFC 8693) of a user's access token for a short-lived,
// tenant-scoped credential, as STS AssumeRoleWithWebIdentity does with
// session tags. A registered service client presents a user's access token
// and gets a token that acts for that user, in the user's tenant, with the
// scopes of a session policy, and names the service as its actor.
//
// This package decides; the OpenID provider (internal/identity/provider)
// verifies the tokens and the client, and issues the result. The rules:
//
//   - The tenant is the verified subject token's, never the request's.
//   - A tenant's client exchanges only its own tenant's users' tokens; a
//     platform client (no tenant) that is registered for the grant may
//     exchange any tenant's user's token at the issuer that serves it.
//   - Scopes are a session policy: the requested scopes intersected with
//     the client's registered ones, and only data-plane scopes (kms:…,
//     data:…) are ever granted. Requested scopes outside that set are
//     dropped, not refused; an empty result is refused (invalid_scope).
//     Requesting none grants every data-plane scope the client registered.
//   - The token lives at most MaxLifetime (15 minutes), less if configured,
//     never longer than the tenant's access token lifetime nor than the
//     subject token's remaining life.
package sts

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// MaxLifetime bounds an exchanged token's life.
const MaxLifetime = 15 * time.Minute

// MaxRequestedScopes bounds the scopes one request may name.
const MaxRequestedScopes = 100

// Errors of Decide. The provider maps them to OAuth errors.
var (
	// ErrCrossTenant: the client belongs to another tenant than the subject.
	ErrCrossTenant = errors.New("sts: the client does not belong to the subject's tenant")
	// ErrNoScope: the session policy leaves no scope.
	ErrNoScope = errors.New("sts: no requested scope is both registered for the client and exchangeable")
	// ErrTooManyScopes: the request names more than MaxRequestedScopes scopes.
	ErrTooManyScopes = errors.New("sts: too many scopes requested")
	// ErrExpired: the subject token has no life left.
	ErrExpired = errors.New("sts: the subject token has expired")
)

// Exchangeable reports whether an exchange may grant scope: the data-plane
// scopes, kms:… and data:… (kms:encrypt, data:read, …).
func Exchangeable(scope string) bool {
	for _, p := range []string{"kms:", "data:"} {
		if rest, ok := strings.CutPrefix(scope, p); ok && rest != "" {
			return true
		}
	}
	return false
}

// Request is what an exchange decision needs, every part of it verified by
// the caller.
type Request struct {
	ClientTenant  tenant.ID // the acting client's tenant, "" for a platform client
	ClientScopes  []string  // the scopes the client is registered with
	SubjectTenant tenant.ID // the subject token's tenant (its user's)
	Requested     []string  // the scopes asked for (may be empty)

	Now            time.Time
	SubjectExpiry  time.Time     // the subject token's exp
	Lifetime       time.Duration // the provider's exchange lifetime (≤ MaxLifetime; 0: MaxLifetime)
	TenantLifetime time.Duration // the tenant's access token lifetime (0: none)
}

// Grant is what an exchange grants.
type Grant struct {
	Scopes []string
	Expiry time.Time
}

// Decide applies the policy to r.
func Decide(r Request) (Grant, error) {
	if r.SubjectTenant == "" || (r.ClientTenant != "" && r.ClientTenant != r.SubjectTenant) {
		return Grant{}, ErrCrossTenant
	}
	scopes, err := Scopes(r.ClientScopes, r.Requested)
	if err != nil {
		return Grant{}, err
	}
	exp, err := Expiry(r.Now, r.SubjectExpiry, r.Lifetime, r.TenantLifetime)
	if err != nil {
		return Grant{}, err
	}
	return Grant{Scopes: scopes, Expiry: exp}, nil
}

// Scopes returns the session policy's scopes: requested ∩ registered ∩
// exchangeable, in the order requested (each once); with none requested,
// the client's exchangeable registered scopes.
func Scopes(registered, requested []string) ([]string, error) {
	if len(requested) > MaxRequestedScopes {
		return nil, ErrTooManyScopes
	}
	want := requested
	if len(want) == 0 {
		want = registered
	}
	out := []string{}
	for _, s := range want {
		if Exchangeable(s) && slices.Contains(registered, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, ErrNoScope
	}
	return out, nil
}

// Expiry returns when an exchanged token expires: now plus the shortest of
// MaxLifetime, lifetime and tenantLifetime (each if positive), and never
// after the subject token does.
func Expiry(now, subjectExpiry time.Time, lifetime, tenantLifetime time.Duration) (time.Time, error) {
	if !now.Before(subjectExpiry) {
		return time.Time{}, ErrExpired
	}
	d := MaxLifetime
	for _, l := range []time.Duration{lifetime, tenantLifetime} {
		if l > 0 && l < d {
			d = l
		}
	}
	exp := now.Add(d)
	if subjectExpiry.Before(exp) {
		exp = subjectExpiry
	}
	return exp, nil
}

// CheckLifetime validates a provider's configured exchange lifetime.
func CheckLifetime(d time.Duration) error {
	if d < 0 || d > MaxLifetime {
		return fmt.Errorf("sts: the exchanged token lifetime %v must be at most %v", d, MaxLifetime)
	}
	return nil
}
