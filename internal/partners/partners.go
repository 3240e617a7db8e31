// Package partners lets a tenant trust a third-party service (an
// integration partner that serves many tenants) to act in it, the way a
// cloud account lets a vendor assume a role: the operator registers the
// partner (its OAuth client), a tenant's admins create a trust for it
// (scopes, a Cedar bound, a session length, networks, session tags), and
// the partner assumes the trust at the token endpoint, presenting the
// external id Bulkhead generated for that tenant's trust.
//
// The external id is what defeats the confused deputy: the partner keeps
// one per customer and sends the one of the customer it acts for, so a
// customer who names another customer's tenant in the partner's setup
// screen gets nothing — it does not hold that tenant's external id. It is
// 256 random bits, shown once, stored as a SHA-256 hash and compared in
// constant time.
//
// This package holds the records and decides an assumption (Assume); the
// OpenID provider authenticates the partner and signs the token, and the
// API's token verifier asks TrustActive on every use, so a deleted or
// suspended trust stops its tokens at once (on other nodes within the
// read cache's second).
package partners

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/netguard"
	"github.com/bulkhead-dev/bulkhead/internal/page"
	"github.com/bulkhead-dev/bulkhead/internal/statecache"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

//go:embed migrations
var migrations embed.FS

// Migrations returns the partner and trust tables.
func Migrations() storage.Component {
	c := storage.Embedded("partners", migrations)
	c.RowSecurity = map[string]storage.Rows{
		"partners":           storage.PlatformRows(),
		"partner_trusts":     storage.TenantRows("tenant_id"),
		"partner_assertions": storage.PlatformRows(),
	}
	return c
}

// Id prefixes.
const (
	PartnerPrefix    = "prt" // a partner, and its OAuth client_id
	TrustPrefix      = "trs"
	secretPrefix     = "bhp"
	externalIDPrefix = "bhx"
)

// Limits.
const (
	MaxPartners        = 10000
	MaxTrustsPerTenant = 100
)

// Wire types, shared with the SDK.
type (
	Partner        = api.Partner
	PartnerCreated = api.PartnerCreated
	Trust          = api.Trust
	TrustCreated   = api.TrustCreated
)

// Service keeps partners and trusts.
type Service struct {
	db    *storage.DB
	audit *audit.Log
	clock clock.Clock
	// checkPolicy validates a trust's Cedar bound against the tenant's
	// policy store (authz); nil accepts any text.
	checkPolicy func(ctx context.Context, tid tenant.ID, policy string) error

	partners *statecache.Reads[string, partnerRead]
}

// Options configure a Service.
type Options struct {
	Clock clock.Clock
	// CheckPolicy validates a trust's policy text for tenant tid (parse,
	// and the tenant's schema if it has one).
	CheckPolicy func(ctx context.Context, tid tenant.ID, policy string) error
	// ReadCache keeps the partner and trust reads of the token path.
	ReadCache statecache.Config
}

// New returns the service.
func New(db *storage.DB, log *audit.Log, o Options) *Service {
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	if o.ReadCache.Now == nil {
		o.ReadCache.Now = o.Clock.Now
	}
	return &Service{db: db, audit: log, clock: o.Clock, checkPolicy: o.CheckPolicy,
		partners: statecache.New[string, partnerRead](o.ReadCache)}
}

type partnerRead struct {
	p          Partner
	secretHash string
	// secretRotatedAt is when the secret last changed (zero: never): the
	// partner's tokens issued before it are stopped.
	secretRotatedAt time.Time
}

func partnerNotFound(id string) error {
	return errs.E(errs.NotFound, "partner_not_found", "partner %q not found", errs.Clip(id, 64))
}

// hashSecret hashes a partner secret or an external id: 256 random bits,
// so a fast hash suffices.
func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// equalHash compares a secret with a stored hash in constant time.
func equalHash(secret, stored string) bool {
	return subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(stored)) == 1 && stored != ""
}

func (s *Service) event(actor tenant.Actor, tid tenant.ID, action, target string, detail map[string]string) audit.Event {
	return audit.Event{TenantID: string(tid), Principal: actor.Principal, Action: action, Target: target,
		RequestID: actor.RequestID, SourceIP: actor.SourceIP, Detail: detail}
}

