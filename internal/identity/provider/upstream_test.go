package provider_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// upstreamIdP is a tenant's own OpenID provider as an attacker who runs
// it (or who controls what it says about a user) would: an httptest
// server whose ID tokens and userinfo say whatever the test sets, signed
// with its own key. Handlers can be replaced per endpoint to misbehave
// (huge bodies, silence, redirects).
type upstreamIdP struct {
	t   *testing.T
	srv *httptest.Server
	key *ecdsa.PrivateKey
	kid string

	mu       sync.Mutex
	claims   map[string]any // of the next ID tokens (iss, aud, exp, iat, nonce are added)
	userinfo map[string]any // nil: 404
	nonces   map[string]string
	hits     map[string]int
	forms    []url.Values // token requests received
	backTo   []string     // redirect URIs of authorization requests
	override map[string]http.HandlerFunc
	conns    atomic.Int64 // TCP connections accepted
}

const (
	upstreamClientID     = "bulkhead-at-upstream"
	upstreamClientSecret = "upstream-client-secret-0123456789"
)

func newUpstreamIdP(t *testing.T) *upstreamIdP {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u := &upstreamIdP{t: t, key: key, kid: "k1", nonces: map[string]string{}, hits: map[string]int{}, override: map[string]http.HandlerFunc{}}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}
	u.srv.Start()
	t.Cleanup(u.srv.Close)
	return u
}

// rotate gives the upstream a new signing key, so that the next ID token
// makes its verifier fetch the JWKS again.
func (u *upstreamIdP) rotate() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		u.t.Fatal(err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.key, u.kid = key, fmt.Sprintf("k%d", time.Now().UnixNano())
}

// issuer is the upstream's issuer URL.
func (u *upstreamIdP) issuer() string { return u.srv.URL }

// says sets the claims of the ID tokens the upstream issues from now on.
func (u *upstreamIdP) says(claims map[string]any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.claims = claims
}

// saysInUserinfo sets the userinfo answer (nil: none).
func (u *upstreamIdP) saysInUserinfo(claims map[string]any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.userinfo = claims
}

// replace serves path with h instead of the honest handler.
func (u *upstreamIdP) replace(path string, h http.HandlerFunc) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.override[path] = h
}

// hitsOf counts the requests to path.
func (u *upstreamIdP) hitsOf(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[path]
}

// tokenRequests and redirectURIs return what the upstream received.
func (u *upstreamIdP) tokenRequests() []url.Values {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.forms)
}

func (u *upstreamIdP) redirectURIs() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.backTo)
}

// totalHits counts every request the upstream received.
func (u *upstreamIdP) totalHits() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, v := range u.hits {
		n += v
	}
	return n
}

func (u *upstreamIdP) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.hits[r.URL.Path]++
	h := u.override[r.URL.Path]
	u.mu.Unlock()
	if h != nil {
		h(w, r)
		return
	}
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		writeJSONTo(w, u.discovery())
	case "/jwks":
		u.mu.Lock()
		set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &u.key.PublicKey, KeyID: u.kid, Algorithm: "ES256", Use: "sig"}}}
		u.mu.Unlock()
		writeJSONTo(w, set)
	case "/authorize":
		q := r.URL.Query()
		code := fmt.Sprintf("code-%d", time.Now().UnixNano())
		u.mu.Lock()
		u.nonces[code] = q.Get("nonce")
		u.backTo = append(u.backTo, q.Get("redirect_uri"))
		u.mu.Unlock()
		back, err := url.Parse(q.Get("redirect_uri"))
		if err != nil || q.Get("client_id") != upstreamClientID {
			http.Error(w, "bad authorization request", http.StatusBadRequest)
			return
		}
		v := back.Query()
		v.Set("code", code)
		v.Set("state", q.Get("state"))
		back.RawQuery = v.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	case "/token":
		r.ParseForm()
		u.mu.Lock()
		u.forms = append(u.forms, r.PostForm)
		nonce, ok := u.nonces[r.PostForm.Get("code")]
		delete(u.nonces, r.PostForm.Get("code"))
		claims := maps.Clone(u.claims)
		key, kid := u.key, u.kid
		u.mu.Unlock()
		if !ok {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		std := map[string]any{"iss": u.issuer(), "aud": upstreamClientID, "exp": time.Now().Add(5 * time.Minute).Unix(),
			"iat": time.Now().Unix(), "nonce": nonce}
		for k, v := range std {
			if _, set := claims[k]; !set {
				if claims == nil {
					claims = map[string]any{}
				}
				claims[k] = v
			}
		}
		writeJSONTo(w, map[string]any{"access_token": "upstream-access-token", "token_type": "Bearer", "expires_in": 300,
			"id_token": signJWT(u.t, jose.ES256, key, kid, claims)})
	case "/userinfo":
		u.mu.Lock()
		info := u.userinfo
		u.mu.Unlock()
		if info == nil || r.Header.Get("Authorization") != "Bearer upstream-access-token" {
			http.NotFound(w, r)
			return
		}
		writeJSONTo(w, info)
	default:
		http.NotFound(w, r)
	}
}

func (u *upstreamIdP) discovery() map[string]any {
	return map[string]any{"issuer": u.issuer(), "authorization_endpoint": u.issuer() + "/authorize",
		"token_endpoint": u.issuer() + "/token", "jwks_uri": u.issuer() + "/jwks", "userinfo_endpoint": u.issuer() + "/userinfo",
		"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		"id_token_signing_alg_values_supported": []string{"ES256"}}
}

func writeJSONTo(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// federatedSignIn runs a sign-in of email through the platform login
// page in browser b: the login page sends it to the tenant's upstream,
// which sends it back. It returns the code (when the sign-in completed),
// else the last page, its status and its URL.
func federatedSignIn(t *testing.T, b *browser, authURL, email string) (code, page string, status int, at string) {
	t.Helper()
	resp, err := b.client.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	fields, body := formFields(t, resp)
	if fields.Get("authRequestID") == "" {
		return "", body, resp.StatusCode, resp.Request.URL.String()
	}
	fields.Set("email", email)
	return b.submit(resp.Request.URL.String(), fields)
}

// submit posts a form in browser b, follows redirects up to the client's
// redirect URI, and reads the answer as federatedSignIn does.
func (b *browser) submit(at string, fields url.Values) (code, page string, status int, last string) {
	b.t.Helper()
	resp, err := b.client.PostForm(at, fields)
	if err != nil {
		return "", err.Error(), 0, at
	}
	_, body := formFields(b.t, resp)
	b.lastLocation = resp.Header.Get("Location")
	if resp.StatusCode == http.StatusFound && strings.HasPrefix(b.lastLocation, b.stopAt) {
		loc, _ := url.Parse(b.lastLocation)
		return loc.Query().Get("code"), "", resp.StatusCode, resp.Request.URL.String()
	}
	return "", body, resp.StatusCode, resp.Request.URL.String()
}
