package partners

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// AssumeRequest is a partner's request for a session in a tenant, its
// partner already authenticated.
type AssumeRequest struct {
	Partner    Partner
	Tenant     tenant.ID
	ExternalID string
	SourceIP   netip.Addr        // the request's address (invalid: unknown)
	Scopes     []string          // asked for; none: all of the trust's
	Tags       map[string]string // asked for; keys the trust lets the partner set
}

// Grant is an assumed session's contents.
type Grant struct {
	Trust    Trust
	Scopes   []string
	Tags     map[string]string // every session tag, partner and trust included
	Lifetime time.Duration
}

// Refusal is why an assumption was refused: for the audit trail only.
// Every refusal up to and including the external id's check is answered
// alike, so a partner learns nothing of the tenants it is not trusted by.
type Refusal struct {
	Reason string
	// Trusted marks a refusal made after the external id matched: the
	// answer may then say what to fix (a scope, a tag).
	Trusted bool
	// Scope marks a refusal of the requested scopes.
	Scope bool
	// NoTrust marks a tenant that does not trust the partner at all.
	NoTrust bool
}

func (r *Refusal) Error() string { return "partners: assumption refused: " + r.Reason }

func refuse(reason string) error { return &Refusal{Reason: reason} }

// Assume decides a partner's request: the tenant trusts the partner, the
// external id is that trust's current one (constant time), the trust is
// active, the request comes from one of its networks, and what is asked
// is within the trust. The tenant's status is the caller's to check.
func (s *Service) Assume(ctx context.Context, r AssumeRequest) (Grant, error) {
	var t Trust
	var hash string
	err := s.db.View(ctx, storage.TenantScope(r.Tenant), func(tx *storage.Tx) error {
		var err error
		t, err = scanTrust(tx.QueryRow(ctx, `SELECT `+trustColumns+`, t.external_id_hash`+trustFrom+` WHERE t.tenant_id = ? AND t.partner_id = ?`,
			tx.TenantID(), r.Partner.ID), &hash)
		return err
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		equalHash(r.ExternalID, hashSecret("")) // as long as a comparison
		return Grant{}, &Refusal{Reason: "the tenant does not trust the partner", NoTrust: true}
	case err != nil:
		return Grant{}, fmt.Errorf("partners: read trust: %w", err)
	}
	if !equalHash(r.ExternalID, hash) {
		if r.ExternalID == "" {
			return Grant{}, refuse("no external id")
		}
		return Grant{}, refuse("the external id is not the trust's current one")
	}
	if t.Status != api.TrustActive {
		return Grant{}, refuse("the trust is suspended")
	}
	nets, err := CheckNetworks("source_networks", t.SourceNetworks)
	if err != nil {
		return Grant{}, err
	}
	if !InNetworks(nets, r.SourceIP) {
		return Grant{}, refuse("the request's address is outside the trust's networks")
	}
	g := Grant{Trust: t, Lifetime: time.Duration(t.MaxSessionSeconds) * time.Second}
	if len(r.Scopes) > MaxScopes {
		return Grant{}, &Refusal{Reason: "too many scopes", Trusted: true, Scope: true}
	}
	want := r.Scopes
	if len(want) == 0 {
		want = t.Scopes
	}
	for _, sc := range want {
		if slices.Contains(t.Scopes, sc) && !slices.Contains(g.Scopes, sc) {
			g.Scopes = append(g.Scopes, sc)
		}
	}
	if len(g.Scopes) == 0 {
		return Grant{}, &Refusal{Reason: "no requested scope is within the trust", Trusted: true, Scope: true}
	}
	g.Tags = maps.Clone(t.Tags)
	if g.Tags == nil {
		g.Tags = map[string]string{}
	}
	for k, v := range r.Tags {
		if !slices.Contains(t.PartnerTags, k) {
			return Grant{}, &Refusal{Reason: fmt.Sprintf("tag %q is not one the trust lets the partner set", clipKey(k)), Trusted: true}
		}
		if checkTagValue("tag", v) != nil {
			return Grant{}, &Refusal{Reason: fmt.Sprintf("tag %q: a value is at most %d bytes of text", k, MaxTagValue), Trusted: true}
		}
		g.Tags[k] = v
	}
	g.Tags[TagPartner], g.Tags[TagTrust] = r.Partner.ID, t.ID
	return g, nil
}

// InNetworks reports whether addr is in one of nets (any address when
// nets is empty; none when addr is unknown and nets is not empty).
func InNetworks(nets []netip.Prefix, addr netip.Addr) bool {
	if len(nets) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, n := range nets {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

func clipKey(k string) string {
	if len(k) > 32 {
		return k[:32]
	}
	return k
}
