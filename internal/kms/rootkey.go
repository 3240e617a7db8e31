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
// not exist. created reports whether a key was made now.
func LoadRootKey(dir, envValue string) (k *RootKey, created bool, err error) {
	if envValue != "" {
		k, err := parseRootKey(envValue)
		if err != nil {
			return nil, false, fmt.Errorf("kms: BULKHEAD_ROOT_KEY: %w", err)
		}
		k.Source = "env"
		return k, false, nil
	}
	path := filepath.Join(dir, RootKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		var raw [RootKeySize]byte
		rand.Read(raw[:])
		enc := make([]byte, base64.StdEncoding.EncodedLen(RootKeySize)+1)
		base64.StdEncoding.Encode(enc, raw[:])
		enc[len(enc)-1] = '\n'
		clear(raw[:])
		defer clear(enc)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("kms: create root key: %w", err)
		}
		if _, err := f.Write(enc); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("kms: write root key: %w", err)
		}
		if err := errors.Join(f.Sync(), f.Close()); err != nil {
			return nil, false, fmt.Errorf("kms: write root key: %w", err)
		}
		b, created = append([]byte(nil), enc...), true
	} else if err != nil {
		return nil, false, fmt.Errorf("kms: read root key: %w", err)
	}
	k, err = parseRootKey(string(b))
	clear(b)
	if err != nil {
		return nil, false, fmt.Errorf("kms: %s: %w", path, err)
	}
	k.Source = "file:" + path
	return k, created, nil
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
