package envelope

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// fuzzSeeds returns valid messages of a few shapes (64-byte frames) and
// damaged ones.
func fuzzSeeds(tb testing.TB, c *Crypter) [][]byte {
	var seeds [][]byte
	for _, n := range []int{0, 1, 63, 64, 65, 200} {
		b, err := c.Encrypt(testCtx, testKeyID, acmeEC(), testData(n))
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	full := seeds[len(seeds)-1]
	seeds = append(seeds,
		full[:len(full)/2],             // truncated
		append(bytes.Clone(full), 0),   // trailing byte
		full[:fixedHeaderSize],         // header prefix
		[]byte{Version1},               // version only
		[]byte{Version1, 0x02},         // unknown algorithm
		[]byte{0x00, 0x01, 0x02, 0x03}, // unknown version
		nil,
	)
	return seeds
}

// FuzzParseBlob: parseBlob never panics; it refuses with ErrMalformed or
// ErrTruncated; what it accepts re-encodes to the same header, and the
// reader's header parser agrees with it.
func FuzzParseBlob(f *testing.F) {
	c := newCrypter(f, newLocalProvider("acme"), 64, NewCache(CacheConfig{}))
	for _, s := range fuzzSeeds(f, c) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var h, hr header
		total, err := parseBlob(data, &h)
		rerr := readHeader(bytes.NewReader(data), &hr)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("error of an unknown kind: %v", err)
			}
			return // readHeader may accept the header of bad frames
		}
		if rerr != nil {
			t.Fatalf("parseBlob accepted, readHeader: %v", rerr)
		}
		if total > len(data) || h.size() > len(data) {
			t.Fatalf("total %d, header %d of %d bytes", total, h.size(), len(data))
		}
		enc := appendHeader(nil, h.alg, h.msgID, h.frameSize, h.context, h.wrapped, h.commit)
		enc = append(enc, h.tag...)
		if !bytes.Equal(enc, data[:h.size()]) || !bytes.Equal(hr.authed, h.authed) || !bytes.Equal(hr.tag, h.tag) {
			t.Fatal("header does not re-encode to the input")
		}
		ec, err := parseContext(h.context)
		if err != nil {
			t.Fatal(err)
		}
		ecb, _, err := encodeContext(ec)
		if err != nil || !bytes.Equal(ecb, h.context) {
			t.Fatalf("context not canonical: %v", err)
		}
	})
}

// parseContext decodes a canonical context encoding (checkContext has
// checked it).
func parseContext(b []byte) (map[string]string, error) {
	if err := checkContext(b); err != nil {
		return nil, err
	}
	ec := map[string]string{}
	for b = b[2:]; len(b) > 0; {
		k, rest, _ := cut16(b)
		v, rest, _ := cut16(rest)
		ec[string(k)], b = string(v), rest
	}
	return ec, nil
}

// FuzzDecryptReader: the decrypting reader never panics and agrees with
// Decrypt: it ends in io.EOF exactly when Decrypt succeeds, with the same
// plaintext; when it fails, it has released whole authenticated frames
// only, and its error is of a known kind.
func FuzzDecryptReader(f *testing.F) {
	c := newCrypter(f, newLocalProvider("acme"), 64, NewCache(CacheConfig{}))
	for _, s := range fuzzSeeds(f, c) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, derr := c.Decrypt(testCtx, data, acmeEC())
		var got []byte
		r, err := c.NewDecryptReader(testCtx, bytes.NewReader(data), acmeEC())
		if err == nil {
			got, err = io.ReadAll(r)
		}
		if (err == nil) != (derr == nil) {
			t.Fatalf("reader: %v; Decrypt: %v", err, derr)
		}
		if err == nil {
			if !bytes.Equal(got, want) {
				t.Fatal("reader and Decrypt disagree")
			}
			return
		}
		var h header
		if _, herr := parseHeader(data, &h); len(got) > 0 && (herr != nil || len(got)%h.frameSize != 0) {
			t.Fatalf("reader released %d bytes before failing: not whole frames", len(got))
		}
		for _, e := range []error{ErrMalformed, ErrTruncated, ErrAuthentication, ErrContextMismatch, errTenantMismatch} {
			if errors.Is(err, e) {
				return
			}
		}
		if !bytes.Contains([]byte(err.Error()), []byte("localProvider")) {
			t.Fatalf("error of an unknown kind: %v", err)
		}
	})
}
