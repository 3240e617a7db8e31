// Package certs gets and serves the gateway's TLS certificates for tenants'
// verified custom domains, with certmagic over ACME: its storage is
// Bulkhead's own database, so every node serves every certificate and only
// one node at a time asks a CA for a name.
package certs

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
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
)

//go:embed migrations
var migrations embed.FS

// Migrations returns the certificate store's migrations. Its tables are the
// platform's: certificates are the gateway's, whoever's domain they name.
func Migrations() storage.Component {
	c := storage.Embedded("certs", migrations)
	c.RowSecurity = map[string]storage.Rows{
		"cert_store": storage.PlatformRows(),
		"cert_locks": storage.PlatformRows(),
	}
	return c
}

// Storage is a certmagic.Storage in Bulkhead's database. Values (private
// keys among them) are sealed with AES-GCM under a key derived from the
// node's root key, bound to their storage key, so a copy of the table
// yields no private key and a value moved to another key does not open.
//
// Its locks are lease rows: Lock inserts a row naming this Storage, or takes
// over one whose lease has run out (a node that died holding it); Unlock
// deletes the row if it is still this Storage's. certmagic renews the lease
// through RenewLockLease while it retries an order.
type Storage struct {
	db    *storage.DB
	aead  cipher.AEAD
	clock clock.Clock
	owner string
	lease time.Duration
	poll  time.Duration
}

var (
	_ certmagic.Storage          = (*Storage)(nil)
	_ certmagic.TryLocker        = (*Storage)(nil)
	_ certmagic.LockLeaseRenewer = (*Storage)(nil)
)

// StorageConfig configures a Storage.
type StorageConfig struct {
	DB    *storage.DB
	Key   []byte      // 32 bytes that seal the values
	Clock clock.Clock // default clock.System
	// Lease is how long a lock lasts unless renewed or released (default
	// 5 minutes): how long a name waits after its holder died.
	Lease time.Duration
	// Poll is how often Lock looks again at a held lock (default 1 s).
	Poll time.Duration
}

// NewStorage returns a Storage.
func NewStorage(cfg StorageConfig) (*Storage, error) {
	if len(cfg.Key) != 32 {
		return nil, errors.New("certs: the storage key must be 32 bytes")
	}
	block, err := aes.NewCipher(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 5 * time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	return &Storage{db: cfg.DB, aead: aead, clock: cfg.Clock, owner: ids.New("lock"), lease: cfg.Lease, poll: cfg.Poll}, nil
}

var platform = storage.PlatformScope()

func (s *Storage) seal(key string, value []byte) string {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(value)+s.aead.Overhead())
	rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, value, []byte("certmagic:"+key)))
}

func (s *Storage) open(key, sealed string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return nil, fmt.Errorf("certs: load %s: malformed value", key)
	}
	n := s.aead.NonceSize()
	out, err := s.aead.Open(nil, raw[:n], raw[n:], []byte("certmagic:"+key))
	if err != nil {
		return nil, fmt.Errorf("certs: load %s: the value does not open under this key", key)
	}
	return out, nil
}

// Store puts value at key.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	now := s.clock.Now().UnixMilli()
	err := s.db.Update(ctx, platform, func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO cert_store (key, value, size, modified) VALUES (?, ?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, size = excluded.size, modified = excluded.modified`,
			key, s.seal(key, value), len(value), now)
		return err
	})
	if err != nil {
		return fmt.Errorf("certs: store %s: %w", key, err)
	}
	return nil
}

// Load returns the value at key, fs.ErrNotExist if there is none.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	var sealed string
	err := s.db.View(ctx, platform, func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT value FROM cert_store WHERE key = ?`, key).Scan(&sealed)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fs.ErrNotExist
	}
	if err != nil {
		return nil, fmt.Errorf("certs: load %s: %w", key, err)
	}
	return s.open(key, sealed)
}

