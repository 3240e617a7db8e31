package connect

import (
	"bytes"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

const seedGrant = "grt_abcdefghijklmnopqrstuvwxyz"

// partAText is the text of a Part A of tenant acme with pad.
func partAText(pad []byte) string { return PartA{Tenant: "acme", Grant: seedGrant, Pad: pad}.String() }

func FuzzParsePartA(f *testing.F) {
	valid := partAText([]byte("\x00\x01\xfe\xff token pad"))
	maxPad := partAText(bytes.Repeat([]byte{0xa5}, MaxTokenBytes))
	for _, s := range []string{
		valid,
		partAText([]byte{0}),
		maxPad,
		PartA{Tenant: "a-1", Grant: ids.New(grantPrefix), Pad: []byte("x")}.String(),
		PartA{Tenant: tenant.ID(strings.Repeat("t", 63)), Grant: seedGrant, Pad: []byte("xy")}.String(),
		valid[:len(valid)-1],                        // truncated pad
		valid[:strings.LastIndexByte(valid, '.')],   // no pad
		valid[:strings.LastIndexByte(valid, '.')+1], // empty pad
		"", ".", "...", "bhpa1", "bhpa1...",
		"bhpa2" + valid[5:], "BHPA1" + valid[5:], "x" + valid, " " + valid, valid + " ",
		valid + "=", valid + "==", partAText([]byte("ab")) + "=", // padding characters
		"bhpa1.acme." + seedGrant + ".+/8",                             // the standard alphabet of "-_8"
		partAText([]byte("ab"))[:len(partAText([]byte("ab")))-1] + "R", // non-zero trailing bits ("YWI" → "YWR")
		"bhpa1.acme." + seedGrant + ".QR",
		"bhpa1.acme." + seedGrant + ".Q",
		"bhpa1.acme." + seedGrant + ".QQ!",
		partAText(bytes.Repeat([]byte{1}, MaxTokenBytes+1)), // over-long pad
		maxPad + "A",
		strings.Repeat("A", 20000),
		"bhpa1.ACME." + seedGrant + ".QQ", "bhpa1.-acme." + seedGrant + ".QQ", "bhpa1.ac." + seedGrant + ".QQ",
		"bhpa1." + strings.Repeat("t", 64) + "." + seedGrant + ".QQ", "bhpa1.ac_me." + seedGrant + ".QQ",
		"bhpa1.acme.grt_abc.QQ", "bhpa1.acme.con_abcdefghijklmnopqrstuvwxyz.QQ", "bhpa1.acme.grt_ABCDEFGHIJKLMNOPQRSTUVWXYZ.QQ",
		"bhpa1.acme.grt_abcdefghijklmnopqrstuvwxy1.QQ", "bhpa1.acme." + seedGrant + "a.QQ",
		"bhpa1.acme." + seedGrant + ".QQ.QQ", "bhpa1..acme." + seedGrant + ".QQ", valid + ".",
		"bhpa1.acmé." + seedGrant + ".QQ", "bhpa1.acme." + seedGrant + ".QQ\u00a0", "bhpa1.acme." + seedGrant + ".ＱＱ",
		"bhpa1.acme." + seedGrant + ".Q\x00Q", "bhpa1.acme." + seedGrant + ".QQ\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pa, err := ParsePartA(s)
		if err != nil {
			if e, ok := errs.As(err); !ok || e.Code != "invalid_part_a" || e.Kind != errs.Unauthenticated {
				t.Fatalf("ParsePartA(%q) error %v, want invalid_part_a", s, err)
			}
			return
		}
		if got := pa.String(); got != s {
			t.Fatalf("ParsePartA(%q).String() = %q: not the canonical form", s, got)
		}
		if len(pa.Pad) < 1 || len(pa.Pad) > MaxTokenBytes {
			t.Fatalf("ParsePartA(%q): pad of %d bytes", s, len(pa.Pad))
		}
		if _, err := tenant.ParseID(string(pa.Tenant)); err != nil {
			t.Fatalf("ParsePartA(%q): tenant %q: %v", s, pa.Tenant, err)
		}
		if !ids.Valid(pa.Grant, grantPrefix) {
			t.Fatalf("ParsePartA(%q): grant %q", s, pa.Grant)
		}
	})
}

