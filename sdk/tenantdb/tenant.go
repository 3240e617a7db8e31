package tenantdb

import (
	"context"
	"errors"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/sdk/auth"
)

// Errors a transaction can fail with before it reaches the database. Each
// is returned wrapped; test with errors.Is.
var (
	// ErrNoTenant: the context names no tenant (no sdk/auth claims with a
	// tenant, no WithTenant). There is no unscoped transaction to fall
	// back to.
	ErrNoTenant = errors.New("tenantdb: no tenant in the context")
	// ErrInvalidTenant: the tenant id in the context is not a tenant id.
	ErrInvalidTenant = errors.New("tenantdb: not a valid tenant id")
	// ErrTenantMismatch: WithTenant names a tenant other than the one of
	// the request's verified token.
	ErrTenantMismatch = errors.New("tenantdb: WithTenant names another tenant than the request's token")
	// ErrPlacementNotReady: the tenant's placement is being provisioned
	// or dropped.
	ErrPlacementNotReady = errors.New("tenantdb: the tenant's placement is not ready")
	// ErrBadPlacement: the resolver answered a placement that cannot be
	// used (another tenant's, an unknown cluster or model, a missing name).
	ErrBadPlacement = errors.New("tenantdb: unusable placement")
	// ErrUnsafeRole: the serving DSN's role is a superuser, BYPASSRLS or
	// INHERITs its members' privileges, so row-level security or the
	// tenant's role would not bind it. Its connections are refused.
	ErrUnsafeRole = errors.New("tenantdb: the serving role is superuser, BYPASSRLS or INHERIT")
	// ErrClosed: the DB was closed.
	ErrClosed = errors.New("tenantdb: closed")
)

type tenantKey struct{}

// WithTenant returns a context whose transactions are tenant id's: for
// background work (a job, a queue consumer) that has no request token. It
// is the caller's assertion that the work is that tenant's, and nothing
// checks it against anything but a token already in ctx: if ctx carries
// sdk/auth claims of another tenant, transactions fail with
// ErrTenantMismatch (a request handler cannot switch tenants by mistake).
// Never derive id from a request's path, body or headers.
func WithTenant(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, tenantKey{}, id)
}

// TenantFromContext returns the tenant whose transactions ctx asks for:
// the one named by WithTenant, else the tenant of the sdk/auth claims (a
// platform client's token names none).
func TenantFromContext(ctx context.Context) (string, error) {
	var fromToken string
	if c, ok := auth.FromContext(ctx); ok {
		fromToken = c.TenantID
	}
	id, asserted := ctx.Value(tenantKey{}).(string)
	switch {
	case asserted && fromToken != "" && id != fromToken:
		return "", ErrTenantMismatch
	case !asserted:
		id = fromToken
	}
	if id == "" {
		return "", ErrNoTenant
	}
	if !validTenantID(id) {
		return "", fmt.Errorf("%w: %q", ErrInvalidTenant, id)
	}
	return id, nil
}

// validTenantID reports whether id is a tenant id,
// [a-z0-9][a-z0-9-]{1,61}[a-z0-9].
func validTenantID(id string) bool {
	if len(id) < 3 || len(id) > 63 || id[0] == '-' || id[len(id)-1] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}
