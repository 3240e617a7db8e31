package kms

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

// Ciphertext format, version 1 (what encrypt and generate-data-key return):
//
//	byte  0       format version (1)
//	byte  1       n, the length of the key id (1..64)
//	bytes 2..     the key id (ASCII, e.g. key_…)
//	4 bytes       the key version, big-endian
//	12 bytes      the GCM nonce (random)
//	rest          AES-256-GCM ciphertext and 16-byte tag
//
// The additional authenticated data is "bulkhead-kms-v1", then the header
// (every byte before the nonce), then the canonical encoding of the
// encryption context: its pairs sorted by key, each as uvarint(len(key)),
// key, uvarint(len(value)), value. A ciphertext opens only under the same
// key version and exactly the same context; changing any header byte, any
// pair, or adding or removing one, makes it fail.
const ciphertextVersion = 1

const (
	nonceSize = 12
	tagSize   = 16
	maxKeyID  = 64
)

// Limits on an encryption context.
const (
	MaxContextPairs = 64
	maxContextKey   = 128
	maxContextValue = 1024
)

var aadPrefix = []byte("bulkhead-kms-v1")

// header is a parsed ciphertext header.
type header struct {
	keyID   string
	version int
}

// errBadCiphertext is every malformed ciphertext's error: it does not say
// which part was wrong.
func errBadCiphertext() error {
	return errs.Field("ciphertext", "invalid_ciphertext", "the ciphertext is not one Bulkhead made, or it was altered")
}

// encodeHeader returns the header of a ciphertext of key keyID, version v.
func encodeHeader(keyID string, v int) []byte {
	b := make([]byte, 0, 2+len(keyID)+4+nonceSize)
	b = append(b, ciphertextVersion, byte(len(keyID)))
	b = append(b, keyID...)
	return binary.BigEndian.AppendUint32(b, uint32(v))
}

// parseCiphertext splits a ciphertext into its header, header bytes,
// nonce and sealed part.
func parseCiphertext(ct []byte) (h header, hdr, nonce, sealed []byte, err error) {
	if len(ct) < 2 || ct[0] != ciphertextVersion {
		return h, nil, nil, nil, errBadCiphertext()
	}
	n := int(ct[1])
	if n == 0 || n > maxKeyID || len(ct) < 2+n+4+nonceSize+tagSize {
		return h, nil, nil, nil, errBadCiphertext()
	}
	id := ct[2 : 2+n]
	for _, c := range id {
		if c < 0x21 || c > 0x7e {
			return h, nil, nil, nil, errBadCiphertext()
		}
	}
	v := binary.BigEndian.Uint32(ct[2+n:])
	if v == 0 || v > 1<<30 {
		return h, nil, nil, nil, errBadCiphertext()
	}
	end := 2 + n + 4
	return header{keyID: string(id), version: int(v)}, ct[:end], ct[end : end+nonceSize], ct[end+nonceSize:], nil
}

// seal encrypts plaintext under g (a key version's AEAD) with ec and a
// random nonce.
func seal(g cipher.AEAD, keyID string, v int, plaintext []byte, ec Context) []byte {
	var nonce [nonceSize]byte
	rand.Read(nonce[:])
	return sealNonce(g, keyID, v, nonce[:], plaintext, ec)
}

// sealNonce is seal with a given nonce (the known-answer test pins one).
func sealNonce(g cipher.AEAD, keyID string, v int, nonce, plaintext []byte, ec Context) []byte {
	hdr := encodeHeader(keyID, v)
	out := make([]byte, len(hdr)+nonceSize, len(hdr)+nonceSize+len(plaintext)+tagSize)
	copy(out, hdr)
	copy(out[len(hdr):], nonce)
	return g.Seal(out, out[len(hdr):], plaintext, aad(hdr, ec))
}

// open decrypts the sealed part of a parsed ciphertext.
func open(g cipher.AEAD, hdr, nonce, sealed []byte, ec Context) ([]byte, error) {
	pt, err := g.Open(nil, nonce, sealed, aad(hdr, ec))
	if err != nil {
		return nil, errs.Field("ciphertext", "invalid_ciphertext",
			"the ciphertext does not decrypt with this encryption context (every pair must match the one it was encrypted with)")
	}
	return pt, nil
}

func aad(hdr []byte, ec Context) []byte {
	b := make([]byte, 0, len(aadPrefix)+len(hdr)+64)
	b = append(b, aadPrefix...)
	b = append(b, hdr...)
	return ec.appendCanonical(b)
}

// Context is an encryption context: pairs bound to a ciphertext. Bulkhead
// requires the pair tenant_id = the caller's tenant in every context.
type Context map[string]string

// ContextTenantKey is the context key that must name the caller's tenant.
const ContextTenantKey = "tenant_id"

// appendCanonical appends the canonical encoding of c.
func (c Context) appendCanonical(b []byte) []byte {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(c[k])))
		b = append(b, c[k]...)
	}
	return b
}

// check validates the context's shape (not its tenant) under field.
func (c Context) check(field string) error {
	if len(c) > MaxContextPairs {
		return errs.Field(field, "invalid_encryption_context", "an encryption context has at most %d pairs", MaxContextPairs)
	}
	for k, v := range c {
		if k == "" || len(k) > maxContextKey || !utf8.ValidString(k) {
			return errs.Field(field, "invalid_encryption_context", "context keys are 1 to %d bytes of UTF-8", maxContextKey)
		}
		if len(v) > maxContextValue || !utf8.ValidString(v) {
			return errs.Field(field, "invalid_encryption_context", "context values are at most %d bytes of UTF-8", maxContextValue)
		}
	}
	return nil
}

// errContextTenant is the refusal of a context that does not name the caller's tenant.
var errContextTenant = errors.New("context_tenant_mismatch")

// checkTenant requires the pair tenant_id = tid.
func (c Context) checkTenant(field string, tid string) error {
	if err := c.check(field); err != nil {
		return err
	}
	if got, ok := c[ContextTenantKey]; !ok || got != tid {
		return &errs.Error{Kind: errs.Forbidden, Code: "context_tenant_mismatch", Field: field,
			Detail: fmt.Sprintf("the encryption context must contain %q with the caller's tenant", ContextTenantKey), Err: errContextTenant}
	}
	return nil
}
