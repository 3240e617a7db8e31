package provider_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// fedTimeout is the federation timeout of the limits tests' nodes.
const fedTimeout = 2 * time.Second

// padded streams v as JSON with a "padding" member of n bytes and
// returns how many bytes the reader took before it hung up.
func padded(w http.ResponseWriter, v map[string]any, n int, took *atomic.Int64) {
	head, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	chunks := [][]byte{append(head[:len(head)-1:len(head)-1], []byte(`,"padding":"`)...)}
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	for sent := 0; sent < n; sent += len(chunk) {
		chunks = append(chunks, chunk)
	}
	chunks = append(chunks, []byte(`"}`))
	for _, c := range chunks {
		k, err := w.Write(c)
		if took != nil {
			took.Add(int64(k))
		}
		if err != nil {
			return
		}
	}
}

// federationSetup is a bridge tenant whose users sign in at up.
func federationSetup(t *testing.T, f *fixture, up *upstreamIdP) oauth2.Config {
	t.Helper()
	f.tenant(t, "bridge-co", "standard", "bridge.example")
	if _, err := f.env.Directory.SetIdP(f.ctx, "bridge-co", identity.IdPRequest{Issuer: up.issuer(), ClientID: upstreamClientID,
		ClientSecret: upstreamClientSecret}, op); err != nil {
		t.Fatal(err)
	}
	_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)
	return conf
}

// attempt runs one federated sign-in of bob in a new browser and returns
// the code (if any), the last status and how long it took.
func attempt(t *testing.T, conf oauth2.Config) (string, int, time.Duration, string) {
	t.Helper()
	start := time.Now()
	code, page, status, _ := federatedSignIn(t, newBrowser(t, redirectURI), conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())),
		"bob@bridge.example")
	return code, status, time.Since(start), page
}

