package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// StateCache lets the gateway keep what it read of tenants (record,
// custom domain owner) for a moment, so that a tenant's requests do not
// read the database each time; authn.StateCache does the same for tokens.
type StateCache struct {
	// TTL is how long a read is kept (0: no cache). Changes made on other
	// nodes reach this one within TTL.
	TTL time.Duration
	// Changes counts the state changes made on this node
	// (audit.Log.Changes); a read made before a change is not used after
	// it, so changes made here apply at once.
	Changes func() uint64
}

// maxCached bounds the reads kept; past it the cache starts over, so a
// flood of made-up hosts costs reads, not memory.
const maxCached = 10000

type cachedRead struct {
	tenant tenants.Tenant
	err    error // a not-found, kept like an answer
	owner  tenant.ID
	owned  bool
	at     time.Time
	change uint64
}

type stateCache struct {
	cfg     StateCache
	clock   clock.Clock
	tenants TenantSource
	domains DomainOwner

	mu sync.Mutex
	m  map[string]cachedRead
}

func newStateCache(cfg StateCache, clk clock.Clock, ts TenantSource, do DomainOwner) *stateCache {
	if cfg.Changes == nil {
		cfg.Changes = func() uint64 { return 0 }
	}
	return &stateCache{cfg: cfg, clock: clk, tenants: ts, domains: do, m: map[string]cachedRead{}}
}

// lookup returns key's read if it is fresh, and the change count to
// store a new read with (taken before reading).
func (c *stateCache) lookup(key string) (cachedRead, uint64, bool) {
	change := c.cfg.Changes()
	if c.cfg.TTL <= 0 {
		return cachedRead{}, change, false
	}
	c.mu.Lock()
	r, ok := c.m[key]
	c.mu.Unlock()
	age := c.clock.Now().Sub(r.at)
	return r, change, ok && r.change == change && age >= 0 && age < c.cfg.TTL
}

func (c *stateCache) store(key string, r cachedRead, change uint64) {
	if c.cfg.TTL <= 0 {
		return
	}
	r.at, r.change = c.clock.Now(), change
	c.mu.Lock()
	if len(c.m) >= maxCached {
		clear(c.m)
	}
	c.m[key] = r
	c.mu.Unlock()
}

// Get implements TenantSource.
func (c *stateCache) Get(ctx context.Context, id tenant.ID) (tenants.Tenant, error) {
	key := "t\x00" + string(id)
	r, change, ok := c.lookup(key)
	if ok {
		return r.tenant, r.err
	}
	if cacheOnly(ctx) {
		return tenants.Tenant{}, errOverBudget
	}
	t, err := c.tenants.Get(ctx, id)
	if err == nil || errs.Is(err, "tenant_not_found") {
		c.store(key, cachedRead{tenant: t, err: err}, change)
	}
	return t, err
}

// DomainOwner implements DomainOwner.
func (c *stateCache) DomainOwner(ctx context.Context, host string) (tenant.ID, bool, error) {
	key := "d\x00" + host
	r, change, ok := c.lookup(key)
	if ok {
		return r.owner, r.owned, nil
	}
	if cacheOnly(ctx) {
		return "", false, errOverBudget
	}
	id, owned, err := c.domains.DomainOwner(ctx, host)
	if err == nil {
		c.store(key, cachedRead{owner: id, owned: owned}, change)
	}
	return id, owned, err
}

// cacheOnlyKey marks the context of a request from an address past its
// bound of misses (Gateway.misses): what is cached answers it, and what
// would need a database read is refused with errOverBudget.
type cacheOnlyKey struct{}

func cacheOnly(ctx context.Context) bool { return ctx.Value(cacheOnlyKey{}) != nil }

// errOverBudget refuses a read for an address past its bound of misses.
var errOverBudget = errors.New("gateway: too many requests for unknown hosts from this address")