// CreatePartner registers a partner. A client_secret_basic partner's
// secret is returned once.
func (s *Service) CreatePartner(ctx context.Context, in api.CreatePartner, actor tenant.Actor) (PartnerCreated, error) {
	name := strings.TrimSpace(in.Name)
	if name == "" || len(in.Name) > 200 || strings.ContainsFunc(in.Name, isControl) {
		return PartnerCreated{}, errs.Field("name", "invalid_name", "name must be 1 to 200 characters of text")
	}
	out := PartnerCreated{Partner: Partner{Name: in.Name, AuthMethod: in.AuthMethod}}
	secretHash := ""
	switch in.AuthMethod {
	case "", api.PartnerClientSecret:
		if in.JWKSURL != "" {
			return PartnerCreated{}, errs.Field("jwks_url", "invalid_jwks_url", "jwks_url is for auth_method %s only", api.PartnerPrivateKeyJWT)
		}
		out.AuthMethod = api.PartnerClientSecret
		out.ClientSecret = ids.Secret(secretPrefix)
		secretHash = hashSecret(out.ClientSecret)
	case api.PartnerPrivateKeyJWT:
		if err := checkJWKSURL(in.JWKSURL); err != nil {
			return PartnerCreated{}, err
		}
		out.JWKSURL = in.JWKSURL
	default:
		return PartnerCreated{}, errs.Field("auth_method", "invalid_auth_method", "auth_method is %s or %s",
			api.PartnerClientSecret, api.PartnerPrivateKeyJWT)
	}
	err := s.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM partners`).Scan(&n); err != nil {
			return err
		}
		if n >= MaxPartners {
			return errs.E(errs.Conflict, "quota_exceeded", "at most %d partners", MaxPartners)
		}
		out.ID, out.CreatedAt = ids.New(PartnerPrefix), s.clock.Now().UTC().Truncate(time.Microsecond)
		if _, err := tx.Exec(ctx, `INSERT INTO partners (id, name, auth_method, secret_hash, jwks_url, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			out.ID, out.Name, out.AuthMethod, secretHash, out.JWKSURL, out.CreatedAt.UnixMicro()); err != nil {
			return fmt.Errorf("partners: insert partner: %w", err)
		}
		return s.audit.AppendTx(ctx, tx, s.event(actor, "", "partner.created", out.ID,
			map[string]string{"name": out.Name, "auth_method": out.AuthMethod}))
	})
	if err != nil {
		return PartnerCreated{}, err
	}
	return out, nil
}

// checkJWKSURL accepts an absolute https URL (http on loopback for tests
// and on-premises partners; the fetch itself refuses private addresses
// unless the operator allows them).
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	bad := errs.Field("jwks_url", "invalid_jwks_url", "jwks_url must be an absolute https URL of at most 2048 characters, without credentials or fragment")
	if err != nil || len(raw) > 2048 || !u.IsAbs() || u.Host == "" || u.User != nil || u.Fragment != "" {
		return bad
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && netguard.Loopback(u.Hostname())) {
		return bad
	}
	return nil
}

const partnerColumns = `id, name, auth_method, jwks_url, created_at`

func scanPartner(row interface{ Scan(...any) error }, extra ...any) (Partner, error) {
	var p Partner
	var created int64
	if err := row.Scan(append([]any{&p.ID, &p.Name, &p.AuthMethod, &p.JWKSURL, &created}, extra...)...); err != nil {
		return Partner{}, err
	}
	p.CreatedAt = time.UnixMicro(created).UTC()
	return p, nil
}

// GetPartner returns a partner (never its secret).
func (s *Service) GetPartner(ctx context.Context, id string) (Partner, error) {
	r, err := s.partner(ctx, id)
	return r.p, err
}

// partner reads partner id through the read cache.
func (s *Service) partner(ctx context.Context, id string) (partnerRead, error) {
	if !ids.Valid(id, PartnerPrefix) {
		return partnerRead{}, partnerNotFound(id)
	}
	return s.partners.Get(ctx, id, func(ctx context.Context) (partnerRead, error) { return s.readPartner(ctx, id) },
		func(_ partnerRead, err error) bool { return err == nil || errs.Is(err, "partner_not_found") })
}

// readPartner reads partner id from the database.
func (s *Service) readPartner(ctx context.Context, id string) (partnerRead, error) {
	var r partnerRead
	err := s.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		var err error
		var rotated int64
		r.p, err = scanPartner(tx.QueryRow(ctx, `SELECT `+partnerColumns+`, secret_hash, secret_rotated_at FROM partners WHERE id = ?`, id),
			&r.secretHash, &rotated)
		if rotated > 0 {
			r.secretRotatedAt = time.UnixMicro(rotated).UTC()
		}
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return partnerRead{}, partnerNotFound(id)
	}
	return r, err
}

