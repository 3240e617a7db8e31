package partners

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/page"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Trust bounds.
const (
	DefaultSession = 15 * time.Minute
	MinSession     = time.Minute
	// MaxSession bounds a partner token's life: it is a bearer token
	// held by another company, so it stays short; revocation is
	// immediate either way.
	MaxSession     = time.Hour
	MaxScopes      = 50
	MaxNetworks    = 50
	MaxTags        = 20 // tags the tenant sets plus keys the partner may set, besides partner and trust
	MaxTagValue    = 256
	MaxPolicyBytes = 64 << 10
	maxDescription = 500
)

// Reserved session tags: every session has them, set by Bulkhead.
const (
	TagPartner = "partner"
	TagTrust   = "trust"
)

var (
	scopePattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9:._/-]{0,99}$`)
	tagKeyPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
)

// reservedScopes are never a partner's: they ask for a user's identity or
// a refresh token, and a partner session has neither.
var reservedScopes = []string{"openid", "profile", "email", "address", "phone", "offline_access"}

func trustNotFound(id string) error {
	return errs.E(errs.NotFound, "trust_not_found", "trust %q not found", errs.Clip(id, 64))
}

// trustFields are a trust's settings, validated.
type trustFields struct {
	description string
	scopes      []string
	policy      string
	session     time.Duration
	networks    []string
	tags        map[string]string
	partnerTags []string
}

func checkScopes(scopes []string) ([]string, error) {
	if len(scopes) == 0 || len(scopes) > MaxScopes {
		return nil, errs.Field("scopes", "invalid_scopes", "name 1 to %d scopes", MaxScopes)
	}
	out := []string{}
	for i, sc := range scopes {
		if !scopePattern.MatchString(sc) || slices.Contains(reservedScopes, sc) {
			return nil, errs.Field(fmt.Sprintf("scopes[%d]", i), "invalid_scopes",
				"a scope is 1 to 100 of a-z 0-9 : . _ / - (not an OpenID Connect scope: a partner session has no user)")
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

// CheckNetworks parses CIDR networks (a bare address is its own /32 or /128).
func CheckNetworks(field string, nets []string) ([]netip.Prefix, error) {
	if len(nets) > MaxNetworks {
		return nil, errs.Field(field, "invalid_networks", "at most %d networks", MaxNetworks)
	}
	out := make([]netip.Prefix, 0, len(nets))
	for i, n := range nets {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			a, aerr := netip.ParseAddr(n)
			if aerr != nil || a.Zone() != "" {
				return nil, errs.Field(fmt.Sprintf("%s[%d]", field, i), "invalid_networks", "a network is a CIDR prefix such as 203.0.113.0/24")
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func checkTagValue(field, v string) error {
	if len(v) > MaxTagValue || !utf8.ValidString(v) || strings.ContainsFunc(v, isControl) {
		return errs.Field(field, "invalid_tags", "a tag value is at most %d bytes of text", MaxTagValue)
	}
	return nil
}

func checkTags(tags map[string]string, partnerTags []string) (map[string]string, []string, error) {
	if len(tags)+len(partnerTags) > MaxTags {
		return nil, nil, errs.Field("tags", "invalid_tags", "at most %d tags and partner tags together", MaxTags)
	}
	outTags := map[string]string{}
	for k, v := range tags {
		if !tagKeyPattern.MatchString(k) || k == TagPartner || k == TagTrust {
			return nil, nil, errs.Field("tags", "invalid_tags", "a tag key is a-z, then up to 31 of a-z 0-9 _ (partner and trust are set by Bulkhead)")
		}
		if err := checkTagValue("tags."+k, v); err != nil {
			return nil, nil, err
		}
		outTags[k] = v
	}
	outKeys := []string{}
	for i, k := range partnerTags {
		field := fmt.Sprintf("partner_tags[%d]", i)
		if !tagKeyPattern.MatchString(k) || k == TagPartner || k == TagTrust {
			return nil, nil, errs.Field(field, "invalid_tags", "a tag key is a-z, then up to 31 of a-z 0-9 _ (partner and trust are set by Bulkhead)")
		}
		if _, ok := outTags[k]; ok {
			return nil, nil, errs.Field(field, "invalid_tags", "tag %q is set by the tenant: the partner cannot set it too", k)
		}
		if !slices.Contains(outKeys, k) {
			outKeys = append(outKeys, k)
		}
	}
	slices.Sort(outKeys)
	return outTags, outKeys, nil
}

func checkSession(seconds int) (time.Duration, error) {
	if seconds == 0 {
		return DefaultSession, nil
	}
	// Compared in seconds: a count past 292 years would wrap around
	// once multiplied into a Duration, and could land within the bounds.
	if seconds < int(MinSession/time.Second) || seconds > int(MaxSession/time.Second) {
		return 0, errs.Field("max_session_seconds", "invalid_session", "max_session_seconds is %d to %d", int(MinSession.Seconds()), int(MaxSession.Seconds()))
	}
	return time.Duration(seconds) * time.Second, nil
}

func checkDescription(d string) error {
	if len(d) > maxDescription || !utf8.ValidString(d) || strings.ContainsFunc(d, isControl) {
		return errs.Field("description", "invalid_description", "description is at most %d characters of text", maxDescription)
	}
	return nil
}

func (s *Service) checkTrustPolicy(ctx context.Context, tid tenant.ID, policy string) error {
	if policy == "" {
		return nil
	}
	if len(policy) > MaxPolicyBytes {
		return errs.Field("policy", "invalid_policy", "policy is at most %d bytes", MaxPolicyBytes)
	}
	if strings.TrimSpace(policy) == "" {
		// Blanks bound nothing, yet the trust would show (and its audit
		// events say) that it has a policy: "" is how to have none.
		return errs.Field("policy", "invalid_policy", "the policy holds no statement: send Cedar statements, or \"\" for no bound")
	}
	if s.checkPolicy == nil {
		return nil
	}
	return s.checkPolicy(ctx, tid, policy)
}

func (s *Service) validate(ctx context.Context, tid tenant.ID, in api.CreateTrust) (trustFields, error) {
	var f trustFields
	var err error
	if err = checkDescription(in.Description); err != nil {
		return f, err
	}
	f.description = in.Description
	if f.scopes, err = checkScopes(in.Scopes); err != nil {
		return f, err
	}
	if f.session, err = checkSession(in.MaxSessionSeconds); err != nil {
		return f, err
	}
	nets, err := CheckNetworks("source_networks", in.SourceNetworks)
	if err != nil {
		return f, err
	}
	f.networks = []string{}
	for _, n := range nets {
		f.networks = append(f.networks, n.String())
	}
	if f.tags, f.partnerTags, err = checkTags(in.Tags, in.PartnerTags); err != nil {
		return f, err
	}
	if err = s.checkTrustPolicy(ctx, tid, in.Policy); err != nil {
		return f, err
	}
	f.policy = in.Policy
	return f, nil
}

// newExternalID returns an external id, its hash and its hint.
func newExternalID() (id, hash, hint string) {
	id = ids.Secret(externalIDPrefix)
	return id, hashSecret(id), id[len(id)-4:]
}

// CreateTrust makes tenant tid's trust in a partner and returns it with
// its external id, once. A tenant trusts a partner at most once.
func (s *Service) CreateTrust(ctx context.Context, tid tenant.ID, in api.CreateTrust, actor tenant.Actor) (TrustCreated, error) {
	if !ids.Valid(in.Partner, PartnerPrefix) {
		return TrustCreated{}, errs.Field("partner", "partner_not_found", "partner %q not found", errs.Clip(in.Partner, 64))
	}
	p, err := s.GetPartner(ctx, in.Partner)
	if errs.Is(err, "partner_not_found") {
		return TrustCreated{}, errs.Field("partner", "partner_not_found", "partner %q not found", in.Partner)
	}
	if err != nil {
		return TrustCreated{}, err
	}
	f, err := s.validate(ctx, tid, in)
	if err != nil {
		return TrustCreated{}, err
	}
	ext, hash, hint := newExternalID()
	now := s.clock.Now().UTC().Truncate(time.Microsecond)
	t := Trust{ID: ids.New(TrustPrefix), TenantID: string(tid), Partner: p.ID, PartnerName: p.Name, Status: api.TrustActive,
		ExternalIDHint: hint, ExternalIDRotatedAt: now, CreatedAt: now, UpdatedAt: now}
	f.apply(&t)
	err = s.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return err
		}
		if err := tx.WithinQuota(ctx, "partner_trusts", MaxTrustsPerTenant, "trusts"); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM partner_trusts WHERE tenant_id = ? AND partner_id = ?`, tx.TenantID(), p.ID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return errs.E(errs.Conflict, "trust_exists", "the tenant already trusts partner %s: change that trust, or delete it first", p.ID)
		}
		sc, nets, tags, keys := encode(f)
		if _, err := tx.Exec(ctx, `INSERT INTO partner_trusts (id, tenant_id, partner_id, description, scopes, policy, max_session_seconds,
			source_networks, tags, partner_tags, status, external_id_hash, external_id_hint, external_id_rotated_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, tx.TenantID(), p.ID, f.description, sc, f.policy, int(f.session.Seconds()), nets, tags, keys, t.Status,
			hash, hint, now.UnixMicro(), now.UnixMicro(), now.UnixMicro()); err != nil {
			return fmt.Errorf("partners: insert trust: %w", err)
		}
		return s.audit.AppendTx(ctx, tx, s.event(actor, tid, "trust.created", t.ID, trustDetail(t)))
	})
	if err != nil {
		return TrustCreated{}, err
	}
	return TrustCreated{Trust: t, ExternalID: ext}, nil
}

// trustDetail is what a trust's audit events say of it (never the
// external id, nor the policy text: its hash-chain entry would then hold
// a tenant's policy forever).
func trustDetail(t Trust) map[string]string {
	return map[string]string{"partner": t.Partner, "scopes": strings.Join(t.Scopes, " "),
		"max_session_seconds": fmt.Sprint(t.MaxSessionSeconds), "source_networks": strings.Join(t.SourceNetworks, " "),
		"partner_tags": strings.Join(t.PartnerTags, " "), "policy": fmt.Sprint(t.Policy != ""), "status": t.Status}
}

func (f trustFields) apply(t *Trust) {
	t.Description, t.Scopes, t.Policy, t.MaxSessionSeconds = f.description, f.scopes, f.policy, int(f.session.Seconds())
	t.SourceNetworks, t.Tags, t.PartnerTags = f.networks, f.tags, f.partnerTags
}

func encode(f trustFields) (scopes, nets, tags, keys string) {
	a, _ := json.Marshal(f.scopes)
	b, _ := json.Marshal(f.networks)
	c, _ := json.Marshal(f.tags)
	d, _ := json.Marshal(f.partnerTags)
	return string(a), string(b), string(c), string(d)
}

const trustColumns = `t.id, t.tenant_id, t.partner_id, '', t.description, t.scopes, t.policy, t.max_session_seconds,
	t.source_networks, t.tags, t.partner_tags, t.status, t.external_id_hint, t.external_id_rotated_at, t.created_at, t.updated_at`

// trustFrom is the trusts. Their partners' names are the platform's rows,
// which a tenant's scope does not see (row security): named reads them
// in the platform's.
const trustFrom = ` FROM partner_trusts t`

// named fills in the trusts' partner names (a deleted partner's is empty).
func (s *Service) named(ctx context.Context, ts []Trust) error {
	for i := range ts {
		r, err := s.partner(ctx, ts[i].Partner)
		switch {
		case errs.Is(err, "partner_not_found"):
		case err != nil:
			return err
		default:
			ts[i].PartnerName = r.p.Name
		}
	}
	return nil
}

func scanTrust(row interface{ Scan(...any) error }, extra ...any) (Trust, error) {
	var t Trust
	var sc, nets, tags, keys string
	var rotated, created, updated int64
	if err := row.Scan(append([]any{&t.ID, &t.TenantID, &t.Partner, &t.PartnerName, &t.Description, &sc, &t.Policy, &t.MaxSessionSeconds,
		&nets, &tags, &keys, &t.Status, &t.ExternalIDHint, &rotated, &created, &updated}, extra...)...); err != nil {
		return Trust{}, err
	}
	for _, f := range []struct {
		raw string
		dst any
	}{{sc, &t.Scopes}, {nets, &t.SourceNetworks}, {tags, &t.Tags}, {keys, &t.PartnerTags}} {
		if err := json.Unmarshal([]byte(f.raw), f.dst); err != nil {
			return Trust{}, fmt.Errorf("partners: stored trust %s is unreadable: %w", t.ID, err)
		}
	}
	t.ExternalIDRotatedAt, t.CreatedAt, t.UpdatedAt = time.UnixMicro(rotated).UTC(), time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return t, nil
}

// GetTrust returns tenant tid's trust id.
func (s *Service) GetTrust(ctx context.Context, tid tenant.ID, id string) (Trust, error) {
	t, err := s.getTrust(ctx, tid, id)
	if err != nil {
		return Trust{}, err
	}
	ts := []Trust{t}
	err = s.named(ctx, ts)
	return ts[0], err
}

// getTrust is GetTrust without the partner's name.
func (s *Service) getTrust(ctx context.Context, tid tenant.ID, id string) (Trust, error) {
	if !ids.Valid(id, TrustPrefix) {
		return Trust{}, trustNotFound(id)
	}
	var t Trust
	err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		var err error
		t, err = scanTrust(tx.QueryRow(ctx, `SELECT `+trustColumns+trustFrom+` WHERE t.tenant_id = ? AND t.id = ?`, tx.TenantID(), id))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return Trust{}, trustNotFound(id)
	}
	return t, err
}

// ListTrusts returns a page of tenant tid's trusts, by id.
func (s *Service) ListTrusts(ctx context.Context, tid tenant.ID, limit int, cursor string) ([]Trust, string, error) {
	limit, after, err := page.Bounds(limit, cursor)
	if err != nil {
		return nil, "", err
	}
	var out []Trust
	err = s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+trustColumns+trustFrom+` WHERE t.tenant_id = ? AND t.id > ? ORDER BY t.id LIMIT ?`, tx.TenantID(), after, limit+1)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanTrust(rows)
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, "", err
	}
	items, next := page.Trim(out, limit, func(t Trust) string { return t.ID })
	if err := s.named(ctx, items); err != nil {
		return nil, "", err
	}
	return items, next, nil
}

// UpdateTrust changes a trust's settings. Its tokens already issued keep
// their scopes and tags until they expire (at most MaxSession), but every
// use is checked against the trust's networks and Cedar bound of now.
func (s *Service) UpdateTrust(ctx context.Context, tid tenant.ID, id string, in api.PatchTrust, actor tenant.Actor) (Trust, error) {
	cur, err := s.GetTrust(ctx, tid, id)
	if err != nil {
		return Trust{}, err
	}
	next := api.CreateTrust{Partner: cur.Partner, Description: cur.Description, Scopes: cur.Scopes, Policy: cur.Policy,
		MaxSessionSeconds: cur.MaxSessionSeconds, SourceNetworks: cur.SourceNetworks, Tags: cur.Tags, PartnerTags: cur.PartnerTags}
	if in.Description != nil {
		next.Description = *in.Description
	}
	if in.Scopes != nil {
		next.Scopes = in.Scopes
	}
	if in.Policy != nil {
		next.Policy = *in.Policy
	}
	if in.MaxSessionSeconds != nil {
		if *in.MaxSessionSeconds == 0 {
			return Trust{}, errs.Field("max_session_seconds", "invalid_session", "max_session_seconds is %d to %d", int(MinSession.Seconds()), int(MaxSession.Seconds()))
		}
		next.MaxSessionSeconds = *in.MaxSessionSeconds
	}
	if in.SourceNetworks != nil {
		next.SourceNetworks = *in.SourceNetworks
	}
	if in.Tags != nil {
		next.Tags = maps.Clone(*in.Tags)
	}
	if in.PartnerTags != nil {
		next.PartnerTags = *in.PartnerTags
	}
	f, err := s.validate(ctx, tid, next)
	if err != nil {
		return Trust{}, err
	}
	t := cur
	f.apply(&t)
	t.UpdatedAt = s.clock.Now().UTC().Truncate(time.Microsecond)
	err = s.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		sc, nets, tags, keys := encode(f)
		res, err := tx.Exec(ctx, `UPDATE partner_trusts SET description = ?, scopes = ?, policy = ?, max_session_seconds = ?, source_networks = ?,
			tags = ?, partner_tags = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
			f.description, sc, f.policy, int(f.session.Seconds()), nets, tags, keys, t.UpdatedAt.UnixMicro(), tx.TenantID(), id)
		if err != nil {
			return fmt.Errorf("partners: update trust: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return trustNotFound(id)
		}
		return s.audit.AppendTx(ctx, tx, s.event(actor, tid, "trust.updated", id, trustDetail(t)))
	})
	if err != nil {
		return Trust{}, err
	}
	return t, nil
}

