package usage

import (
	"context"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// OffboardingStep deletes what the gateway kept of a tenant that leaves:
// its plan override, its quota counters and its usage rows. The rows are
// the tenant's data (what it called, when, how much), which offboarding
// must not leave behind.
//
// After the commit this node also forgets the tenant's unflushed counts,
// so that the next flush does not write them back; every node evicts the
// tenant's cached override. A request another node admits between the
// commit and the tenant's status reaching it could still write a row; the
// gateway stops serving the tenant once it is offboarding, before this
// step runs, so that is at most one flush of an in-flight request.
func (s *Service) OffboardingStep() tenants.Step {
	return tenants.Step{Name: "gateway-usage", Run: func(ctx context.Context, tx *storage.Tx, _ tenants.Tenant) error {
		for _, t := range []string{"gateway_usage_plans", "gateway_quota_counters", "gateway_usage"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+t+` WHERE tenant_id = ?`, tx.TenantID()); err != nil {
				return fmt.Errorf("usage: offboarding: %w", err)
			}
		}
		tid := tenant.ID(tx.TenantID())
		tx.AfterCommit(func() { s.forget(tid) })
		return s.inval.Changed(ctx, tx, tx.TenantID())
	}}
}

// forget drops tenant tid's unflushed quota counts and usage rows.
func (s *Service) forget(tid tenant.ID) {
	s.quotaMu.Lock()
	for k := range s.counters {
		if k.tenant == tid {
			delete(s.counters, k)
		}
	}
	s.quotaMu.Unlock()
	s.recMu.Lock()
	for k := range s.records {
		if k.tenant == tid {
			delete(s.records, k)
		}
	}
	s.recMu.Unlock()
}