// TestFederationUpstreamLimits is finding 2 of the federation attack:
// upstream answers were read without size or time limits (a 400 MiB
// discovery document took the node to 2.7 GB and was cached forever; a
// silent upstream held a sign-in 75 s) and redirects were followed
// anywhere. Each upstream answer is now capped while it is read, every
// fetch has a total timeout, and redirects stay on the upstream's host.
func TestFederationUpstreamLimits(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := &fixture{env: apitest.New(t, dsn, apitest.Options{Argon2: fast, FederationTimeout: fedTimeout}), ctx: context.Background()}
		up := newUpstreamIdP(t)
		conf := federationSetup(t, f, up)
		honest := map[string]any{"sub": "bob-sub", "email": "bob@bridge.example", "email_verified": true}
		up.says(honest)

		// A silent discovery endpoint: the login page answers within the
		// timeout, not when the upstream pleases.
		up.replace("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
		})
		if code, status, took, _ := attempt(t, conf); code != "" || took > fedTimeout+3*time.Second || status != http.StatusBadGateway {
			t.Errorf("silent discovery: code %q, status %d after %v", code, status, took)
		}

		// A discovery document of 64 MiB (valid JSON): refused, and the node
		// stops reading near the cap (what the sockets buffer aside).
		var took atomic.Int64
		up.replace("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
			padded(w, up.discovery(), 64<<20, &took)
		})
		if code, status, _, _ := attempt(t, conf); code != "" || status != http.StatusBadGateway {
			t.Errorf("64 MiB discovery: code %q, status %d", code, status)
		}
		if n := took.Load(); n > 16<<20 {
			t.Errorf("the node read %d bytes of a 64 MiB discovery document", n)
		}
		// Just under the cap is still a discovery document; it was not
		// cached while it was too large, so the honest one is fetched now.
		before := up.hitsOf("/.well-known/openid-configuration")
		up.replace("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
			padded(w, up.discovery(), 400<<10, nil)
		})
		if code, _, _, page := attempt(t, conf); code == "" {
			t.Fatalf("a 400 KiB discovery document and an honest upstream: %s", page)
		}
		if up.hitsOf("/.well-known/openid-configuration") != before+1 {
			t.Error("a refused discovery document was cached")
		}

		// A JWKS of 1 MiB (fetched for a new key), a token answer of 100 KiB,
		// a userinfo answer of 100 KiB: each refused.
		up.rotate()
		up.replace("/jwks", func(w http.ResponseWriter, r *http.Request) {
			padded(w, map[string]any{"keys": []any{}}, 1<<20, nil)
		})
		if code, _, _, _ := attempt(t, conf); code != "" {
			t.Error("a 1 MiB JWKS was read")
		}
		up.replace("/jwks", nil)
		var token http.HandlerFunc
		up.replace("/token", func(w http.ResponseWriter, r *http.Request) { token(w, r) })
		token = func(w http.ResponseWriter, r *http.Request) {
			rec := &recorder{header: http.Header{}}
			up.replace("/token", nil)
			up.serve(rec, r) // the honest answer, then padded
			up.replace("/token", func(w http.ResponseWriter, r *http.Request) { token(w, r) })
			var v map[string]any
			json.Unmarshal(rec.body.Bytes(), &v)
			padded(w, v, 100<<10, nil)
		}
		if code, _, _, _ := attempt(t, conf); code != "" {
			t.Error("a 100 KiB token answer was read")
		}
		up.replace("/token", nil)
		// (Someone new, so that no link by subject makes the email moot.)
		up.says(map[string]any{"sub": "carol-sub"})
		up.replace("/userinfo", func(w http.ResponseWriter, r *http.Request) {
			padded(w, map[string]any{"sub": "carol-sub", "email": "carol@bridge.example", "email_verified": true}, 100<<10, nil)
		})
		if code, _, _, _ := attempt(t, conf); code != "" {
			t.Error("a 100 KiB userinfo answer was read")
		}
		up.replace("/userinfo", nil)
		up.says(honest)

		// A silent token endpoint: the callback answers within the timeout.
		up.replace("/token", func(w http.ResponseWriter, r *http.Request) {
			r.ParseForm() // the server notices the client hanging up once the body is read
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
		})
		if code, _, took, _ := attempt(t, conf); code != "" || took > fedTimeout+3*time.Second {
			t.Errorf("silent token endpoint: code %q after %v", code, took)
		}
		up.replace("/token", nil)

		// Redirects to another host are not followed: not for the token
		// request (which carries the client secret and the code), not for
		// discovery.
		elsewhere := newUpstreamIdP(t)
		up.replace("/token", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.issuer()+"/token", http.StatusTemporaryRedirect)
		})
		if code, _, _, _ := attempt(t, conf); code != "" || elsewhere.totalHits() != 0 {
			t.Errorf("token redirect to another host: code %q, the other host got %d requests", code, elsewhere.totalHits())
		}
		up.replace("/token", nil)
		if code, _, _, page := attempt(t, conf); code == "" {
			t.Fatalf("the honest upstream again: %s", page)
		}
		redirecting := newUpstreamIdP(t)
		redirecting.replace("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.issuer()+"/.well-known/openid-configuration", http.StatusFound)
		})
		if _, err := f.env.Directory.SetIdP(f.ctx, "bridge-co", identity.IdPRequest{Issuer: redirecting.issuer(), ClientID: upstreamClientID,
			ClientSecret: upstreamClientSecret}, op); err != nil {
			t.Fatal(err)
		}
		if code, status, _, _ := attempt(t, conf); code != "" || status != http.StatusBadGateway || elsewhere.totalHits() != 0 {
			t.Errorf("discovery redirect to another host: code %q, status %d, the other host got %d requests", code, status, elsewhere.totalHits())
		}
	})
}

// recorder is a minimal ResponseWriter that keeps the body.
type recorder struct {
	header http.Header
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(int)             {}

// TestFederationDiscoveryExpires: a discovered upstream is kept an hour,
// not forever.
func TestFederationDiscoveryExpires(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		clk := clock.NewFake(time.Now())
		f := &fixture{env: apitest.New(t, dsn, apitest.Options{Argon2: fast, Clock: clk}), ctx: context.Background()}
		up := newUpstreamIdP(t)
		conf := federationSetup(t, f, up)
		up.says(map[string]any{"sub": "bob-sub", "email": "bob@bridge.example", "email_verified": true})
		for i, advance := range []time.Duration{0, 30 * time.Minute, 31 * time.Minute} {
			clk.Advance(advance)
			if code, _, _, page := attempt(t, conf); code == "" {
				t.Fatalf("sign-in %d: %s", i, page)
			}
		}
		if n := up.hitsOf("/.well-known/openid-configuration"); n != 2 {
			t.Errorf("discovery fetched %d times over 61 minutes; want 2 (once, then after an hour)", n)
		}
	})
}

