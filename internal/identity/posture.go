package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

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
	}, {
		Code:     "client_scope_unused",
		Severity: api.SeverityLow,
		Title:    "An OAuth client is registered with scopes it has not used in 90 days",
		Why: "A client's registered scopes are what its secret can obtain: a scope the application no longer asks for " +
			"only widens what a leaked secret (or a stolen session of its users) is worth.",
		Fix: "Register the client again with the scopes it uses (bulkhead client create NAME --tenant T --grant G --scope S…), " +
			"move the application to the new client, and delete the old one (bulkhead client delete CLIENT_ID --tenant T); " +
			"a client's scopes cannot be changed in place.",
		Tenant: d.unusedClientScopes,
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

// ScopeUnusedAfter is how long a registered scope may go ungranted before
// client_scope_unused finds it.
const ScopeUnusedAfter = 90 * 24 * time.Hour

// scopeUseMigration is the identity migration that began to record the
// use of scopes (oauth_client_scope_use).
const scopeUseMigration = 5

// unusedClientScopes finds the tenant's clients at least ScopeUnusedAfter
// old with registered scopes that no token granted within it. Use is
// known from when scopeUseMigration was applied: until it is
// ScopeUnusedAfter old, nothing is found.
func (d *Directory) unusedClientScopes(ctx context.Context, tid tenant.ID) ([]posture.Hit, error) {
	cutoff := d.clock.Now().Add(-ScopeUnusedAfter)
	var hits []posture.Hit
	err := d.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		since, err := tx.AppliedAt(ctx, "identity", scopeUseMigration)
		if err != nil || since.After(cutoff) {
			return err
		}
		used := map[string][]string{}
		rows, err := tx.Query(ctx, `SELECT client_id, scope FROM oauth_client_scope_use WHERE tenant_id = ? AND used_at >= ?`,
			tx.TenantID(), cutoff.UnixMicro())
		if err != nil {
			return err
		}
		for rows.Next() {
			var id, scope string
			if err := rows.Scan(&id, &scope); err != nil {
				rows.Close()
				return err
			}
			used[id] = append(used[id], scope)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT id, name, scopes FROM oauth_clients WHERE tenant_id = ? AND created_at < ? ORDER BY id`,
			tx.TenantID(), cutoff.UnixMicro())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, name, raw string
			if err := rows.Scan(&id, &name, &raw); err != nil {
				return err
			}
			var scopes []string
			if err := json.Unmarshal([]byte(raw), &scopes); err != nil {
				return fmt.Errorf("identity: stored client %s is unreadable: %w", id, err)
			}
			unused := slices.DeleteFunc(scopes, func(s string) bool { return slices.Contains(used[id], s) })
			if len(unused) > 0 {
				hits = append(hits, posture.Hit{Object: "client:" + id, Detail: fmt.Sprintf("%s: no token granted %s in %d days",
					name, strings.Join(unused, ", "), int(ScopeUnusedAfter.Hours()/24))})
			}
		}
		return rows.Err()
	})
	return hits, err
}
