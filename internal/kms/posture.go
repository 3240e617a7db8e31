package kms

import (
	"context"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/posture"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Posture thresholds.
const (
	// rotationGrace is how late an automatic rotation may be before it is
	// a finding (the rotation worker runs far more often).
	rotationGrace = 24 * time.Hour
	// staleMaterial is how old a key's material may grow without
	// automatic rotation.
	staleMaterial = 365 * 24 * time.Hour
	// expiringSoon and expiringNow are the warnings before imported
	// material's valid_to.
	expiringSoon = 30 * 24 * time.Hour
	expiringNow  = 7 * 24 * time.Hour
)

// PostureChecks are the keys' posture checks.
func (s *Service) PostureChecks() []posture.Check {
	return []posture.Check{{
		Code: "key_rotation_overdue", Severity: api.SeverityMedium,
		Title: "A key is past its rotation period",
		Why: "The longer one key version encrypts, the more data one leaked or broken version exposes, and a rotation " +
			"that is late by more than a day means the scheduled rotation is stuck.",
		Fix: "Rotate the key now (bulkhead key rotate KEY --tenant T); a key made with a rotation period " +
			"(bulkhead key create --rotation-period 8760h) rotates itself.",
		Tenant: s.rotationOverdue,
	}, {
		Code: "imported_key_material_expiring", Severity: api.SeverityMedium,
		Title:  "A key's imported material expires soon",
		Why:    "When imported material reaches its valid_to, the key can no longer decrypt: the tenant's data under it becomes unreadable.",
		Fix:    "Import the material again with a later valid_to, or re-encrypt the data under a key whose material Bulkhead makes.",
		Tenant: s.importedExpiring,
	}}
}

// rotationOverdue finds enabled keys whose automatic rotation is late,
// and keys without one whose material is older than staleMaterial.
func (s *Service) rotationOverdue(ctx context.Context, tid tenant.ID) ([]posture.Hit, error) {
	now := s.now()
	var hits []posture.Hit
	err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT k.id, k.rotation_period_s, k.next_rotation_at, v.created_at FROM kms_keys k
			JOIN kms_key_versions v ON v.tenant_id = k.tenant_id AND v.key_id = k.id AND v.version = k.primary_version
			WHERE k.tenant_id = ? AND k.state = ? AND k.origin = ? ORDER BY k.id`, tx.TenantID(), StateEnabled, OriginBulkhead)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var period, next, created int64
			if err := rows.Scan(&id, &period, &next, &created); err != nil {
				return err
			}
			switch {
			case period > 0 && now.Sub(time.UnixMicro(next)) > rotationGrace:
				hits = append(hits, posture.Hit{Object: "key:" + id,
					Detail: fmt.Sprintf("its automatic rotation was due %s", time.UnixMicro(next).UTC().Format(time.RFC3339))})
			case period == 0 && now.Sub(time.UnixMicro(created)) > staleMaterial:
				hits = append(hits, posture.Hit{Object: "key:" + id, Severity: api.SeverityLow,
					Detail: fmt.Sprintf("no automatic rotation, and its material dates from %s", time.UnixMicro(created).UTC().Format(time.RFC3339))})
			}
		}
		return rows.Err()
	})
	return hits, err
}

// importedExpiring finds enabled keys whose primary imported material
// expires within expiringSoon (high within expiringNow, or expired).
func (s *Service) importedExpiring(ctx context.Context, tid tenant.ID) ([]posture.Hit, error) {
	now := s.now()
	var hits []posture.Hit
	err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT k.id, v.valid_to FROM kms_keys k
			JOIN kms_key_versions v ON v.tenant_id = k.tenant_id AND v.key_id = k.id AND v.version = k.primary_version
			WHERE k.tenant_id = ? AND k.state = ? AND v.valid_to > 0 AND v.valid_to < ? ORDER BY k.id`,
			tx.TenantID(), StateEnabled, now.Add(expiringSoon).UnixMicro())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var validTo int64
			if err := rows.Scan(&id, &validTo); err != nil {
				return err
			}
			h := posture.Hit{Object: "key:" + id, Detail: "its material is valid to " + time.UnixMicro(validTo).UTC().Format(time.RFC3339)}
			if time.UnixMicro(validTo).Sub(now) < expiringNow {
				h.Severity = api.SeverityHigh
			}
			hits = append(hits, h)
		}
		return rows.Err()
	})
	return hits, err
}
