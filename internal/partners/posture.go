package partners

import (
	"context"
	"fmt"

	"github.com/bulkhead-dev/bulkhead/internal/posture"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// PostureChecks are the trusts' posture checks.
func (s *Service) PostureChecks() []posture.Check {
	return []posture.Check{{
		Code: "trust_without_network_limit", Severity: api.SeverityLow,
		Title: "A partner's trust can be used from anywhere",
		Why: "A partner's credentials and the tenant's external id are another company's secrets: with no source " +
			"network on the trust, whoever obtains them acts in the tenant from any address.",
		Fix:    "Ask the partner for the networks its service calls from and set them on the trust (bulkhead trust update ID --tenant T --network CIDR).",
		Tenant: s.trustsWithoutNetworks,
	}, {
		Code: "trust_of_deleted_partner", Severity: api.SeverityLow,
		Title: "A trust names a partner that no longer exists",
		Why:   "A trust of a deleted partner grants nothing, but it stays in the tenant's list as if it did.",
		Fix:   "Delete the trust (bulkhead trust delete ID --tenant T).",
		Tenant: func(ctx context.Context, tid tenant.ID) ([]posture.Hit, error) {
			return s.trustHits(ctx, tid, `p.id IS NULL`, "its partner %s was deleted")
		},
	}}
}

func (s *Service) trustsWithoutNetworks(ctx context.Context, tid tenant.ID) ([]posture.Hit, error) {
	return s.trustHits(ctx, tid, `t.source_networks = '[]' AND t.status = 'active' AND p.id IS NOT NULL`, "partner %s, no source networks")
}

// trustHits finds tenant tid's trusts matching where (over trustFrom).
func (s *Service) trustHits(ctx context.Context, tid tenant.ID, where, detail string) ([]posture.Hit, error) {
	var hits []posture.Hit
	err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT t.id, t.partner_id FROM partner_trusts t LEFT JOIN partners p ON p.id = t.partner_id
			WHERE t.tenant_id = ? AND `+where+` ORDER BY t.id`, tx.TenantID())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, partner string
			if err := rows.Scan(&id, &partner); err != nil {
				return err
			}
			hits = append(hits, posture.Hit{Object: "trust:" + id, Detail: fmt.Sprintf(detail, partner)})
		}
		return rows.Err()
	})
	return hits, err
}
