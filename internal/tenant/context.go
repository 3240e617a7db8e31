package tenant

import (
	"context"
	"net/netip"
	"slices"
)

// Context is the tenant context of a request: who is acting, for which
// tenant, with which scopes. Only the authentication middleware creates it,
// from a verified credential. The HTTP layer reads it once, checks it
// against the route, and passes the tenant id to service methods as an
// explicit parameter; services do not read it from the context, so every
// call site shows which tenant it acts for.
type Context struct {
	TenantID  ID
	Principal string
	Tier      string
	Groups    []string // the principal's groups in the tenant
	Scopes    []string
	// Actor, when set, is who acts for Principal with a delegated
	// credential: "client:<id>" on a token made by token exchange,
	// "partner:<id>" on a partner's session (then Principal is
	// "trust:<id>" and Partner is set).
	Actor string
	// Partner is set on a partner's session: a token a third-party
	// service got by assuming the tenant's trust in it.
	Partner *PartnerSession
}

// PartnerSession is what a partner's token may do beyond its scopes. It
// is shared by the requests that use the same token: never change it.
type PartnerSession struct {
	PartnerID string            // prt_…
	TrustID   string            // trs_…
	Tags      map[string]string // the session tags (partner, trust, and those the trust allows)
	// Networks are the trust's source networks now (empty: any).
	Networks []netip.Prefix
	// Policy is the trust's Cedar bound now ("": none).
	Policy string
	// Scopes are the trust's scopes now: a token's scopes count only
	// while the trust still has them.
	Scopes []string
}

// HasScope reports whether the context carries the scope.
func (c Context) HasScope(s string) bool { return slices.Contains(c.Scopes, s) }

// InGroup reports whether the principal is a member of the group.
func (c Context) InGroup(g string) bool { return slices.Contains(c.Groups, g) }

type ctxKey struct{}

// NewContext returns ctx carrying the tenant context c.
func NewContext(ctx context.Context, c Context) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the tenant context carried by ctx, if any.
func FromContext(ctx context.Context) (Context, bool) {
	c, ok := ctx.Value(ctxKey{}).(Context)
	return c, ok
}

type idKey struct{}

// WithID returns ctx marked as doing work for tenant id, for code that acts
// for a tenant without a caller's credential (workflows, operator requests
// that name a tenant). It grants nothing; logs read it.
func WithID(ctx context.Context, id ID) context.Context {
	return context.WithValue(ctx, idKey{}, id)
}

// IDFrom returns the tenant ctx acts for: the tenant context's tenant, or
// else the id set by WithID.
func IDFrom(ctx context.Context) (ID, bool) {
	if c, ok := FromContext(ctx); ok {
		return c.TenantID, true
	}
	id, ok := ctx.Value(idKey{}).(ID)
	return id, ok
}
