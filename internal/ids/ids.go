// Package ids makes Bulkhead's random identifiers and secrets.
package ids

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"strings"
)

var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// New returns prefix + "_" + 26 random base32 characters (130 bits), e.g. "wf_…".
func New(prefix string) string {
	var b [16]byte
	rand.Read(b[:]) // never fails; it crashes the program on an unusable source
	return prefix + "_" + lowerBase32.EncodeToString(b[:])
}

// Secret returns prefix + "_" + 32 random bytes in base64url, for bearer tokens.
func Secret(prefix string) string {
	var b [32]byte
	rand.Read(b[:])
	return prefix + "_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// HasPrefix reports whether s looks like an id made by New or Secret with prefix.
func HasPrefix(s, prefix string) bool { return strings.HasPrefix(s, prefix+"_") }

// Valid reports whether s has the form New(prefix) makes.
func Valid(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix+"_")
	if !ok || len(rest) != 26 {
		return false
	}
	for _, c := range rest {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
