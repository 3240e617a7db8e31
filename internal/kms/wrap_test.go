package kms

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func testKey(b byte) *RootKey {
	k := &RootKey{Source: "test"}
	for i := range k.key {
		k.key[i] = b
	}
	return k
}

func TestWrapUnwrap(t *testing.T) {
	k := testKey(1)
	secret := []byte("signing key material")
	w, err := k.Wrap(secret, []byte("issuer=a|kid=1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(w, secret) || len(w) != wrapOverhead+len(secret) || w[0] != 1 {
		t.Fatalf("wrapped = %x", w)
	}
	got, err := k.Unwrap(w, []byte("issuer=a|kid=1"))
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("unwrap: %q %v", got, err)
	}
	w2, _ := k.Wrap(secret, []byte("issuer=a|kid=1"))
	if bytes.Equal(w, w2) {
		t.Error("two wraps are equal: the nonce is not random")
	}
	for name, tc := range map[string]struct {
		key     *RootKey
		wrapped []byte
		aad     string
	}{
		"other binding":  {k, w, "issuer=b|kid=1"},
		"other root key": {testKey(2), w, "issuer=a|kid=1"},
		"flipped bit":    {k, flip(w, len(w)-1), "issuer=a|kid=1"},
		"flipped nonce":  {k, flip(w, 3), "issuer=a|kid=1"},
		"bad version":    {k, flip(w, 0), "issuer=a|kid=1"},
		"truncated":      {k, w[:wrapOverhead-1], "issuer=a|kid=1"},
		"empty":          {k, nil, ""},
	} {
		if _, err := tc.key.Unwrap(tc.wrapped, []byte(tc.aad)); !errors.Is(err, ErrUnwrap) {
			t.Errorf("%s: err = %v; want ErrUnwrap", name, err)
		}
	}
}

// TestWrapKnownAnswer pins the format: a value wrapped under key 0x07…07
// with nonce 00…0b must keep unwrapping to the same plaintext.
func TestWrapKnownAnswer(t *testing.T) {
	w, _ := hex.DecodeString("01000102030405060708090a0b73e09d5d6d65b82019c680e49608f05c79b8ba3f72f2e11e195c9c1698")
	pt, err := testKey(7).Unwrap(w, []byte("kat"))
	if err != nil || string(pt) != "kat-plaintext" {
		t.Fatalf("known answer: %q %v", pt, err)
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 1
	return c
}

func FuzzUnwrap(f *testing.F) {
	k := testKey(3)
	w, _ := k.Wrap([]byte("seed"), []byte("aad"))
	f.Add(w, []byte("aad"))
	f.Add([]byte{1}, []byte(""))
	f.Add(bytes.Repeat([]byte{1}, 40), []byte("x"))
	f.Fuzz(func(t *testing.T, wrapped, aad []byte) {
		pt, err := k.Unwrap(wrapped, aad)
		if err == nil && (len(wrapped) < wrapOverhead || wrapped[0] != 1 || len(pt) != len(wrapped)-wrapOverhead) {
			t.Fatalf("accepted %x", wrapped)
		}
	})
}

func TestDerive(t *testing.T) {
	k := testKey(1)
	a, err := k.Derive("oidc-crypto")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := k.Derive("oidc-crypto")
	c, _ := k.Derive("other")
	d, _ := testKey(2).Derive("oidc-crypto")
	if a != b || a == c || a == d || a == [32]byte{} || bytes.Equal(a[:], k.key[:]) {
		t.Fatal("Derive is not a deterministic, label- and key-separated function")
	}
}