// ListPartners returns a page of partners, by id.
func (s *Service) ListPartners(ctx context.Context, limit int, cursor string) ([]Partner, string, error) {
	limit, after, err := page.Bounds(limit, cursor)
	if err != nil {
		return nil, "", err
	}
	var out []Partner
	err = s.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+partnerColumns+` FROM partners WHERE id > ? ORDER BY id LIMIT ?`, after, limit+1)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p, err := scanPartner(rows)
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, "", err
	}
	items, next := page.Trim(out, limit, func(p Partner) string { return p.ID })
	return items, next, nil
}

// DeletePartner removes a partner: its tokens stop at once, and its
// trusts can no longer be assumed (tenants see them, and delete them).
func (s *Service) DeletePartner(ctx context.Context, id string, actor tenant.Actor) error {
	if !ids.Valid(id, PartnerPrefix) {
		return partnerNotFound(id)
	}
	return s.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM partners WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("partners: delete partner: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return partnerNotFound(id)
		}
		return s.audit.AppendTx(ctx, tx, s.event(actor, "", "partner.deleted", id, nil))
	})
}

// RotatePartnerSecret gives a client_secret_basic partner a new secret
// (returned once); the old one stops at once.
func (s *Service) RotatePartnerSecret(ctx context.Context, id string, actor tenant.Actor) (PartnerCreated, error) {
	r, err := s.partner(ctx, id)
	if err != nil {
		return PartnerCreated{}, err
	}
	if r.p.AuthMethod != api.PartnerClientSecret {
		return PartnerCreated{}, errs.E(errs.Conflict, "no_client_secret", "partner %s authenticates with %s: it has no secret", id, r.p.AuthMethod)
	}
	out := PartnerCreated{Partner: r.p, ClientSecret: ids.Secret(secretPrefix)}
	err = s.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		// The rotation time stops the tokens issued with the old secret.
		res, err := tx.Exec(ctx, `UPDATE partners SET secret_hash = ?, secret_rotated_at = ? WHERE id = ? AND auth_method = ?`,
			hashSecret(out.ClientSecret), s.clock.Now().UTC().UnixMicro(), id, api.PartnerClientSecret)
		if err != nil {
			return fmt.Errorf("partners: rotate secret: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return partnerNotFound(id)
		}
		return s.audit.AppendTx(ctx, tx, s.event(actor, "", "partner.secret_rotated", id, nil))
	})
	if err != nil {
		return PartnerCreated{}, err
	}
	return out, nil
}

// ErrClient is every failed partner authentication.
var ErrClient = errors.New("partners: client authentication failed")

// AuthenticateSecret checks a partner's client secret (constant time, and
// as long for an unknown partner). It reads the partner now, not through
// the read cache: a rotated secret stops at once on every node.
func (s *Service) AuthenticateSecret(ctx context.Context, id, secret string) (Partner, error) {
	if !ids.Valid(id, PartnerPrefix) {
		equalHash(secret, hashSecret(""))
		return Partner{}, ErrClient
	}
	r, err := s.readPartner(ctx, id)
	if errs.Is(err, "partner_not_found") {
		equalHash(secret, hashSecret(""))
		return Partner{}, ErrClient
	}
	if err != nil {
		return Partner{}, err
	}
	if r.p.AuthMethod != api.PartnerClientSecret || !equalHash(secret, r.secretHash) {
		return Partner{}, ErrClient
	}
	return r.p, nil
}

// KeyPartner returns a private_key_jwt partner, whose JWKS URL the
// provider fetches to check its assertion.
func (s *Service) KeyPartner(ctx context.Context, id string) (Partner, error) {
	r, err := s.partner(ctx, id)
	if errs.Is(err, "partner_not_found") || (err == nil && r.p.AuthMethod != api.PartnerPrivateKeyJWT) {
		return Partner{}, ErrClient
	}
	return r.p, err
}

// UseAssertion records a client assertion's id (jti) until it expires and
// fails if it was seen before: an assertion authenticates once (RFC 7523
// §3, item 7), on every node.
func (s *Service) UseAssertion(ctx context.Context, partnerID, jti string, exp time.Time) error {
	key := hashSecret(partnerID + "\x00" + jti)
	now := s.clock.Now()
	return s.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM partner_assertions WHERE expires_at < ?`, now.UnixMicro()); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM partner_assertions WHERE id = ?`, key).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrReplayed
		}
		_, err := tx.Exec(ctx, `INSERT INTO partner_assertions (id, expires_at) VALUES (?, ?)`, key, exp.UnixMicro())
		return err
	})
}

// ErrReplayed is an assertion used before.
var ErrReplayed = errors.New("partners: the client assertion was used before")

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
