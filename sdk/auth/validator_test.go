package auth_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/auth"
	"github.com/bulkhead-dev/bulkhead/sdk/auth/authtest"
	"github.com/go-jose/go-jose/v4"
)

func TestValidateValid(t *testing.T) {
	e := newEnv(t)
	for _, k := range []*authtest.Key{e.es, e.ed} {
		t.Run(string(k.Algorithm), func(t *testing.T) {
			now := e.clk.Now()
			c, err := e.validate(e.platform(k, "acme"))
			if err != nil {
				t.Fatal(err)
			}
			want := &auth.Claims{
				Issuer:    e.op.Issuer(),
				Subject:   "usr_0123456789",
				Audience:  []string{audience, "other-api"},
				Expiry:    now.Add(time.Hour).UTC(),
				NotBefore: now.UTC(),
				IssuedAt:  now.UTC(),
				ID:        "tok_0123456789abcdef",
				TenantID:  "acme",
				Tier:      "standard",
				Groups:    []string{"admins", "billing"},
				Scopes:    []string{"openid", "tenants:read", "tenants:write"},
				ClientID:  "cli_web",
			}
			if !equalClaims(c, want) {
				t.Errorf("claims:\n got %+v\nwant %+v", c, want)
			}
			if !c.HasScope("tenants:write") || c.HasScope("tenants") || !c.InGroup("billing") || c.InGroup("admin") {
				t.Error("HasScope/InGroup disagree with the claims")
			}
		})
	}
	t.Run("typ spelled as a media type, in any case", func(t *testing.T) {
		for _, typ := range []string{"at+jwt", "AT+JWT", "At+Jwt", "application/at+jwt", "Application/AT+JWT"} {
			if _, err := e.validate(e.es.SignType(typ, e.claims(e.op.Issuer(), "acme"))); err != nil {
				t.Errorf("typ %q: %v", typ, err)
			}
		}
	})
	t.Run("platform client without tenant, aud as a string, fractional dates", func(t *testing.T) {
		now := e.clk.Now()
		c, err := e.validate(e.es.Sign(with(e.claims(e.op.Issuer(), ""), "aud", audience, "exp", float64(now.Unix())+60.5, "nbf", nil, "iat", nil, "scope", nil, "groups", nil)))
		if err != nil {
			t.Fatal(err)
		}
		if c.TenantID != "" || !slices.Equal(c.Audience, []string{audience}) || c.Scopes != nil || c.Groups != nil ||
			!c.NotBefore.IsZero() || !c.IssuedAt.IsZero() || !c.Expiry.Equal(now.Add(60*time.Second+500*time.Millisecond)) {
			t.Errorf("claims = %+v", c)
		}
	})
	t.Run("exchanged token: act names the acting client", func(t *testing.T) {
		c, err := e.validate(e.es.Sign(with(e.claims(e.op.Issuer(), "acme"), "client_id", "cli_svc",
			"act", map[string]any{"sub": "cli_svc", "act": map[string]any{"sub": "cli_earlier"}})))
		if err != nil {
			t.Fatal(err)
		}
		if c.Actor != "cli_svc" || c.Subject != "usr_0123456789" || c.ClientID != "cli_svc" {
			t.Errorf("claims = %+v", c)
		}
		if c, err := e.validate(e.platform(e.es, "acme")); err != nil || c.Actor != "" {
			t.Errorf("a token without act: %+v, %v", c, err)
		}
	})
	t.Run("partner session token: tags", func(t *testing.T) {
		tags := map[string]string{"partner": "prt_x", "trust": "trs_y", "region": "eu", "cost-center": `"42" é`}
		for _, k := range []*authtest.Key{e.es, e.ed} {
			c, err := e.validate(k.Sign(with(e.claims(e.op.Issuer(), "acme"), "tags", tags)))
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(c.Tags, tags) || c.Subject != "usr_0123456789" || c.TenantID != "acme" {
				t.Errorf("%s: claims = %+v", k.Algorithm, c)
			}
		}
		for _, tc := range []struct {
			tags any
			want map[string]string
		}{
			{json.RawMessage(`null`), nil},
			{map[string]string{}, map[string]string{}},
		} {
			c, err := e.validate(e.es.Sign(with(e.claims(e.op.Issuer(), "acme"), "tags", tc.tags)))
			if err != nil || !maps.Equal(c.Tags, tc.want) || (c.Tags == nil) != (tc.want == nil) {
				t.Errorf("tags %s: %+v, %v; want tags %#v", tc.tags, c, err, tc.want)
			}
		}
		if c, err := e.validate(e.platform(e.es, "acme")); err != nil || c.Tags != nil {
			t.Errorf("a token without tags: %+v, %v", c, err)
		}
	})
}

