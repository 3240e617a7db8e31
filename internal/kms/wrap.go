package kms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Wrapped key material format, version 1:
//
//	byte 0      format version (1)
//	bytes 1-12  random GCM nonce
//	bytes 13-   AES-256-GCM ciphertext and 16-byte tag
//
// The caller's additional data binds the material to where it belongs (for
// a signing key: the issuer and key id), so wrapped bytes copied to another
// row fail to unwrap.
const wrapVersion = 1

const wrapOverhead = 1 + 12 + 16

// ErrUnwrap is returned for wrapped material that is malformed, was wrapped
// under another root key, or is bound to other additional data.
var ErrUnwrap = errors.New("kms: wrapped key material does not unwrap under this root key and binding")

func (k *RootKey) aead() (cipher.AEAD, error) {
	block, err := aes.NewCipher(k.key[:])
	if err != nil {
		return nil, fmt.Errorf("kms: %w", err)
	}
	return cipher.NewGCM(block)
}

// Wrap seals plaintext (key material, at most 64 KiB) under the root key,
// bound to aad.
func (k *RootKey) Wrap(plaintext, aad []byte) ([]byte, error) {
	if len(plaintext) > 64<<10 {
		return nil, errors.New("kms: key material over 64 KiB")
	}
	g, err := k.aead()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+g.NonceSize(), wrapOverhead+len(plaintext))
	out[0] = wrapVersion
	rand.Read(out[1:])
	return g.Seal(out, out[1:1+g.NonceSize()], plaintext, aad), nil
}

// Unwrap opens material made by Wrap with the same root key and aad. The
// caller should clear the result when done with it.
func (k *RootKey) Unwrap(wrapped, aad []byte) ([]byte, error) {
	if len(wrapped) < wrapOverhead || wrapped[0] != wrapVersion {
		return nil, ErrUnwrap
	}
	g, err := k.aead()
	if err != nil {
		return nil, err
	}
	pt, err := g.Open(nil, wrapped[1:1+g.NonceSize()], wrapped[1+g.NonceSize():], aad)
	if err != nil {
		return nil, ErrUnwrap
	}
	return pt, nil
}

// Derive returns a 256-bit key for one purpose, derived from the root key
// with HKDF-SHA256 and label as the info string. Different labels give
// independent keys; the root key itself never leaves this package.
func (k *RootKey) Derive(label string) ([32]byte, error) {
	var out [32]byte
	b, err := hkdf.Key(sha256.New, k.key[:], nil, "bulkhead:"+label, len(out))
	if err != nil {
		return out, fmt.Errorf("kms: derive %s: %w", label, err)
	}
	copy(out[:], b)
	clear(b)
	return out, nil
}
