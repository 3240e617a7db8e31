// Package signing keeps the keys that sign Bulkhead's tokens: one key set
// per issuer (the platform issuer, and one for each silo tenant), each
// private key stored only wrapped by the root key with its issuer and key id
// as the binding, so a wrapped key moved to another issuer's row fails to
// unwrap.
//
// An issuer's active key signs; Rotate makes a new active key and retires
// the old one, which stays published in the JWKS until every token it
// signed has expired (retirement time + the longest token lifetime). Keys
// are ES256 (ECDSA P-256) by default, or EdDSA (Ed25519).
package signing

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

//go:embed migrations
var migrations embed.FS

// Migrations returns the signing key store's migrations.
func Migrations() storage.Component {
	c := storage.Embedded("signing", migrations)
	c.RowSecurity = map[string]storage.Rows{
		// tenant_id is the silo tenant whose issuer the key signs for,
		// empty for the platform issuer.
		"signing_keys": storage.TenantOrPlatformRows("tenant_id"),
	}
	return c
}

// Issuer names a key set: the platform issuer (Tenant "") or a silo tenant's.
type Issuer struct {
	Tenant tenant.ID
}

// Platform is the platform issuer's key set.
var Platform = Issuer{}

func (i Issuer) scope() storage.Scope {
	if i.Tenant == "" {
		return storage.PlatformScope()
	}
	return storage.TenantScope(i.Tenant)
}

func (i Issuer) binding(kid string) []byte {
	return []byte("bulkhead-signing-key\x00issuer=" + string(i.Tenant) + "\x00kid=" + kid)
}

// Key is a signing key with its private half unwrapped.
type Key struct {
	ID        string
	Algorithm jose.SignatureAlgorithm
	Private   crypto.Signer
	CreatedAt time.Time
}

// Store keeps every issuer's signing keys.
type Store struct {
	db          *storage.DB
	root        *kms.RootKey
	clock       clock.Clock
	alg         jose.SignatureAlgorithm
	lifetime    time.Duration // the longest lifetime of a signed token
	rotateAfter time.Duration

	mu      sync.Mutex
	cache   map[string]*Key // unwrapped keys by kid; bounded by the number of active keys
	actives map[tenant.ID]activeKey

	pub *Published
}

// activeKey remembers an issuer's active key for a moment, so that a burst
// of tokens does not read the key row for each one. A rotation on another
// node is seen within activeTTL; the old key stays valid meanwhile.
type activeKey struct {
	key *Key
	at  time.Time
}

const activeTTL = time.Second

// Options configure a Store.
type Options struct {
	Clock         clock.Clock
	Algorithm     jose.SignatureAlgorithm // ES256 (default) or EdDSA
	TokenLifetime time.Duration           // longest token lifetime; retired keys stay published this long (default 24h)
	RotateAfter   time.Duration           // an active key older than this is rotated on next use (default 30 days)
	Logger        *slog.Logger
}

// NewStore returns the key store of db whose private keys root wraps.
func NewStore(db *storage.DB, root *kms.RootKey, opts Options) (*Store, error) {
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	if opts.Algorithm == "" {
		opts.Algorithm = jose.ES256
	}
	if opts.Algorithm != jose.ES256 && opts.Algorithm != jose.EdDSA {
		return nil, fmt.Errorf("signing: algorithm %s is not supported; use ES256 or EdDSA", opts.Algorithm)
	}
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = 24 * time.Hour
	}
	if opts.RotateAfter <= 0 {
		opts.RotateAfter = 30 * 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{db: db, root: root, clock: opts.Clock, alg: opts.Algorithm, lifetime: opts.TokenLifetime,
		rotateAfter: opts.RotateAfter, cache: map[string]*Key{}, actives: map[tenant.ID]activeKey{},
		pub: newPublished(db, opts.Clock.Now, opts.Logger)}
	if err := s.pub.loadAllIssuers(context.Background()); err != nil {
		return nil, err
	}
	return s, nil
}

// Run keeps the published keys current (other nodes' rotations and
// deletions) until ctx ends, and returns then.
func (s *Store) Run(ctx context.Context) error { return s.pub.run(ctx) }

// Published is every issuer's published public keys, in memory: the
// sdk/auth.KeySource of the node's own token checks.
func (s *Store) Published() *Published { return s.pub }

func (s *Store) generate(issuer Issuer) (kid string, pub jose.JSONWebKey, wrapped []byte, key crypto.Signer, err error) {
	kid = ids.New("sig")
	switch s.alg {
	case jose.EdDSA:
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return "", pub, nil, nil, gerr
		}
		key = priv
	default:
		priv, gerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if gerr != nil {
			return "", pub, nil, nil, gerr
		}
		key = priv
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", pub, nil, nil, fmt.Errorf("signing: encode key: %w", err)
	}
	defer clear(der)
	if wrapped, err = s.root.Wrap(der, issuer.binding(kid)); err != nil {
		return "", pub, nil, nil, err
	}
	pub = jose.JSONWebKey{Key: key.Public(), KeyID: kid, Algorithm: string(s.alg), Use: "sig"}
	return kid, pub, wrapped, key, nil
}

