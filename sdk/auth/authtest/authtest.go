// Package authtest is a test OpenID Provider for code that validates Bulkhead
// tokens with package auth: a TLS loopback server (net/http/httptest) that
// serves the discovery document and the JWKS of the platform issuer and of
// any number of silo issuers, with signing keys generated in the test.
//
//	op := authtest.NewServer(t)
//	v, _ := auth.NewValidator(auth.Config{Issuer: op.Issuer(), Audience: "api", HTTPClient: op.Client()})
//	tok := op.Key(op.Issuer(), authtest.ES256).Sign(op.Claims(op.Issuer(), "api", "acme"))
package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Algorithms of the keys the server generates.
const (
	ES256 = jose.ES256
	EdDSA = jose.EdDSA
)

// Key is a signing key of one issuer.
type Key struct {
	ID        string
	Algorithm jose.SignatureAlgorithm
	Private   crypto.Signer    // *ecdsa.PrivateKey or ed25519.PrivateKey
	Public    crypto.PublicKey // *ecdsa.PublicKey or ed25519.PublicKey
	signer    jose.Signer
}

// AccessTokenType is the JOSE header typ of Bulkhead's access tokens, which
// Sign writes.
const AccessTokenType = "at+jwt"

// Sign returns a compact JWS of claims (marshalled with encoding/json) with
// the header {"alg":…,"kid":…,"typ":"at+jwt"}, as Bulkhead signs access
// tokens.
func (k *Key) Sign(claims any) string {
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(fmt.Sprintf("authtest: marshal claims: %v", err))
	}
	return k.SignPayload(payload)
}

// SignPayload is Sign of raw payload bytes.
func (k *Key) SignPayload(payload []byte) string {
	return k.sign(k.signer, payload)
}

// SignType is Sign with the header typ set to typ ("" for none): an ID
// token's "JWT", say, which validators must refuse as an access token.
func (k *Key) SignType(typ string, claims any) string {
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(fmt.Sprintf("authtest: marshal claims: %v", err))
	}
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Algorithm, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.ID}}, opts)
	if err != nil {
		panic(err)
	}
	return k.sign(signer, payload)
}

func (k *Key) sign(signer jose.Signer, payload []byte) string {
	obj, err := signer.Sign(payload)
	if err != nil {
		panic(fmt.Sprintf("authtest: sign: %v", err))
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		panic(fmt.Sprintf("authtest: serialize: %v", err))
	}
	return s
}

// JWK is the key's public JWK, as the JWKS publishes it.
func (k *Key) JWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Public, KeyID: k.ID, Algorithm: string(k.Algorithm), Use: "sig"}
}

// NewKey generates a key of alg (ES256 or EdDSA) with key id kid, not
// published by any issuer.
func NewKey(alg jose.SignatureAlgorithm, kid string) *Key {
	k := &Key{ID: kid, Algorithm: alg}
	switch alg {
	case ES256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		k.Private, k.Public = priv, &priv.PublicKey
	case EdDSA:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		k.Private, k.Public = priv, pub
	default:
		panic("authtest: unsupported algorithm " + string(alg))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: k.Private, KeyID: kid}},
		(&jose.SignerOptions{}).WithType(AccessTokenType))
	if err != nil {
		panic(err)
	}
	k.signer = signer
	return k
}

type issuer struct {
	keys      []*Key
	extra     []json.RawMessage // extra raw JWKs (tests of odd key sets)
	discovery map[string]any    // overrides the generated document when set
	jwksFetch int
	discFetch int
}

// Server is a test OpenID Provider. The platform issuer is the server's URL;
// a silo tenant T's issuer is URL/t/T. Each issuer's discovery document is at
// ISSUER/.well-known/openid-configuration and its JWKS at ISSUER/keys.
// Issuers other than the platform's exist once a key is added to them.
type Server struct {
	*httptest.Server
	mu      sync.Mutex
	issuers map[string]*issuer
	n       int
	reqs    int
	redir   map[string]string
}

// NewServer starts a server, closed when tb's test ends.
func NewServer(tb testing.TB) *Server {
	s := &Server{issuers: map[string]*issuer{}}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	s.issuers[s.URL] = &issuer{}
	tb.Cleanup(s.Close)
	return s
}

// Issuer is the platform issuer.
func (s *Server) Issuer() string { return s.URL }

// SiloIssuer is tenant's own issuer.
func (s *Server) SiloIssuer(tenant string) string { return s.URL + "/t/" + tenant }

