package kms

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
)

// The root key check.
//
// A node whose root key is not the one its database's keys are wrapped
// under cannot unwrap any of them; it used to start anyway, report ready,
// and then fail every KMS call, token and sign-in. So the database records
// a check value of its root key at its first start, and OpenRootKey
// compares each node's key with it before anything else runs: a node with
// another key, or with none, refuses to start and says what to restore. A
// key is made only for a database that knows none, or when the operator
// asks for a replacement (bulkhead init --new-root-key).
//
// The check value is HKDF-SHA256 of the root key under a label of its own
// (RootKey.Derive), independent of every other key derived from the root
// key. It tells whether a key is the right one and nothing more: a key
// that matches it is found only by searching the 2^256 keys, and whoever
// reads it from the database can read wrapped keys there, which answer the
// same question. It is compared in constant time.

// checkLabel is the derivation label of the check value; a new label means
// a new format.
const checkLabel = "root-key-check/v1"

// The refusals of OpenRootKey; the errors it returns wrap them with what to
// do about them.
var (
	ErrRootKeyMissing  = errors.New("kms: this node has no root key, but the database already holds keys wrapped under one")
	ErrRootKeyMismatch = errors.New("kms: this node's root key is not the database's")
)

// A WrappedSample finds one piece of material that a service stored
// wrapped under the root key, with the additional data it is bound to, in
// tx (platform scope); ok is false when the service stores none. For a
// database from before check values were recorded, OpenRootKey tries the
// node's key on such material.
type WrappedSample func(ctx context.Context, tx *storage.Tx) (wrapped, aad []byte, ok bool, err error)

// RootKeyOptions say where a node's root key comes from and what
// OpenRootKey may do.
type RootKeyOptions struct {
	// Dir is the data directory; the key file is Dir/root.key.
	Dir string
	// Env is the base64 key from BULKHEAD_ROOT_KEY; it wins over the file.
	Env string
	// Replace makes the node's key the database's root key although the
	// database knows another (bulkhead init --new-root-key): the key from
	// Env or the file, or a new one written to the file if there is
	// neither. Everything wrapped under the old key becomes unreadable.
	Replace bool
	// Samples find material that other services wrapped under the root
	// key (the key service's own is always looked at).
	Samples []WrappedSample
	// Clock dates the record (default: the system clock).
	Clock clock.Clock
}

// RootKeyOpened says what OpenRootKey did besides returning the key.
type RootKeyOpened struct {
	// Created: a new key was written to Dir/root.key.
	Created bool
	// Replaced: the database's root key was replaced (Replace, and the
	// node's key was not already the database's).
	Replaced bool
	// Unreadable counts the tenant key versions wrapped under the previous
	// key, which no longer unwrap (when Replaced).
	Unreadable int
}

