package connect

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// MaxTokenBytes bounds an upstream token (and so a pad).
const MaxTokenBytes = 8192

// partAPrefix starts every Part A, so that one is recognisable in a
// secret scanner and a key of another kind is refused at once.
const partAPrefix = "bhpa1"

const grantPrefix = "grt"

// PartA is a parsed Part A: the grant it belongs to and the pad.
//
// Its text form is "bhpa1.<tenant>.<grant id>.<pad, base64url without
// padding>". The pad is as long as the token and as random (crypto/rand):
// alone it is a one-time pad of nothing, and Part B (token XOR pad), alone,
// a one-time pad of the token.
type PartA struct {
	Tenant tenant.ID
	Grant  string
	Pad    []byte
}

// errPartA is the one answer to every Part A that does not parse or does
// not authenticate: it says nothing about which check failed.
func errPartA() error {
	return errs.E(errs.Unauthenticated, "invalid_part_a",
		"the bearer token is not a valid Part A of a connection grant (bhpa1.…); ask the connection's owner for the current one")
}

// ParsePartA parses the text form of a Part A. It checks the form only:
// Service.authenticate checks it against the grant's stored hash.
func ParsePartA(s string) (PartA, error) {
	if len(s) > len(partAPrefix)+2*64+base64.RawURLEncoding.EncodedLen(MaxTokenBytes)+8 {
		return PartA{}, errPartA()
	}
	parts := strings.Split(s, ".")
	if len(parts) != 4 || parts[0] != partAPrefix {
		return PartA{}, errPartA()
	}
	tid, err := tenant.ParseID(parts[1])
	if err != nil || !ids.Valid(parts[2], grantPrefix) || parts[3] == "" {
		return PartA{}, errPartA()
	}
	pad, err := base64.RawURLEncoding.Strict().DecodeString(parts[3])
	if err != nil || len(pad) == 0 || len(pad) > MaxTokenBytes || base64.RawURLEncoding.EncodedLen(len(pad)) != len(parts[3]) {
		// The decoder skips CR and LF: the length check keeps the text
		// canonical (one text per Part A), as its keyed hash needs.
		return PartA{}, errPartA()
	}
	return PartA{Tenant: tid, Grant: parts[2], Pad: pad}, nil
}

// String is the text form.
func (p PartA) String() string {
	return partAPrefix + "." + string(p.Tenant) + "." + p.Grant + "." + base64.RawURLEncoding.EncodeToString(p.Pad)
}

// split draws a pad as long as token and returns it with Part B = token
// XOR pad.
func split(token []byte) (pad, partB []byte) {
	pad = make([]byte, len(token))
	rand.Read(pad) // never fails; it crashes the program on an unusable source
	partB = make([]byte, len(token))
	for i := range token {
		partB[i] = token[i] ^ pad[i]
	}
	return pad, partB
}

// combine returns a XOR b into a new slice, or nil if their lengths differ.
func combine(a, b []byte) []byte {
	if len(a) != len(b) {
		return nil
	}
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

// keyedHash is the hex HMAC-SHA256 of the parts under key, each part
// length-prefixed so that no two lists of parts hash alike.
func keyedHash(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	var n [4]byte
	for _, p := range parts {
		n[0], n[1], n[2], n[3] = byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p))
		m.Write(n[:])
		m.Write([]byte(p))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// equalHash compares two hex hashes in constant time.
func equalHash(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }
