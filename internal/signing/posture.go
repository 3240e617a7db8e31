package signing

import (
	"context"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/posture"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// rotationGrace is how late a rotation may be before it is a finding.
const rotationGrace = 24 * time.Hour

// PostureChecks are the signing keys' posture checks. silo reports whether
// a tenant is in silo isolation now: only those tenants' issuers (and the
// platform's) sign, so only their keys rotate; a tenant that left silo
// keeps its old issuer's keys, unused, until it is offboarded.
func (s *Store) PostureChecks(silo func(ctx context.Context, tid tenant.ID) (bool, error)) []posture.Check {
	return []posture.Check{{
		Code: "signing_key_overdue", Severity: api.SeverityMedium,
		Title: "An issuer's signing key is past its rotation",
		Why: fmt.Sprintf("An issuer's active key signs every token it issues; keys rotate every %s, on the issuer's next use "+
			"(a token, a fetch of its JWKS), so that one leaked or broken key is worth tokens for a bounded time. An active key "+
			"older than that by more than a day means either that the issuer has not been used since (its next token rotates "+
			"the key first) or that every rotation fails, and with it every token of the issuer.", period(s.rotateAfter)),
		Fix: "Use the issuer: fetch its JWKS (GET {public-url}/t/{tenant}/keys; the platform issuer's: GET {public-url}/keys), " +
			"which rotates a key past due. If the key is still active afterwards, the rotation fails: the node's log says why " +
			"(signing: …; a root key that no longer unwraps the issuer's key, a database that refuses the write).",
		Platform: func(ctx context.Context) ([]posture.Hit, error) { return s.overdueKeys(ctx, silo) },
	}}
}

// overdueKeys finds the active keys of the platform issuer and of silo
// tenants' issuers older than the rotation period and rotationGrace.
func (s *Store) overdueKeys(ctx context.Context, silo func(ctx context.Context, tid tenant.ID) (bool, error)) ([]posture.Hit, error) {
	type key struct {
		kid     string
		tid     tenant.ID
		created int64
	}
	var keys []key
	cutoff := s.clock.Now().Add(-s.rotateAfter - rotationGrace)
	err := s.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT kid, tenant_id, created_at FROM signing_keys WHERE retired_at = 0 AND created_at < ?
			ORDER BY tenant_id, kid`, cutoff.UnixMicro())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k key
			if err := rows.Scan(&k.kid, &k.tid, &k.created); err != nil {
				return err
			}
			keys = append(keys, k)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("signing: overdue keys: %w", err)
	}
	var hits []posture.Hit
	for _, k := range keys {
		issuer := "the platform issuer"
		if k.tid != "" {
			ok, err := silo(ctx, k.tid)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			issuer = "the silo issuer of tenant " + string(k.tid)
		}
		hits = append(hits, posture.Hit{TenantID: k.tid, Object: "signing_key:" + k.kid,
			Detail: fmt.Sprintf("the active key of %s dates from %s; keys rotate after %s",
				issuer, time.UnixMicro(k.created).UTC().Format(time.RFC3339), period(s.rotateAfter))})
	}
	return hits, nil
}

// period writes a rotation period in days when it is whole days.
func period(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}