// SetTrustStatus suspends (active=false) or resumes a trust. A suspended
// trust's tokens stop at once; resuming does not bring back tokens
// issued before the suspension.
func (s *Service) SetTrustStatus(ctx context.Context, tid tenant.ID, id string, active bool, actor tenant.Actor) (Trust, error) {
	status, action := api.TrustSuspended, "trust.suspended"
	if active {
		status, action = api.TrustActive, "trust.resumed"
	}
	now := s.clock.Now().UTC().Truncate(time.Microsecond)
	err := s.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		// Resuming moves the rotation time too: a session issued before
		// the suspension stays dead.
		q := `UPDATE partner_trusts SET status = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`
		args := []any{status, now.UnixMicro(), tx.TenantID(), id}
		if active {
			q = `UPDATE partner_trusts SET status = ?, updated_at = ?, external_id_rotated_at = ` + nextEpoch + ` WHERE tenant_id = ? AND id = ? AND status <> ?`
			args = []any{status, now.UnixMicro(), now.UnixMicro(), now.UnixMicro(), tx.TenantID(), id, status}
		}
		res, err := tx.Exec(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("partners: set trust status: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if active {
				if _, err := s.getTrustTx(ctx, tx, id); err != nil {
					return err
				}
				return nil // already active
			}
			return trustNotFound(id)
		}
		return s.audit.AppendTx(ctx, tx, s.event(actor, tid, action, id, nil))
	})
	if err != nil {
		return Trust{}, err
	}
	return s.GetTrust(ctx, tid, id)
}

