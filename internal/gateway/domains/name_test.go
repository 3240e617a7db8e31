package domains_test

import (
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/domains"
)

func TestParseName(t *testing.T) {
	good := map[string]string{
		"Example.COM":                        "example.com",
		"shop.example.com.":                  "shop.example.com",
		"bücher.example":                     "xn--bcher-kva.example",
		"xn--bcher-kva.example":              "xn--bcher-kva.example",
		"a-b.c0.example":                     "a-b.c0.example",
		strings.Repeat("a", 63) + ".example": strings.Repeat("a", 63) + ".example",
	}
	for in, want := range good {
		if got, err := domains.ParseName(in); err != nil || got != want {
			t.Errorf("ParseName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	long := strings.Repeat(strings.Repeat("a", 60)+".", 5) + "example"
	for _, in := range []string{
		"", ".", "example", "*.example.com", "a.*.example", "1.2.3.4", "127.0.0.1", "[::1]", "::1",
		"10.0.0.1.", "-a.example", "a-.example", "a..example", "a_b.example", "exa mple.com",
		"example.com/path", "user@example.com", "example.com:80", strings.Repeat("a", 64) + ".example",
		long, "\x00.example", "example.123", "ex\u200dample.com",
	} {
		if got, err := domains.ParseName(in); !errs.Is(err, "invalid_domain") {
			t.Errorf("ParseName(%q) = %q, %v; want invalid_domain", in, got, err)
		}
	}
}

// FuzzParseName: a name that parses is canonical (parsing it again gives
// itself) and within the limits, and nothing panics.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{"example.com", "Bücher.Example.", "*.a.b", "1.2.3.4", "[::1]", "a..b", "xn--.com", strings.Repeat("a.", 130) + "com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, err := domains.ParseName(s)
		if err != nil {
			if _, ok := errs.As(err); !ok {
				t.Fatalf("ParseName(%q): untyped error %v", s, err)
			}
			return
		}
		if len(name) > 253 || strings.ContainsAny(name, "*:/[] ") || name != strings.ToLower(name) {
			t.Fatalf("ParseName(%q) = %q", s, name)
		}
		for l := range strings.SplitSeq(name, ".") {
			if len(l) == 0 || len(l) > 63 {
				t.Fatalf("ParseName(%q) = %q: label %q", s, name, l)
			}
		}
		again, err := domains.ParseName(name)
		if err != nil || again != name {
			t.Fatalf("ParseName(%q) = %q, but ParseName(%q) = %q, %v", s, name, name, again, err)
		}
	})
}
