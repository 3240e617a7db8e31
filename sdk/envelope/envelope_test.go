package envelope

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// decryptStream decrypts blob through a reader, reading with read (which
// may be iotest.OneByteReader and such), and returns what it released
// before any error.
func decryptStream(c *Crypter, blob []byte, ec map[string]string, wrap func(io.Reader) io.Reader) ([]byte, error) {
	var src io.Reader = bytes.NewReader(blob)
	if wrap != nil {
		src = wrap(src)
	}
	r, err := c.NewDecryptReader(testCtx, src, ec)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// encryptStream encrypts pt through a writer in writes of chunk bytes.
func encryptStream(t testing.TB, c *Crypter, pt []byte, ec map[string]string, chunk int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := c.NewEncryptWriter(testCtx, &buf, testKeyID, ec)
	if err != nil {
		t.Fatal(err)
	}
	for p := pt; len(p) > 0; {
		n := min(chunk, len(p))
		if k, err := w.Write(p[:n]); err != nil || k != n {
			t.Fatalf("write: %d, %v", k, err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := w.Write([]byte{1}); err == nil {
		t.Fatal("write after close succeeded")
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	const small = 256
	tests := []struct {
		name      string
		frameSize int
		size      int
	}{
		{"empty", small, 0},
		{"one byte", small, 1},
		{"frame-1", small, small - 1},
		{"frame", small, small},
		{"frame+1", small, small + 1},
		{"3 frames+7", small, 3*small + 7},
		{"exactly 4 frames", small, 4 * small},
		{"default frame, frame-1", 0, DefaultFrameSize - 1},
		{"default frame, frame", 0, DefaultFrameSize},
		{"default frame, frame+1", 0, DefaultFrameSize + 1},
		{"default frame, 5 MB", 0, 5<<20 + 12345},
	}
	p := newLocalProvider("acme")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCrypter(t, p, tc.frameSize, NewCache(CacheConfig{}))
			fs := c.frameSize
			pt := testData(tc.size)
			ec := acmeEC()
			blob, err := c.Encrypt(testCtx, testKeyID, ec, pt)
			if err != nil {
				t.Fatal(err)
			}
			var h header
			total, err := parseBlob(blob, &h)
			if err != nil {
				t.Fatal(err)
			}
			if total != len(pt) || len(blob) != h.size()+sealedSize(len(pt), fs) {
				t.Fatalf("blob of %d bytes for %d of plaintext, parsed total %d", len(blob), len(pt), total)
			}
			if len(pt) > 32 && bytes.Contains(blob, pt[:32]) {
				t.Fatal("plaintext in the message")
			}
			streamed := encryptStream(t, c, pt, ec, fs/3+1)
			if len(streamed) != len(blob) {
				t.Fatalf("writer made %d bytes, Encrypt %d", len(streamed), len(blob))
			}
			readers := map[string]func(io.Reader) io.Reader{"plain": nil, "half": iotest.HalfReader, "data-err": iotest.DataErrReader}
			if tc.size < 4*small+1 {
				readers["one-byte"] = iotest.OneByteReader
			}
			for _, b := range [][]byte{blob, streamed} {
				got, err := c.Decrypt(testCtx, b, ec)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("Decrypt: %v (%d bytes, want %d)", err, len(got), len(pt))
				}
				for name, wrap := range readers {
					got, err := decryptStream(c, b, ec, wrap)
					if err != nil || !bytes.Equal(got, pt) {
						t.Fatalf("reader %s: %v (%d bytes, want %d)", name, err, len(got), len(pt))
					}
				}
			}
			// Another Crypter (no cache) of the same provider decrypts it too.
			got, err := newCrypter(t, p, 0, nil).Decrypt(testCtx, blob, ec)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("uncached Decrypt: %v", err)
			}
		})
	}
}

