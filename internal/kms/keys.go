package kms

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/singleflight"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/lru"
	"github.com/bulkhead-dev/bulkhead/internal/page"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

//go:embed migrations
var migrations embed.FS

// Migrations is the key service's schema.
func Migrations() storage.Component {
	c := storage.Embedded("kms", migrations)
	c.RowSecurity = map[string]storage.Rows{
		"kms_keys":          storage.TenantRows("tenant_id"),
		"kms_key_versions":  storage.TenantRows("tenant_id"),
		"kms_aliases":       storage.TenantRows("tenant_id"),
		"kms_import_tokens": storage.TenantRows("tenant_id"),
		"kms_root_key":      storage.PlatformRows(), // the platform's alone
	}
	return c
}

// Sealer seals key material at rest: the root key, or an external KMS or
// HSM that holds the root of the hierarchy (one implementation, RootKey,
// exists now; the interface is where others plug in). aad binds the
// material to where it is stored.
type Sealer interface {
	Wrap(plaintext, aad []byte) ([]byte, error)
	Unwrap(wrapped, aad []byte) ([]byte, error)
}

// Key states.
const (
	StateEnabled         = "enabled"
	StatePendingImport   = "pending_import"
	StatePendingDeletion = "pending_deletion"
	StateDestroyed       = "destroyed"
)

// Key origins.
const (
	OriginBulkhead = "bulkhead" // material made by Bulkhead
	OriginExternal = "external" // material imported (BYOK)
)

// Deletion windows, in days.
const (
	MinDeletionDays     = 7
	MaxDeletionDays     = 30
	DefaultDeletionDays = 30
)

// DefaultRotationPeriod is the automatic rotation of a tenant's default key.
const DefaultRotationPeriod = 365 * 24 * time.Hour

// MaxKeysPerTenant bounds a tenant's keys (deleted keys count until their
// material is destroyed).
const MaxKeysPerTenant = 1000

// notifyChannel carries key changes to other nodes (payload: tenant id).
const notifyChannel = "bulkhead_kms"

const keyPrefix = "key"

// Key is a tenant master key.
type Key struct {
	ID             string       `json:"key_id"`
	TenantID       tenant.ID    `json:"tenant_id"`
	Aliases        []string     `json:"aliases"`
	Description    string       `json:"description"`
	State          string       `json:"state"`
	Origin         string       `json:"origin"`
	PrimaryVersion int          `json:"primary_version"`
	RotationPeriod string       `json:"rotation_period,omitempty"` // a Go duration; "" without automatic rotation
	NextRotationAt *time.Time   `json:"next_rotation_at,omitempty"`
	DeletionAt     *time.Time   `json:"deletion_at,omitempty"`
	Versions       []KeyVersion `json:"versions"`
	CreatedAt      time.Time    `json:"created_at"`
	UpdatedAt      time.Time    `json:"updated_at"`
}

// KeyVersion is one version of a key's material.
type KeyVersion = api.KeyVersion

// Options configure a Service.
type Options struct {
	Clock     clock.Clock
	Logger    *slog.Logger
	CacheSize int           // keys whose material is kept unwrapped (default 10,000)
	CacheTTL  time.Duration // how long (default 5 minutes)
}

// Service is the key service.
type Service struct {
	db     *storage.DB
	audit  *audit.Log
	sealer Sealer
	clock  clock.Clock
	log    *slog.Logger
	keys   *lru.Cache[keyRef, *loadedKey]
	inval  *inval.Channel // audited writes that drop keys cached here and on other nodes
	loads  singleflight.Group
}

// keyRef names a key as a request did (an id or an alias), in a tenant.
type keyRef struct {
	tenant tenant.ID
	name   string
}

// loadedKey is a key with its versions' material unwrapped.
type loadedKey struct {
	meta     keyRow
	versions map[int]*material
}

