package envelope

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// FieldRef names one column value of one row of one tenant: the
// encryption context of an encrypted field. A value encrypted for one
// FieldRef decrypts for that FieldRef only.
type FieldRef struct {
	// Tenant is the tenant id the row belongs to.
	Tenant string
	// Table names the table, as the application names it (schema
	// included if it has several).
	Table string
	// PrimaryKey is the row's primary key in one canonical text form
	// (strconv.FormatInt for integers, lower-case UUIDs): the same row
	// must always give the same string. For a key of several columns, use
	// CompositeKey.
	PrimaryKey string
	// Column names the column.
	Column string
}

// Field format constants (see the package documentation).
const (
	// FieldVersion1 is the first byte of every encrypted field value.
	FieldVersion1 byte = 0xF1
	// FieldPurpose is the value of FieldPurposeKey in the encryption
	// context of a field's data key.
	FieldPurpose = "field v1"
	// FieldPurposeKey is the encryption-context key that marks a data key
	// as one for fields.
	FieldPurposeKey = "bulkhead_purpose"

	fieldIDSize      = 32
	fieldFixedSize   = 1 + 2                              // version, wrapped length
	fieldTrailerSize = fieldIDSize + commitSize + tagSize // value id, commitment, tag
	fieldKDFInfo     = "bulkhead envelope field v1 AES-256-GCM HKDF-SHA256 commit"
)

// ErrFieldMismatch: the value was encrypted for another field (another
// table, row or column of the tenant) or it was modified. A value of
// another tenant fails earlier, in the provider, whose key for this
// tenant does not unwrap it.
var ErrFieldMismatch = errors.New("envelope: the value was not encrypted for this field (another table, row or column), or it was modified")

// CompositeKey encodes the columns of a composite primary key as one
// PrimaryKey: each part as its length in decimal, a colon, the part
// ("3:a|b1:c"). Joining with a separator would be ambiguous ("a|b"+"c"
// and "a"+"b|c" both give "a|b|c"); a length prefix is not.
func CompositeKey(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(strconv.Itoa(len(p)))
		b.WriteByte(':')
		b.WriteString(p)
	}
	return b.String()
}

// fieldContexts are a field's encryption contexts: the field's own,
// bound into its value's key, and its data key's, given to the provider.
type fieldContexts struct {
	field  []byte            // canonical encoding
	key    map[string]string // the data key's
	keyEnc []byte            // its canonical encoding
	tenant string
}

// contexts validates f and returns its contexts.
func (f FieldRef) contexts() (fieldContexts, error) {
	switch {
	case f.Tenant == "":
		return fieldContexts{}, fmt.Errorf("%w: field without a tenant", ErrInvalidContext)
	case f.Table == "" || f.Column == "" || f.PrimaryKey == "":
		return fieldContexts{}, fmt.Errorf("%w: a field needs a table, a primary key and a column", ErrInvalidContext)
	}
	var fc fieldContexts
	var err error
	fc.field, _, err = encodeContext(map[string]string{TenantKey: f.Tenant, "table": f.Table, "primary_key": f.PrimaryKey, "column": f.Column})
	if err != nil {
		return fieldContexts{}, err
	}
	fc.key = map[string]string{TenantKey: f.Tenant, FieldPurposeKey: FieldPurpose}
	fc.keyEnc, fc.tenant, err = encodeContext(fc.key)
	return fc, err
}

// fieldKeys derives the AEAD, nonce and commitment of one field value
// from the data key, the value id and the field's canonical context.
func fieldKeys(dk *[DataKeySize]byte, id, fieldContext []byte) (cipher.AEAD, []byte, []byte, error) {
	info := make([]byte, 0, len(fieldKDFInfo)+len(fieldContext))
	info = append(append(info, fieldKDFInfo...), fieldContext...)
	okm, err := hkdf.Key(sha256.New, dk[:], id, string(info), 32+nonceSize+commitSize)
	if err != nil {
		return nil, nil, nil, err
	}
	defer clear(okm[:32])
	block, err := aes.NewCipher(okm[:32])
	if err != nil {
		return nil, nil, nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, nil, err
	}
	return aead, okm[32 : 32+nonceSize], okm[32+nonceSize:], nil
}

