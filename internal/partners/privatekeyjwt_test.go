package partners_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// A private_key_jwt partner authenticates at the token endpoint with a
// client assertion (RFC 7523): a JWT it signs with a key it publishes at
// its JWKS URL. These tests serve that JWKS from a loopback server (the
// test node allows private upstreams), sign with real ES256, EdDSA and
// RS256 keys, and show what the node accepts, what it refuses, that it
// follows a key rotation, and that a JWKS URL that is slow or huge cannot
// hold the token endpoint.

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// signingKey is one of a partner's private keys and its key id.
type signingKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key crypto.Signer
}

func newKey(t *testing.T, alg jose.SignatureAlgorithm, kid string) signingKey {
	t.Helper()
	var k crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case jose.RS256:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid: kid, alg: alg, key: k}
}

// public is the key as its JWKS publishes it.
func (k signingKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.key.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// sign signs claims with the key, its kid in the header.
func (k signingKey) sign(t *testing.T, claims any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.key, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// jwksBody is a JWKS of keys' public halves, with extra members.
func jwksBody(t *testing.T, extra map[string]any, keys ...signingKey) []byte {
	t.Helper()
	set := map[string]any{}
	for k, v := range extra {
		set[k] = v
	}
	pubs := []jose.JSONWebKey{}
	for _, k := range keys {
		pubs = append(pubs, k.public())
	}
	set["keys"] = pubs
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwksServer is partners' key hosting: a loopback server whose answer on
// each path the test sets, and which counts the fetches of each path.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	routes  map[string]http.HandlerFunc
	fetches map[string]int
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	s := &jwksServer{routes: map[string]http.HandlerFunc{}, fetches: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := s.routes[r.URL.Path]
		s.fetches[r.URL.Path]++
		s.mu.Unlock()
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// handle serves path with h and returns its URL.
func (s *jwksServer) handle(path string, h http.HandlerFunc) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[path] = h
	return s.URL + path
}

// serveKeys publishes keys at path (replacing what it served) and
// returns its URL.
func (s *jwksServer) serveKeys(t *testing.T, path string, keys ...signingKey) string {
	t.Helper()
	body := jwksBody(t, nil, keys...)
	return s.handle(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
}

func (s *jwksServer) fetched(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches[path]
}

// keyPartner registers a private_key_jwt partner with its JWKS URL.
func (f *fixture) keyPartner(t *testing.T, name, jwksURL string) api.PartnerCreated {
	t.Helper()
	p, err := f.env.Admin.CreatePartner(f.ctx, api.CreatePartner{Name: name, AuthMethod: api.PartnerPrivateKeyJWT, JWKSURL: jwksURL})
	if err != nil {
		t.Fatal(err)
	}
	if p.AuthMethod != api.PartnerPrivateKeyJWT || p.ClientSecret != "" || p.JWKSURL != jwksURL {
		t.Fatalf("partner: %+v", p)
	}
	return p
}

// assertionClaims are a correct client assertion's claims for partner
// id at the node's token endpoint, with a fresh jti.
func (f *fixture) assertionClaims(id string) map[string]any {
	now := time.Now()
	return map[string]any{"iss": id, "sub": id, "aud": f.env.URL + "/oauth/token",
		"exp": now.Add(2 * time.Minute).Unix(), "iat": now.Unix(), "jti": rand.Text()}
}

// exchangeForm is the token exchange of a trust's external id in tenant,
// without client authentication.
func exchangeForm(tenant, externalID string) url.Values {
	return url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {externalID},
		"subject_token_type": {client.PartnerTokenType}, "tenant": {tenant}}
}

// assumeWith is the raw token request of a partner authenticated by
// assertion: its status and body.
func (f *fixture) assumeWith(t *testing.T, tenant, externalID, assertion string) (int, []byte) {
	t.Helper()
	form := exchangeForm(tenant, externalID)
	form.Set("client_assertion_type", assertionType)
	form.Set("client_assertion", assertion)
	return postForm(t, f.env.URL+"/oauth/token", "", "", form)
}

// granted checks a token answer and returns the access token's claims,
// checked to be partner's session in tenant's trust.
func granted(t *testing.T, what string, status int, body []byte, partnerID, trustID string) map[string]any {
	t.Helper()
	if status != 200 {
		t.Fatalf("%s: %d %s", what, status, body)
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(body, &out)
	c := claims(t, out.AccessToken)
	checkSession(t, what, c, partnerID, trustID)
	return c
}

func checkSession(t *testing.T, what string, c map[string]any, partnerID, trustID string) {
	t.Helper()
	act, _ := c["act"].(map[string]any)
	if c["sub"] != trustID || act["sub"] != partnerID || c["client_id"] != partnerID || c["tenant_id"] != "acme" {
		t.Fatalf("%s: claims %v", what, c)
	}
}

// oauthRefusal decodes a token endpoint's refusal: its error code, and
// whether the answer holds a token anyway.
func oauthRefusal(body []byte) (code string, token bool) {
	var e struct {
		Error       string `json:"error"`
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(body, &e)
	return e.Error, e.AccessToken != "" || bytes.Contains(body, []byte("access_token"))
}

// TestPrivateKeyJWT: a private_key_jwt partner gets a session with a
// correct assertion signed by any of its published keys (ES256, EdDSA,
// RS256), once per assertion; every flaw of the assertion, and every
// other way of authenticating as it, is refused without a token.
func TestPrivateKeyJWT(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, apitest.Options{})
		f.tenant(t, "acme", "basic")
		srv := newJWKSServer(t)
		es, ed, rs := newKey(t, jose.ES256, "p-es"), newKey(t, jose.EdDSA, "p-ed"), newKey(t, jose.RS256, "p-rs")
		qk := newKey(t, jose.ES256, "q-es")
		p := f.keyPartner(t, "Keyed Co", srv.serveKeys(t, "/jwks.json", es, ed, rs))
		q := f.keyPartner(t, "Other Keyed Co", srv.serveKeys(t, "/other/jwks.json", qk))
		s := f.partner(t, "Secret Co")
		scopes := []string{"reports:read"}
		ptr := f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: scopes})
		qtr := f.trust(t, "acme", api.CreateTrust{Partner: q.ID, Scopes: scopes})
		str := f.trust(t, "acme", api.CreateTrust{Partner: s.ID, Scopes: scopes})
		// Each row also carries the other method's credential, as no
		// registration leaves it (a bad migration or restore might): P a
		// secret's hash, S P's JWKS URL. The partner's method alone then
		// decides which credential counts.
		pSecret := "bhp_" + rand.Text()
		sum := sha256.Sum256([]byte(pSecret))
		if err := f.env.DB.Update(f.ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
			if _, err := tx.Exec(f.ctx, `UPDATE partners SET secret_hash = ? WHERE id = ?`, hex.EncodeToString(sum[:]), p.ID); err != nil {
				return err
			}
			_, err := tx.Exec(f.ctx, `UPDATE partners SET jwks_url = ? WHERE id = ?`, p.JWKSURL, s.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		tokenURL := f.env.URL + "/oauth/token"
		signed := func(k signingKey, change func(c map[string]any)) string {
			c := f.assertionClaims(p.ID)
			if change != nil {
				change(c)
			}
			return k.sign(t, c)
		}

		// ES256, through the SDK.
		esAssertion := signed(es, nil)
		in := client.AssumeTrust{TokenURL: tokenURL, PartnerID: p.ID, ClientAssertion: esAssertion, Tenant: "acme", ExternalID: ptr.ExternalID}
		tok, err := client.AssumeTrustToken(f.ctx, in)
		if err != nil {
			t.Fatalf("ES256 through the SDK: %v", err)
		}
		checkSession(t, "ES256 through the SDK", claims(t, tok.AccessToken), p.ID, ptr.ID)
		if len(tok.Scopes) != 1 || tok.Scopes[0] != "reports:read" || time.Until(tok.ExpiresAt) < time.Minute {
			t.Fatalf("ES256 through the SDK: %+v", tok)
		}
		// EdDSA and RS256, raw; RS256 near the 10 minutes' bound.
		edAssertion := signed(ed, nil)
		status, body := f.assumeWith(t, "acme", ptr.ExternalID, edAssertion)
		granted(t, "EdDSA", status, body, p.ID, ptr.ID)
		status, body = f.assumeWith(t, "acme", ptr.ExternalID, signed(rs, func(c map[string]any) { c["exp"] = time.Now().Add(9 * time.Minute).Unix() }))
		granted(t, "RS256 with exp in 9 minutes", status, body, p.ID, ptr.ID)
		// The aud may be the issuer too (RFC 7523 §3), and an array.
		status, body = f.assumeWith(t, "acme", ptr.ExternalID, signed(es, func(c map[string]any) { c["aud"] = []string{"https://elsewhere.example", f.env.URL} }))
		granted(t, "aud the issuer, in an array", status, body, p.ID, ptr.ID)
		// The other keyed partner, with its own key (it is set up right:
		// its refusals below are the assertions' flaws).
		qc := f.assertionClaims(q.ID)
		status, body = f.assumeWith(t, "acme", qtr.ExternalID, qk.sign(t, qc))
		granted(t, "the other partner", status, body, q.ID, qtr.ID)
		deniedBefore := f.assumed(t, "")[audit.Denied]

		// An assertion authenticates once.
		_, err = client.AssumeTrustToken(f.ctx, in)
		var oe *client.OAuthError
		if !errors.As(err, &oe) || oe.Status != 401 || oe.Code != "invalid_client" {
			t.Fatalf("the SDK's assertion replayed: %v", err)
		}
		status, body = f.assumeWith(t, "acme", ptr.ExternalID, edAssertion)
		if code, token := oauthRefusal(body); status != 401 || code != "invalid_client" || token {
			t.Fatalf("the EdDSA assertion replayed: %d %s", status, body)
		}

		// hs256 keys HMAC with P's RSA public key, in PEM: the algorithm
		// confusion attack.
		der, err := x509.MarshalPKIXPublicKey(rs.key.Public())
		if err != nil {
			t.Fatal(err)
		}
		hs256 := func() string {
			sg, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256,
				Key: jose.JSONWebKey{Key: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), KeyID: rs.kid}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			out, err := jwt.Signed(sg).Claims(f.assertionClaims(p.ID)).Serialize()
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		none := func() string {
			h, _ := json.Marshal(map[string]string{"alg": "none", "kid": es.kid, "typ": "JWT"})
			c, _ := json.Marshal(f.assertionClaims(p.ID))
			return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
		}
		withAssertion := func(a string) func() (int, []byte) {
			return func() (int, []byte) { return f.assumeWith(t, "acme", ptr.ExternalID, a) }
		}
		raw := func(user, pass string, set map[string]string) func() (int, []byte) {
			return func() (int, []byte) {
				form := exchangeForm("acme", ptr.ExternalID)
				for k, v := range set {
					form.Set(k, v)
				}
				return postForm(t, tokenURL, user, pass, form)
			}
		}
		now := time.Now()
		refusals := []struct {
			what   string
			do     func() (int, []byte)
			status int
			code   string
		}{
			{what: "aud another endpoint of the node", do: withAssertion(signed(es, func(c map[string]any) { c["aud"] = f.env.URL + "/oauth/introspect" }))},
			{what: "aud another server", do: withAssertion(signed(es, func(c map[string]any) { c["aud"] = "https://elsewhere.example/oauth/token" }))},
			{what: "no aud", do: withAssertion(signed(es, func(c map[string]any) { delete(c, "aud") }))},
			{what: "sub another partner", do: withAssertion(signed(es, func(c map[string]any) { c["sub"] = q.ID }))},
			{what: "iss and sub another partner, P's key", do: func() (int, []byte) {
				c := f.assertionClaims(q.ID)
				return f.assumeWith(t, "acme", qtr.ExternalID, es.sign(t, c))
			}},
			{what: "iss and sub another partner, P's key, P's external id", do: withAssertion(es.sign(t, f.assertionClaims(q.ID)))},
			{what: "P's claims, another partner's key", do: withAssertion(signed(qk, nil))},
			{what: "exp in the past", do: withAssertion(signed(es, func(c map[string]any) {
				c["exp"], c["iat"] = now.Add(-2*time.Minute).Unix(), now.Add(-5*time.Minute).Unix()
			}))},
			{what: "exp in an hour", do: withAssertion(signed(es, func(c map[string]any) { c["exp"] = now.Add(time.Hour).Unix() }))},
			{what: "exp in 11 minutes", do: withAssertion(signed(es, func(c map[string]any) { c["exp"] = now.Add(11 * time.Minute).Unix() }))},
			{what: "no exp", do: withAssertion(signed(es, func(c map[string]any) { delete(c, "exp") }))},
			{what: "nbf in 5 minutes", do: withAssertion(signed(es, func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() }))},
			{what: "iat in 5 minutes", do: withAssertion(signed(es, func(c map[string]any) { c["iat"] = now.Add(5 * time.Minute).Unix() }))},
			{what: "no jti", do: withAssertion(signed(es, func(c map[string]any) { delete(c, "jti") }))},
			{what: "an empty jti", do: withAssertion(signed(es, func(c map[string]any) { c["jti"] = "" }))},
			{what: "a key not in the JWKS, with a kid that is", do: withAssertion(signed(newKey(t, jose.ES256, es.kid), nil))},
			{what: "a key not in the JWKS, with no kid", do: withAssertion(signed(signingKey{alg: jose.EdDSA, key: newKey(t, jose.EdDSA, "").key}, nil))},
			{what: "alg none", do: withAssertion(none())},
			{what: "HS256 keyed with P's public key", do: withAssertion(hs256())},
			{what: "an assertion naming a client_secret_basic partner", do: func() (int, []byte) {
				return f.assumeWith(t, "acme", str.ExternalID, es.sign(t, f.assertionClaims(s.ID)))
			}},
			{what: "P with HTTP Basic and its row's secret", do: raw(p.ID, pSecret, nil)},
			{what: "P with HTTP Basic and another secret", do: raw(p.ID, "bhp_"+strings.Repeat("A", 43), nil)},
			{what: "P with HTTP Basic and no secret", do: raw(p.ID, "", nil)},
			{what: "P with client_secret_post and its row's secret", do: raw("", "", map[string]string{"client_id": p.ID, "client_secret": pSecret})},
			{what: "HTTP Basic and an assertion at once", do: raw(p.ID, "anything", map[string]string{
				"client_assertion_type": assertionType, "client_assertion": signed(es, nil)}), status: 400, code: "invalid_request"},
			{what: "client_secret and an assertion at once", do: raw("", "", map[string]string{"client_secret": "anything",
				"client_assertion_type": assertionType, "client_assertion": signed(es, nil)}), status: 400, code: "invalid_request"},
			{what: "client_id another partner", do: raw("", "", map[string]string{"client_id": q.ID,
				"client_assertion_type": assertionType, "client_assertion": signed(es, nil)})},
			{what: "client_assertion_type SAML", do: raw("", "", map[string]string{
				"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer", "client_assertion": signed(es, nil)})},
			{what: "no client_assertion_type", do: raw("", "", map[string]string{"client_assertion": signed(es, nil)})},
			{what: "client_assertion_type without an assertion", do: raw("", "", map[string]string{"client_assertion_type": assertionType})},
			{what: "a garbage assertion", do: withAssertion("garbage.not-a.jwt")},
			{what: "a 20 KB assertion, correctly signed", do: withAssertion(signed(es, func(c map[string]any) { c["padding"] = strings.Repeat("x", 20<<10) }))},
		}
		for _, r := range refusals {
			if r.status == 0 {
				r.status, r.code = 401, "invalid_client"
			}
			status, body := r.do()
			if code, token := oauthRefusal(body); status != r.status || code != r.code || token {
				t.Errorf("%s: %d %s, want %d %s", r.what, status, body, r.status, r.code)
			}
		}
		// Each is audited, in the platform's chain (no partner
		// authenticated, no tenant read).
		if got := f.assumed(t, "")[audit.Denied] - deniedBefore; got != len(refusals)+2 {
			t.Errorf("the platform's chain holds %d new refusals, want %d", got, len(refusals)+2)
		}
		if got := f.assumed(t, "acme")[audit.Success]; got != 5 {
			t.Errorf("acme's chain holds %d assumptions, want 5", got)
		}

		// One assertion sent many times at once still authenticates once.
		race := signed(rs, nil)
		var wg sync.WaitGroup
		answers := make([]int, 8)
		bodies := make([][]byte, len(answers))
		for i := range answers {
			wg.Go(func() { answers[i], bodies[i] = f.assumeWith(t, "acme", ptr.ExternalID, race) })
		}
		wg.Wait()
		ok := 0
		for i, status := range answers {
			if code, token := oauthRefusal(bodies[i]); status == 200 && token {
				ok++
			} else if status != 401 || code != "invalid_client" {
				t.Errorf("a concurrent replay: %d %s", status, bodies[i])
			}
		}
		if ok != 1 {
			t.Errorf("one assertion sent %d times at once got %d tokens, want 1", len(answers), ok)
		}

		// A deleted partner's assertions stop at once.
		if err := f.env.Admin.DeletePartner(f.ctx, q.ID); err != nil {
			t.Fatal(err)
		}
		status, body = f.assumeWith(t, "acme", qtr.ExternalID, qk.sign(t, f.assertionClaims(q.ID)))
		if code, token := oauthRefusal(body); status != 401 || code != "invalid_client" || token {
			t.Errorf("a deleted partner's assertion: %d %s", status, body)
		}
	})
}

// TestPrivateKeyJWTKeyRotation: the partner publishes a new key (a new
// kid) instead of its old one; the running node fetches its JWKS again
// for the unknown kid — at most once per 2 s — accepts the new key and
// no longer the old one.
func TestPrivateKeyJWTKeyRotation(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, apitest.Options{})
		f.tenant(t, "acme", "basic")
		srv := newJWKSServer(t)
		old := newKey(t, jose.ES256, "2026-01")
		p := f.keyPartner(t, "Rotating Co", srv.serveKeys(t, "/jwks.json", old))
		tr := f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"}})
		try := func(k signingKey) (int, []byte) {
			return f.assumeWith(t, "acme", tr.ExternalID, k.sign(t, f.assertionClaims(p.ID)))
		}
		status, body := try(old)
		granted(t, "the old key", status, body, p.ID, tr.ID)
		status, body = try(old)
		granted(t, "the old key again", status, body, p.ID, tr.ID)
		if n := srv.fetched("/jwks.json"); n != 1 {
			t.Fatalf("the JWKS was fetched %d times, want once (then cached)", n)
		}

		newer := newKey(t, jose.EdDSA, "2026-02")
		srv.serveKeys(t, "/jwks.json", newer)
		// Within the refetch bound of the last fetch (2 s), unknown kids
		// fetch nothing, however many assertions name them: anyone can
		// send assertions naming a partner.
		for range 20 {
			if status, body := try(newer); status != 401 {
				t.Fatalf("the new key before the refetch bound: %d %s", status, body)
			}
		}
		if n := srv.fetched("/jwks.json"); n != 1 {
			t.Fatalf("the JWKS was fetched %d times within the refetch bound, want once", n)
		}
		time.Sleep(2100 * time.Millisecond)
		status, body = try(newer)
		granted(t, "the new key", status, body, p.ID, tr.ID)
		if n := srv.fetched("/jwks.json"); n != 2 {
			t.Fatalf("the JWKS was fetched %d times, want twice (again for the new kid)", n)
		}
		status, body = try(old)
		if code, token := oauthRefusal(body); status != 401 || code != "invalid_client" || token {
			t.Fatalf("the old key, withdrawn: %d %s", status, body)
		}
		status, body = try(newer)
		granted(t, "the new key again", status, body, p.ID, tr.ID)
	})
}

