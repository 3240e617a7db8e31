package envelope

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func noteRef() FieldRef {
	return FieldRef{Tenant: "acme", Table: "notes", PrimaryKey: "42", Column: "body"}
}

func TestFieldRoundTrip(t *testing.T) {
	p := newLocalProvider("acme")
	c := newCrypter(t, p, 0, NewCache(CacheConfig{}))
	for _, n := range []int{0, 1, 16, 1000, 70 << 10} {
		pt := testData(n)
		v, err := c.EncryptField(testCtx, testKeyID, noteRef(), pt)
		if err != nil {
			t.Fatal(err)
		}
		if v[0] != FieldVersion1 || len(v) != 1+2+len(wrappedOfField(t, v))+32+32+n+16 {
			t.Fatalf("%d bytes: value of %d bytes", n, len(v))
		}
		if bytes.Contains(v, []byte("notes")) || n > 8 && bytes.Contains(v, pt) {
			t.Fatal("the value holds its context or plaintext in clear")
		}
		got, err := c.DecryptField(testCtx, noteRef(), v)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%d bytes: %v", n, err)
		}
	}
	// Two encryptions of one value differ.
	a, _ := c.EncryptField(testCtx, testKeyID, noteRef(), []byte("x"))
	b, _ := c.EncryptField(testCtx, testKeyID, noteRef(), []byte("x"))
	if bytes.Equal(a, b) {
		t.Fatal("deterministic encryption")
	}
}

func wrappedOfField(t *testing.T, v []byte) []byte {
	t.Helper()
	fv, err := parseField(v)
	if err != nil {
		t.Fatal(err)
	}
	return fv.wrapped
}