func equalClaims(a, b *auth.Claims) bool {
	return a.Issuer == b.Issuer && a.Subject == b.Subject && slices.Equal(a.Audience, b.Audience) &&
		a.Expiry.Equal(b.Expiry) && a.NotBefore.Equal(b.NotBefore) && a.IssuedAt.Equal(b.IssuedAt) &&
		a.ID == b.ID && a.TenantID == b.TenantID && a.Tier == b.Tier && slices.Equal(a.Groups, b.Groups) &&
		slices.Equal(a.Scopes, b.Scopes) && a.ClientID == b.ClientID && a.Actor == b.Actor &&
		maps.Equal(a.Tags, b.Tags) && (a.Tags == nil) == (b.Tags == nil)
}

// craft assembles a compact JWS from a header, a payload and signature bytes.
func craft(header, payload any, sig []byte) string {
	return b64json(header) + "." + b64json(payload) + "." + b64(sig)
}

// hs256 signs header.payload with HMAC-SHA256 under secret.
func hs256(header, payload any, secret []byte) string {
	input := b64json(header) + "." + b64json(payload)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + b64(m.Sum(nil))
}

// es256Raw signs header.payload with priv as ES256 (r‖s), whatever the header says.
func es256Raw(header, payload any, priv *ecdsa.PrivateKey) string {
	return esSignInput(b64json(header)+"."+b64json(payload), priv)
}

