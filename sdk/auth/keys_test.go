package auth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/auth"
	"github.com/bulkhead-dev/bulkhead/sdk/auth/authtest"
	"github.com/go-jose/go-jose/v4"
)

// silo is a silo tenant's issuer with its own ES256 and EdDSA keys.
type silo struct {
	tenant, iss string
	es, ed      *authtest.Key
}

func (e *env) silo(tenant string) silo {
	iss := e.op.SiloIssuer(tenant)
	return silo{tenant, iss, e.op.AddKey(iss, authtest.ES256), e.op.AddKey(iss, authtest.EdDSA)}
}

func TestSiloIssuer(t *testing.T) {
	e := newEnv(t)
	a := e.silo("alpha")
	for _, k := range []*authtest.Key{a.es, a.ed} {
		c, err := e.validate(k.Sign(e.claims(a.iss, "alpha")))
		if err != nil {
			t.Fatalf("%s: %v", k.Algorithm, err)
		}
		if c.TenantID != "alpha" || c.Issuer != a.iss {
			t.Errorf("claims = %+v", c)
		}
	}
	// Platform tokens still validate beside it, each issuer with its own keys.
	if _, err := e.validate(e.platform(e.es, "pooled")); err != nil {
		t.Fatal(err)
	}
	// PlatformOnly refuses the silo issuer.
	po := e.validator(func(c *auth.Config) { c.PlatformOnly = true })
	if _, err := po.Validate(t.Context(), a.es.Sign(e.claims(a.iss, "alpha"))); !errors.Is(err, auth.ErrIssuer) {
		t.Errorf("PlatformOnly, silo token: %v", err)
	}
	// A silo tenant that does not exist (its discovery document is 404).
	if _, err := e.validate(a.es.Sign(e.claims(e.op.SiloIssuer("nobody"), "nobody"))); !errors.Is(err, auth.ErrIssuer) {
		t.Errorf("unknown silo issuer: %v", err)
	}
}

func TestCrossTenant(t *testing.T) {
	e := newEnv(t)
	a, b := e.silo("alpha"), e.silo("bravo")
	// Bravo also publishes a key under alpha's kid: a key with the right kid
	// in the wrong issuer's set must not help.
	e.op.Publish(b.iss, authtest.NewKey(authtest.ES256, a.es.ID))
	// Warm every issuer's keys so refusals cannot be blamed on fetching.
	for _, tok := range []string{a.es.Sign(e.claims(a.iss, "alpha")), b.es.Sign(e.claims(b.iss, "bravo")), e.platform(e.es, "")} {
		if _, err := e.validate(tok); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		token string
		want  *auth.Error
	}{
		{"silo-A token with tenant_id B", a.es.Sign(e.claims(a.iss, "bravo")), auth.ErrTenantMismatch},
		{"silo-A token without tenant_id", a.es.Sign(e.claims(a.iss, "")), auth.ErrTenantMismatch},
		{"silo-A token with tenant_id null", a.es.Sign(with(e.claims(a.iss, ""), "tenant_id", map[string]any(nil))), auth.ErrTenantMismatch},
		{"silo-A key, iss silo B, tenant_id B (B has a key with A's kid)", a.es.Sign(e.claims(b.iss, "bravo")), auth.ErrSignature},
		{"silo-A EdDSA key, iss silo B, tenant_id B", a.ed.Sign(e.claims(b.iss, "bravo")), auth.ErrUnknownKey},
		{"silo-A key, iss silo B, tenant_id A", a.ed.Sign(e.claims(b.iss, "alpha")), auth.ErrUnknownKey},
		{"silo-A key, iss platform", a.ed.Sign(e.claims(e.op.Issuer(), "alpha")), auth.ErrUnknownKey},
		{"platform key, iss silo A", e.ed.Sign(e.claims(a.iss, "alpha")), auth.ErrUnknownKey},
		{"platform key, iss silo A, alpha's kid", authtest.NewKey(authtest.ES256, a.es.ID).Sign(e.claims(a.iss, "alpha")), auth.ErrSignature},
	} {
		if _, err := e.validate(tc.token); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %s", tc.name, err, tc.want.Code)
		}
	}
}