// nextEpoch is the SQL of a trust's next external id epoch (its
// external_id_rotated_at), given now twice: now, or a microsecond after
// the current one if that is not earlier (a clock that stood still, or
// went back), so that a token of the epoch before never matches it.
const nextEpoch = `CASE WHEN external_id_rotated_at >= ? THEN external_id_rotated_at + 1 ELSE ? END`

func (s *Service) getTrustTx(ctx context.Context, tx *storage.Tx, id string) (Trust, error) {
	t, err := scanTrust(tx.QueryRow(ctx, `SELECT `+trustColumns+trustFrom+` WHERE t.tenant_id = ? AND t.id = ?`, tx.TenantID(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Trust{}, trustNotFound(id)
	}
	return t, err
}

// RotateExternalID gives a trust a new external id (returned once). The
// old one stops at once, and so do the sessions assumed with it.
func (s *Service) RotateExternalID(ctx context.Context, tid tenant.ID, id string, actor tenant.Actor) (TrustCreated, error) {
	if !ids.Valid(id, TrustPrefix) {
		return TrustCreated{}, trustNotFound(id)
	}
	ext, hash, hint := newExternalID()
	now := s.clock.Now().UTC().Truncate(time.Microsecond)
	err := s.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE partner_trusts SET external_id_hash = ?, external_id_hint = ?, external_id_rotated_at = `+nextEpoch+`, updated_at = ?
			WHERE tenant_id = ? AND id = ?`, hash, hint, now.UnixMicro(), now.UnixMicro(), now.UnixMicro(), tx.TenantID(), id)
		if err != nil {
			return fmt.Errorf("partners: rotate external id: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return trustNotFound(id)
		}
		return s.audit.AppendTx(ctx, tx, s.event(actor, tid, "trust.external_id_rotated", id, map[string]string{"external_id_hint": hint}))
	})
	if err != nil {
		return TrustCreated{}, err
	}
	t, err := s.GetTrust(ctx, tid, id)
	if err != nil {
		return TrustCreated{}, err
	}
	return TrustCreated{Trust: t, ExternalID: ext}, nil
}

// DeleteTrust removes a trust; its tokens stop at once.
func (s *Service) DeleteTrust(ctx context.Context, tid tenant.ID, id string, actor tenant.Actor) error {
	if !ids.Valid(id, TrustPrefix) {
		return trustNotFound(id)
	}
	return s.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		t, err := s.getTrustTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM partner_trusts WHERE tenant_id = ? AND id = ?`, tx.TenantID(), id); err != nil {
			return fmt.Errorf("partners: delete trust: %w", err)
		}
		return s.audit.AppendTx(ctx, tx, s.event(actor, tid, "trust.deleted", id, map[string]string{"partner": t.Partner}))
	})
}

