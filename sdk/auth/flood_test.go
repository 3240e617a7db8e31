package auth_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/auth"
	"github.com/bulkhead-dev/bulkhead/sdk/auth/authtest"
	"github.com/go-jose/go-jose/v4"
)

// madeUpFlood sends n tokens naming made-up silo issuers, concurrently,
// and checks each is refused as a token (never accepted).
func (e *env) madeUpFlood(v *auth.Validator, n int) {
	e.t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tenant := fmt.Sprintf("made-up-%d", i)
			_, err := v.Validate(e.t.Context(), authtest.NewKey(authtest.EdDSA, "k").Sign(e.claims(e.op.SiloIssuer(tenant), tenant)))
			if err == nil || !errors.Is(err, auth.ErrIssuer) && !errors.Is(err, auth.ErrKeysUnavailable) {
				e.t.Errorf("made-up issuer %s: %v", tenant, err)
			}
		})
	}
	wg.Wait()
}

// TestMadeUpIssuerFloodSparesKnownIssuers is the flood of the hardening
// issue: tokens naming made-up silo issuers once spent the one fetch
// budget, and genuine tokens whose keys were not cached yet (every tenant
// right after a start) got 401. Known issuers never draw on that budget.
func TestMadeUpIssuerFloodSparesKnownIssuers(t *testing.T) {
	e := newEnv(t)
	alpha := e.silo("alpha")
	v := e.validator(func(c *auth.Config) { c.SiloTenants = []string{"alpha"} })
	// A fresh validator, no prefetch: the flood comes first.
	e.madeUpFlood(v, 300)
	if _, err := v.Validate(t.Context(), e.platform(e.es, "pooled")); err != nil {
		t.Errorf("platform token after the flood: %v", err)
	}
	if _, err := v.Validate(t.Context(), alpha.es.Sign(e.claims(alpha.iss, "alpha"))); err != nil {
		t.Errorf("a declared silo tenant's token after the flood: %v", err)
	}
	// An issuer that yielded keys once is known: a later flood and a key
	// rotation (new kid) still reach it.
	e.madeUpFlood(v, 300)
	e.clk.Add(11 * time.Second)
	k2 := e.op.AddKey(e.op.Issuer(), authtest.ES256)
	if _, err := v.Validate(t.Context(), e.platform(k2, "pooled")); err != nil {
		t.Errorf("a rotated platform key after a second flood: %v", err)
	}
}

// TestAcceptIssuer: an allow-list refuses made-up issuers without any
// fetch, and its tenants are spared by any flood.
func TestAcceptIssuer(t *testing.T) {
	e := newEnv(t)
	bravo := e.silo("bravo")
	allowed := []string{"alpha", "bravo"}
	v := e.validator(func(c *auth.Config) { c.AcceptIssuer = func(t string) bool { return slices.Contains(allowed, t) } })
	before := e.op.Requests()
	e.madeUpFlood(v, 300)
	if n := e.op.Requests() - before; n != 0 {
		t.Errorf("300 refused issuers cost %d requests", n)
	}
	if _, err := v.Validate(t.Context(), bravo.es.Sign(e.claims(bravo.iss, "bravo"))); err != nil {
		t.Errorf("an accepted tenant's first token after the flood: %v", err)
	}
}

// TestUnknownIssuerRemembered: an issuer the provider says does not exist
// is not asked about again for UnknownIssuerTTL.
func TestUnknownIssuerRemembered(t *testing.T) {
	e := newEnv(t)
	tok := authtest.NewKey(authtest.EdDSA, "k").Sign(e.claims(e.op.SiloIssuer("nobody"), "nobody"))
	if _, err := e.validate(tok); !errors.Is(err, auth.ErrIssuer) {
		t.Fatalf("unknown issuer: %v", err)
	}
	before := e.op.Requests()
	for range 5 {
		e.clk.Add(11 * time.Second) // past the refresh interval, within the minute
		if _, err := e.validate(tok); !errors.Is(err, auth.ErrIssuer) {
			t.Fatalf("unknown issuer again: %v", err)
		}
	}
	if n := e.op.Requests() - before; n != 0 {
		t.Errorf("asked %d more times within UnknownIssuerTTL", n)
	}
	e.clk.Add(time.Minute)
	e.validate(tok)
	if n := e.op.Requests() - before; n == 0 {
		t.Error("never asked again after UnknownIssuerTTL")
	}
}