// TestKeySetBinding checks that a discovery document cannot lend another
// issuer's keys: jwks_uri must be on the issuer's origin and under its path.
func TestKeySetBinding(t *testing.T) {
	// Another origin serving a copy of the platform's JWKS.
	other := authtest.NewServer(t)
	for _, tc := range []struct {
		name   string
		issuer func(e *env) string // the issuer whose discovery is replaced
		doc    func(e *env) map[string]any
		token  func(e *env) string
	}{
		{
			"silo B's jwks_uri names silo A's JWKS",
			func(e *env) string { return e.op.SiloIssuer("bravo") },
			func(e *env) map[string]any {
				return map[string]any{"issuer": e.op.SiloIssuer("bravo"), "jwks_uri": e.op.SiloIssuer("alpha") + "/keys"}
			},
			func(e *env) string {
				return e.silo("alpha").es.Sign(e.claims(e.op.SiloIssuer("bravo"), "bravo"))
			},
		},
		{
			"silo B's jwks_uri names the platform JWKS",
			func(e *env) string { return e.op.SiloIssuer("bravo") },
			func(e *env) map[string]any {
				return map[string]any{"issuer": e.op.SiloIssuer("bravo"), "jwks_uri": e.op.Issuer() + "/keys"}
			},
			func(e *env) string { return e.es.Sign(e.claims(e.op.SiloIssuer("bravo"), "bravo")) },
		},
		{
			"silo B's jwks_uri escapes its path with dot segments",
			func(e *env) string { return e.op.SiloIssuer("bravo") },
			func(e *env) map[string]any {
				return map[string]any{"issuer": e.op.SiloIssuer("bravo"), "jwks_uri": e.op.SiloIssuer("bravo") + "/../alpha/keys"}
			},
			func(e *env) string {
				return e.silo("alpha").es.Sign(e.claims(e.op.SiloIssuer("bravo"), "bravo"))
			},
		},
		{
			"platform jwks_uri names silo A's JWKS",
			func(e *env) string { return e.op.Issuer() },
			func(e *env) map[string]any {
				return map[string]any{"issuer": e.op.Issuer(), "jwks_uri": e.op.SiloIssuer("alpha") + "/keys"}
			},
			func(e *env) string { return e.silo("alpha").es.Sign(e.claims(e.op.Issuer(), "alpha")) },
		},
		{
			"platform jwks_uri on another origin",
			func(e *env) string { return e.op.Issuer() },
			func(e *env) map[string]any {
				other.Publish(other.Issuer(), e.es)
				return map[string]any{"issuer": e.op.Issuer(), "jwks_uri": other.Issuer() + "/keys"}
			},
			func(e *env) string { return e.platform(e.es, "acme") },
		},
		{
			"discovery names another issuer",
			func(e *env) string { return e.op.Issuer() },
			func(e *env) map[string]any {
				return map[string]any{"issuer": "https://evil.example", "jwks_uri": e.op.Issuer() + "/keys"}
			},
			func(e *env) string { return e.platform(e.es, "acme") },
		},
		{
			"discovery without jwks_uri",
			func(e *env) string { return e.op.Issuer() },
			func(e *env) map[string]any { return map[string]any{"issuer": e.op.Issuer()} },
			func(e *env) string { return e.platform(e.es, "acme") },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t) // op.Client trusts other too: httptest servers share one certificate
			tok := tc.token(e)
			e.op.SetDiscovery(tc.issuer(e), tc.doc(e))
			if c, err := e.validate(tok); !errors.Is(err, auth.ErrKeysUnavailable) {
				t.Fatalf("err = %v (claims %+v), want %s", err, c, auth.ErrKeysUnavailable.Code)
			}
		})
	}
}

// TestRedirectBinding: a redirect cannot lend one issuer's keys to another.
func TestRedirectBinding(t *testing.T) {
	for name, redirect := range map[string]func(e *env){
		"silo B's JWKS redirects to silo A's": func(e *env) { e.op.Redirect("/t/bravo/keys", e.op.SiloIssuer("alpha")+"/keys") },
		"silo B's discovery redirects to silo A's": func(e *env) {
			e.op.Redirect("/t/bravo/.well-known/openid-configuration", e.op.SiloIssuer("alpha")+"/.well-known/openid-configuration")
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			a := e.silo("alpha")
			e.op.AddKey(e.op.SiloIssuer("bravo"), authtest.ES256)
			redirect(e)
			if _, err := e.validate(a.es.Sign(e.claims(e.op.SiloIssuer("bravo"), "bravo"))); err == nil {
				t.Fatal("silo A's key verified a silo B token through a redirect")
			}
		})
	}
	// A redirect within the issuer's own path is followed.
	e := newEnv(t)
	b := e.silo("bravo")
	e.op.Redirect("/t/bravo/old-keys", e.op.SiloIssuer("bravo")+"/keys")
	e.op.SetDiscovery(b.iss, map[string]any{"issuer": b.iss, "jwks_uri": b.iss + "/old-keys"})
	if _, err := e.validate(b.es.Sign(e.claims(b.iss, "bravo"))); err != nil {
		t.Fatalf("redirect within the issuer: %v", err)
	}
}