// TestFieldMoves: a value copied to another row, column, table or tenant
// does not decrypt there, and says why; nor does it decrypt in any of
// those places with the Crypter's cache warm, nor without a cache.
func TestFieldMoves(t *testing.T) {
	p := newLocalProvider("acme", "globex")
	for _, cache := range []*Cache{NewCache(CacheConfig{}), nil} {
		c := newCrypter(t, p, 0, cache)
		v, err := c.EncryptField(testCtx, testKeyID, noteRef(), []byte("acme's secret"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.DecryptField(testCtx, noteRef(), v); err != nil {
			t.Fatal(err) // warms the cache with the data key
		}
		moves := []struct {
			name string
			move func(*FieldRef)
			want error
		}{
			{"row", func(f *FieldRef) { f.PrimaryKey = "43" }, ErrFieldMismatch},
			{"column", func(f *FieldRef) { f.Column = "title" }, ErrFieldMismatch},
			{"table", func(f *FieldRef) { f.Table = "drafts" }, ErrFieldMismatch},
			{"tenant", func(f *FieldRef) { f.Tenant = "globex" }, nil},
		}
		for _, m := range moves {
			ref := noteRef()
			m.move(&ref)
			got, err := c.DecryptField(testCtx, ref, v)
			switch {
			case err == nil || got != nil:
				t.Errorf("moved to another %s: decrypted %q", m.name, got)
			case m.want != nil && !errors.Is(err, m.want):
				t.Errorf("moved to another %s: %v, want %v", m.name, err, m.want)
			case m.want == nil && (errors.Is(err, ErrFieldMismatch) || !strings.Contains(err.Error(), "decrypt data key")):
				// globex's key does not unwrap acme's data key.
				t.Errorf("moved to another tenant: %v", err)
			}
		}
	}
}

// TestFieldContextUnambiguous: fields whose parts, joined with a
// separator, would be the same string are different fields.
func TestFieldContextUnambiguous(t *testing.T) {
	c := newCrypter(t, newLocalProvider("acme"), 0, NewCache(CacheConfig{}))
	pairs := [][2]FieldRef{
		{{Tenant: "acme", Table: "a|b", PrimaryKey: "1", Column: "c"}, {Tenant: "acme", Table: "a", PrimaryKey: "1", Column: "b|c"}},
		{{Tenant: "acme", Table: "t", PrimaryKey: "a|b", Column: "c"}, {Tenant: "acme", Table: "t", PrimaryKey: "a", Column: "b|c"}},
		{{Tenant: "acme", Table: "t", PrimaryKey: CompositeKey("a|b", "c"), Column: "x"}, {Tenant: "acme", Table: "t", PrimaryKey: CompositeKey("a", "b|c"), Column: "x"}},
		{{Tenant: "acme", Table: "t", PrimaryKey: CompositeKey("1:a", ""), Column: "x"}, {Tenant: "acme", Table: "t", PrimaryKey: CompositeKey("1", "a"), Column: "x"}},
		{{Tenant: "acme", Table: "t\x00", PrimaryKey: "1", Column: "x"}, {Tenant: "acme", Table: "t", PrimaryKey: "\x001", Column: "x"}},
	}
	for _, p := range pairs {
		v, err := c.EncryptField(testCtx, testKeyID, p[0], []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.DecryptField(testCtx, p[1], v); !errors.Is(err, ErrFieldMismatch) {
			t.Errorf("%+v decrypted as %+v: %v", p[0], p[1], err)
		}
	}
	if CompositeKey("a|b", "c") == CompositeKey("a", "b|c") || CompositeKey("ab", "") == CompositeKey("a", "b") {
		t.Error("CompositeKey is ambiguous")
	}
	if got := CompositeKey("a|b", "c"); got != "3:a|b1:c" {
		t.Errorf("CompositeKey: %q", got)
	}
}

// TestFieldDataKeyReuse: the fields of many rows share one cached data
// key, on encryption and on decryption.
func TestFieldDataKeyReuse(t *testing.T) {
	p := newLocalProvider("acme")
	c := newCrypter(t, p, 0, NewCache(CacheConfig{}))
	var vals [][]byte
	for i := range 100 {
		ref := noteRef()
		ref.PrimaryKey = CompositeKey("row", string(rune('a'+i%26)), strings.Repeat("x", i))
		v, err := c.EncryptField(testCtx, testKeyID, ref, []byte("secret"))
		if err != nil {
			t.Fatal(err)
		}
		vals = append(vals, v)
	}
	reader := newCrypter(t, p, 0, NewCache(CacheConfig{}))
	for i, v := range vals {
		ref := noteRef()
		ref.PrimaryKey = CompositeKey("row", string(rune('a'+i%26)), strings.Repeat("x", i))
		if _, err := reader.DecryptField(testCtx, ref, v); err != nil {
			t.Fatal(err)
		}
	}
	if g, d := p.generates.Load(), p.decrypts.Load(); g != 1 || d != 1 {
		t.Errorf("100 fields: %d data keys made, %d unwrapped; want 1 and 1", g, d)
	}
}

func TestFieldTamperAndTruncate(t *testing.T) {
	c := newCrypter(t, newLocalProvider("acme"), 0, NewCache(CacheConfig{}))
	v, err := c.EncryptField(testCtx, testKeyID, noteRef(), testData(40))
	if err != nil {
		t.Fatal(err)
	}
	for i := range v {
		for _, mask := range []byte{0x01, 0x80} {
			bad := bytes.Clone(v)
			bad[i] ^= mask
			if got, err := c.DecryptField(testCtx, noteRef(), bad); err == nil || got != nil {
				t.Fatalf("byte %d ^ %#x: decrypted", i, mask)
			}
		}
	}
	for n := range len(v) {
		if _, err := c.DecryptField(testCtx, noteRef(), v[:n]); err == nil {
			t.Fatalf("cut to %d bytes: decrypted", n)
		}
	}
	if _, err := c.DecryptField(testCtx, noteRef(), append(bytes.Clone(v), 0)); err == nil {
		t.Fatal("a trailing byte: decrypted")
	}
}

// TestFieldAndMessageFormats: a message is not a field value and the
// other way round.
func TestFieldAndMessageFormats(t *testing.T) {
	c := newCrypter(t, newLocalProvider("acme"), 0, NewCache(CacheConfig{}))
	ec := map[string]string{TenantKey: "acme", "table": "notes", "primary_key": "42", "column": "body"}
	msg, err := c.Encrypt(testCtx, testKeyID, ec, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DecryptField(testCtx, noteRef(), msg); !errors.Is(err, ErrMalformed) {
		t.Errorf("a message as a field: %v", err)
	}
	v, _ := c.EncryptField(testCtx, testKeyID, noteRef(), []byte("x"))
	if _, err := c.Decrypt(testCtx, v, ec); !errors.Is(err, ErrMalformed) {
		t.Errorf("a field as a message: %v", err)
	}
}

func TestFieldRefInvalid(t *testing.T) {
	c := newCrypter(t, newLocalProvider("acme"), 0, nil)
	for _, f := range []FieldRef{
		{Table: "t", PrimaryKey: "1", Column: "c"},
		{Tenant: "acme", PrimaryKey: "1", Column: "c"},
		{Tenant: "acme", Table: "t", Column: "c"},
		{Tenant: "acme", Table: "t", PrimaryKey: "1"},
		{Tenant: "acme", Table: "t", PrimaryKey: "\xff", Column: "c"},
	} {
		if _, err := c.EncryptField(testCtx, testKeyID, f, []byte("x")); !errors.Is(err, ErrInvalidContext) {
			t.Errorf("EncryptField %+v: %v", f, err)
		}
		if _, err := c.DecryptField(testCtx, f, []byte{FieldVersion1}); !errors.Is(err, ErrInvalidContext) {
			t.Errorf("DecryptField %+v: %v", f, err)
		}
	}
}

// FuzzDecryptField: reading a stored field value never panics; what does
// not decrypt fails with an error of a known kind, and what decrypts is
// well formed (it re-parses to the same parts).
func FuzzDecryptField(f *testing.F) {
	c := newCrypter(f, newLocalProvider("acme"), 0, NewCache(CacheConfig{}))
	for _, n := range []int{0, 1, 100} {
		v, err := c.EncryptField(testCtx, testKeyID, noteRef(), testData(n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(v)
		f.Add(v[:len(v)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{FieldVersion1})
	f.Add([]byte{FieldVersion1, 0, 0})
	f.Add([]byte{FieldVersion1, 0xff, 0xff})
	f.Add([]byte{Version1, AlgAES256GCMHKDF})
	f.Fuzz(func(t *testing.T, data []byte) {
		fv, perr := parseField(data)
		if perr == nil && (len(fv.header)+len(fv.sealed) != len(data) || len(fv.sealed) < tagSize) {
			t.Fatalf("parse: header %d + sealed %d of %d bytes", len(fv.header), len(fv.sealed), len(data))
		}
		got, err := c.DecryptField(testCtx, noteRef(), data)
		if err == nil {
			if perr != nil {
				t.Fatalf("decrypted what does not parse: %v", perr)
			}
			return
		}
		if got != nil {
			t.Fatal("plaintext returned with an error")
		}
		for _, e := range []error{ErrMalformed, ErrTruncated, ErrFieldMismatch} {
			if errors.Is(err, e) {
				return
			}
		}
		if !strings.Contains(err.Error(), "localProvider") {
			t.Fatalf("error of an unknown kind: %v", err)
		}
	})
}
