package connect

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/posture"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// GrantIdleAfter is how long an active grant may go unused through the
// proxy before grant_idle finds it.
const GrantIdleAfter = 90 * 24 * time.Hour

// grantUseMigration is the connect migration that began to record grants'
// use (connect_grants.last_used_at).
const grantUseMigration = 2

// PostureChecks are the connections' posture checks.
func (s *Service) PostureChecks() []posture.Check {
	return []posture.Check{{
		Code: "grant_idle", Severity: api.SeverityMedium,
		Title: "A connection's grant has not been used in 90 days",
		Why: "An active grant's Part A, with the Part B Bulkhead keeps, calls the third-party API as the tenant: a grant " +
			"whose integration is gone is a working credential nobody watches, left wherever its Part A was kept.",
		Fix: "Delete the grant if its integration is gone (bulkhead connection grant delete CONNECTION GRANT --tenant T), " +
			"or suspend it until it is needed (bulkhead connection grant suspend CONNECTION GRANT --tenant T).",
		Tenant: s.idleGrants,
	}, {
		Code: "connection_without_alerts", Severity: api.SeverityLow,
		Title: "A connection's anomaly alerts reach no one",
		Why: "Every grant's traffic is watched and an anomaly (a burst, a new source network) is an alert, but an alert " +
			"only acts when it is sent to the connection's webhook or suspends the grant (auto_suspend): on a connection " +
			"with no webhook, an alert on a grant that does not suspend itself is only stored, and a stolen Part A is used " +
			"unhindered until someone reads the alert list.",
		Fix: "Set an alert webhook (bulkhead connection update CONNECTION --tenant T --webhook-url URL), or give the " +
			"integrations grants that an alert suspends (bulkhead connection grant create CONNECTION --tenant T " +
			"--part-a-file PATH --auto-suspend) and delete the old ones.",
		Tenant: s.connectionsWithoutAlerts,
	}}
}

// idleGrants finds the tenant's active grants that have not been used
// through the proxy within GrantIdleAfter, nor made within it. Use is
// known from when grantUseMigration was applied: a grant is not idle
// before GrantIdleAfter has passed since.
func (s *Service) idleGrants(ctx context.Context, tid tenant.ID) ([]posture.Hit, error) {
	cutoff := s.now().Add(-GrantIdleAfter).UnixMicro()
	var hits []posture.Hit
	err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		since, err := tx.AppliedAt(ctx, "connect", grantUseMigration)
		if err != nil || since.UnixMicro() > cutoff {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT g.id, g.name, g.connection_id, c.name, g.created_at, g.last_used_at FROM connect_grants g
			JOIN connect_connections c ON c.tenant_id = g.tenant_id AND c.id = g.connection_id
			WHERE g.tenant_id = ? AND g.status = ? AND g.created_at < ? AND g.last_used_at < ? ORDER BY g.id`,
			tx.TenantID(), GrantActive, cutoff, cutoff)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, name, connID, connName string
			var created, used int64
			if err := rows.Scan(&id, &name, &connID, &connName, &created, &used); err != nil {
				return err
			}
			var d strings.Builder
			if name != "" {
				fmt.Fprintf(&d, "%s, ", name)
			}
			fmt.Fprintf(&d, "of connection %s (%s): ", connID, connName)
			switch {
			case used > 0:
				fmt.Fprintf(&d, "last used through the proxy %s", day(used))
			case created >= since.UnixMicro():
				fmt.Fprintf(&d, "never used through the proxy since it was made %s", day(created))
			default:
				fmt.Fprintf(&d, "not used through the proxy since %s, when Bulkhead began to record grants' use", day(since.UnixMicro()))
			}
			hits = append(hits, posture.Hit{Object: "grant:" + id, Detail: d.String()})
		}
		return rows.Err()
	})
	return hits, err
}

func day(us int64) string { return time.UnixMicro(us).UTC().Format(time.DateOnly) }

// connectionsWithoutAlerts finds the tenant's connections with no alert
// webhook and an active grant that an alert does not suspend. A
// connection with no such grant is left out: each of its alerts acts.
func (s *Service) connectionsWithoutAlerts(ctx context.Context, tid tenant.ID) ([]posture.Hit, error) {
	var hits []posture.Hit
	err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT c.id, c.name, g.id FROM connect_connections c
			JOIN connect_grants g ON g.tenant_id = c.tenant_id AND g.connection_id = c.id
			WHERE c.tenant_id = ? AND c.webhook_url = '' AND g.status = ? AND g.auto_suspend = 0 ORDER BY c.id, g.id`,
			tx.TenantID(), GrantActive)
		if err != nil {
			return err
		}
		defer rows.Close()
		var conn, connName string
		var grants []string
		flush := func() {
			if conn != "" {
				hits = append(hits, posture.Hit{Object: "connection:" + conn,
					Detail: connName + ": no alert webhook, and an alert does not suspend grant " + strings.Join(grants, ", ")})
			}
		}
		for rows.Next() {
			var id, name, grant string
			if err := rows.Scan(&id, &name, &grant); err != nil {
				return err
			}
			if id != conn {
				flush()
				conn, connName, grants = id, name, nil
			}
			grants = append(grants, grant)
		}
		flush()
		return rows.Err()
	})
	return hits, err
}
