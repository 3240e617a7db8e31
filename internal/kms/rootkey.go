// Package kms is Bulkhead's key hierarchy. This version holds the root key:
// 256 bits from a key file in the data directory (created on first start,
// mode 0600) or from the BULKHEAD_ROOT_KEY environment variable. Tenant keys,
// envelope encryption and rotation build on it.
package kms

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// RootKeySize is the root key's length in bytes.
const RootKeySize = 32

// RootKeyFile is the root key's file name in the data directory.
const RootKeyFile = "root.key"

// RootKey is the key that wraps every tenant key.
type RootKey struct {
	key    [RootKeySize]byte
	Source string // "file:<path>" or "env"
}

// String names the key's source, never its material.
func (k *RootKey) String() string { return "RootKey(" + k.Source + ")" }

// LogValue keeps the key out of structured logs.
func (k *RootKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Zero overwrites the key material.
func (k *RootKey) Zero() { clear(k.key[:]) }

// LoadRootKey returns the root key from envValue (base64) when it is set,
// or from dir/root.key, creating that file with a new random key if it does
// not exist. created reports whether a key was made now. It checks nothing
// against a database: a node opens its key with OpenRootKey, which makes a
// key only for a database that has none.
func LoadRootKey(dir, envValue string) (k *RootKey, created bool, err error) {
	if k, err = readRootKey(dir, envValue); err != nil || k != nil {
		return k, false, err
	}
	k, err = createRootKeyFile(dir)
	return k, err == nil, err
}

// readRootKey returns the root key from envValue (base64) when it is set,
// or from dir/root.key; nil, without an error, when there is neither.
func readRootKey(dir, envValue string) (*RootKey, error) {
	if envValue != "" {
		k, err := parseRootKey(envValue)
		if err != nil {
			return nil, fmt.Errorf("kms: BULKHEAD_ROOT_KEY: %w", err)
		}
		k.Source = "env"
		return k, nil
	}
	path := filepath.Join(dir, RootKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kms: read root key: %w", err)
	}
	k, err := parseRootKey(string(b))
	clear(b)
	if err != nil {
		return nil, fmt.Errorf("kms: %s: %w", path, err)
	}
	k.Source = "file:" + path
	return k, nil
}

// createRootKeyFile makes a new random root key in dir/root.key (mode
// 0600), which must not exist, and returns it once the file is synced.
func createRootKeyFile(dir string) (*RootKey, error) {
	path := filepath.Join(dir, RootKeyFile)
	k := &RootKey{Source: "file:" + path}
	rand.Read(k.key[:])
	enc := make([]byte, base64.StdEncoding.EncodedLen(RootKeySize)+1)
	defer clear(enc)
	base64.StdEncoding.Encode(enc, k.key[:])
	enc[len(enc)-1] = '\n'
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		k.Zero()
		return nil, fmt.Errorf("kms: create root key: %w", err)
	}
	_, err = f.Write(enc)
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		os.Remove(path) // a partial file would stop the next start
		k.Zero()
		return nil, fmt.Errorf("kms: write root key: %w", err)
	}
	return k, nil
}

func parseRootKey(s string) (*RootKey, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(raw) != RootKeySize {
		clear(raw)
		return nil, errors.New("root key must be 32 bytes in standard base64")
	}
	k := &RootKey{}
	copy(k.key[:], raw)
	clear(raw)
	return k, nil
}
