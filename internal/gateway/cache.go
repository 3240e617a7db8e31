package gateway

import (
	"context"
	"errors"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/statecache"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// StateCache lets the gateway keep what it read of tenants (record,
// custom domain owner) for a moment, so that a tenant's requests do not
// read the database each time, under the rule of package statecache
// (TTL; a change made on this node applies at once).
type StateCache = statecache.Config

// maxCached bounds the reads kept; past it the least recently used go,
// so a flood of made-up hosts costs reads, not memory.
const maxCached = 10000

type cachedRead struct {
	tenant tenants.Tenant
	owner  tenant.ID
	owned  bool
}

type stateCache struct {
	tenants TenantSource
	domains DomainOwner
	reads   *statecache.Reads[string, cachedRead]
}

func newStateCache(cfg StateCache, clk clock.Clock, ts TenantSource, do DomainOwner) *stateCache {
	cfg.Size, cfg.Now = maxCached, clk.Now
	return &stateCache{tenants: ts, domains: do, reads: statecache.New[string, cachedRead](cfg)}
}

// Get implements TenantSource. A tenant that does not exist is kept like
// one that does: a flood of made-up subdomains reads each name once.
func (c *stateCache) Get(ctx context.Context, id tenant.ID) (tenants.Tenant, error) {
	r, err := c.read(ctx, "t\x00"+string(id), func(ctx context.Context) (cachedRead, error) {
		t, err := c.tenants.Get(ctx, id)
		return cachedRead{tenant: t}, err
	}, func(err error) bool { return err == nil || errs.Is(err, "tenant_not_found") })
	return r.tenant, err
}

// DomainOwner implements DomainOwner.
func (c *stateCache) DomainOwner(ctx context.Context, host string) (tenant.ID, bool, error) {
	r, err := c.read(ctx, "d\x00"+host, func(ctx context.Context) (cachedRead, error) {
		id, owned, err := c.domains.DomainOwner(ctx, host)
		return cachedRead{owner: id, owned: owned}, err
	}, func(err error) bool { return err == nil })
	return r.owner, r.owned, err
}

// read is key's cached read, or load's, kept when keep says so; a
// request in cache-only mode gets errOverBudget instead of a load.
func (c *stateCache) read(ctx context.Context, key string, load func(context.Context) (cachedRead, error), keep func(error) bool) (cachedRead, error) {
	return c.reads.Get(ctx, key, func(ctx context.Context) (cachedRead, error) {
		if cacheOnly(ctx) {
			return cachedRead{}, errOverBudget
		}
		return load(ctx)
	}, func(_ cachedRead, err error) bool { return keep(err) })
}

// cacheOnlyKey marks the context of a request from an address past its
// bound of misses (Gateway.misses): what is cached answers it, and what
// would need a database read is refused with errOverBudget.
type cacheOnlyKey struct{}

func cacheOnly(ctx context.Context) bool { return ctx.Value(cacheOnlyKey{}) != nil }

// errOverBudget refuses a read for an address past its bound of misses.
var errOverBudget = errors.New("gateway: too many requests for unknown hosts from this address")
