package gateway

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/partners"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// TenantSource reads a tenant's record; *tenants.Registry is one.
type TenantSource interface {
	Get(ctx context.Context, id tenant.ID) (tenants.Tenant, error)
}

// DomainOwner says which tenant a custom domain belongs to: only a
// verified one (*domains.Service). ok is false when no tenant owns host.
type DomainOwner interface {
	DomainOwner(ctx context.Context, host string) (id tenant.ID, ok bool, err error)
}

// resolution is who a request is for.
type resolution struct {
	tenant  tenant.ID
	subject string // the token's principal, "" without a token
	via     string // "token", "domain" or "subdomain": the most trusted source
	// custom is whether the host is the tenant's custom domain.
	custom bool
}

// errNoTenant is the one answer to a request whose tenant is unknown,
// ambiguous or disagreeing: it must not tell them apart.
var errNoTenant = errors.New("gateway: no tenant")

// resolve finds the tenant of a request from, in order of trust, a
// verified Bulkhead token, the host as a tenant's custom domain, and the
// host as {tenant}.{app domain}. Every source present must name the same
// tenant; otherwise, or with none, it returns errNoTenant. A bearer token
// that is not a Bulkhead token (authn.ErrUnknownToken) is the
// application's business and is not a source; one that is but fails
// verification is refused (401).
//
// A partner's session (a token from a tenant's trust in a partner) keeps
// to its trust's networks here as on the API: peer is the connection's
// address (the gateway is the edge: no forwarded header is believed).
func (g *Gateway) resolve(ctx context.Context, host, bearer string, peer netip.Addr) (resolution, error) {
	var found []resolution
	if bearer != "" {
		tctx, err := authn.Authenticate(ctx, bearer, g.cfg.Verifiers...)
		switch {
		case errors.Is(err, authn.ErrUnknownToken):
		case err != nil:
			return resolution{}, err
		default:
			if tc, ok := tenant.FromContext(tctx); ok {
				if tc.Partner != nil && !partners.InNetworks(tc.Partner.Networks, peer) {
					return resolution{}, errs.E(errs.Forbidden, "source_network_not_allowed",
						"the trust lets this partner's sessions in from its source networks only")
				}
				found = append(found, resolution{tenant: tc.TenantID, subject: tc.Principal, via: "token"})
			}
		}
	}
	if label, ok := g.subdomain(host); ok {
		if _, err := tenant.ParseID(label); err != nil {
			return resolution{}, errNoTenant
		}
		found = append(found, resolution{tenant: tenant.ID(label), via: "subdomain"})
	} else if g.cfg.Domains != nil && host != "" && !g.routes().exactHost(host) && g.routes().hasWildcard("*") {
		// Only a "*" route serves custom domains: without one, a host
		// that is no route's costs no lookup.
		id, ok, err := g.cfg.Domains.DomainOwner(ctx, host)
		if err != nil {
			return resolution{}, err
		}
		if ok {
			found = append(found, resolution{tenant: id, via: "domain"})
		}
	}
	if len(found) == 0 {
		return resolution{}, errNoTenant
	}
	res := found[0]
	for _, f := range found[1:] {
		if f.tenant != res.tenant {
			return resolution{}, errNoTenant
		}
		res.custom = res.custom || f.via == "domain"
	}
	res.custom = res.custom || res.via == "domain"
	return res, nil
}

// subdomain returns the tenant label of host when host is
// {label}.{app domain} with a single label.
func (g *Gateway) subdomain(host string) (string, bool) {
	if g.cfg.AppDomain == "" {
		return "", false
	}
	label, ok := strings.CutSuffix(host, "."+g.cfg.AppDomain)
	if !ok || label == "" || strings.Contains(label, ".") {
		return "", false
	}
	return label, true
}

// canonicalHost lowercases host and drops its port and a trailing dot.
func canonicalHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	h = strings.Trim(h, "[]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// tenantID returns label as a tenant id, "" when it is not one (no
// tenant has that id).
func tenantID(label string) tenant.ID {
	id, err := tenant.ParseID(label)
	if err != nil {
		return ""
	}
	return id
}

// PlacementReader reads a tenant's data placement; *data.Service is one.
type PlacementReader interface {
	Placement(ctx context.Context, id tenant.ID) (api.DataPlacement, error)
}

// DataPlacements is Placements over the data service: a tenant without a
// placement has model "".
type DataPlacements struct{ Data PlacementReader }

// Model implements Placements.
func (d DataPlacements) Model(ctx context.Context, id tenant.ID) (string, error) {
	p, err := d.Data.Placement(ctx, id)
	if errs.Is(err, "no_placement") {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return p.Model, nil
}
