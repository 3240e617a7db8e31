package kms

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

// TestKnownAnswer pins the ciphertext format: a fixed key, key id, version,
// nonce, plaintext and context give exactly these bytes. A change here is
// a change of the format, which old ciphertexts would not survive.
func TestKnownAnswer(t *testing.T) {
	material, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	nonce, _ := hex.DecodeString("a0a1a2a3a4a5a6a7a8a9aaab")
	g, err := aeadFor(material)
	if err != nil {
		t.Fatal(err)
	}
	ec := Context{"tenant_id": "acme", "record": "42"}
	ct := sealNonce(g, "key_aaaaaaaaaaaaaaaaaaaaaaaaaa", 3, nonce, []byte("hello, tenant"), ec)
	const want = "011e6b65795f616161616161616161616161616161616161616161616161616100000003" +
		"a0a1a2a3a4a5a6a7a8a9aaab"
	if got := hex.EncodeToString(ct[:len(want)/2]); got != want {
		t.Fatalf("header = %s, want %s", got, want)
	}
	// AES-256-GCM of "hello, tenant" (13 bytes) and its 16-byte tag, with
	// AAD "bulkhead-kms-v1" || header || canonical context.
	const wantSealed = "8e7d10412ae722cb070be6bd735c15ed30614a3b90114bf84cb1da22aa"
	if got := hex.EncodeToString(ct[len(want)/2:]); got != wantSealed {
		t.Fatalf("sealed = %s, want %s", got, wantSealed)
	}
	h, hdr, n, sealed, err := parseCiphertext(ct)
	if err != nil || h.keyID != "key_aaaaaaaaaaaaaaaaaaaaaaaaaa" || h.version != 3 || !bytes.Equal(n, nonce) {
		t.Fatalf("parse: %+v %v", h, err)
	}
	pt, err := open(g, hdr, n, sealed, ec)
	if err != nil || string(pt) != "hello, tenant" {
		t.Fatalf("open: %q %v", pt, err)
	}
}

func TestCiphertextTampering(t *testing.T) {
	material := bytes.Repeat([]byte{7}, 32)
	g, _ := aeadFor(material)
	ec := Context{"tenant_id": "acme"}
	ct := seal(g, "key_bbbbbbbbbbbbbbbbbbbbbbbbbb", 1, []byte("secret"), ec)
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 0x01
		h, hdr, n, sealed, err := parseCiphertext(bad)
		if err == nil && h.keyID == "key_bbbbbbbbbbbbbbbbbbbbbbbbbb" && h.version == 1 {
			if _, err := open(g, hdr, n, sealed, ec); err == nil {
				t.Fatalf("flipping byte %d went unnoticed", i)
			}
		}
	}
	for n := range len(ct) {
		if _, _, _, _, err := parseCiphertext(ct[:n]); err == nil && n < len(ct) {
			h, hdr, nn, sealed, _ := parseCiphertext(ct[:n])
			_ = h
			if _, err := open(g, hdr, nn, sealed, ec); err == nil {
				t.Fatalf("a ciphertext cut to %d bytes opened", n)
			}
		}
	}
	_, hdr, n, sealed, _ := parseCiphertext(ct)
	for _, other := range []Context{{"tenant_id": "acme", "x": "y"}, {"tenant_id": "acmf"}, {}, nil} {
		if _, err := open(g, hdr, n, sealed, other); !errs.Is(err, "invalid_ciphertext") {
			t.Errorf("context %v: %v", other, err)
		}
	}
	// Canonical encoding: the pairs' order does not matter, their content does.
	a := Context{"a": "bc", "d": ""}.appendCanonical(nil)
	b := Context{"ab": "c", "d": ""}.appendCanonical(nil)
	if bytes.Equal(a, b) {
		t.Error("canonical encoding is ambiguous")
	}
}

// FuzzParseCiphertext: any bytes parse or fail cleanly; what parses
// re-encodes to the same header.
func FuzzParseCiphertext(f *testing.F) {
	g, _ := aeadFor(bytes.Repeat([]byte{1}, 32))
	f.Add(seal(g, "key_cccccccccccccccccccccccccc", 1, []byte("x"), Context{"tenant_id": "t"}))
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 64})
	f.Add([]byte{2, 3, 'a', 'b', 'c', 0, 0, 0, 1})
	f.Add(append([]byte{1, 3, 'a', 'b', 'c', 0, 0, 0, 0}, make([]byte, 40)...))
	f.Add(append([]byte{1, 3, 'a', ' ', 'c', 0, 0, 0, 1}, make([]byte, 40)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, hdr, n, sealed, err := parseCiphertext(b)
		if err != nil {
			if _, ok := errs.As(err); !ok {
				t.Fatalf("error %v is not a service error", err)
			}
			return
		}
		if !bytes.Equal(encodeHeader(h.keyID, h.version), hdr) || len(n) != nonceSize || len(sealed) < tagSize {
			t.Fatalf("%x: parsed %+v inconsistently", b, h)
		}
		if _, err := open(g, hdr, n, sealed, Context{"tenant_id": "t"}); err == nil && !bytes.HasPrefix(b, []byte{1, 30}) {
			t.Fatalf("%x opened", b)
		}
	})
}