func TestEncryptWriterChunkings(t *testing.T) {
	c := newCrypter(t, newLocalProvider("acme"), 64, nil)
	pt := testData(64*5 + 3)
	for _, chunk := range []int{1, 7, 63, 64, 65, 128, 1000} {
		blob := encryptStream(t, c, pt, acmeEC(), chunk)
		got, err := c.Decrypt(testCtx, blob, acmeEC())
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("chunk %d: %v", chunk, err)
		}
	}
}

// frames returns the header size of blob and the offsets of its frames.
func frames(t *testing.T, blob []byte) (int, [][2]int) {
	t.Helper()
	var h header
	if _, err := parseBlob(blob, &h); err != nil {
		t.Fatal(err)
	}
	var fr [][2]int
	off := h.size()
	it := frameIter{b: blob[off:], frameSize: h.frameSize}
	for !it.done {
		_, fh, sealed, _, err := it.next()
		if err != nil {
			t.Fatal(err)
		}
		n := len(fh) + len(sealed)
		fr = append(fr, [2]int{off, off + n})
		off += n
	}
	return h.size(), fr
}

func TestTamperAnyByte(t *testing.T) {
	p := newLocalProvider("acme")
	c := newCrypter(t, p, 64, NewCache(CacheConfig{}))
	pt := testData(3*64 + 10) // 3 regular frames and a final one
	ec := acmeEC()
	blob, err := c.Encrypt(testCtx, testKeyID, ec, pt)
	if err != nil {
		t.Fatal(err)
	}
	hdrSize, fr := frames(t, blob)
	if len(fr) != 4 {
		t.Fatalf("%d frames", len(fr))
	}
	for i := range blob {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(blob)
			bad[i] ^= mask
			if got, err := c.Decrypt(testCtx, bad, ec); err == nil {
				t.Fatalf("byte %d ^ %#x: Decrypt succeeded (%d bytes)", i, mask, len(got))
			}
			got, err := decryptStream(c, bad, ec, nil)
			if err == nil {
				t.Fatalf("byte %d ^ %#x: reader succeeded", i, mask)
			}
			// The reader released only frames before the tampered one.
			allowed := 0
			if i >= hdrSize {
				for k, f := range fr {
					if i >= f[0] && i < f[1] {
						allowed = k * 64
					}
				}
			}
			if len(got) > allowed || !bytes.Equal(got, pt[:len(got)]) {
				t.Fatalf("byte %d ^ %#x: reader released %d bytes (at most %d of the plaintext allowed)", i, mask, len(got), allowed)
			}
		}
	}
}

