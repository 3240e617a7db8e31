package usage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// planCache holds the tenants' overrides (nil: the tenant has none) while
// the invalidation channel listens; see internal/inval.
type planCache struct {
	mu      sync.Mutex
	enabled bool
	entries map[tenant.ID]*Plan
}

// maxCachedPlans bounds the cache; past it, it starts again from empty.
const maxCachedPlans = 100_000

func (c *planCache) hooks() inval.Hooks {
	return inval.Hooks{
		Evict: func(_ context.Context, key string) {
			c.mu.Lock()
			defer c.mu.Unlock()
			delete(c.entries, tenant.ID(key))
		},
		Purge: func(context.Context) { c.reset(c.isEnabled()) },
		Enable: func(context.Context) {
			c.reset(true)
		},
		Disable: func(context.Context) { c.reset(false) },
	}
}

func (c *planCache) isEnabled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enabled
}

func (c *planCache) reset(enabled bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enabled = enabled
	clear(c.entries)
}

func (c *planCache) get(tid tenant.ID) (*Plan, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.entries[tid]
	return p, ok && c.enabled
}

func (c *planCache) put(tid tenant.ID, p *Plan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enabled {
		return
	}
	if len(c.entries) >= maxCachedPlans {
		clear(c.entries)
	}
	c.entries[tid] = p
}

// override returns tenant tid's own plan, or nil if it has none.
func (s *Service) override(ctx context.Context, tid tenant.ID) (*Plan, error) {
	if p, ok := s.plans.get(tid); ok {
		return p, nil
	}
	var found *Plan
	err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		var p Plan
		var period string
		err := tx.QueryRow(ctx, `SELECT rps, burst, quota, quota_period FROM gateway_usage_plans WHERE tenant_id = ?`,
			tx.TenantID()).Scan(&p.RPS, &p.Burst, &p.Quota, &period)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		p.QuotaPeriod = Period(period)
		found = &p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("usage: read plan of %s: %w", tid, err)
	}
	s.plans.put(tid, found)
	return found, nil
}

// Override returns tenant tid's own plan: not_found if it has none.
func (s *Service) Override(ctx context.Context, tid tenant.ID) (Plan, error) {
	p, err := s.override(ctx, tid)
	if err != nil {
		return Plan{}, err
	}
	if p == nil {
		return Plan{}, errs.E(errs.NotFound, "usage_plan_not_found", "the tenant has no usage plan of its own; its tier's applies")
	}
	return *p, nil
}

// SetOverride gives tenant tid a plan of its own, replacing its tier's,
// on every node without a restart.
func (s *Service) SetOverride(ctx context.Context, tid tenant.ID, p Plan, actor tenant.Actor) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return s.inval.Write(ctx, tid, actor, func(tx *storage.Tx) (inval.Change, error) {
		now := s.clock.Now().UnixMicro()
		_, err := tx.Exec(ctx, `INSERT INTO gateway_usage_plans (tenant_id, rps, burst, quota, quota_period, updated_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET rps = excluded.rps, burst = excluded.burst,
			quota = excluded.quota, quota_period = excluded.quota_period, updated_at = excluded.updated_at`,
			tx.TenantID(), p.RPS, p.Burst, p.Quota, string(p.QuotaPeriod), now)
		if err != nil {
			return inval.Change{}, fmt.Errorf("usage: set plan: %w", err)
		}
		return inval.Change{Action: "usage_plan.set", Target: tx.TenantID(), Detail: map[string]string{
			"rps": strconv.FormatFloat(p.RPS, 'g', -1, 64), "burst": strconv.Itoa(p.Burst),
			"quota": strconv.FormatInt(p.Quota, 10), "quota_period": string(p.QuotaPeriod)}}, nil
	})
}

// DeleteOverride returns tenant tid to its tier's plan: not_found if it
// had no plan of its own.
func (s *Service) DeleteOverride(ctx context.Context, tid tenant.ID, actor tenant.Actor) error {
	return s.inval.Write(ctx, tid, actor, func(tx *storage.Tx) (inval.Change, error) {
		res, err := tx.Exec(ctx, `DELETE FROM gateway_usage_plans WHERE tenant_id = ?`, tx.TenantID())
		if err != nil {
			return inval.Change{}, fmt.Errorf("usage: delete plan: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return inval.Change{}, errs.E(errs.NotFound, "usage_plan_not_found", "the tenant has no usage plan of its own")
		}
		return inval.Change{Action: "usage_plan.deleted", Target: tx.TenantID()}, nil
	})
}
