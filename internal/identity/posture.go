package identity

import (
	"context"

	"github.com/bulkhead-dev/bulkhead/internal/posture"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// PostureChecks are the directory's posture checks.
func (d *Directory) PostureChecks() []posture.Check {
	return []posture.Check{{
		Code:     "admin_without_second_factor",
		Severity: api.SeverityHigh,
		Title:    "A tenant admin signs in with a password alone",
		Why: "An admin of the tenant manages its users, clients, keys and trusts; a phished or reused password is then " +
			"enough to take the tenant over.",
		Fix: "Have the user enrol TOTP (POST /v1/me/totp, or an admin: POST /v1/tenants/{tenant}/users/{user}/totp), " +
			"or sign the tenant's users in through its own identity provider.",
		Tenant: d.adminsWithoutSecondFactor,
	}}
}

// adminsWithoutSecondFactor finds the active members of the admins group
// with no confirmed TOTP who sign in here (not only through the tenant's
// own provider, whose second factor Bulkhead cannot see).
func (d *Directory) adminsWithoutSecondFactor(ctx context.Context, tid tenant.ID) ([]posture.Hit, error) {
	var hits []posture.Hit
	err := d.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT u.id, u.email FROM users u
			JOIN group_members m ON m.user_id = u.id AND m.tenant_id = u.tenant_id
			JOIN user_groups g ON g.id = m.group_id AND g.tenant_id = u.tenant_id
			WHERE u.tenant_id = ? AND g.name = ? AND u.status = ?
			AND NOT EXISTS (SELECT 1 FROM user_totp t WHERE t.tenant_id = u.tenant_id AND t.user_id = u.id AND t.confirmed)
			AND NOT EXISTS (SELECT 1 FROM federated_identities f WHERE f.tenant_id = u.tenant_id AND f.user_id = u.id)
			ORDER BY u.id`, tx.TenantID(), AdminsGroup, UserActive)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, email string
			if err := rows.Scan(&id, &email); err != nil {
				return err
			}
			hits = append(hits, posture.Hit{Object: "user:" + id, Detail: email + " is in group admins without a confirmed TOTP"})
		}
		return rows.Err()
	})
	return hits, err
}
