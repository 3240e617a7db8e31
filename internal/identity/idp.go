package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/netguard"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Federation (the bridge model): a tenant may connect its own OpenID
// provider. Its users then sign in there; Bulkhead verifies the upstream ID
// token and issues its own tokens, whose tenant, tier and groups come from
// Bulkhead's records only, never from the upstream's claims.

// IdP is a tenant's upstream OpenID provider. The client secret is stored
// wrapped by the root key and never returned.
type IdP = api.IdP

// IdPSettings are a tenant's choices about what its provider's word is
// worth. Both are off by default: each trades some of the account's own
// protection for convenience, so only the tenant can decide it.
type IdPSettings = api.IdPSettings

// IdPRequest configures a tenant's upstream provider. It replaces the
// whole configuration: settings left out are off.
type IdPRequest = api.IdPRequest

func idpBinding(tid string) []byte { return []byte("bulkhead-idp-secret\x00tenant=" + tid) }

// SetIdP connects (or replaces) tenant tid's upstream provider.
func (d *Directory) SetIdP(ctx context.Context, tid tenant.ID, req IdPRequest, actor tenant.Actor) (IdP, error) {
	if err := d.checkIssuer(req.Issuer); err != nil {
		return IdP{}, err
	}
	if req.ClientID == "" || len(req.ClientID) > 200 || strings.ContainsFunc(req.ClientID, isControl) {
		return IdP{}, errs.Field("client_id", "invalid_client_id", "client_id must be 1 to 200 characters")
	}
	if req.ClientSecret == "" || len(req.ClientSecret) > 500 {
		return IdP{}, errs.Field("client_secret", "invalid_client_secret", "client_secret must be 1 to 500 characters")
	}
	if d.wrapper == nil {
		return IdP{}, errors.New("identity: no key to seal client secrets")
	}
	out := IdP{Issuer: strings.TrimRight(req.Issuer, "/"), ClientID: req.ClientID, IdPSettings: req.IdPSettings}
	err := d.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return err
		}
		wrapped, err := d.wrapper.Wrap([]byte(req.ClientSecret), idpBinding(tx.TenantID()))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO tenant_idps (tenant_id, issuer, client_id, secret_wrapped, created_at,
			link_existing_by_email, upstream_mfa_sufficient) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET issuer = excluded.issuer, client_id = excluded.client_id,
			secret_wrapped = excluded.secret_wrapped, created_at = excluded.created_at,
			link_existing_by_email = excluded.link_existing_by_email, upstream_mfa_sufficient = excluded.upstream_mfa_sufficient`,
			tx.TenantID(), out.Issuer, out.ClientID, wrapped, d.clock.Now().UnixMicro(),
			out.LinkExistingByEmail, out.UpstreamMFASufficient); err != nil {
			return fmt.Errorf("identity: store idp: %w", err)
		}
		ev := d.event(tx, actor, "identity.idp_set", out.Issuer)
		ev.Detail = map[string]string{"client_id": errs.Clip(out.ClientID, 64),
			"link_existing_by_email":  strconv.FormatBool(out.LinkExistingByEmail),
			"upstream_mfa_sufficient": strconv.FormatBool(out.UpstreamMFASufficient)}
		return d.audit.AppendTx(ctx, tx, ev)
	})
	return out, err
}

// DeleteIdP disconnects tenant tid's upstream provider.
func (d *Directory) DeleteIdP(ctx context.Context, tid tenant.ID, actor tenant.Actor) error {
	return d.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM tenant_idps WHERE tenant_id = ?`, tx.TenantID())
		if err != nil {
			return fmt.Errorf("identity: delete idp: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errs.E(errs.NotFound, "idp_not_found", "the tenant has no identity provider")
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, actor, "identity.idp_deleted", tx.TenantID()))
	})
}

// TenantIdP returns tenant tid's upstream provider and its client secret,
// or ok false when it has none.
func (d *Directory) TenantIdP(ctx context.Context, tid tenant.ID) (idp IdP, secret string, ok bool, err error) {
	var wrapped []byte
	err = d.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT issuer, client_id, secret_wrapped, link_existing_by_email, upstream_mfa_sufficient
			FROM tenant_idps WHERE tenant_id = ?`, tx.TenantID()).
			Scan(&idp.Issuer, &idp.ClientID, &wrapped, &idp.LinkExistingByEmail, &idp.UpstreamMFASufficient)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return IdP{}, "", false, nil
	}
	if err != nil {
		return IdP{}, "", false, fmt.Errorf("identity: read idp: %w", err)
	}
	plain, err := d.wrapper.Unwrap(wrapped, idpBinding(string(tid)))
	if err != nil {
		return IdP{}, "", false, err
	}
	defer clear(plain)
	return idp, string(plain), true, nil
}

// checkIssuer validates the shape of an upstream issuer URL: https with a
// host, no userinfo, query or fragment; an IP literal (or localhost) that
// is not public only when the operator allows private upstreams, and then
// http too, on loopback only. The provider applies the same rule again on
// every connection it makes (names resolving to private addresses
// included), so this is the early, explicit answer, not the only guard.
func (d *Directory) checkIssuer(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || len(raw) > 500 || !u.IsAbs() || u.Opaque != "" || u.Hostname() == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#") || strings.ContainsFunc(raw, isControl) {
		return errs.Field("issuer", "invalid_issuer", "issuer must be an https URL with a host and no credentials, query or fragment")
	}
	host := u.Hostname()
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && d.allowPrivateIssuers && netguard.Loopback(host):
	default:
		return errs.Field("issuer", "invalid_issuer", "issuer must be an https URL (http only on loopback, when the operator allows private upstreams)")
	}
	if !d.allowPrivateIssuers && netguard.LiteralNotPublic(host) {
		return errs.Field("issuer", "issuer_not_allowed",
			"issuer names a loopback, private or link-local address; the operator allows those with --allow-private-upstreams")
	}
	return nil
}