// material is a key version ready for use. The unwrapped bytes are
// cleared as soon as the AES key schedule is made from them (unwrap); the
// schedule, inside crypto/aes, cannot be cleared and goes with the entry.
type material struct {
	aead cipher.AEAD
	// validTo is imported material's expiry (zero: none).
	validTo time.Time
}

// New returns the service. On PostgreSQL, call Run: until this node
// listens for other nodes' key changes it keeps no key unwrapped.
func New(db *storage.DB, log *audit.Log, sealer Sealer, opts Options) *Service {
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 10000
	}
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 5 * time.Minute
	}
	s := &Service{db: db, audit: log, sealer: sealer, clock: opts.Clock, log: opts.Logger}
	s.keys = lru.New[keyRef, *loadedKey](lru.Options[*loadedKey]{Size: opts.CacheSize, MaxAge: opts.CacheTTL,
		Now: opts.Clock.Now, Off: db.Dialect() == storage.Postgres})
	s.inval = inval.New(db, notifyChannel, log, opts.Logger, inval.Hooks{
		Evict:   func(_ context.Context, tid string) { s.forget(tenant.ID(tid)) },
		Purge:   func(context.Context) { s.keys.Purge() },
		Enable:  func(context.Context) { s.keys.Enable() },
		Disable: func(context.Context) { s.keys.Disable() },
	})
	return s
}

// Run listens for other nodes' key changes and destroys the material of
// keys whose deletion window has passed, once a minute, until ctx ends. It
// returns once its listener has stopped too.
func (s *Service) Run(ctx context.Context) error {
	s.destroyDue(ctx)
	return s.inval.RunEvery(ctx, time.Minute, s.destroyDue)
}

// destroyDue is DestroyDue for Run, which logs what fails.
func (s *Service) destroyDue(ctx context.Context) {
	if _, err := s.DestroyDue(ctx); err != nil && ctx.Err() == nil {
		s.log.ErrorContext(ctx, "kms: destroying keys past their deletion window", "err", err)
	}
}

// CachedKeys is the number of keys held unwrapped in memory.
func (s *Service) CachedKeys() int { return s.keys.Len() }

// forget drops tenant tid's cached keys.
func (s *Service) forget(tid tenant.ID) {
	s.keys.EvictFunc(func(k keyRef) bool { return k.tenant == tid })
}

func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

// wrapAAD binds wrapped material to its tenant, key and version.
func wrapAAD(tid, keyID string, version int) []byte {
	return fmt.Appendf(nil, "bulkhead/kms/v1|%s|%s|%d", tid, keyID, version)
}

func notFound(name string) error {
	return errs.E(errs.NotFound, "key_not_found", "key %q not found", errs.Clip(name, 80))
}