// OffboardingStep removes an offboarded tenant's trusts.
func (s *Service) OffboardingStep() tenants.Step {
	return tenants.Step{Name: "partners", Run: func(ctx context.Context, tx *storage.Tx, _ tenants.Tenant) error {
		if _, err := tx.Exec(ctx, `DELETE FROM partner_trusts WHERE tenant_id = ?`, tx.TenantID()); err != nil {
			return fmt.Errorf("partners: remove trusts: %w", err)
		}
		return nil
	}}
}

// Session is what the API's token check learns of a partner's token.
type Session struct {
	Networks []netip.Prefix // empty: any
	Policy   string         // the trust's Cedar bound ("": none)
	Scopes   []string       // the trust's scopes now
}

// TrustActive checks a partner token's trust now: it exists in tenant
// tid, belongs to partnerID, is active, its partner is still registered,
// and the token was assumed with its current external id, since its last
// resume.
//
// A partner token's nbf is the external id's epoch it was assumed under
// (the trust's external_id_rotated_at, to the microsecond, read with the
// external id it matched): the token is good only while that epoch is the
// trust's. Comparing the token's iat with the rotation's time instead
// would let through a token assumed with the old external id while the
// rotation was being written (its iat comes after the rotation's
// timestamp, taken before the write). A token without nbf (from a node of
// an earlier version) is held to the older rule: issued after the epoch
// began.
func (s *Service) TrustActive(ctx context.Context, tid tenant.ID, trustID, partnerID string, issuedAt, notBefore time.Time) (Session, error) {
	if !ids.Valid(trustID, TrustPrefix) {
		return Session{}, trustNotFound(trustID)
	}
	// Read now, not through the read cache: the API's token check keeps
	// its verdict for a second already, and a second cache behind it
	// would make a revocation take two to reach another node.
	t, err := s.getTrust(ctx, tid, trustID)
	if err != nil {
		return Session{}, err
	}
	if t.Partner != partnerID || t.Status != api.TrustActive {
		return Session{}, errors.New("partners: the trust is suspended or not the partner's")
	}
	if !notBefore.IsZero() {
		if !notBefore.Round(time.Microsecond).Equal(t.ExternalIDRotatedAt) {
			return Session{}, errors.New("partners: the token was assumed with an external id the trust no longer has")
		}
	} else if issuedAt.IsZero() || !issuedAt.Round(time.Microsecond).After(t.ExternalIDRotatedAt) {
		return Session{}, errors.New("partners: the token was issued before the trust's external id changed")
	}
	p, err := s.readPartner(ctx, partnerID)
	if err != nil {
		return Session{}, err
	}
	if !p.secretRotatedAt.IsZero() && (issuedAt.IsZero() || !issuedAt.Round(time.Microsecond).After(p.secretRotatedAt)) {
		return Session{}, errors.New("partners: the token was issued before the partner's secret changed")
	}
	nets, err := CheckNetworks("source_networks", t.SourceNetworks)
	if err != nil {
		return Session{}, err
	}
	return Session{Networks: nets, Policy: t.Policy, Scopes: t.Scopes}, nil
}