func TestTruncatedReorderedDropped(t *testing.T) {
	p := newLocalProvider("acme")
	c := newCrypter(t, p, 64, NewCache(CacheConfig{}))
	pt := testData(3*64 + 10)
	ec := acmeEC()
	blob, err := c.Encrypt(testCtx, testKeyID, ec, pt)
	if err != nil {
		t.Fatal(err)
	}
	other, err := c.Encrypt(testCtx, testKeyID, ec, pt) // same cached data key, another message
	if err != nil {
		t.Fatal(err)
	}
	hdr, fr := frames(t, blob)
	_, ofr := frames(t, other)
	if !bytes.Equal(headerOf(t, blob).wrapped, headerOf(t, other).wrapped) {
		t.Fatal("second message did not reuse the cached data key")
	}
	frame := func(b []byte, f [2]int) []byte { return b[f[0]:f[1]] }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	h := blob[:hdr]

	// Every proper prefix is truncated.
	for n := range len(blob) {
		if _, err := c.Decrypt(testCtx, blob[:n], ec); !errors.Is(err, ErrTruncated) {
			t.Fatalf("prefix %d: %v", n, err)
		}
		if _, err := decryptStream(c, blob[:n], ec, nil); !errors.Is(err, ErrTruncated) {
			t.Fatalf("reader, prefix %d: %v", n, err)
		}
	}

	// A regular frame made final: flag flipped, the rest cut.
	asFinal := bytes.Clone(blob[:fr[2][1]])
	asFinal[fr[2][0]] = flagFinal

	tests := []struct {
		name string
		blob []byte
		want error
	}{
		{"frames 1 and 2 swapped", cat(h, frame(blob, fr[1]), frame(blob, fr[0]), frame(blob, fr[2]), frame(blob, fr[3])), ErrAuthentication},
		{"frame 2 dropped", cat(h, frame(blob, fr[0]), frame(blob, fr[2]), frame(blob, fr[3])), ErrAuthentication},
		{"frame 1 repeated", cat(h, frame(blob, fr[0]), frame(blob, fr[0]), frame(blob, fr[1]), frame(blob, fr[2]), frame(blob, fr[3])), ErrAuthentication},
		{"final frame dropped", cat(h, frame(blob, fr[0]), frame(blob, fr[1]), frame(blob, fr[2])), ErrTruncated},
		{"regular frame flagged final", asFinal, ErrAuthentication},
		{"final frame first", cat(h, frame(blob, fr[3])), ErrAuthentication},
		{"byte after the end", cat(blob, []byte{0}), ErrMalformed},
		{"frame after the end", cat(blob, frame(blob, fr[0])), ErrMalformed},
		{"frames of another message, same data key", cat(h, frame(other, ofr[0]), frame(other, ofr[1]), frame(other, ofr[2]), frame(other, ofr[3])), ErrAuthentication},
		{"header of another message", cat(other[:hdr], blob[hdr:]), ErrAuthentication},
		{"empty", nil, ErrTruncated},
		{"not a message", []byte("hello, world: this is plain text and not an envelope message at all"), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := c.Decrypt(testCtx, tc.blob, ec); !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("Decrypt: %v, want %v", err, tc.want)
			}
			if _, err := decryptStream(c, tc.blob, ec, nil); !errors.Is(err, tc.want) {
				t.Fatalf("reader: %v, want %v", err, tc.want)
			}
		})
	}
}

func headerOf(t testing.TB, blob []byte) *header {
	t.Helper()
	var h header
	if _, err := parseHeader(blob, &h); err != nil {
		t.Fatal(err)
	}
	return &h
}

func TestContext(t *testing.T) {
	p := newLocalProvider("acme", "globex")
	c := newCrypter(t, p, 0, NewCache(CacheConfig{}))
	ec := acmeEC()
	blob, err := c.Encrypt(testCtx, testKeyID, ec, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	with := func(k, v string) map[string]string {
		m := acmeEC()
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name string
		ec   map[string]string
		want error
	}{
		{"other value", with("table", "orders"), ErrContextMismatch},
		{"extra pair", with("region", "eu"), ErrContextMismatch},
		{"pair missing", with("table", ""), ErrContextMismatch},
		{"other tenant", with("tenant_id", "globex"), ErrContextMismatch},
		{"no tenant_id", with("tenant_id", ""), ErrInvalidContext},
		{"nil", nil, ErrInvalidContext},
		{"empty key", with("", "x"), ErrInvalidContext},
		{"not UTF-8", with("table", "\xff"), ErrInvalidContext},
		{"too big", with("big", string(make([]byte, MaxContextSize))), ErrInvalidContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Decrypt(testCtx, blob, tc.ec); !errors.Is(err, tc.want) {
				t.Fatalf("Decrypt: %v, want %v", err, tc.want)
			}
			if _, err := c.NewDecryptReader(testCtx, bytes.NewReader(blob), tc.ec); !errors.Is(err, tc.want) {
				t.Fatalf("reader: %v, want %v", err, tc.want)
			}
			if tc.want == ErrInvalidContext {
				if _, err := c.Encrypt(testCtx, testKeyID, tc.ec, nil); !errors.Is(err, tc.want) {
					t.Fatalf("Encrypt: %v, want %v", err, tc.want)
				}
				if _, err := c.NewEncryptWriter(testCtx, io.Discard, testKeyID, tc.ec); !errors.Is(err, tc.want) {
					t.Fatalf("writer: %v, want %v", err, tc.want)
				}
			}
		})
	}
	// The context's order of insertion does not matter; its content does.
	if got, err := c.Decrypt(testCtx, blob, map[string]string{"table": "invoices", "tenant_id": "acme"}); err != nil || string(got) != "secret" {
		t.Fatalf("same context: %v", err)
	}
	// A provider that does not act for the context's tenant refuses it.
	only := newCrypter(t, newLocalProvider("globex"), 0, nil)
	if _, err := only.Encrypt(testCtx, testKeyID, ec, []byte("x")); !errors.Is(err, errTenantMismatch) {
		t.Fatalf("Encrypt for a tenant the provider does not act for: %v", err)
	}
	if _, err := only.Decrypt(testCtx, blob, ec); !errors.Is(err, errTenantMismatch) {
		t.Fatalf("Decrypt for a tenant the provider does not act for: %v", err)
	}
}