func (s *Server) issuer(iss string) *issuer {
	is := s.issuers[iss]
	if is == nil {
		is = &issuer{}
		s.issuers[iss] = is
	}
	return is
}

// AddKey generates a key of alg and publishes it in iss's JWKS.
func (s *Server) AddKey(iss string, alg jose.SignatureAlgorithm) *Key {
	s.mu.Lock()
	s.n++
	kid := fmt.Sprintf("k%d-%s", s.n, strings.ToLower(string(alg)))
	s.mu.Unlock()
	k := NewKey(alg, kid)
	s.Publish(iss, k)
	return k
}

// Publish adds k to iss's JWKS.
func (s *Server) Publish(iss string, k *Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.issuer(iss)
	is.keys = append(is.keys, k)
}

// PublishRaw adds a raw JWK (any JSON) to iss's JWKS.
func (s *Server) PublishRaw(iss string, jwk json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.issuer(iss)
	is.extra = append(is.extra, jwk)
}

// Retire removes the key kid from iss's JWKS.
func (s *Server) Retire(iss, kid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.issuer(iss)
	for i, k := range is.keys {
		if k.ID == kid {
			is.keys = append(is.keys[:i:i], is.keys[i+1:]...)
			return
		}
	}
}

// SetDiscovery replaces iss's discovery document with doc (nil restores the
// generated one).
func (s *Server) SetDiscovery(iss string, doc map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issuer(iss).discovery = doc
}

// Fetches reports how many times iss's discovery document and JWKS were
// served.
func (s *Server) Fetches(iss string) (discovery, jwks int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.issuers[iss]
	if is == nil {
		return 0, 0
	}
	return is.discFetch, is.jwksFetch
}

// Claims returns a valid claim set for a token of iss for audience, valid
// from now for an hour. tenant "" leaves out tenant_id (a platform client).
func (s *Server) Claims(iss, audience, tenant string) map[string]any {
	return Claims(iss, audience, tenant, time.Now())
}

// Claims returns a claim set as Server.Claims does, issued at now.
func Claims(iss, audience, tenant string, now time.Time) map[string]any {
	c := map[string]any{
		"iss":       iss,
		"sub":       "usr_0123456789",
		"aud":       []string{audience, "other-api"},
		"exp":       now.Add(time.Hour).Unix(),
		"nbf":       now.Unix(),
		"iat":       now.Unix(),
		"jti":       "tok_0123456789abcdef",
		"tier":      "standard",
		"groups":    []string{"admins", "billing"},
		"scope":     "openid tenants:read tenants:write",
		"client_id": "cli_web",
		"token_use": "access",
	}
	if tenant != "" {
		c["tenant_id"] = tenant
	}
	return c
}

// With returns a copy of claims c with the key/value pairs kv set (a nil
// value deletes the key).
func With(c map[string]any, kv ...any) map[string]any {
	d := make(map[string]any, len(c))
	for k, v := range c {
		d[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(d, kv[i].(string))
		} else {
			d[kv[i].(string)] = kv[i+1]
		}
	}
	return d
}

// Redirect makes the server answer requests for path with a 302 to target
// ("" removes it).
func (s *Server) Redirect(path, target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.redir == nil {
		s.redir = map[string]string{}
	}
	s.redir[path] = target
}

// Requests reports how many requests the server has had, for any path.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.reqs++
	target := s.redir[r.URL.Path]
	s.mu.Unlock()
	if target != "" {
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	iss, kind := "", ""
	switch {
	case strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration"):
		iss, kind = s.URL+strings.TrimSuffix(r.URL.Path, "/.well-known/openid-configuration"), "discovery"
	case strings.HasSuffix(r.URL.Path, "/keys"):
		iss, kind = s.URL+strings.TrimSuffix(r.URL.Path, "/keys"), "jwks"
	default:
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	is := s.issuers[iss]
	if is == nil {
		s.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	var body any
	if kind == "discovery" {
		is.discFetch++
		body = is.discovery
		if is.discovery == nil {
			body = map[string]any{
				"issuer":                                iss,
				"jwks_uri":                              iss + "/keys",
				"token_endpoint":                        iss + "/oauth/v2/token",
				"id_token_signing_alg_values_supported": []string{"ES256", "EdDSA"},
			}
		}
	} else {
		is.jwksFetch++
		keys := make([]any, 0, len(is.keys)+len(is.extra))
		for _, k := range is.keys {
			keys = append(keys, k.JWK())
		}
		for _, raw := range is.extra {
			keys = append(keys, raw)
		}
		body = map[string]any{"keys": keys}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}