func TestParsePartASeeds(t *testing.T) {
	pad := []byte("\x00\x01\xfe\xff token pad")
	valid := partAText(pad)
	pa, err := ParsePartA(valid)
	if err != nil || pa.Tenant != "acme" || pa.Grant != seedGrant || !bytes.Equal(pa.Pad, pad) {
		t.Fatalf("ParsePartA(%q) = %+v, %v", valid, pa, err)
	}
	for _, bad := range []string{valid + "=", "bhpa1.acme." + seedGrant + ".QR", partAText(make([]byte, MaxTokenBytes+1)),
		"bhpa1.acme." + seedGrant + ".", "bhpa2" + valid[5:], "bhpa1.acme.grt_abc.QQ", valid + ".QQ"} {
		if _, err := ParsePartA(bad); !errs.Is(err, "invalid_part_a") {
			t.Errorf("ParsePartA(%.60q) = %v, want invalid_part_a", bad, err)
		}
	}
}

func TestParsePartARefusesLineBreaks(t *testing.T) {
	for _, s := range []string{"bhpa1.acme." + seedGrant + ".QQ\n", "bhpa1.acme." + seedGrant + ".Q\r\nQ"} {
		if _, err := ParsePartA(s); !errs.Is(err, "invalid_part_a") {
			t.Errorf("ParsePartA(%q) = %v, want invalid_part_a", s, err)
		}
	}
}

func FuzzSplitCombine(f *testing.F) {
	for _, s := range []string{"", "x", "sk_live_0123456789abcdef", strings.Repeat("\x00", 16), strings.Repeat("\xff", 64)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, token []byte) {
		pad, partB := split(token)
		if len(pad) != len(token) || len(partB) != len(token) {
			t.Fatalf("split of %d bytes: pad %d, part B %d", len(token), len(pad), len(partB))
		}
		if got := combine(pad, partB); !bytes.Equal(got, token) || got == nil {
			t.Fatalf("combine(split(%q)) = %q", token, got)
		}
		if got := combine(partB, token); !bytes.Equal(got, pad) {
			t.Fatalf("combine(part B, token) is not the pad")
		}
		// With 16 bytes or more, a pad or Part B equal to the token is a
		// 2^-128 chance: it means the pad is not random.
		if len(token) >= 16 && (bytes.Equal(pad, token) || bytes.Equal(partB, token)) {
			t.Fatalf("split(%q) = pad %q, part B %q", token, pad, partB)
		}
		if len(token) > 0 && combine(pad, partB[1:]) != nil {
			t.Fatalf("combine of unequal lengths is not nil")
		}
	})
}

// FuzzCheckRequestPath checks the proxy's path checks: a path (as escaped
// in the request) that the proxy accepts under an allowed prefix has no
// dot segment and is, once cleaned, the prefix or below it.
func FuzzCheckRequestPath(f *testing.F) {
	for _, s := range [][2]string{
		{"/v1", "v1/users"}, {"/v1", "v10"}, {"/v1/", "v1"}, {"/v1", "v1/../admin"}, {"/v1", "v1/%2e%2e/admin"},
		{"/v1", "v1%2F..%2Fadmin"}, {"/v1", "v1/%2E/x"}, {"/v1", "v1//x"}, {"/v1", "%76%31/x"}, {"/", "anything"},
		{"/a//b", "a//b/c"}, {"/v1", "v1/%00"}, {"/v1", "v1%"}, {"/v1", "v1/..%2f"}, {"/v1", "v1/.%2e/admin"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, prefix, rest string) {
		allowed, err := checkPaths([]string{prefix})
		if err != nil {
			return
		}
		// As proxy does with the path after /c/{connection}.
		restEscaped := "/" + rest
		restPath, err := url.PathUnescape(restEscaped)
		if err != nil || hasDotSegment(restPath) || strings.ContainsAny(restPath, "\x00") {
			return
		}
		r := &http.Request{Method: http.MethodGet, Header: http.Header{}}
		if err := checkRequest(r, Connection{AllowedPaths: allowed}, restPath); err != nil {
			if !errs.Is(err, "path_not_allowed") {
				t.Fatalf("checkRequest(%q under %q) = %v, want path_not_allowed", restPath, prefix, err)
			}
			return
		}
		for seg := range strings.SplitSeq(restPath, "/") {
			if seg == ".." || seg == "." {
				t.Fatalf("accepted %q (escaped %q) has a dot segment", restPath, restEscaped)
			}
		}
		clean, cleanPrefix := path.Clean(restPath), path.Clean(prefix)
		if clean != cleanPrefix && cleanPrefix != "/" && !strings.HasPrefix(clean, cleanPrefix+"/") {
			t.Fatalf("accepted %q (escaped %q, clean %q) is not under %q", restPath, restEscaped, clean, prefix)
		}
	})
}