// TestFederationRefusesPrivateUpstreams is the SSRF half of finding 2: an
// issuer on loopback had the node post the client secret and a code to a
// loopback token endpoint. Without --allow-private-upstreams, PUT …/idp
// refuses such issuers, and the provider refuses to connect to any
// loopback, private or link-local address (checked on the address dialed:
// a name resolving to one is refused too), so an issuer stored otherwise
// — by a node that allows private upstreams, on the same database — gets
// no request at all.
func TestFederationRefusesPrivateUpstreams(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := &fixture{env: apitest.New(t, dsn, apitest.Options{Argon2: fast, DenyPrivateUpstreams: true, FederationTimeout: fedTimeout}),
			ctx: context.Background()}
		f.tenant(t, "bridge-co", "standard", "bridge.example")
		up := newUpstreamIdP(t)
		put := func(issuer string) (int, string, string) {
			body, _ := json.Marshal(map[string]string{"issuer": issuer, "client_id": upstreamClientID, "client_secret": upstreamClientSecret})
			req, _ := http.NewRequest("PUT", f.env.URL+"/v1/tenants/bridge-co/idp", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+apitest.AdminToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p struct {
				Code  string `json:"code"`
				Field string `json:"field"`
			}
			json.NewDecoder(resp.Body).Decode(&p)
			return resp.StatusCode, p.Code, resp.Header.Get("Content-Type")
		}
		for issuer, code := range map[string]string{
			up.issuer():                    "invalid_issuer", // http
			"http://idp.example.com":       "invalid_issuer",
			"ftp://idp.example.com":        "invalid_issuer",
			"https://user:pw@idp.example":  "invalid_issuer",
			"https://idp.example.com/?x=1": "invalid_issuer",
			"https://":                     "invalid_issuer",
			"https://127.0.0.1:8443":       "issuer_not_allowed",
			"https://localhost":            "issuer_not_allowed",
			"https://[::1]/realm":          "issuer_not_allowed",
			"https://[::ffff:127.0.0.1]":   "issuer_not_allowed",
			"https://169.254.169.254":      "issuer_not_allowed",
			"https://10.1.2.3":             "issuer_not_allowed",
			"https://0.0.0.0":              "issuer_not_allowed",
		} {
			if status, got, ct := put(issuer); status != http.StatusBadRequest || got != code || !strings.HasPrefix(ct, "application/problem+json") {
				t.Errorf("PUT idp %q: %d %q (%s), want 400 %q", issuer, status, got, ct, code)
			}
		}
		if status, code, _ := put("https://idp.example.com/realms/acme"); status != http.StatusOK {
			t.Fatalf("a public https issuer: %d %s", status, code)
		}

		// The issuer as a node that allows private upstreams stored it (on
		// the same database): by address, and by a name resolving to loopback.
		_, conf := f.publicApp(t, identity.CreateClientRequest{GrantTypes: []string{"authorization_code"}}, oidc.ScopeOpenID)
		up.says(map[string]any{"sub": "bob-sub", "email": "bob@bridge.example", "email_verified": true})
		_, port, _ := strings.Cut(strings.TrimPrefix(up.issuer(), "http://"), ":")
		for _, issuer := range []string{up.issuer(), "https://localhost:" + port} {
			err := f.env.DB.Update(f.ctx, storage.TenantScope(tenant.ID("bridge-co")), func(tx *storage.Tx) error {
				_, err := tx.Exec(f.ctx, `UPDATE tenant_idps SET issuer = ? WHERE tenant_id = ?`, issuer, tx.TenantID())
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if code, status, _, _ := attempt(t, conf); code != "" || status != http.StatusBadGateway {
				t.Errorf("issuer %s: code %q, status %d", issuer, code, status)
			}
		}
		if n, c := up.totalHits(), up.conns.Load(); n != 0 || c != 0 {
			t.Errorf("the loopback upstream got %d connections and %d requests from a node without --allow-private-upstreams", c, n)
		}
		if len(up.tokenRequests()) != 0 {
			t.Error("the client secret was posted to a loopback token endpoint")
		}
	})
}