// TestPrefetch fetches the platform's and the declared silos' keys at
// start, so the first tokens wait for nothing.
func TestPrefetch(t *testing.T) {
	e := newEnv(t)
	e.silo("alpha")
	v := e.validator(func(c *auth.Config) { c.SiloTenants = []string{"alpha", "gone"} })
	err := v.Prefetch(t.Context())
	if err == nil || !errors.Is(err, auth.ErrIssuer) {
		t.Errorf("prefetch with a tenant that has no issuer: %v", err)
	}
	if d, j := e.op.Fetches(e.op.Issuer()); d != 1 || j != 1 {
		t.Errorf("platform: %d discovery and %d JWKS fetches", d, j)
	}
	if d, j := e.op.Fetches(e.op.SiloIssuer("alpha")); d != 1 || j != 1 {
		t.Errorf("alpha: %d discovery and %d JWKS fetches", d, j)
	}
	if _, err := auth.NewValidator(auth.Config{Issuer: e.op.Issuer(), Audience: audience, SiloTenants: []string{"Bad Id"}}); err == nil {
		t.Error("a SiloTenants entry that is not a tenant id was accepted")
	}
}

// staticSource is a KeySource over fixed key sets.
type staticSource struct {
	mu      sync.Mutex
	version uint64
	sets    map[string][]jose.JSONWebKey
	calls   int
}

func (s *staticSource) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

func (s *staticSource) IssuerKeys(tenant, kid string) ([]jose.JSONWebKey, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	set, ok := s.sets[tenant]
	return set, ok
}

func (s *staticSource) set(tenant string, keys ...*authtest.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var jwks []jose.JSONWebKey
	for _, k := range keys {
		jwks = append(jwks, jose.JSONWebKey{Key: k.Public, KeyID: k.ID, Algorithm: string(k.Algorithm), Use: "sig"})
	}
	if keys == nil {
		delete(s.sets, tenant)
	} else {
		s.sets[tenant] = jwks
	}
	s.version++
}

// TestKeySource: with a KeySource nothing is fetched, made-up issuers
// take no room, and a removed key or issuer stops verifying at the next
// token, cached or not.
func TestKeySource(t *testing.T) {
	e := newEnv(t)
	src := &staticSource{sets: map[string][]jose.JSONWebKey{}}
	p := authtest.NewKey(authtest.ES256, "p1")
	a := authtest.NewKey(authtest.EdDSA, "a1")
	src.set("", p)
	src.set("alpha", a)
	v := e.validator(func(c *auth.Config) { c.Keys = src })
	before := e.op.Requests()
	e.madeUpFlood(v, 300)
	ptok := p.Sign(e.claims(e.op.Issuer(), "pooled"))
	atok := a.Sign(e.claims(e.op.SiloIssuer("alpha"), "alpha"))
	for _, tok := range []string{ptok, atok, ptok, atok} {
		if _, err := v.Validate(t.Context(), tok); err != nil {
			t.Fatalf("genuine token: %v", err)
		}
	}
	if n := e.op.Requests() - before; n != 0 {
		t.Errorf("%d HTTP requests with a KeySource", n)
	}
	// The platform rotates and drops p1; alpha is offboarded.
	src.set("", authtest.NewKey(authtest.ES256, "p2"))
	src.set("alpha")
	if _, err := v.Validate(t.Context(), ptok); !errors.Is(err, auth.ErrUnknownKey) {
		t.Errorf("a cached token of a removed key: %v", err)
	}
	if _, err := v.Validate(t.Context(), atok); !errors.Is(err, auth.ErrIssuer) {
		t.Errorf("a cached token of a removed issuer: %v", err)
	}
}