func TestConfig(t *testing.T) {
	p := newLocalProvider("acme")
	for _, fs := range []int{-1, 1, MinFrameSize - 1, MaxFrameSize + 1} {
		if _, err := New(Config{Provider: p, FrameSize: fs}); err == nil {
			t.Errorf("frame size %d accepted", fs)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Error("no provider accepted")
	}
	c := newCrypter(t, p, 0, nil)
	if _, err := c.Encrypt(testCtx, "", acmeEC(), nil); err == nil {
		t.Error("empty key id accepted")
	}
}

// A provider answering a data key of the wrong size is an error, not a
// weak key.
type shortKeyProvider struct{ *localProvider }

func (p shortKeyProvider) GenerateDataKey(ctx context.Context, keyID string, ec map[string]string) ([]byte, []byte, error) {
	dk, w, err := p.localProvider.GenerateDataKey(ctx, keyID, ec)
	return dk[:16], w, err
}

func TestProviderKeySize(t *testing.T) {
	c := newCrypter(t, shortKeyProvider{newLocalProvider("acme")}, 0, NewCache(CacheConfig{}))
	if _, err := c.Encrypt(testCtx, testKeyID, acmeEC(), []byte("x")); err == nil {
		t.Fatal("16-byte data key accepted")
	}
}

func TestAppend(t *testing.T) {
	c := newCrypter(t, newLocalProvider("acme"), 64, NewCache(CacheConfig{}))
	pt := testData(300)
	prefix := []byte("prefix:")
	blob, err := c.AppendEncrypt(testCtx, bytes.Clone(prefix), testKeyID, acmeEC(), pt)
	if err != nil || !bytes.HasPrefix(blob, prefix) {
		t.Fatalf("AppendEncrypt: %v", err)
	}
	msg := blob[len(prefix):]
	got, err := c.AppendDecrypt(testCtx, bytes.Clone(prefix), msg, acmeEC())
	if err != nil || !bytes.Equal(got, append(bytes.Clone(prefix), pt...)) {
		t.Fatalf("AppendDecrypt: %v", err)
	}
	// Reused buffers: no new backing array once they are big enough.
	encBuf, decBuf := make([]byte, 0, 1024), make([]byte, 0, 1024)
	for range 3 {
		b, err := c.AppendEncrypt(testCtx, encBuf, testKeyID, acmeEC(), pt)
		if err != nil || &b[:1][0] != &encBuf[:1][0] {
			t.Fatalf("AppendEncrypt did not use dst: %v", err)
		}
		p, err := c.AppendDecrypt(testCtx, decBuf, b, acmeEC())
		if err != nil || &p[:1][0] != &decBuf[:1][0] || !bytes.Equal(p, pt) {
			t.Fatalf("AppendDecrypt did not use dst: %v", err)
		}
	}
	// A failure returns nil and zeroes what was appended.
	bad := bytes.Clone(msg)
	bad[len(bad)-1] ^= 1
	dst := make([]byte, 0, 1024)
	if got, err := c.AppendDecrypt(testCtx, dst, bad, acmeEC()); !errors.Is(err, ErrAuthentication) || got != nil {
		t.Fatalf("tampered: %v", err)
	}
	if !bytes.Equal(dst[:cap(dst)], make([]byte, cap(dst))) {
		t.Fatal("plaintext of authenticated frames left in dst after a failure")
	}
}