var aliasPattern = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]{1,250}$`)

// keyRow is a key as stored.
type keyRow struct {
	id, description, state, origin string
	primary                        int
	rotation                       time.Duration
	nextRotation, deletionAt       time.Time
	created, updated               time.Time
}

const keyColumns = `id, description, state, origin, primary_version, rotation_period_s, next_rotation_at, deletion_at, created_at, updated_at`

func scanKey(row interface{ Scan(...any) error }) (keyRow, error) {
	var k keyRow
	var rot, next, del, created, updated int64
	if err := row.Scan(&k.id, &k.description, &k.state, &k.origin, &k.primary, &rot, &next, &del, &created, &updated); err != nil {
		return k, err
	}
	k.rotation = time.Duration(rot) * time.Second
	k.nextRotation, k.deletionAt = micros(next), micros(del)
	k.created, k.updated = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return k, nil
}

// micros is a stored time, zero for 0.
func micros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func unixMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// resolve finds the key a name (id or alias) names in tx's tenant, with
// FOR UPDATE on PostgreSQL when lock is set.
func resolve(ctx context.Context, tx *storage.Tx, name string, lock bool) (keyRow, error) {
	id := name
	if strings.HasPrefix(name, "alias/") {
		if !aliasPattern.MatchString(name) {
			return keyRow{}, notFound(name)
		}
		err := tx.QueryRow(ctx, `SELECT key_id FROM kms_aliases WHERE tenant_id = ? AND alias = ?`, tx.TenantID(), name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return keyRow{}, notFound(name)
		}
		if err != nil {
			return keyRow{}, fmt.Errorf("kms: resolve alias: %w", err)
		}
	} else if !ids.Valid(name, keyPrefix) {
		return keyRow{}, notFound(name)
	}
	q := `SELECT ` + keyColumns + ` FROM kms_keys WHERE tenant_id = ? AND id = ?`
	if lock && tx.Dialect() == storage.Postgres {
		q += ` FOR UPDATE`
	}
	k, err := scanKey(tx.QueryRow(ctx, q, tx.TenantID(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return keyRow{}, notFound(name)
	}
	if err != nil {
		return keyRow{}, fmt.Errorf("kms: read key: %w", err)
	}
	return k, nil
}

// newMaterial makes 32 random bytes, wrapped for tenant tid's key version.
func (s *Service) wrapMaterial(tid, keyID string, version int, raw []byte) (string, error) {
	w, err := s.sealer.Wrap(raw, wrapAAD(tid, keyID, version))
	if err != nil {
		return "", fmt.Errorf("kms: wrap key material: %w", err)
	}
	return base64.StdEncoding.EncodeToString(w), nil
}

func (s *Service) insertVersion(ctx context.Context, tx *storage.Tx, keyID string, version int, raw []byte, validTo time.Time) error {
	wrapped, err := s.wrapMaterial(tx.TenantID(), keyID, version, raw)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO kms_key_versions (tenant_id, key_id, version, material, valid_to, created_at, destroyed_at)
		VALUES (?, ?, ?, ?, ?, ?, 0)`, tx.TenantID(), keyID, version, wrapped, unixMicros(validTo), s.now().UnixMicro())
	if err != nil {
		return fmt.Errorf("kms: insert key version: %w", err)
	}
	return nil
}

// CreateKeyRequest creates a key.
type CreateKeyRequest struct {
	Description string `json:"description,omitempty"`
	// Alias, optional, is alias/… (unique in the tenant).
	Alias string `json:"alias,omitempty"`
	// Origin is "bulkhead" (default: Bulkhead makes the material) or
	// "external" (the key waits for imported material).
	Origin string `json:"origin,omitempty"`
	// RotationPeriod is a Go duration of at least 24h ("" or "0": none).
	RotationPeriod string `json:"rotation_period,omitempty"`
}

func (r CreateKeyRequest) validate() (time.Duration, error) {
	if len(r.Description) > 1000 || !utf8.ValidString(r.Description) {
		return 0, errs.Field("description", "invalid_description", "a description is at most 1000 bytes of UTF-8")
	}
	if r.Alias != "" && (!aliasPattern.MatchString(r.Alias) || strings.HasPrefix(r.Alias, "alias/customer-")) {
		return 0, errs.Field("alias", "invalid_alias", "an alias is alias/ and 1 to 250 of a-z A-Z 0-9 / _ - (alias/customer-… is reserved)")
	}
	switch r.Origin {
	case "", OriginBulkhead, OriginExternal:
	default:
		return 0, errs.Field("origin", "invalid_origin", "origin is bulkhead or external")
	}
	if r.RotationPeriod == "" || r.RotationPeriod == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(r.RotationPeriod)
	if err != nil || d < 24*time.Hour || d > 10*365*24*time.Hour {
		return 0, errs.Field("rotation_period", "invalid_rotation_period", "rotation_period is a duration between 24h and 87600h")
	}
	if r.Origin == OriginExternal {
		return 0, errs.Field("rotation_period", "invalid_rotation_period", "imported keys rotate by importing new material")
	}
	return d, nil
}