// TestPrivateKeyJWTUnreachableKeys: a JWKS that answers after the node's
// federation timeout, or with 2 MB (announced, or chunked), fails the
// partner's authentication quickly — though each does serve the right
// key, so the node would accept the assertion without its bounds.
func TestPrivateKeyJWTUnreachableKeys(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, apitest.Options{FederationTimeout: time.Second})
		f.tenant(t, "acme", "basic")
		srv := newJWKSServer(t)
		k := newKey(t, jose.ES256, "k1")
		keys := jwksBody(t, nil, k)
		huge := jwksBody(t, map[string]any{"padding": strings.Repeat("x", 2<<20)}, k)
		cases := []struct {
			what, url string
			ok        bool
		}{
			{"a prompt JWKS", srv.serveKeys(t, "/jwks.json", k), true},
			{"a JWKS after 5 seconds", srv.handle("/slow/jwks.json", func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-time.After(5 * time.Second):
					w.Header().Set("Content-Type", "application/json")
					w.Write(keys)
				case <-r.Context().Done():
				}
			}), false},
			{"a 2 MB JWKS, its length announced", srv.handle("/big/jwks.json", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", strconv.Itoa(len(huge)))
				w.Write(huge)
			}), false},
			{"a 2 MB JWKS, chunked", srv.handle("/chunked/jwks.json", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				for b := huge; len(b) > 0; {
					n := min(len(b), 32<<10)
					if _, err := w.Write(b[:n]); err != nil {
						return
					}
					w.(http.Flusher).Flush()
					b = b[n:]
				}
			}), false},
		}
		for _, c := range cases {
			p := f.keyPartner(t, c.what, c.url)
			tr := f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"}})
			start := time.Now()
			status, body := f.assumeWith(t, "acme", tr.ExternalID, k.sign(t, f.assertionClaims(p.ID)))
			took := time.Since(start)
			if c.ok {
				granted(t, c.what, status, body, p.ID, tr.ID)
				continue
			}
			if code, token := oauthRefusal(body); status != 401 || code != "invalid_client" || token {
				t.Errorf("%s: %d %s", c.what, status, body)
			}
			if took > 4*time.Second {
				t.Errorf("%s: answered after %v", c.what, took)
			}
		}
	})
}