// under is a LIKE pattern for the keys below prefix ("directory").
func under(prefix string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(strings.TrimSuffix(prefix, "/")) + `/%`
}

// Delete deletes key and every key below it.
func (s *Storage) Delete(ctx context.Context, key string) error {
	err := s.db.Update(ctx, platform, func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM cert_store WHERE key = ? OR key LIKE ? ESCAPE '\'`, key, under(key))
		return err
	})
	if err != nil {
		return fmt.Errorf("certs: delete %s: %w", key, err)
	}
	return nil
}

// Exists reports whether key is a value or has values below it.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List returns the keys directly below prefix, or every key and
// "directory" below it if recursive.
func (s *Storage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	var keys []string
	err := s.db.View(ctx, platform, func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT key FROM cert_store WHERE key LIKE ? ESCAPE '\' ORDER BY key`, under(prefix))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				return err
			}
			keys = append(keys, k)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("certs: list %s: %w", prefix, err)
	}
	if len(keys) == 0 {
		return nil, fs.ErrNotExist
	}
	base := strings.TrimSuffix(prefix, "/")
	seen := map[string]bool{}
	var out []string
	for _, k := range keys {
		rest := strings.Split(strings.TrimPrefix(k, base+"/"), "/")
		n := len(rest)
		if !recursive {
			n = 1
		}
		for i := 1; i <= n; i++ {
			p := path.Join(append([]string{base}, rest[:i]...)...)
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// Stat describes key: a value, or a "directory" of values.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	var size, modified int64
	var dir bool
	err := s.db.View(ctx, platform, func(tx *storage.Tx) error {
		err := tx.QueryRow(ctx, `SELECT size, modified FROM cert_store WHERE key = ?`, key).Scan(&size, &modified)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		dir = true
		return tx.QueryRow(ctx, `SELECT COALESCE(MAX(modified), 0), COUNT(*) FROM cert_store WHERE key LIKE ? ESCAPE '\'`, under(key)).Scan(&modified, &size)
	})
	if err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("certs: stat %s: %w", key, err)
	}
	if dir {
		if size == 0 {
			return certmagic.KeyInfo{}, fs.ErrNotExist
		}
		return certmagic.KeyInfo{Key: key, Modified: time.UnixMilli(modified).UTC(), IsTerminal: false}, nil
	}
	return certmagic.KeyInfo{Key: key, Modified: time.UnixMilli(modified).UTC(), Size: size, IsTerminal: true}, nil
}

// TryLock takes the lock name if no one holds it, or its holder's lease
// has run out.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	now := s.clock.Now()
	expires := now.Add(s.lease).UnixMilli()
	var got bool
	err := s.db.Update(ctx, platform, func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `INSERT INTO cert_locks (name, owner, expires) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires
			WHERE cert_locks.expires <= ?`, name, s.owner, expires, now.UnixMilli())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		got = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("certs: lock %s: %w", name, err)
	}
	return got, nil
}

// Lock waits for the lock name.
func (s *Storage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		timer, c := s.clock.NewTimer(s.poll)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-c:
		}
	}
}

// Unlock releases the lock name if this Storage still holds it.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	err := s.db.Update(ctx, platform, func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM cert_locks WHERE name = ? AND owner = ?`, name, s.owner)
		return err
	})
	if err != nil {
		return fmt.Errorf("certs: unlock %s: %w", name, err)
	}
	return nil
}

// RenewLockLease extends this Storage's lease on the lock; it fails if the
// lock is no longer this Storage's (its lease ran out and another took it).
func (s *Storage) RenewLockLease(ctx context.Context, name string, lease time.Duration) error {
	expires := s.clock.Now().Add(lease).UnixMilli()
	return s.db.Update(ctx, platform, func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE cert_locks SET expires = ? WHERE name = ? AND owner = ?`, expires, name, s.owner)
		if err != nil {
			return fmt.Errorf("certs: renew lock %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("certs: renew lock %s: not held", name)
		}
		return nil
	})
}