func TestRedirects(t *testing.T) {
	e := newEnv(t)
	other := authtest.NewServer(t)
	other.Publish(other.Issuer(), e.es)
	mux := http.NewServeMux()
	var srv *httptest.Server
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, srv.URL, srv.URL+"/jwks")
	})
	target := ""
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target, http.StatusFound) })
	mux.HandleFunc("/jwks2", func(w http.ResponseWriter, r *http.Request) { // same origin: e.op's keys
		resp, err := e.op.Client().Get(e.op.Issuer() + "/keys")
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		var b [64 << 10]byte
		n, _ := resp.Body.Read(b[:])
		for n > 0 {
			w.Write(b[:n])
			n, _ = resp.Body.Read(b[:])
		}
	})
	srv = httptest.NewTLSServer(mux)
	defer srv.Close()
	claims := e.claims(srv.URL, "acme")
	for _, tc := range []struct {
		target string
		want   error
	}{
		{other.Issuer() + "/keys", auth.ErrKeysUnavailable}, // another origin: refused
		{srv.URL + "/jwks2", nil},                           // the same origin: followed
	} {
		target = tc.target
		v, err := auth.NewValidator(auth.Config{Issuer: srv.URL, Audience: audience, HTTPClient: srv.Client(), Now: e.clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Validate(t.Context(), e.es.Sign(claims)); !errors.Is(err, tc.want) && (err != nil || tc.want != nil) {
			t.Errorf("redirect to %s: err = %v, want %v", tc.target, err, tc.want)
		}
	}
}

// TestRotation: a key added after the first fetch is picked up, the old key
// keeps verifying while the JWKS holds it, and stops once it is removed.
func TestRotation(t *testing.T) {
	e := newEnv(t, func(c *auth.Config) {
		c.KeyRefreshInterval = 5 * time.Second
		c.KeyMaxAge = time.Minute
	})
	iss := e.op.Issuer()
	old := e.platform(e.es, "acme")
	if _, err := e.validate(old); err != nil {
		t.Fatal(err)
	}
	if _, n := e.op.Fetches(iss); n != 1 {
		t.Fatalf("JWKS fetches after the first token = %d", n)
	}
	// The provider rotates: a new key, published after our first fetch.
	k2 := e.op.AddKey(iss, authtest.ES256)
	fresh := e.platform(k2, "acme")
	// Within the refresh interval of the last fetch, the unknown kid cannot
	// trigger a fetch...
	if _, err := e.validate(fresh); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("new key within the refresh interval: %v", err)
	}
	// ... after it, it does, once.
	e.clk.Add(6 * time.Second)
	if _, err := e.validate(e.platform(k2, "acme")); err != nil {
		t.Fatalf("token of the new key: %v", err)
	}
	if _, n := e.op.Fetches(iss); n != 2 {
		t.Fatalf("JWKS fetches after rotation = %d, want 2", n)
	}
	// The old key's tokens still validate while the JWKS holds it (cached or not).
	if _, err := e.validate(old); err != nil {
		t.Fatalf("old key's token: %v", err)
	}
	if _, err := e.validate(e.platform(e.es, "globex")); err != nil {
		t.Fatalf("old key's new token: %v", err)
	}
	// The provider retires the old key; once our key set is older than
	// KeyMaxAge it is fetched again and the old key's tokens, cached ones
	// too, are refused.
	e.op.Retire(iss, e.es.ID)
	e.clk.Add(2 * time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := e.validate(old)
		if errors.Is(err, auth.ErrUnknownKey) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retired key's token still accepted after KeyMaxAge: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := e.validate(e.platform(k2, "acme")); err != nil {
		t.Fatalf("new key after retirement: %v", err)
	}
}

// TestUnknownKidFloodRateLimited: bogus kids cannot hammer the JWKS.
func TestUnknownKidFloodRateLimited(t *testing.T) {
	e := newEnv(t, func(c *auth.Config) { c.KeyRefreshInterval = 10 * time.Second })
	iss := e.op.Issuer()
	if _, err := e.validate(e.platform(e.ed, "acme")); err != nil {
		t.Fatal(err)
	}
	flood := func(n int) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				k := authtest.NewKey(authtest.EdDSA, fmt.Sprintf("bogus-%d", i))
				if _, err := e.validate(e.platform(k, "acme")); !errors.Is(err, auth.ErrUnknownKey) {
					t.Errorf("bogus kid: %v", err)
				}
			})
		}
		wg.Wait()
	}
	flood(200)
	if d, j := e.op.Fetches(iss); d != 1 || j != 1 {
		t.Errorf("within the interval: %d discovery and %d JWKS fetches, want 1 and 1", d, j)
	}
	for i := 2; i <= 4; i++ {
		e.clk.Add(11 * time.Second)
		flood(50)
		if _, j := e.op.Fetches(iss); j != i {
			t.Errorf("after %d intervals: %d JWKS fetches, want %d", i-1, j, i)
		}
	}
	// A flood of tokens naming made-up silo issuers is bounded by the
	// validator-wide fetch limit, whatever the number of issuers.
	before := e.op.Requests()
	limited := 0
	for i := range 200 {
		tenant := fmt.Sprintf("made-up-%d", i)
		_, err := e.validate(authtest.NewKey(authtest.EdDSA, "k").Sign(e.claims(e.op.SiloIssuer(tenant), tenant)))
		switch {
		case errors.Is(err, auth.ErrKeysUnavailable):
			limited++
		case !errors.Is(err, auth.ErrIssuer):
			t.Fatalf("made-up issuer: %v", err)
		}
	}
	if n := e.op.Requests() - before; n > 32 || limited == 0 {
		t.Errorf("200 made-up issuers cost %d requests (%d refused by the limit), want at most 32", n, limited)
	}
}

// TestConcurrentFirstFetch: many first requests share one fetch.
func TestConcurrentFirstFetch(t *testing.T) {
	e := newEnv(t)
	tok := e.platform(e.es, "acme")
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := e.validate(tok); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if d, j := e.op.Fetches(e.op.Issuer()); d != 1 || j != 1 {
		t.Errorf("%d discovery and %d JWKS fetches, want 1 and 1", d, j)
	}
}

// TestKeysUnavailable: a provider that is down gives keys_unavailable, not
// a token refusal, and a request's context bounds its wait.
func TestKeysUnavailable(t *testing.T) {
	e := newEnv(t)
	tok := e.platform(e.es, "acme")
	e.op.Close()
	if _, err := e.validate(tok); !errors.Is(err, auth.ErrKeysUnavailable) {
		t.Errorf("provider down: %v", err)
	}
	// A hanging provider: the request's deadline ends the wait.
	hang := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer srv.Close()
	defer close(hang) // before srv.Close, which waits for the handler
	v, err := auth.NewValidator(auth.Config{Issuer: srv.URL, Audience: audience, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = v.Validate(ctx, authtest.NewKey(authtest.ES256, "k").Sign(authtest.Claims(srv.URL, audience, "acme", time.Now())))
	if !errors.Is(err, auth.ErrKeysUnavailable) || time.Since(start) > 5*time.Second {
		t.Errorf("hanging provider: err %v after %v", err, time.Since(start))
	}
}

// TestOddKeySets: unusable keys in a JWKS are skipped, the usable ones kept.
func TestOddKeySets(t *testing.T) {
	e := newEnv(t)
	iss := e.op.Issuer()
	dup1, dup2 := authtest.NewKey(authtest.ES256, "dup"), authtest.NewKey(authtest.ES256, "dup")
	e.op.Publish(iss, dup1)
	e.op.Publish(iss, dup2)
	for _, raw := range []string{
		`{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"hmac","alg":"HS256"}`,
		`{"kty":"EC","crv":"P-256","kid":"nope"}`,
		`{"kty":"unknown","kid":"x"}`,
		`"not an object"`,
	} {
		e.op.PublishRaw(iss, []byte(raw))
	}
	wrongUse := authtest.NewKey(authtest.ES256, "enc-key")
	jwk := wrongUse.JWK()
	jwk.Use = "enc"
	b, _ := jwk.MarshalJSON()
	e.op.PublishRaw(iss, b)
	wrongAlg := authtest.NewKey(authtest.EdDSA, "alg-key")
	jwk = wrongAlg.JWK()
	jwk.Algorithm = "ES256"
	b, _ = jwk.MarshalJSON()
	e.op.PublishRaw(iss, b)
	private := authtest.NewKey(authtest.ES256, "private-key")
	b, _ = (&jose.JSONWebKey{Key: private.Private, KeyID: "private-key", Algorithm: "ES256"}).MarshalJSON()
	e.op.PublishRaw(iss, b)

	if _, err := e.validate(e.platform(e.es, "acme")); err != nil {
		t.Fatalf("usable key beside odd ones: %v", err)
	}
	for name, k := range map[string]*authtest.Key{"duplicate kid": dup1, "use enc": wrongUse, "alg mismatch": wrongAlg, "private JWK": private} {
		if _, err := e.validate(e.platform(k, "acme")); !errors.Is(err, auth.ErrUnknownKey) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