// CreateKey makes a new key in tenant tid.
func (s *Service) CreateKey(ctx context.Context, tid tenant.ID, req CreateKeyRequest, actor tenant.Actor) (Key, error) {
	rotation, err := req.validate()
	if err != nil {
		return Key{}, err
	}
	var id string
	err = s.inval.Write(ctx, tid, actor, func(tx *storage.Tx) (inval.Change, error) {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return inval.Change{}, err
		}
		id, err = s.createKey(ctx, tx, req, rotation)
		return inval.Change{Action: "kms.key_created", Target: id}, err
	})
	if err != nil {
		return Key{}, err
	}
	return s.GetKey(ctx, tid, id)
}

func (s *Service) createKey(ctx context.Context, tx *storage.Tx, req CreateKeyRequest, rotation time.Duration) (string, error) {
	now := s.now()
	id := ids.New(keyPrefix)
	state, primary := StateEnabled, 1
	if req.Origin == OriginExternal {
		state, primary = StatePendingImport, 0
	} else {
		req.Origin = OriginBulkhead
	}
	var next time.Time
	if rotation > 0 {
		next = now.Add(rotation)
	}
	if err := tx.WithinQuota(ctx, "kms_keys", MaxKeysPerTenant, "keys"); err != nil {
		return "", err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO kms_keys (tenant_id, id, description, state, origin, primary_version, rotation_period_s,
		next_rotation_at, deletion_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
		tx.TenantID(), id, req.Description, state, req.Origin, primary, int64(rotation/time.Second), unixMicros(next),
		now.UnixMicro(), now.UnixMicro()); err != nil {
		return "", fmt.Errorf("kms: insert key: %w", err)
	}
	if req.Origin == OriginBulkhead {
		raw := make([]byte, 32)
		rand.Read(raw)
		err := s.insertVersion(ctx, tx, id, 1, raw, time.Time{})
		clear(raw)
		if err != nil {
			return "", err
		}
	}
	if req.Alias != "" {
		if _, err := tx.Exec(ctx, `INSERT INTO kms_aliases (tenant_id, alias, key_id, created_at) VALUES (?, ?, ?, ?)`,
			tx.TenantID(), req.Alias, id, now.UnixMicro()); err != nil {
			if storage.IsUniqueViolation(err) {
				return "", errs.E(errs.Conflict, "alias_exists", "alias %q names another key", req.Alias)
			}
			return "", fmt.Errorf("kms: insert alias: %w", err)
		}
	}
	return id, nil
}

// DefaultAlias is the alias of the key onboarding makes for a tenant.
func DefaultAlias(tid tenant.ID) string { return "alias/customer-" + string(tid) }

// OnboardingStep makes the tenant's default key, alias/customer-<tenant>.
func (s *Service) OnboardingStep() tenants.Step {
	return tenants.Step{Name: "kms", Run: func(ctx context.Context, tx *storage.Tx, t tenants.Tenant) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM kms_aliases WHERE tenant_id = ? AND alias = ?`, tx.TenantID(), DefaultAlias(t.ID)).Scan(&n); err != nil {
			return fmt.Errorf("kms: onboarding: %w", err)
		}
		if n > 0 {
			return nil
		}
		req := CreateKeyRequest{Description: "default key of " + string(t.ID), Alias: DefaultAlias(t.ID)}
		_, err := s.createKey(ctx, tx, req, DefaultRotationPeriod)
		return err
	}}
}

// OffboardingStep schedules the deletion of every key of the tenant, with
// the longest window; when it has passed, the material is destroyed and
// everything encrypted under the keys is unreadable for good.
func (s *Service) OffboardingStep() tenants.Step {
	return tenants.Step{Name: "kms", Run: func(ctx context.Context, tx *storage.Tx, _ tenants.Tenant) error {
		now := s.now()
		if _, err := tx.Exec(ctx, `UPDATE kms_keys SET state = ?, deletion_at = ?, updated_at = ?
			WHERE tenant_id = ? AND state IN (?, ?)`, StatePendingDeletion, now.Add(MaxDeletionDays*24*time.Hour).UnixMicro(),
			now.UnixMicro(), tx.TenantID(), StateEnabled, StatePendingImport); err != nil {
			return fmt.Errorf("kms: offboarding: %w", err)
		}
		return s.inval.Changed(ctx, tx, tx.TenantID())
	}}
}

// GetKey returns a key (by id or alias) of tenant tid.
func (s *Service) GetKey(ctx context.Context, tid tenant.ID, name string) (Key, error) {
	var out Key
	err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		k, err := resolve(ctx, tx, name, false)
		if err != nil {
			return err
		}
		ks := []Key{k.public(tid)}
		if err := describe(ctx, tx, ks); err != nil {
			return err
		}
		out = ks[0]
		return nil
	})
	return out, err
}

func (k keyRow) public(tid tenant.ID) Key {
	out := Key{ID: k.id, TenantID: tid, Aliases: []string{}, Description: k.description, State: k.state, Origin: k.origin,
		PrimaryVersion: k.primary, NextRotationAt: timePtr(k.nextRotation), CreatedAt: k.created, UpdatedAt: k.updated,
		Versions: []KeyVersion{}}
	if k.rotation > 0 {
		out.RotationPeriod = k.rotation.String()
	}
	if k.state == StatePendingDeletion || k.state == StateDestroyed {
		out.DeletionAt = timePtr(k.deletionAt)
	}
	return out
}

// describe fills in the aliases and versions of keys.
func describe(ctx context.Context, tx *storage.Tx, ks []Key) error {
	idx := map[string]int{}
	for i, k := range ks {
		idx[k.ID] = i
	}
	rows, err := tx.Query(ctx, `SELECT alias, key_id FROM kms_aliases WHERE tenant_id = ? ORDER BY alias`, tx.TenantID())
	if err != nil {
		return fmt.Errorf("kms: list aliases: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var alias, id string
		if err := rows.Scan(&alias, &id); err != nil {
			return fmt.Errorf("kms: list aliases: %w", err)
		}
		if i, ok := idx[id]; ok {
			ks[i].Aliases = append(ks[i].Aliases, alias)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	rows, err = tx.Query(ctx, `SELECT key_id, version, material, valid_to, created_at, destroyed_at FROM kms_key_versions
		WHERE tenant_id = ? ORDER BY key_id, version`, tx.TenantID())
	if err != nil {
		return fmt.Errorf("kms: list versions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, mat string
		var v KeyVersion
		var validTo, created, destroyed int64
		if err := rows.Scan(&id, &v.Version, &mat, &validTo, &created, &destroyed); err != nil {
			return fmt.Errorf("kms: list versions: %w", err)
		}
		v.Destroyed, v.ValidTo, v.CreatedAt, v.DestroyedAt = mat == "", timePtr(micros(validTo)), time.UnixMicro(created).UTC(), timePtr(micros(destroyed))
		if i, ok := idx[id]; ok {
			ks[i].Versions = append(ks[i].Versions, v)
		}
	}
	return rows.Err()
}

// KeyPage is a page of keys.
type KeyPage struct {
	Items      []Key  `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// ListKeys pages through tenant tid's keys (the API answers 404 for a
// tenant that does not exist before asking).
func (s *Service) ListKeys(ctx context.Context, tid tenant.ID, limit int, cursor string) (KeyPage, error) {
	limit, after, err := page.Bounds(limit, cursor)
	if err != nil {
		return KeyPage{}, err
	}
	out := KeyPage{Items: []Key{}}
	err = s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+keyColumns+` FROM kms_keys WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?`, tx.TenantID(), after, limit+1)
		if err != nil {
			return fmt.Errorf("kms: list keys: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			k, err := scanKey(rows)
			if err != nil {
				return fmt.Errorf("kms: list keys: %w", err)
			}
			out.Items = append(out.Items, k.public(tid))
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		out.Items, out.NextCursor = page.Trim(out.Items, limit, func(k Key) string { return k.ID })
		return describe(ctx, tx, out.Items)
	})
	return out, err
}

// changeKey runs fn on key name of tenant tid (locked) in an audited
// update and returns the key as it then is. With active set the tenant
// must be active (a key of an offboarding tenant can still be scheduled
// for deletion). fn returns the audit action.
func (s *Service) changeKey(ctx context.Context, tid tenant.ID, name string, actor tenant.Actor, active bool,
	fn func(tx *storage.Tx, k keyRow) (string, error)) (Key, error) {
	var id string
	err := s.inval.Write(ctx, tid, actor, func(tx *storage.Tx) (inval.Change, error) {
		if active {
			if err := tenants.RequireActiveTx(ctx, tx); err != nil {
				return inval.Change{}, err
			}
		}
		k, err := resolve(ctx, tx, name, true)
		if err != nil {
			return inval.Change{}, err
		}
		id = k.id
		action, err := fn(tx, k)
		return inval.Change{Action: action, Target: k.id}, err
	})
	if err != nil {
		return Key{}, err
	}
	return s.GetKey(ctx, tid, id)
}

// Rotate gives a key a new primary version (new material). Older versions
// still decrypt what they encrypted.
func (s *Service) Rotate(ctx context.Context, tid tenant.ID, name string, actor tenant.Actor) (Key, error) {
	return s.changeKey(ctx, tid, name, actor, true, func(tx *storage.Tx, k keyRow) (string, error) {
		if err := usable(k); err != nil {
			return "", err
		}
		if k.origin == OriginExternal {
			return "", errs.E(errs.Conflict, "rotation_not_supported", "an imported key rotates by importing new material")
		}
		return "kms.key_rotated", s.rotate(ctx, tx, k)
	})
}

func (s *Service) rotate(ctx context.Context, tx *storage.Tx, k keyRow) error {
	raw := make([]byte, 32)
	rand.Read(raw)
	defer clear(raw)
	v := k.primary + 1
	if err := s.insertVersion(ctx, tx, k.id, v, raw, time.Time{}); err != nil {
		return err
	}
	now := s.now()
	var next time.Time
	if k.rotation > 0 {
		next = now.Add(k.rotation)
	}
	_, err := tx.Exec(ctx, `UPDATE kms_keys SET primary_version = ?, next_rotation_at = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
		v, unixMicros(next), now.UnixMicro(), tx.TenantID(), k.id)
	if err != nil {
		return fmt.Errorf("kms: rotate: %w", err)
	}
	return nil
}

// usable refuses keys that cannot be used or changed now.
func usable(k keyRow) error {
	switch k.state {
	case StatePendingDeletion:
		return errs.E(errs.Conflict, "key_pending_deletion", "key %s is scheduled for deletion on %s; cancel the deletion to use it", k.id, k.deletionAt.Format(time.RFC3339))
	case StateDestroyed:
		return errs.E(errs.Conflict, "key_destroyed", "the material of key %s was destroyed; what it encrypted cannot be decrypted", k.id)
	case StatePendingImport:
		return errs.E(errs.Conflict, "key_pending_import", "key %s has no material yet: import it", k.id)
	}
	return nil
}

// ScheduleDeletion puts a key in pending_deletion: after days (7..30, 0
// for the default 30) its material is destroyed.
func (s *Service) ScheduleDeletion(ctx context.Context, tid tenant.ID, name string, days int, actor tenant.Actor) (Key, error) {
	if days == 0 {
		days = DefaultDeletionDays
	}
	if days < MinDeletionDays || days > MaxDeletionDays {
		return Key{}, errs.Field("pending_window_days", "invalid_deletion_window", "the deletion window is %d to %d days", MinDeletionDays, MaxDeletionDays)
	}
	return s.changeKey(ctx, tid, name, actor, false, func(tx *storage.Tx, k keyRow) (string, error) {
		if k.state == StatePendingDeletion || k.state == StateDestroyed {
			return "", usable(k)
		}
		now := s.now()
		if _, err := tx.Exec(ctx, `UPDATE kms_keys SET state = ?, deletion_at = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
			StatePendingDeletion, now.Add(time.Duration(days)*24*time.Hour).UnixMicro(), now.UnixMicro(), tx.TenantID(), k.id); err != nil {
			return "", fmt.Errorf("kms: schedule deletion: %w", err)
		}
		return "kms.key_deletion_scheduled", nil
	})
}

