package auth

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// refClaims decodes a payload with encoding/json, the reference that
// decodeClaims must agree with.
type refClaims struct {
	Iss      string          `json:"iss"`
	Sub      string          `json:"sub"`
	Aud      json.RawMessage `json:"aud"`
	Exp      *float64        `json:"exp"`
	Nbf      *float64        `json:"nbf"`
	Iat      *float64        `json:"iat"`
	Jti      string          `json:"jti"`
	TenantID *string         `json:"tenant_id"`
	Tier     string          `json:"tier"`
	Groups   []string        `json:"groups"`
	Scope    string          `json:"scope"`
	ClientID string          `json:"client_id"`
	TokenUse string          `json:"token_use"`
	Act      *struct {
		Sub string `json:"sub"`
	} `json:"act"`
	Tags map[string]string `json:"tags"`
}

func refDate(f *float64) (time.Time, bool) {
	if f == nil {
		return time.Time{}, false
	}
	sec, frac := math.Modf(*f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}

// checkAgainstReference fails t if decodeClaims accepts payload and
// encoding/json refuses it or reads it differently.
func checkAgainstReference(t *testing.T, payload []byte) {
	got, err := decodeClaims(payload)
	if err != nil {
		return // stricter than encoding/json is allowed
	}
	var ref refClaims
	if err := json.Unmarshal(payload, &ref); err != nil {
		t.Fatalf("decodeClaims accepted %q, encoding/json refuses it: %v", payload, err)
	}
	var aud []string
	if len(ref.Aud) > 0 && ref.Aud[0] == '"' {
		var s string
		if err := json.Unmarshal(ref.Aud, &s); err != nil {
			t.Fatalf("aud of %q: %v", payload, err)
		}
		aud = []string{s}
	} else if len(ref.Aud) > 0 {
		if err := json.Unmarshal(ref.Aud, &aud); err != nil {
			t.Fatalf("decodeClaims accepted aud of %q, encoding/json refuses it: %v", payload, err)
		}
	}
	exp, hasExp := refDate(ref.Exp)
	nbf, hasNbf := refDate(ref.Nbf)
	iat, hasIat := refDate(ref.Iat)
	tenant := ""
	if ref.TenantID != nil {
		tenant = *ref.TenantID
	}
	if got.Iss != ref.Iss || got.Sub != ref.Sub || !slices.Equal(got.Aud, aud) || (got.Aud == nil) != (aud == nil) ||
		got.HasExp != hasExp || !got.Exp.Equal(exp) || got.HasNbf != hasNbf || !got.Nbf.Equal(nbf) ||
		got.HasIat != hasIat || !got.Iat.Equal(iat) || got.Jti != ref.Jti ||
		got.HasTenant != (ref.TenantID != nil) || got.TenantID != tenant || got.Tier != ref.Tier ||
		!slices.Equal(got.Groups, ref.Groups) || (got.Groups == nil) != (ref.Groups == nil) ||
		got.Scope != ref.Scope || got.ClientID != ref.ClientID || got.TokenUse != ref.TokenUse ||
		got.HasAct != (ref.Act != nil) || (ref.Act != nil && got.Act != ref.Act.Sub) ||
		!maps.Equal(got.Tags, ref.Tags) || (got.Tags == nil) != (ref.Tags == nil) {
		t.Fatalf("%q:\ndecodeClaims  %+v\nencoding/json %+v (aud %q)", payload, got, ref, aud)
	}
}

var claimSeeds = []string{
	`{"iss":"https://id.example.com","sub":"usr_1","aud":["api","x"],"exp":1900000000,"nbf":1.5,"iat":0,"jti":"j","tenant_id":"acme","tier":"basic","groups":["a","b"],"scope":"a b","client_id":"c"}`,
	`{"aud":"api","exp":1e9,"tenant_id":null,"groups":null,"sub":null}`,
	`{"iss":"\u0068ttps:\/\/x","sub":"\ud83d\ude00 \"q\" \\ \n\t\b\f\r","extra":{"a":[1,2,{"b":null}],"c":true,"d":false},"n":-0.5e-3}`,
	` { "exp" : 12.25 , "aud" : [ ] } `,
	`{}`,
	`{"exp":-1}`, `{"exp":"1"}`, `{"exp":1,"exp":2}`, `{"ISS":"x"}`, `{"aud":[1]}`, `{"aud":["a",null]}`,
	`{"sub":"\ud800"}`, `{"sub":"\udc00\ud800"}`, `{"x":01}`, `{"x":1.}`, `{"x":.5}`, `{"x":1e}`, `{"x":+1}`,
	`{"a":1,}`, `{"a":1}x`, `[]`, `"s"`, `{"a":"` + "\x01" + `"}`, `{"a":"\x"}`, `{"sub":"` + "\xff" + `"}`,
	`{"sub":"usr_1","client_id":"cli_1","act":{"sub":"cli_1"}}`, `{"act":{"sub":"c","iss":"i","act":{"sub":"earlier","act":{}}}}`,
	`{"act":null}`, `{"act":{}}`, `{"act":{"sub":null}}`, `{"act":"cli_1"}`, `{"act":[]}`, `{"act":{"sub":1}}`, `{"act":{"Sub":"x"}}`,
	`{"act":{"sub":"a","sub":"b"}}`, `{"act":{"sub":"a"},"act":{"sub":"b"}}`, `{"ACT":{"sub":"a"}}`, `{"act":{"s\u0075b":"e"}}`, `{"act":{"sub":"a",}}`,
	// Session tags (partner tokens).
	`{"sub":"usr_1","tags":{"partner":"prt_x","trust":"trs_y","region":"eu"}}`, `{"tags":null}`, `{"tags":{}}`, ` { "tags" : { "a" : "b" , "c" : "" } } `,
	`{"tags":{"p\u0061rtner":"prt_\"x\"","k\ud83d\ude00":"\u00e9\n\/","":""}}`, `{"tags":{"A":"1","a":"2"}}`, tagsPayload(maxTags), tagsPayload(maxTags + 1),
	`{"tags":{"a":"x","a":"y"}}`, `{"tags":{"a":"x","\u0061":"y"}}`, `{"tags":{"a":"b"},"tags":{"c":"d"}}`, `{"tags":{"a":"b"},"tags":null}`,
	`{"tags":{"a":1}}`, `{"tags":{"a":true}}`, `{"tags":{"a":null}}`, `{"tags":{"a":["x"]}}`, `{"tags":{"a":{"b":"c"}}}`, `{"tags":{"a":{}}}`,
	`{"tags":"a"}`, `{"tags":[]}`, `{"tags":[["a","b"]]}`, `{"tags":1}`, `{"tags":true}`, `{"tags":{"a":"b",}}`, `{"tags":{"a"}}`, `{"tags":{"a":}}`,
	`{"tags":{,}}`, `{"tags":{"a":"b"}`, `{"tags":{"a":"b"`, `{"tags":{1:"b"}}`, `{"tags":{"a":"\ud800"}}`, `{"tags":{"` + "\xff" + `":"b"}}`,
	`{"Tags":{"a":"b"}}`, `{"TAGS":{}}`, `{"tagſ":{}}`, `{"t\u0061gs":{"a":"b"}}`, `{"act":{"tags":{"a":1}}}`, `{"extra":{"tags":1,"Tags":[]}}`,
	`{"tenant_id":7}`, `{"ſub":"x"}`, `{"client_\u0069d":"c"}`, `{"exp":253402300800}`, `{"exp":253402300799}`, `{"nested":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
}

func TestDecodeClaimsAgreesWithEncodingJSON(t *testing.T) {
	accepted := 0
	for _, s := range claimSeeds {
		checkAgainstReference(t, []byte(s))
		if _, err := decodeClaims([]byte(s)); err == nil {
			accepted++
		}
	}
	if accepted < 5 {
		t.Errorf("only %d seeds decoded", accepted)
	}
	// The act claim's sub is the actor; earlier actors are skipped.
	for s, want := range map[string]string{`{"act":{"sub":"cli_1"}}`: "cli_1", `{"act":{"act":{"sub":"x"},"sub":"c"}}`: "c",
		`{"act":{"s\u0075b":"e"}}`: "e", `{"act":null}`: "", `{}`: ""} {
		if got, err := decodeClaims([]byte(s)); err != nil || got.Act != want {
			t.Errorf("decodeClaims(%s).Act = %+v, %v; want %q", s, got, err, want)
		}
	}
	// Stricter than encoding/json, on purpose.
	for _, s := range []string{`{"exp":1,"exp":2}`, `{"ISS":"x"}`, `{"act":{"Sub":"x"}}`, `{"act":{"sub":"a","sub":"b"}}`, `{"Act":{}}`, `{"Aud":"api"}`, `{"ſub":"x"}`, `{"sub":"\ud800"}`, `{"sub":"` + "\xff" + `"}`,
		`{"nested":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, `{"exp":253402300800}`, `{"exp":-1}`,
		`{"Tags":{"a":"b"}}`, `{"tags":{"a":"x","a":"y"}}`, `{"tags":{"a":"b"},"tags":{"c":"d"}}`, `{"tags":{"a":null}}`, tagsPayload(maxTags + 1)} {
		if err := json.Unmarshal([]byte(s), new(refClaims)); err != nil {
			t.Errorf("encoding/json refuses %q (%v): not stricter", s, err)
		}
		if _, err := decodeClaims([]byte(s)); err == nil {
			t.Errorf("decodeClaims accepted %q", s)
		}
	}
}

// tagsPayload is a claim set with n session tags.
func tagsPayload(n int) string {
	var b strings.Builder
	b.WriteString(`{"tags":{`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":"v%d"`, i, i)
	}
	b.WriteString(`}}`)
	return b.String()
}

func TestDecodeClaimsTags(t *testing.T) {
	fifty := map[string]string{}
	for i := range maxTags {
		fifty[fmt.Sprint("k", i)] = fmt.Sprint("v", i)
	}
	for _, tc := range []struct {
		payload string
		want    map[string]string // nil: no tags
	}{
		{`{}`, nil},
		{`{"sub":"usr_1"}`, nil},
		{`{"tags":null}`, nil},
		{`{"tags":{}}`, map[string]string{}},
		{`{"tags":{"partner":"prt_x","trust":"trs_y","region":"eu"}}`, map[string]string{"partner": "prt_x", "trust": "trs_y", "region": "eu"}},
		{` { "tags" : { "a" : "b" , "c" : "" } } `, map[string]string{"a": "b", "c": ""}},
		{`{"tags":{"p\u0061rtner":"prt_\"x\"","k\ud83d\ude00":"\u00e9\n\/"}}`, map[string]string{"partner": `prt_"x"`, "k😀": "é\n/"}},
		{`{"tags":{"A":"1","a":"2"}}`, map[string]string{"A": "1", "a": "2"}}, // tag keys are not claims: case matters
		{`{"tags":{"":""}}`, map[string]string{"": ""}},
		{`{"tags":{"region":"eu"},"act":{"sub":"cli_1","tags":{"x":1}}}`, map[string]string{"region": "eu"}}, // act's own members are skipped
		{`{"extra":{"tags":1,"Tags":[]},"tags":{"a":"b"}}`, map[string]string{"a": "b"}},
		{tagsPayload(maxTags), fifty},
	} {
		got, err := decodeClaims([]byte(tc.payload))
		if err != nil {
			t.Errorf("decodeClaims(%s): %v", tc.payload, err)
			continue
		}
		if !maps.Equal(got.Tags, tc.want) || (got.Tags == nil) != (tc.want == nil) {
			t.Errorf("decodeClaims(%s).Tags = %#v, want %#v", tc.payload, got.Tags, tc.want)
		}
	}
	for _, s := range []string{
		tagsPayload(maxTags + 1), tagsPayload(1000), // too many
		`{"tags":{"a":"x","a":"y"}}`, `{"tags":{"a":"x","\u0061":"y"}}`, `{"tags":{"a":"x","b":"y","a":"x"}}`, // a key twice
		`{"tags":{"a":"b"},"tags":{"c":"d"}}`, `{"tags":null,"tags":{"a":"b"}}`, `{"tags":{"a":"b"},"tags":null}`, // the claim twice
		`{"Tags":{"a":"b"}}`, `{"TAGS":{}}`, `{"tagS":null}`, `{"tagſ":{}}`, `{"tags":{},"Tags":{}}`, // case variants
		`{"tags":{"a":1}}`, `{"tags":{"a":1.5}}`, `{"tags":{"a":true}}`, `{"tags":{"a":false}}`, `{"tags":{"a":null}}`, // values not strings
		`{"tags":{"a":["x"]}}`, `{"tags":{"a":[]}}`, `{"tags":{"a":{"b":"c"}}}`, `{"tags":{"a":{}}}`,
		`{"tags":"a"}`, `{"tags":[]}`, `{"tags":[["a","b"]]}`, `{"tags":1}`, `{"tags":true}`, `{"tags":nul}`, // not an object
		`{"tags":{"a":"b",}}`, `{"tags":{"a"}}`, `{"tags":{"a":}}`, `{"tags":{,}}`, `{"tags":{"a":"b"}`, `{"tags":{"a":"b"`, `{"tags":{`, // syntax
		`{"tags":{1:"b"}}`, `{"tags":{a:"b"}}`, `{"tags":{"a":"b" "c":"d"}}`, `{"tags":{"a":"b"}}}`,
		`{"tags":{"a":"\ud800"}}`, `{"tags":{"\udc00":"b"}}`, `{"tags":{"` + "\xff" + `":"b"}}`, `{"tags":{"a":"` + "\xc3" + `"}}`, `{"tags":{"a":"` + "\n" + `"}}`,
	} {
		if c, err := decodeClaims([]byte(s)); err == nil {
			t.Errorf("decodeClaims accepted %q: tags %#v", s, c.Tags)
		}
	}
}

// TestDecodeClaimsAllocs: a token without tags costs what it did before
// tags were decoded (the claim set, and one slice each for aud and groups),
// and a few tags one map.
func TestDecodeClaimsAllocs(t *testing.T) {
	for _, tc := range []struct {
		payload string
		max     float64
	}{
		{benchPayload, 3},
		{strings.Replace(benchPayload, `}`, `,"tags":null}`, 1), 3},
		{strings.Replace(benchPayload, `}`, `,"tags":{"partner":"prt_x","trust":"trs_y","region":"eu"}}`, 1), 5},
	} {
		p := []byte(tc.payload)
		if n := testing.AllocsPerRun(100, func() {
			if _, err := decodeClaims(p); err != nil {
				t.Fatal(err)
			}
		}); n > tc.max {
			t.Errorf("decodeClaims(%s): %v allocations, want at most %v", tc.payload, n, tc.max)
		}
	}
}

// benchPayload is a typical access token's claim set.
const benchPayload = `{"iss":"https://id.example.com","sub":"usr_0123456789","aud":["orders-api","other-api"],"exp":1900000000,"nbf":1800000000,"iat":1800000000,"jti":"tok_0123456789abcdef","tenant_id":"acme","tier":"standard","groups":["admins","billing"],"scope":"openid tenants:read tenants:write","client_id":"cli_web","token_use":"access"}`

func BenchmarkDecodeClaims(b *testing.B) {
	for name, p := range map[string]string{
		"plain": benchPayload,
		"tags":  strings.Replace(benchPayload, `}`, `,"tags":{"partner":"prt_x","trust":"trs_y","region":"eu"}}`, 1),
	} {
		b.Run(name, func(b *testing.B) {
			payload := []byte(p)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeClaims(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzDecodeClaims holds the hand-written claims decoder to encoding/json.
func FuzzDecodeClaims(f *testing.F) {
	for _, s := range claimSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkAgainstReference)
}
