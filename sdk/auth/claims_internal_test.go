package auth

import (
	"encoding/json"
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
		got.HasAct != (ref.Act != nil) || (ref.Act != nil && got.Act != ref.Act.Sub) {
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
		`{"nested":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, `{"exp":253402300800}`, `{"exp":-1}`} {
		if _, err := decodeClaims([]byte(s)); err == nil {
			t.Errorf("decodeClaims accepted %q", s)
		}
	}
}

// FuzzDecodeClaims holds the hand-written claims decoder to encoding/json.
func FuzzDecodeClaims(f *testing.F) {
	for _, s := range claimSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkAgainstReference)
}