// Active returns the issuer's active signing key, creating the issuer's
// first key if it has none and rotating it when it is older than the
// store's rotation period.
func (s *Store) Active(ctx context.Context, issuer Issuer) (*Key, error) {
	return s.RotateIfOlder(ctx, issuer, s.rotateAfter)
}

func (s *Store) active(ctx context.Context, issuer Issuer) (*Key, error) {
	now := s.clock.Now()
	s.mu.Lock()
	if a, ok := s.actives[issuer.Tenant]; ok && now.Sub(a.at) < activeTTL && now.Sub(a.at) >= 0 {
		s.mu.Unlock()
		return a.key, nil
	}
	s.mu.Unlock()
	k, err := s.readActive(ctx, issuer)
	if err == nil {
		s.remember(issuer, k, now)
	}
	return k, err
}

func (s *Store) remember(issuer Issuer, k *Key, now time.Time) {
	s.mu.Lock()
	if len(s.actives) > 4096 {
		clear(s.actives)
	}
	s.actives[issuer.Tenant] = activeKey{key: k, at: now}
	s.mu.Unlock()
}

func (s *Store) readActive(ctx context.Context, issuer Issuer) (*Key, error) {
	var kid string
	var wrapped []byte
	var alg string
	var created int64
	err := s.db.View(ctx, issuer.scope(), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT kid, alg, private_wrapped, created_at FROM signing_keys
			WHERE tenant_id = ? AND retired_at = 0 ORDER BY created_at DESC LIMIT 1`, string(issuer.Tenant)).Scan(&kid, &alg, &wrapped, &created)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return s.Rotate(ctx, issuer)
	}
	if err != nil {
		return nil, fmt.Errorf("signing: active key: %w", err)
	}
	return s.unwrap(issuer, kid, jose.SignatureAlgorithm(alg), wrapped, created)
}

func (s *Store) unwrap(issuer Issuer, kid string, alg jose.SignatureAlgorithm, wrapped []byte, created int64) (*Key, error) {
	s.mu.Lock()
	if k, ok := s.cache[kid]; ok {
		s.mu.Unlock()
		return k, nil
	}
	s.mu.Unlock()
	der, err := s.root.Unwrap(wrapped, issuer.binding(kid))
	if err != nil {
		return nil, fmt.Errorf("signing: key %s: %w", kid, err)
	}
	defer clear(der)
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing: key %s: %w", kid, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing: key %s is not a signing key", kid)
	}
	k := &Key{ID: kid, Algorithm: alg, Private: signer, CreatedAt: time.UnixMicro(created).UTC()}
	s.mu.Lock()
	if len(s.cache) > 4096 {
		clear(s.cache)
	}
	s.cache[kid] = k
	s.mu.Unlock()
	return k, nil
}

// Rotate makes a new active key for the issuer and retires the previous
// one, which stays in the JWKS for the token lifetime.
func (s *Store) Rotate(ctx context.Context, issuer Issuer) (*Key, error) {
	return s.rotate(ctx, issuer, 0)
}

// rotate rotates the issuer's key; with maxAge > 0, only if the active key
// is at least that old when the issuer's lock is held (so that nodes racing
// to rotate an old key rotate it once). It returns nil when it did nothing.
func (s *Store) rotate(ctx context.Context, issuer Issuer, maxAge time.Duration) (*Key, error) {
	kid, pub, wrapped, priv, err := s.generate(issuer)
	if err != nil {
		return nil, err
	}
	pubJSON, err := json.Marshal(pub)
	if err != nil {
		return nil, fmt.Errorf("signing: encode public key: %w", err)
	}
	now := s.clock.Now()
	err = s.db.Update(ctx, issuer.scope(), func(tx *storage.Tx) error {
		// One rotation at a time per issuer, across nodes.
		if err := tx.Lock(ctx, "signing:"+string(issuer.Tenant)); err != nil {
			return err
		}
		if maxAge > 0 {
			var created int64
			err := tx.QueryRow(ctx, `SELECT created_at FROM signing_keys WHERE tenant_id = ? AND retired_at = 0
				ORDER BY created_at DESC LIMIT 1`, string(issuer.Tenant)).Scan(&created)
			if err == nil && now.Sub(time.UnixMicro(created)) < maxAge {
				return errNotDue
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE signing_keys SET retired_at = ?, published_until = ? WHERE tenant_id = ? AND retired_at = 0`,
			now.UnixMicro(), now.Add(s.lifetime).UnixMicro(), string(issuer.Tenant)); err != nil {
			return fmt.Errorf("signing: retire key: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO signing_keys (kid, tenant_id, alg, public_jwk, private_wrapped, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, kid, string(issuer.Tenant), string(s.alg), string(pubJSON), wrapped, now.UnixMicro()); err != nil {
			return fmt.Errorf("signing: store key: %w", err)
		}
		return s.pub.changed(ctx, tx, issuer.Tenant)
	})
	if errors.Is(err, errNotDue) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	k := &Key{ID: kid, Algorithm: s.alg, Private: priv, CreatedAt: now.UTC()}
	s.remember(issuer, k, now)
	s.mu.Lock()
	s.cache[kid] = k
	s.mu.Unlock()
	return k, nil
}