// EncryptField encrypts one column value under a data key of keyID (the
// tenant's key id or alias) for the field f: the value decrypts only with
// DecryptField and the same f, so a value copied to another row, column,
// table or tenant does not decrypt. Data keys come from the Crypter's
// Cache like messages' (one per tenant and key, not one per row).
func (c *Crypter) EncryptField(ctx context.Context, keyID string, f FieldRef, plaintext []byte) ([]byte, error) {
	fc, err := f.contexts()
	if err != nil {
		return nil, err
	}
	var dk [DataKeySize]byte
	wrapped, err := c.encryptionKey(ctx, &dk, keyID, fc.tenant, fc.key, fc.keyEnc, uint64(len(plaintext)), true)
	if err != nil {
		return nil, err
	}
	var id [fieldIDSize]byte
	rand.Read(id[:])
	aead, nonce, commit, err := fieldKeys(&dk, id[:], fc.field)
	clear(dk[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, fieldFixedSize+len(wrapped)+fieldTrailerSize+len(plaintext))
	out = append(out, FieldVersion1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(wrapped)))
	out = append(out, wrapped...)
	out = append(out, id[:]...)
	out = append(out, commit...)
	return aead.Seal(out, nonce, plaintext, out), nil
}

// fieldValue is a parsed field value; its slices alias the input.
type fieldValue struct {
	wrapped, id, commit []byte
	header              []byte // everything before the ciphertext: the additional data
	sealed              []byte // ciphertext and tag
}

// parseField checks the structure of a field value.
func parseField(b []byte) (fieldValue, error) {
	if len(b) == 0 {
		return fieldValue{}, ErrTruncated
	}
	if b[0] != FieldVersion1 {
		return fieldValue{}, malformed("not a field value: version 0x%02x", b[0])
	}
	if len(b) < fieldFixedSize {
		return fieldValue{}, ErrTruncated
	}
	n := int(binary.BigEndian.Uint16(b[1:]))
	if n < 1 || n > MaxWrappedKeySize {
		return fieldValue{}, malformed("wrapped key length %d out of range", n)
	}
	end := fieldFixedSize + n + fieldIDSize + commitSize
	if len(b) < end+tagSize {
		return fieldValue{}, ErrTruncated
	}
	return fieldValue{
		wrapped: b[fieldFixedSize : fieldFixedSize+n],
		id:      b[fieldFixedSize+n : fieldFixedSize+n+fieldIDSize],
		commit:  b[end-commitSize : end],
		header:  b[:end],
		sealed:  b[end:],
	}, nil
}

// DecryptField decrypts a value of EncryptField for the field f. A value
// of another table, row or column of the tenant fails with
// ErrFieldMismatch, one of another tenant with the provider's refusal to
// unwrap its data key; a damaged one with ErrMalformed, ErrTruncated or
// ErrFieldMismatch. On an error no plaintext is returned.
func (c *Crypter) DecryptField(ctx context.Context, f FieldRef, value []byte) ([]byte, error) {
	fc, err := f.contexts()
	if err != nil {
		return nil, err
	}
	fv, err := parseField(value)
	if err != nil {
		return nil, err
	}
	var dk [DataKeySize]byte
	if err := c.decryptionKey(ctx, &dk, fc.tenant, fv.wrapped, fc.key, fc.keyEnc); err != nil {
		return nil, fmt.Errorf("envelope: field %q.%q of tenant %q: %w", f.Table, f.Column, f.Tenant, err)
	}
	aead, nonce, commit, err := fieldKeys(&dk, fv.id, fc.field)
	clear(dk[:])
	if err != nil {
		return nil, err
	}
	// The commitment depends on the data key and the whole field context:
	// compared first, it tells a value moved from another field (or
	// altered) before any decryption.
	if subtle.ConstantTimeCompare(commit, fv.commit) != 1 {
		return nil, fmt.Errorf("%w: %q.%q", ErrFieldMismatch, f.Table, f.Column)
	}
	pt, err := aead.Open(nil, nonce, fv.sealed, fv.header)
	if err != nil {
		return nil, fmt.Errorf("%w: %q.%q: the ciphertext does not authenticate", ErrFieldMismatch, f.Table, f.Column)
	}
	return pt, nil
}