// esSignInput appends the ES256 signature of input by priv.
func esSignInput(input string, priv *ecdsa.PrivateKey) string {
	h := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, priv, h[:])
	if err != nil {
		panic(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64(sig)
}

// edRaw signs header.payload with priv as EdDSA, whatever the header says.
func edRaw(header, payload any, priv ed25519.PrivateKey) string {
	input := b64json(header) + "." + b64json(payload)
	return input + "." + b64(ed25519.Sign(priv, []byte(input)))
}

func signWith(t testing.TB, alg jose.SignatureAlgorithm, key any, opts *jose.SignerOptions, claims any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type badToken struct {
	name  string
	token string
	want  *auth.Error
}

// badTokens is every refused token the table tests use, against e.
func badTokens(t testing.TB, e *env) []badToken {
	iss := e.op.Issuer()
	good := e.claims(iss, "acme")
	now := e.clk.Now()
	esPriv := e.es.Private.(*ecdsa.PrivateKey)
	edPriv := e.ed.Private.(ed25519.PrivateKey)
	esHdr := map[string]any{"alg": "ES256", "kid": e.es.ID, "typ": "at+jwt"}
	valid := e.platform(e.es, "acme")
	parts := strings.Split(valid, ".")

	// Public key material an attacker might use as an HMAC secret.
	der, err := x509.MarshalPKIXPublicKey(e.es.Public)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkJSON, _ := json.Marshal(e.es.JWK())
	edJWK, _ := json.Marshal(e.ed.JWK())

	// An RSA key published in the platform JWKS, and RS256 tokens of it.
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaJWK, _ := json.Marshal(jose.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"})
	e.op.PublishRaw(iss, rsaJWK)
	// An ES384 key, another curve.
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	other := authtest.NewKey(authtest.ES256, e.es.ID) // same kid, unpublished key
	unknown := authtest.NewKey(authtest.EdDSA, "no-such-kid")

	tampered := strings.Join([]string{parts[0], b64json(with(good, "tenant_id", "globex")), parts[2]}, ".")
	sig := []byte(parts[2])
	if sig[5] == 'A' {
		sig[5] = 'B'
	} else {
		sig[5] = 'A'
	}
	badSig := parts[0] + "." + parts[1] + "." + string(sig)
	big := e.es.Sign(with(good, "pad", strings.Repeat("x", auth.MaxTokenSize)))

	return []badToken{
		// Algorithms.
		{"alg none, empty signature", craft(map[string]any{"alg": "none", "kid": e.es.ID}, good, nil), auth.ErrTokenMalformed},
		{"alg none with a signature", craft(map[string]any{"alg": "none", "kid": e.es.ID}, good, []byte("sig")), auth.ErrAlgorithm},
		{"alg None", craft(map[string]any{"alg": "None", "kid": e.es.ID}, good, []byte("sig")), auth.ErrAlgorithm},
		{"no alg", craft(map[string]any{"kid": e.es.ID}, good, []byte("sig")), auth.ErrAlgorithm},
		{"HS256 random secret", hs256(map[string]any{"alg": "HS256", "kid": e.es.ID}, good, []byte("0123456789abcdef0123456789abcdef")), auth.ErrAlgorithm},
		{"HS256 with the PEM public key as secret", hs256(map[string]any{"alg": "HS256", "kid": e.es.ID}, good, pemKey), auth.ErrAlgorithm},
		{"HS256 with the DER public key as secret", hs256(map[string]any{"alg": "HS256", "kid": e.es.ID}, good, der), auth.ErrAlgorithm},
		{"HS256 with the JWK as secret", hs256(map[string]any{"alg": "HS256", "kid": e.es.ID}, good, jwkJSON), auth.ErrAlgorithm},
		{"HS256 with the Ed25519 key as secret", hs256(map[string]any{"alg": "HS256", "kid": e.ed.ID}, good, e.ed.Public.(ed25519.PublicKey)), auth.ErrAlgorithm},
		{"HS256 with the Ed25519 JWK as secret", hs256(map[string]any{"alg": "HS256", "kid": e.ed.ID}, good, edJWK), auth.ErrAlgorithm},
		{"RS256 with a published RSA key", signWith(t, jose.RS256, jose.JSONWebKey{Key: rsaKey, KeyID: "rsa-1"}, nil, good), auth.ErrAlgorithm},
		{"PS256", signWith(t, jose.PS256, jose.JSONWebKey{Key: rsaKey, KeyID: "rsa-1"}, nil, good), auth.ErrAlgorithm},
		{"ES384", signWith(t, jose.ES384, jose.JSONWebKey{Key: p384, KeyID: e.es.ID}, nil, good), auth.ErrAlgorithm},
		{"ES256 header, Ed25519 key's kid", edRaw(map[string]any{"alg": "ES256", "kid": e.ed.ID, "typ": "at+jwt"}, good, edPriv), auth.ErrAlgorithm},
		{"EdDSA header, P-256 key's kid", es256Raw(map[string]any{"alg": "EdDSA", "kid": e.es.ID, "typ": "at+jwt"}, good, esPriv), auth.ErrAlgorithm},

		// Keys.
		{"no kid", signWith(t, jose.ES256, esPriv, nil, good), auth.ErrUnknownKey},
		{"empty kid", es256Raw(map[string]any{"alg": "ES256", "kid": ""}, good, esPriv), auth.ErrUnknownKey},
		{"unknown kid", unknown.Sign(good), auth.ErrUnknownKey},
		{"another key under a known kid", other.Sign(good), auth.ErrSignature},
		{"tampered payload", tampered, auth.ErrSignature},
		{"tampered signature", badSig, auth.ErrSignature},
		{"signature of another header", parts[0] + "." + parts[1] + "." + strings.Split(e.es.Sign(with(good, "jti", "tok_other")), ".")[2], auth.ErrSignature},
		{"embedded jwk of the attacker", es256Raw(map[string]any{"alg": "ES256", "kid": e.es.ID, "typ": "at+jwt", "jwk": other.JWK()}, good, other.Private.(*ecdsa.PrivateKey)), auth.ErrSignature},
		{"embedded jwk without kid", signWith(t, jose.ES256, jose.JSONWebKey{Key: other.Private}, &jose.SignerOptions{EmbedJWK: true}, good), auth.ErrUnknownKey},
		{"crit header", es256Raw(map[string]any{"alg": "ES256", "kid": e.es.ID, "crit": []string{"exp"}, "exp": 1}, good, esPriv), auth.ErrTokenMalformed},
		{"b64 false", es256Raw(map[string]any{"alg": "ES256", "kid": e.es.ID, "b64": false, "crit": []string{"b64"}}, good, esPriv), auth.ErrTokenMalformed},

		// Type (RFC 9068 §2.1): an ID token signed by the same key, or a
		// JWT that does not say it is an access token.
		{"typ JWT (an ID token's)", e.es.SignType("JWT", good), auth.ErrTokenType},
		{"no typ", e.es.SignType("", good), auth.ErrTokenType},
		{"typ jwt", e.es.SignType("jwt", good), auth.ErrTokenType},
		{"typ at+jwt with a suffix", e.es.SignType("at+jwt; x=1", good), auth.ErrTokenType},
		{"typ application/jwt", e.es.SignType("application/jwt", good), auth.ErrTokenType},
		{"typ a number", es256Raw(map[string]any{"alg": "ES256", "kid": e.es.ID, "typ": 1}, good, esPriv), auth.ErrTokenType},
		{"typ a list", es256Raw(map[string]any{"alg": "ES256", "kid": e.es.ID, "typ": []string{"at+jwt"}}, good, esPriv), auth.ErrTokenType},
		{"typ JWT, EdDSA", e.ed.SignType("JWT", good), auth.ErrTokenType},

		// Shape.
		{"empty", "", auth.ErrTokenMalformed},
		{"garbage", "not a token", auth.ErrTokenMalformed},
		{"two segments", parts[0] + "." + parts[1], auth.ErrTokenMalformed},
		{"four segments", valid + ".AAAA", auth.ErrTokenMalformed},
		{"empty signature", parts[0] + "." + parts[1] + ".", auth.ErrTokenMalformed},
		{"empty header", "." + parts[1] + "." + parts[2], auth.ErrTokenMalformed},
		{"padding", valid + "==", auth.ErrTokenMalformed},
		{"standard base64", parts[0] + "." + parts[1] + "+/." + parts[2], auth.ErrTokenMalformed},
		{"whitespace", " " + valid, auth.ErrTokenMalformed},
		{"JWS JSON serialization", `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`, auth.ErrTokenMalformed},
		{"JWE (five segments)", "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", auth.ErrTokenMalformed},
		{"header not JSON", b64([]byte("not json")) + "." + parts[1] + "." + parts[2], auth.ErrTokenMalformed},
		{"truncated", valid[:len(valid)-10], auth.ErrSignature},
		{"oversized", big, auth.ErrTokenTooLarge},
		{"oversized garbage", strings.Repeat("a", auth.MaxTokenSize+1), auth.ErrTokenTooLarge},

		// Payload.
		{"payload not JSON", esSignInput(b64json(esHdr)+"."+b64([]byte("not json")), esPriv), auth.ErrClaims},
		{"payload an array", e.es.Sign([]any{good}), auth.ErrClaims},
		{"exp missing", e.es.Sign(with(good, "exp", nil)), auth.ErrClaims},
		{"an ID token (no token_use)", e.es.Sign(with(good, "token_use", nil)), auth.ErrClaims},
		{"an ID token (token_use id)", e.es.Sign(with(good, "token_use", "id")), auth.ErrClaims},
		{"exp a string", e.es.Sign(with(good, "exp", "4102444800")), auth.ErrClaims},
		{"exp negative", e.es.Sign(with(good, "exp", -1)), auth.ErrClaims},
		{"exp beyond year 9999", e.es.Sign(with(good, "exp", 1e300)), auth.ErrClaims},
		{"sub missing", e.es.Sign(with(good, "sub", nil)), auth.ErrClaims},
		{"groups not strings", e.es.Sign(with(good, "groups", []any{1, 2})), auth.ErrClaims},
		{"tenant_id a number", e.es.Sign(with(good, "tenant_id", 7)), auth.ErrClaims},
		{"tenant_id not a tenant id", e.es.Sign(with(good, "tenant_id", "Acme Corp")), auth.ErrClaims},
		{"tenant_id empty", e.es.Sign(with(good, "tenant_id", "")), auth.ErrClaims},
		{"tags not an object", e.es.Sign(with(good, "tags", []string{"partner", "prt_x"})), auth.ErrClaims},
		{"a tag not a string", e.es.Sign(with(good, "tags", map[string]any{"partner": "prt_x", "level": 3})), auth.ErrClaims},
		{"a tag null", e.es.Sign(with(good, "tags", map[string]any{"partner": nil})), auth.ErrClaims},
		{"a tag an object", e.es.Sign(with(good, "tags", map[string]any{"partner": map[string]string{"id": "prt_x"}})), auth.ErrClaims},
		{"a tag given twice", e.es.Sign(with(good, "tags", json.RawMessage(`{"partner":"prt_x","partner":"prt_y"}`))), auth.ErrClaims},
		{"tags and Tags", e.es.Sign(with(good, "tags", map[string]string{"partner": "prt_x"}, "Tags", map[string]string{"partner": "prt_y"})), auth.ErrClaims},
		{"over 50 tags", e.es.Sign(with(good, "tags", manyTags(51))), auth.ErrClaims},

		// Time.
		{"expired", e.es.Sign(with(good, "exp", now.Add(-time.Hour).Unix())), auth.ErrTokenExpired},
		{"expired beyond the leeway", e.es.Sign(with(good, "exp", now.Add(-31*time.Second).Unix())), auth.ErrTokenExpired},
		{"nbf in the future", e.es.Sign(with(good, "nbf", now.Add(time.Hour).Unix())), auth.ErrTokenNotYetValid},
		{"nbf beyond the leeway", e.es.Sign(with(good, "nbf", now.Add(31*time.Second).Unix())), auth.ErrTokenNotYetValid},
		{"iat in the future", e.es.Sign(with(good, "iat", now.Add(time.Hour).Unix())), auth.ErrTokenNotYetValid},

		// Audience.
		{"another audience", e.es.Sign(with(good, "aud", "billing-api")), auth.ErrAudience},
		{"another audience list", e.es.Sign(with(good, "aud", []string{"billing-api", "orders"})), auth.ErrAudience},
		{"audience prefix", e.es.Sign(with(good, "aud", audience+"x")), auth.ErrAudience},
		{"empty audience list", e.es.Sign(with(good, "aud", []string{})), auth.ErrAudience},
		{"no audience", e.es.Sign(with(good, "aud", nil)), auth.ErrAudience},

		// Issuer.
		{"no issuer", e.es.Sign(with(good, "iss", nil)), auth.ErrIssuer},
		{"another issuer", e.es.Sign(with(good, "iss", "https://evil.example")), auth.ErrIssuer},
		{"issuer with a trailing slash", e.es.Sign(with(good, "iss", iss+"/")), auth.ErrIssuer},
		{"issuer with another case", e.es.Sign(with(good, "iss", strings.ToUpper(iss))), auth.ErrIssuer},
		{"issuer as a prefix", e.es.Sign(with(good, "iss", iss+"x")), auth.ErrIssuer},
		{"silo issuer, tenant id too short", e.es.Sign(with(good, "iss", iss+"/t/a")), auth.ErrIssuer},
		{"silo issuer, upper case", e.es.Sign(with(good, "iss", iss+"/t/ACME")), auth.ErrIssuer},
		{"silo issuer, leading hyphen", e.es.Sign(with(good, "iss", iss+"/t/-acme")), auth.ErrIssuer},
		{"silo issuer, sub-path", e.es.Sign(with(good, "iss", iss+"/t/acme/t/globex")), auth.ErrIssuer},
		{"silo issuer, dot-dot", e.es.Sign(with(good, "iss", iss+"/t/../t/acme")), auth.ErrIssuer},
		{"silo issuer, empty tenant", e.es.Sign(with(good, "iss", iss+"/t/")), auth.ErrIssuer},
		{"silo issuer, tenant id too long", e.es.Sign(with(good, "iss", iss+"/t/"+strings.Repeat("a", 64))), auth.ErrIssuer},
	}
}

// manyTags is n session tags.
func manyTags(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprint("k", i)] = "v"
	}
	return m
}

func TestValidateRefuses(t *testing.T) {
	e := newEnv(t)
	for _, tc := range badTokens(t, e) {
		t.Run(tc.name, func(t *testing.T) {
			c, err := e.validate(tc.token)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want code %s", err, tc.want.Code)
			}
			var ae *auth.Error
			if !errors.As(err, &ae) || ae.Description == "" {
				t.Fatalf("err = %#v, want an *auth.Error with a description", err)
			}
		})
	}
}