var errNotDue = errors.New("signing: rotation not due")

// RotateIfOlder rotates the issuer's key when the active one is older than
// maxAge, and returns the active key.
func (s *Store) RotateIfOlder(ctx context.Context, issuer Issuer, maxAge time.Duration) (*Key, error) {
	k, err := s.active(ctx, issuer)
	if err != nil || s.clock.Now().Sub(k.CreatedAt) < maxAge {
		return k, err
	}
	if nk, err := s.rotate(ctx, issuer, maxAge); err != nil || nk != nil {
		return nk, err
	}
	// Another node rotated it first: read the new key past the cache.
	k, err = s.readActive(ctx, issuer)
	if err == nil {
		s.remember(issuer, k, s.clock.Now())
	}
	return k, err
}

// JWKS returns the issuer's published public keys: the active key and the
// retired keys whose tokens may still be valid. It never holds private keys.
func (s *Store) JWKS(ctx context.Context, issuer Issuer) (jose.JSONWebKeySet, error) {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	err := s.db.View(ctx, issuer.scope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT public_jwk FROM signing_keys
			WHERE tenant_id = ? AND (retired_at = 0 OR published_until > ?) ORDER BY created_at DESC`,
			string(issuer.Tenant), s.clock.Now().UnixMicro())
		if err != nil {
			return fmt.Errorf("signing: jwks: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var raw string
			if err := rows.Scan(&raw); err != nil {
				return fmt.Errorf("signing: jwks: %w", err)
			}
			var k jose.JSONWebKey
			if err := k.UnmarshalJSON([]byte(raw)); err != nil || !k.IsPublic() {
				return fmt.Errorf("signing: stored public key is unreadable or not public")
			}
			set.Keys = append(set.Keys, k)
		}
		return rows.Err()
	})
	return set, err
}

// DeleteIssuer removes every key of a silo tenant's issuer (offboarding):
// its tokens stop verifying at once.
func (s *Store) DeleteIssuer(ctx context.Context, tx *storage.Tx) error {
	if _, err := tx.Exec(ctx, `DELETE FROM signing_keys WHERE tenant_id = ?`, tx.TenantID()); err != nil {
		return fmt.Errorf("signing: delete keys: %w", err)
	}
	if err := s.pub.changed(ctx, tx, tenant.ID(tx.TenantID())); err != nil {
		return err
	}
	s.mu.Lock()
	clear(s.cache)
	clear(s.actives)
	s.mu.Unlock()
	return nil
}

// WrappedSample is the signing keys' kms.WrappedSample: one private key as
// stored, wrapped under the root key, with its binding. The root key check
// tries a node's key on it in a database from before check values.
func WrappedSample(ctx context.Context, tx *storage.Tx) (wrapped, aad []byte, ok bool, err error) {
	var kid, tid string
	err = tx.QueryRow(ctx, `SELECT kid, tenant_id, private_wrapped FROM signing_keys ORDER BY created_at DESC LIMIT 1`).Scan(&kid, &tid, &wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("signing: read a key: %w", err)
	}
	return wrapped, Issuer{Tenant: tenant.ID(tid)}.binding(kid), true, nil
}

// RetireAll retires every issuer's active key. A root key replacement
// needs it: the private keys were wrapped under the old root key and no
// longer unwrap, so each issuer must make a new one (on its next token).
// The retired keys stay published for the token lifetime, as after a
// rotation. Run it with the nodes stopped: others are not told. It returns
// how many keys it retired.
func (s *Store) RetireAll(ctx context.Context) (int, error) {
	now := s.clock.Now()
	var n int64
	err := s.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE signing_keys SET retired_at = ?, published_until = ? WHERE retired_at = 0`,
			now.UnixMicro(), now.Add(s.lifetime).UnixMicro())
		if err != nil {
			return fmt.Errorf("signing: retire keys: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	clear(s.cache)
	clear(s.actives)
	s.mu.Unlock()
	return int(n), s.pub.loadAllIssuers(ctx)
}