// CancelDeletion takes a key out of pending_deletion.
func (s *Service) CancelDeletion(ctx context.Context, tid tenant.ID, name string, actor tenant.Actor) (Key, error) {
	return s.changeKey(ctx, tid, name, actor, true, func(tx *storage.Tx, k keyRow) (string, error) {
		if k.state != StatePendingDeletion {
			return "", errs.E(errs.Conflict, "key_not_pending_deletion", "key %s is %s, not pending deletion", k.id, k.state)
		}
		state := StateEnabled
		if k.primary == 0 {
			state = StatePendingImport
		}
		if _, err := tx.Exec(ctx, `UPDATE kms_keys SET state = ?, deletion_at = 0, updated_at = ? WHERE tenant_id = ? AND id = ?`,
			state, s.now().UnixMicro(), tx.TenantID(), k.id); err != nil {
			return "", fmt.Errorf("kms: cancel deletion: %w", err)
		}
		return "kms.key_deletion_canceled", nil
	})
}

// DestroyDue destroys the material of every key (of any tenant) whose
// deletion window has passed and returns how many keys it destroyed. It
// crosses tenants to find them; each destruction runs in its tenant's
// scope and is audited there.
func (s *Service) DestroyDue(ctx context.Context) (int, error) {
	type due struct{ tid, id string }
	var todo []due
	err := s.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT tenant_id, id FROM kms_keys WHERE state = ? AND deletion_at <= ?`,
			StatePendingDeletion, s.now().UnixMicro())
		if err != nil {
			return fmt.Errorf("kms: find keys due: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var d due
			if err := rows.Scan(&d.tid, &d.id); err != nil {
				return err
			}
			todo = append(todo, d)
		}
		return rows.Err()
	})
	if err != nil {
		return 0, err
	}
	n := 0
	var failed error
	for _, d := range todo {
		err := s.inval.Write(ctx, tenant.ID(d.tid), tenant.Actor{Principal: "system"}, func(tx *storage.Tx) (inval.Change, error) {
			k, err := resolve(ctx, tx, d.id, true)
			if err != nil {
				return inval.Change{}, err
			}
			if k.state != StatePendingDeletion || s.now().Before(k.deletionAt) {
				return inval.Change{}, errCanceled // canceled or moved meanwhile
			}
			now := s.now().UnixMicro()
			if _, err := tx.Exec(ctx, `UPDATE kms_key_versions SET material = '', destroyed_at = ? WHERE tenant_id = ? AND key_id = ?`,
				now, tx.TenantID(), k.id); err != nil {
				return inval.Change{}, fmt.Errorf("kms: destroy material: %w", err)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM kms_import_tokens WHERE tenant_id = ? AND key_id = ?`, tx.TenantID(), k.id); err != nil {
				return inval.Change{}, fmt.Errorf("kms: destroy import tokens: %w", err)
			}
			if _, err := tx.Exec(ctx, `UPDATE kms_keys SET state = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
				StateDestroyed, now, tx.TenantID(), k.id); err != nil {
				return inval.Change{}, fmt.Errorf("kms: destroy key: %w", err)
			}
			return inval.Change{Action: "kms.key_destroyed", Target: k.id}, nil
		})
		switch {
		case errors.Is(err, errCanceled):
		case err != nil:
			// One key that fails must not stop the others' destruction.
			s.log.ErrorContext(ctx, "kms: destroying a key past its deletion window", "tenant", d.tid, "key", d.id, "err", err)
			failed = errors.Join(failed, err)
		default:
			n++
		}
	}
	return n, failed
}

var errCanceled = errors.New("kms: deletion no longer due")

// aeadFor makes the AEAD of 32 bytes of material.
func aeadFor(raw []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("kms: %w", err)
	}
	return cipher.NewGCM(b)
}