// TestNoTokenMaterial checks that no refusal, and no log line, carries any
// piece of the token.
func TestNoTokenMaterial(t *testing.T) {
	e := newEnv(t)
	for _, tc := range badTokens(t, e) {
		_, err := e.validate(tc.token)
		if err == nil {
			t.Fatalf("%s: accepted", tc.name)
		}
		for _, piece := range tokenPieces(tc.token) {
			if strings.Contains(err.Error(), piece) {
				t.Errorf("%s: error %q holds token material %q", tc.name, err, piece)
			}
			if strings.Contains(e.log.String(), piece) {
				t.Errorf("%s: log holds token material %q", tc.name, piece)
			}
		}
	}
	if e.log.String() == "" {
		t.Error("nothing was logged: the test checks nothing")
	}
}

// tokenPieces are the parts of token that must not leak: the token and its
// segments, and the decoded header's kid and alg values.
func tokenPieces(token string) []string {
	var out []string
	if len(token) >= 8 {
		out = append(out, token)
	}
	for _, p := range strings.Split(token, ".") {
		if len(p) >= 8 {
			out = append(out, p)
		}
	}
	return out
}

func TestLeeway(t *testing.T) {
	e := newEnv(t)
	now := e.clk.Now()
	good := e.claims(e.op.Issuer(), "acme")
	for name, tok := range map[string]string{
		"exp just passed":  e.es.Sign(with(good, "exp", now.Add(-10*time.Second).Unix())),
		"nbf just ahead":   e.es.Sign(with(good, "nbf", now.Add(20*time.Second).Unix())),
		"iat just ahead":   e.es.Sign(with(good, "iat", now.Add(20*time.Second).Unix())),
		"aud single match": e.es.Sign(with(good, "aud", audience)),
	} {
		if _, err := e.validate(tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Leeway off: the same tokens are refused.
	strict := e.validator(func(c *auth.Config) { c.Leeway = -1 })
	if _, err := strict.Validate(t.Context(), e.es.Sign(with(good, "exp", now.Add(-time.Second).Unix()))); !errors.Is(err, auth.ErrTokenExpired) {
		t.Errorf("no leeway, exp a second ago: %v", err)
	}
	if _, err := strict.Validate(t.Context(), e.es.Sign(with(good, "nbf", now.Add(time.Second).Unix()))); !errors.Is(err, auth.ErrTokenNotYetValid) {
		t.Errorf("no leeway, nbf a second ahead: %v", err)
	}
	// A token expiring exactly now is expired.
	if _, err := strict.Validate(t.Context(), e.es.Sign(with(good, "exp", now.Unix()))); !errors.Is(err, auth.ErrTokenExpired) {
		t.Errorf("no leeway, exp now: %v", err)
	}
}

func TestOversizedRefusedBeforeParsing(t *testing.T) {
	e := newEnv(t)
	parses := auth.CountParses(t.Cleanup)
	good := e.claims(e.op.Issuer(), "acme")
	for name, tok := range map[string]string{
		"oversized valid":     e.es.Sign(with(good, "pad", strings.Repeat("x", auth.MaxTokenSize))),
		"oversized garbage":   strings.Repeat("a.", auth.MaxTokenSize),
		"two segments":        "eyJhbGciOiJFUzI1NiJ9.e30",
		"bad character":       "eyJhbGciOiJFUzI1NiJ9.e30.a*b",
		"empty segment":       "eyJhbGciOiJFUzI1NiJ9..abc",
		"alg none unsigned":   craft(map[string]any{"alg": "none"}, good, nil),
		"JSON serialization":  `{"payload":"e30","protected":"eyJhbGciOiJFUzI1NiJ9","signature":"abc"}`,
		"embedded whitespace": "eyJhbGciOiJFUzI1NiJ9.e30 .abc",
	} {
		if _, err := e.validate(tok); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if n := parses.Load(); n != 0 {
		t.Errorf("%d malformed or oversized tokens reached the parser", n)
	}
	// The largest allowed size is parsed (and here refused for its bad signature).
	tok := e.platform(e.es, "acme")
	i := len(tok) - 20
	c := "A"
	if tok[i] == 'A' {
		c = "B"
	}
	tok = tok[:i] + c + tok[i+1:] // another letter in the signature's middle
	if _, err := e.validate(tok); err == nil || parses.Load() != 1 {
		t.Errorf("a well-formed token was not parsed (err %v, parses %d)", err, parses.Load())
	}
}

func TestNewValidatorConfig(t *testing.T) {
	for name, cfg := range map[string]auth.Config{
		"no audience":          {Issuer: "https://id.example.com"},
		"no issuer":            {Audience: "a"},
		"http issuer":          {Issuer: "http://id.example.com", Audience: "a"},
		"trailing slash":       {Issuer: "https://id.example.com/", Audience: "a"},
		"query":                {Issuer: "https://id.example.com?x=1", Audience: "a"},
		"fragment":             {Issuer: "https://id.example.com#x", Audience: "a"},
		"relative":             {Issuer: "id.example.com", Audience: "a"},
		"user info":            {Issuer: "https://u:p@id.example.com", Audience: "a"},
		"leeway over 5m":       {Issuer: "https://id.example.com", Audience: "a", Leeway: 6 * time.Minute},
		"refresh under 1s":     {Issuer: "https://id.example.com", Audience: "a", KeyRefreshInterval: time.Millisecond},
		"max age under refill": {Issuer: "https://id.example.com", Audience: "a", KeyRefreshInterval: time.Minute, KeyMaxAge: time.Second},
	} {
		if _, err := auth.NewValidator(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, cfg := range map[string]auth.Config{
		"https":           {Issuer: "https://id.example.com", Audience: "a"},
		"https with path": {Issuer: "https://example.com/id", Audience: "a"},
		"http loopback":   {Issuer: "http://127.0.0.1:8080", Audience: "a"},
		"http localhost":  {Issuer: "http://localhost:8080", Audience: "a"},
		"leeway 5m":       {Issuer: "https://id.example.com", Audience: "a", Leeway: 5 * time.Minute},
	} {
		if _, err := auth.NewValidator(cfg); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestErrorIs(t *testing.T) {
	e := newEnv(t)
	_, err := e.validate(e.es.Sign(with(e.claims(e.op.Issuer(), "acme"), "iat", e.clk.Now().Add(time.Hour).Unix())))
	if !errors.Is(err, auth.ErrTokenNotYetValid) || errors.Is(err, auth.ErrTokenExpired) {
		t.Errorf("errors.Is: %v", err)
	}
}

// TestValidateRefusesWithHeaderCached runs the bad tokens again after good
// tokens have put their headers in the validator's header cache: the
// shortcut past go-jose must refuse them the same way.
func TestValidateRefusesWithHeaderCached(t *testing.T) {
	e := newEnv(t)
	good := e.claims(e.op.Issuer(), "acme")
	for _, tok := range []string{e.es.Sign(good), e.ed.Sign(good)} {
		if _, err := e.validate(tok); err != nil {
			t.Fatalf("good token: %v", err)
		}
	}
	for _, tc := range badTokens(t, e) {
		t.Run(tc.name, func(t *testing.T) {
			c, err := e.validate(tc.token)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want code %s", err, tc.want.Code)
			}
		})
	}
}