// TestPartnerJWKSURLValidation: the operator cannot register a JWKS URL
// the node should not fetch, nor one with the wrong method; nothing is
// created.
func TestPartnerJWKSURLValidation(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, apitest.Options{})
		count := func() int {
			t.Helper()
			pg, err := f.env.Admin.ListPartners(f.ctx, 100, "")
			if err != nil {
				t.Fatal(err)
			}
			return len(pg.Items)
		}
		f.partner(t, "Existing Co")
		before := count()
		key := func(u string) api.CreatePartner {
			return api.CreatePartner{Name: "Bad Co", AuthMethod: api.PartnerPrivateKeyJWT, JWKSURL: u}
		}
		for _, c := range []struct {
			what        string
			in          api.CreatePartner
			field, code string
		}{
			{"ftp", key("ftp://127.0.0.1/jwks.json"), "jwks_url", "invalid_jwks_url"},
			{"http to a public host", key("http://example.com/jwks.json"), "jwks_url", "invalid_jwks_url"},
			{"http to a name that starts like loopback", key("http://127.0.0.1.example.com/jwks.json"), "jwks_url", "invalid_jwks_url"},
			{"credentials", key("https://user:pass@example.com/jwks.json"), "jwks_url", "invalid_jwks_url"},
			{"a user only", key("https://user@example.com/jwks.json"), "jwks_url", "invalid_jwks_url"},
			{"a fragment", key("https://example.com/jwks.json#keys"), "jwks_url", "invalid_jwks_url"},
			{"a relative URL", key("/jwks.json"), "jwks_url", "invalid_jwks_url"},
			{"no host", key("https:///jwks.json"), "jwks_url", "invalid_jwks_url"},
			{"over 2048 characters", key("https://example.com/" + strings.Repeat("a", 2048)), "jwks_url", "invalid_jwks_url"},
			{"none, with private_key_jwt", key(""), "jwks_url", "invalid_jwks_url"},
			{"with client_secret_basic", api.CreatePartner{Name: "Bad Co", AuthMethod: api.PartnerClientSecret,
				JWKSURL: "https://example.com/jwks.json"}, "jwks_url", "invalid_jwks_url"},
			{"with the default method (client_secret_basic)", api.CreatePartner{Name: "Bad Co",
				JWKSURL: "https://example.com/jwks.json"}, "jwks_url", "invalid_jwks_url"},
			{"an unknown method", api.CreatePartner{Name: "Bad Co", AuthMethod: "tls_client_auth",
				JWKSURL: "https://example.com/jwks.json"}, "auth_method", "invalid_auth_method"},
		} {
			_, err := f.env.Admin.CreatePartner(f.ctx, c.in)
			var e *client.Error
			if !errors.As(err, &e) || e.Status != 400 || e.Code != c.code || e.Field != c.field {
				t.Errorf("%s: %v, want 400 %s on %s", c.what, err, c.code, c.field)
				continue
			}
			// The raw answer is problem+json.
			b, _ := json.Marshal(c.in)
			req, _ := http.NewRequest("POST", f.env.URL+"/v1/partners", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+apitest.AdminToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 400 || !strings.HasPrefix(ct, "application/problem+json") ||
				!strings.Contains(string(body), `"code":"`+c.code+`"`) {
				t.Errorf("%s, raw: %d %s %s", c.what, resp.StatusCode, ct, body)
			}
		}
		if after := count(); after != before {
			t.Fatalf("refused registrations created partners: %d, were %d", after, before)
		}
		// What is accepted: https, and http on loopback.
		for _, u := range []string{"https://keys.example.com/.well-known/jwks.json", "http://localhost:8443/jwks.json",
			"http://127.0.0.1:8443/jwks.json", "http://[::1]:8443/jwks.json"} {
			f.keyPartner(t, "Good Co", u)
		}
		if after := count(); after != before+4 {
			t.Fatalf("%d partners, want %d", after, before+4)
		}
	})
}