// OpenRootKey returns the node's root key once it is known to be db's:
// the one whose check value db recorded, or, for a database from before
// check values, one that unwraps material stored there (its check value is
// then recorded). For a database with neither, it records the node's key,
// making one in Dir/root.key if the node has none. A node without a key,
// or with another, gets ErrRootKeyMissing or ErrRootKeyMismatch, unless
// opts.Replace. Nodes that start together on one PostgreSQL database take
// turns, so a new database records one key and the others are checked
// against it.
func OpenRootKey(ctx context.Context, db *storage.DB, opts RootKeyOptions) (*RootKey, RootKeyOpened, error) {
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	var out RootKeyOpened
	k, err := readRootKey(opts.Dir, opts.Env)
	if err != nil {
		return nil, out, err
	}
	err = db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		if err := tx.Lock(ctx, "kms:root-key"); err != nil {
			return err
		}
		recorded, err := readCheck(ctx, tx)
		if err != nil {
			return err
		}
		// known reports whether a key is the one the database knows; nil
		// when it knows none (a new database).
		var known func(*RootKey) bool
		if recorded != nil {
			known = func(k *RootKey) bool { return k.matches(recorded) }
		} else {
			w, aad, ok, err := firstSample(ctx, tx, append([]WrappedSample{keyVersionSample}, opts.Samples...))
			if err != nil {
				return err
			}
			if ok {
				known = func(k *RootKey) bool {
					pt, err := k.Unwrap(w, aad)
					clear(pt)
					return err == nil
				}
			}
		}
		switch {
		case known == nil:
			if k == nil {
				if k, err = createRootKeyFile(opts.Dir); err != nil {
					return err
				}
				out.Created = true
			}
			return writeCheck(ctx, tx, k, opts.Clock)
		case k != nil && known(k):
			if recorded == nil {
				return writeCheck(ctx, tx, k, opts.Clock) // a database from before the check
			}
			return nil
		case !opts.Replace && k == nil:
			return missingKey(opts.Dir, recorded != nil)
		case !opts.Replace:
			return wrongKey(k, opts.Dir, recorded != nil)
		}
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM kms_key_versions WHERE material <> ''`).Scan(&out.Unreadable); err != nil {
			return fmt.Errorf("kms: count key versions: %w", err)
		}
		if k == nil {
			if k, err = createRootKeyFile(opts.Dir); err != nil {
				return err
			}
			out.Created = true
		}
		out.Replaced = true
		return writeCheck(ctx, tx, k, opts.Clock)
	})
	if err != nil {
		if out.Created {
			// The new key was not recorded (another node's was, or the
			// transaction failed): it must not be found at the next start.
			os.Remove(filepath.Join(opts.Dir, RootKeyFile))
		}
		if k != nil {
			k.Zero()
		}
		return nil, RootKeyOpened{}, err
	}
	return k, out, nil
}

// checkValue is the key's check value (see the top of this file).
func (k *RootKey) checkValue() ([32]byte, error) { return k.Derive(checkLabel) }

// matches reports, in constant time, whether recorded is k's check value.
func (k *RootKey) matches(recorded []byte) bool {
	v, err := k.checkValue()
	defer clear(v[:])
	return err == nil && subtle.ConstantTimeCompare(v[:], recorded) == 1
}

// readCheck returns the recorded check value, nil if none is.
func readCheck(ctx context.Context, tx *storage.Tx) ([]byte, error) {
	var enc string
	err := tx.QueryRow(ctx, `SELECT check_value FROM kms_root_key WHERE id = 1`).Scan(&enc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kms: read the root key's check value: %w", err)
	}
	v, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(v) == 0 {
		return nil, errors.New("kms: the root key's check value in the database is unreadable")
	}
	return v, nil
}

// writeCheck records k's check value as the database's, replacing any.
func writeCheck(ctx context.Context, tx *storage.Tx, k *RootKey, clk clock.Clock) error {
	v, err := k.checkValue()
	if err != nil {
		return err
	}
	now := clk.Now().UnixMicro()
	_, err = tx.Exec(ctx, `INSERT INTO kms_root_key (id, check_value, created_at, updated_at) VALUES (1, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET check_value = excluded.check_value, updated_at = excluded.updated_at`,
		base64.StdEncoding.EncodeToString(v[:]), now, now)
	if err != nil {
		return fmt.Errorf("kms: record the root key's check value: %w", err)
	}
	return nil
}

// firstSample returns the first material one of samples finds.
func firstSample(ctx context.Context, tx *storage.Tx, samples []WrappedSample) (wrapped, aad []byte, ok bool, err error) {
	for _, s := range samples {
		if wrapped, aad, ok, err = s(ctx, tx); err != nil || ok {
			return wrapped, aad, ok, err
		}
	}
	return nil, nil, false, nil
}

// keyVersionSample is the key service's own WrappedSample: a tenant key
// version whose material is not destroyed.
func keyVersionSample(ctx context.Context, tx *storage.Tx) ([]byte, []byte, bool, error) {
	var tid, keyID, material string
	var version int
	err := tx.QueryRow(ctx, `SELECT tenant_id, key_id, version, material FROM kms_key_versions WHERE material <> '' LIMIT 1`).
		Scan(&tid, &keyID, &version, &material)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("kms: read a key version: %w", err)
	}
	w, err := base64.StdEncoding.DecodeString(material)
	if err != nil {
		return nil, nil, false, fmt.Errorf("kms: stored material of %s v%d: %w", keyID, version, err)
	}
	return w, wrapAAD(tid, keyID, version), true, nil
}

// lostKeyAdvice ends both refusals: what the operator may do when the
// database's key cannot be found.
const lostKeyAdvice = "Only if that key is lost for good: `bulkhead init --new-root-key` makes this node's key " +
	"(or a new one) the database's root key, and everything wrapped under the old one " +
	"(tenant keys and the data they encrypt, signing keys, TOTP secrets) becomes unreadable"

func missingKey(dir string, recorded bool) error {
	why := "it holds keys wrapped under a root key"
	if recorded {
		why = "its root key's check value was recorded at its first start"
	}
	return fmt.Errorf("%w (%s); this node has neither BULKHEAD_ROOT_KEY nor %s. "+
		"Restore the root key every node of this database uses: copy root.key from a backup or from another node into %s, "+
		"or set BULKHEAD_ROOT_KEY. %s", ErrRootKeyMissing, why, filepath.Join(dir, RootKeyFile), dir, lostKeyAdvice)
}

func wrongKey(k *RootKey, dir string, recorded bool) error {
	why := "does not unwrap the keys stored in the database"
	if recorded {
		why = "does not match the check value the database recorded at its first start"
	}
	return fmt.Errorf("%w: the root key from %s %s. "+
		"Give this node the root key every node of this database uses (restore %s from a backup or from another node, "+
		"or set BULKHEAD_ROOT_KEY to it). %s", ErrRootKeyMismatch, k.Origin(), why, filepath.Join(dir, RootKeyFile), lostKeyAdvice)
}

// Origin names where the key came from, for messages: "the file <path>"
// or "BULKHEAD_ROOT_KEY".
func (k *RootKey) Origin() string {
	if p, ok := strings.CutPrefix(k.Source, "file:"); ok {
		return "the file " + p
	}
	if k.Source == "env" {
		return "BULKHEAD_ROOT_KEY"
	}
	return k.Source
}
