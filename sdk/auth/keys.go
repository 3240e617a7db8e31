package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-jose/go-jose/v4"
)

// Limits of key fetching.
const (
	fetchTimeout     = 10 * time.Second
	maxDiscoverySize = 64 << 10
	maxJWKSSize      = 512 << 10
	maxKeysPerSet    = 100
	// maxSiloIssuers bounds the silo issuers remembered at once, so tokens
	// naming made-up tenants cannot grow the table without bound.
	maxSiloIssuers = 10000
	// fetchBurst and fetchRate bound the fetches of issuers a Validator
	// has never had keys from and was not told to expect (a discovery
	// document and a key set count as one): a flood of tokens naming
	// made-up issuers cannot hammer the provider. Known issuers (the
	// platform's, those in Config.SiloTenants or accepted by
	// Config.AcceptIssuer, and any that yielded keys once) never draw on it,
	// so the flood cannot lock their tenants out; each issuer is fetched at
	// most once per Config.KeyRefreshInterval.
	fetchBurst = 32
	fetchRate  = 4 // per second
	// DefaultUnknownIssuerTTL is how long an issuer whose provider said it
	// does not exist (404) is answered from memory.
	DefaultUnknownIssuerTTL = time.Minute
)

// KeySource hands a Validator its issuers' keys without fetching them.
// Bulkhead's own API reads them from its signing-key store, so a token
// naming a made-up issuer costs a map lookup and no fetch, and a new or
// rotated key is usable the moment the store knows it.
type KeySource interface {
	// Version changes whenever any issuer's keys change.
	Version() uint64
	// IssuerKeys returns the published keys of the platform issuer
	// (tenant "") or of a silo tenant's issuer; ok is false when there is
	// no such issuer. kid, when not empty, is the key the caller needs: a
	// source that lacks it may look further (a database other nodes write).
	IssuerKeys(tenant, kid string) (keys []jose.JSONWebKey, ok bool)
}

// verifyKey is one usable key of a key set.
type verifyKey struct {
	kid string
	alg jose.SignatureAlgorithm
	pub any // *ecdsa.PublicKey (P-256) or ed25519.PublicKey
}

// verify reports whether sig is key's signature of input: ES256 (SHA-256,
// r‖s of 32 bytes each) or EdDSA (Ed25519). The key's algorithm was checked
// against the token's.
func (k *verifyKey) verify(input string, sig []byte) bool {
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		if len(sig) != 64 {
			return false
		}
		h := sha256.Sum256(unsafe.Slice(unsafe.StringData(input), len(input)))
		var r, s big.Int
		return ecdsa.Verify(pub, h[:], r.SetBytes(sig[:32]), s.SetBytes(sig[32:]))
	case ed25519.PublicKey:
		return ed25519.Verify(pub, unsafe.Slice(unsafe.StringData(input), len(input)), sig)
	}
	return false
}

// keySet is an issuer's keys as one fetch found them. It is never changed.
type keySet struct {
	keys    map[string]*verifyKey
	fetched time.Time
	version uint64 // the KeySource's version it was read at
}

// issuerKeys is the key source of one issuer.
type issuerKeys struct {
	issuer string
	tenant string // "" for the platform issuer
	keys   atomic.Pointer[keySet]
	// known issuers fetch without drawing on the Validator's shared budget
	// for unknown ones: the platform's, declared silos, and any issuer
	// that has yielded keys.
	known atomic.Bool

	mu          sync.Mutex
	lastAttempt time.Time
	lastErr     *Error // the last fetch's failure, nil after a success
	call        *fetchCall
}

// fetchCall is a fetch in flight; done is closed when ks and err are set.
type fetchCall struct {
	done chan struct{}
	ks   *keySet
	err  *Error
}

// silo returns the key source of tenant's own issuer.
func (v *Validator) silo(tenant string, now time.Time) (*issuerKeys, error) {
	v.mu.RLock()
	ik := v.silos[tenant]
	v.mu.RUnlock()
	if ik != nil {
		return ik, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if ik := v.silos[tenant]; ik != nil {
		return ik, nil
	}
	declared := false
	switch {
	case v.source != nil:
		// Ask the source before remembering anything: made-up issuers
		// take no room.
		if _, ok := v.source.IssuerKeys(tenant, ""); !ok {
			return nil, refuse(ErrIssuer, "the token's issuer is unknown")
		}
	case v.acceptIssuer != nil:
		if !v.acceptIssuer(tenant) {
			return nil, refuse(ErrIssuer, "the token's issuer is not one this service accepts")
		}
		declared = true
	}
	if len(v.silos) >= maxSiloIssuers {
		if v.source != nil {
			clear(v.silos) // reloaded from the source in a map lookup each
		}
		// Forget issuers that never yielded keys and are not being fetched.
		for t, ik := range v.silos {
			ik.mu.Lock()
			idle := ik.keys.Load() == nil && !ik.known.Load() && ik.call == nil && now.Sub(ik.lastAttempt) >= v.refreshInterval
			ik.mu.Unlock()
			if idle {
				delete(v.silos, t)
			}
		}
		if len(v.silos) >= maxSiloIssuers {
			return nil, refuse(ErrKeysUnavailable, "too many issuers are being tried; retry later")
		}
	}
	ik = &issuerKeys{issuer: v.siloPrefix + tenant, tenant: tenant}
	ik.known.Store(declared)
	v.silos[tenant] = ik
	return ik, nil
}

// sourceKey returns ik's key kid from the KeySource, re-reading ik's keys
// when the source's version has moved since they were read.
func (v *Validator) sourceKey(ik *issuerKeys, kid string, now time.Time) (*verifyKey, error) {
	ver := v.source.Version()
	ks := ik.keys.Load()
	if ks != nil && ks.version == ver {
		if k := ks.keys[kid]; k != nil {
			return k, nil
		}
	}
	jwks, ok := v.source.IssuerKeys(ik.tenant, kid)
	if !ok {
		return nil, refuse(ErrIssuer, "the token's issuer is unknown")
	}
	// The version is read before the keys: a change in between makes the
	// next token read them again, never keeps stale keys.
	ks = &keySet{keys: usableKeys(jwks), fetched: now, version: ver}
	ik.keys.Store(ks)
	if k := ks.keys[kid]; k != nil {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// key returns ik's key kid, fetching ik's keys when it has none yet or does
// not know kid, at most once per refresh interval.
func (v *Validator) key(ctx context.Context, ik *issuerKeys, kid string, now time.Time) (*verifyKey, error) {
	if v.source != nil {
		return v.sourceKey(ik, kid, now)
	}
	if ks := ik.keys.Load(); ks != nil {
		if k := ks.keys[kid]; k != nil {
			if now.Sub(ks.fetched) >= v.maxAge {
				v.refresh(ctx, ik, now, false)
			}
			return k, nil
		}
	}
	ks, err := v.refresh(ctx, ik, now, true)
	if ks != nil {
		if k := ks.keys[kid]; k != nil {
			return k, nil
		}
		return nil, ErrUnknownKey
	}
	if err == nil {
		err = ErrKeysUnavailable
	}
	return nil, err
}

// refresh fetches ik's keys unless a fetch is in flight (then it joins it)
// or the last one began less than the refresh interval ago. With wait, it
// returns the key set that results (or the current one) and the fetch's
// failure; without, it returns at once.
func (v *Validator) refresh(ctx context.Context, ik *issuerKeys, now time.Time, wait bool) (*keySet, *Error) {
	ik.mu.Lock()
	c := ik.call
	if c == nil {
		wait := v.refreshInterval
		if ik.lastErr != nil && ik.lastErr.Code == ErrIssuer.Code {
			wait = max(wait, v.unknownTTL) // the provider said there is no such issuer
		}
		if !ik.lastAttempt.IsZero() && now.Sub(ik.lastAttempt) < wait && now.Sub(ik.lastAttempt) >= 0 {
			ks, err := ik.keys.Load(), ik.lastErr
			ik.mu.Unlock()
			return ks, err
		}
		if !ik.known.Load() && !v.fetchLimit.allow(now) {
			ik.mu.Unlock()
			v.log.Warn("auth: key fetch refused by the fetch rate limit", "issuer", ik.issuer)
			return ik.keys.Load(), refuse(ErrKeysUnavailable, "too many key fetches; retry later")
		}
		c = &fetchCall{done: make(chan struct{})}
		ik.call = c
		ik.lastAttempt = now
		go v.fetch(ik, c)
	}
	ik.mu.Unlock()
	if !wait {
		return nil, nil
	}
	select {
	case <-c.done:
		return c.ks, c.err
	case <-ctx.Done():
		return ik.keys.Load(), &Error{Code: ErrKeysUnavailable.Code, Description: "the request ended while the issuer's keys were fetched", Err: ctx.Err()}
	}
}

// fetch runs one fetch of ik's keys, detached from any request: a request
// that goes away does not waste the fetch for the others.
func (v *Validator) fetch(ik *issuerKeys, c *fetchCall) {
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	ks, err := v.fetchKeySet(ctx, ik)
	ik.mu.Lock()
	if err == nil {
		ks.fetched = v.now()
		ik.keys.Store(ks)
		ik.known.Store(true)
		ik.lastErr = nil
		v.log.Info("auth: fetched issuer keys", "issuer", ik.issuer, "keys", len(ks.keys))
	} else {
		ik.lastErr = err
		v.log.Warn("auth: fetching issuer keys failed", "issuer", ik.issuer, "err", err)
	}
	c.ks, c.err = ik.keys.Load(), err
	ik.call = nil
	ik.mu.Unlock()
	close(c.done)
}

// fetchKeySet reads ik's discovery document and then its JWKS.
func (v *Validator) fetchKeySet(ctx context.Context, ik *issuerKeys) (*keySet, *Error) {
	unavailable := func(err error) *Error {
		return &Error{Code: ErrKeysUnavailable.Code, Description: ErrKeysUnavailable.Description, Err: err}
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	status, err := v.getJSON(ctx, ik, ik.issuer+"/.well-known/openid-configuration", maxDiscoverySize, &doc)
	if err != nil {
		if ik.tenant != "" && (status == http.StatusNotFound || status == http.StatusGone) {
			// No such silo tenant: the token names an issuer that does not exist.
			return nil, &Error{Code: ErrIssuer.Code, Description: "the token's issuer is unknown", Err: err}
		}
		return nil, unavailable(err)
	}
	if doc.Issuer != ik.issuer {
		return nil, unavailable(fmt.Errorf("discovery document of %s names another issuer", ik.issuer))
	}
	jwksURI, err := v.checkJWKSURI(ik, doc.JWKSURI)
	if err != nil {
		return nil, unavailable(err)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if _, err := v.getJSON(ctx, ik, jwksURI, maxJWKSSize, &set); err != nil {
		return nil, unavailable(err)
	}
	return &keySet{keys: parseKeys(set.Keys)}, nil
}

// Prefetch fetches the keys of the platform issuer and of every tenant in
// Config.SiloTenants, so that the first tokens after a start verify
// without waiting and a flood of made-up issuers cannot delay them. Call
// it once at start; it returns the failures, and the issuers that failed
// are fetched again on their first token. With a KeySource it does nothing.
func (v *Validator) Prefetch(ctx context.Context) error {
	if v.source != nil {
		return nil
	}
	now := v.now()
	iks := []*issuerKeys{v.platform}
	v.mu.RLock()
	for _, ik := range v.silos {
		if ik.known.Load() {
			iks = append(iks, ik)
		}
	}
	v.mu.RUnlock()
	var failed []error
	for _, ik := range iks {
		if _, err := v.refresh(ctx, ik, now, true); err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", ik.issuer, err))
		}
	}
	return errors.Join(failed...)
}

// checkJWKSURI accepts a jwks_uri that checkURL accepts.
func (v *Validator) checkJWKSURI(ik *issuerKeys, s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || s == "" {
		return "", fmt.Errorf("jwks_uri of %s is not a URL", ik.issuer)
	}
	if err := v.checkURL(ik, u); err != nil {
		return "", fmt.Errorf("jwks_uri of %s: %w", ik.issuer, err)
	}
	return u.String(), nil
}

// checkURL accepts a URL to fetch for ik (a jwks_uri, or where a redirect
// leads) only on the issuer's own origin and, for a silo issuer, under the
// issuer's own path; the platform issuer's may not lie under a silo
// issuer's path. A discovery document or a redirect cannot so lend one
// issuer's keys to another.
func (v *Validator) checkURL(ik *issuerKeys, u *url.URL) error {
	if u.Scheme != v.issuerURL.Scheme || !strings.EqualFold(u.Host, v.issuerURL.Host) || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return errors.New("not on the issuer's origin")
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return errors.New("a dot segment in the path")
		}
	}
	base := v.issuerURL.Path
	if ik.tenant != "" {
		if !strings.HasPrefix(u.Path, base+"/t/"+ik.tenant+"/") {
			return errors.New("not under the issuer's path")
		}
	} else if strings.HasPrefix(u.Path, base+"/t/") {
		return errors.New("under a silo issuer's path")
	}
	return nil
}

// getJSON GETs u and decodes its body, of at most max bytes, into dst. It
// returns the response status when there was one.
func (v *Validator) getJSON(ctx context.Context, ik *issuerKeys, u string, max int64, dst any) (int, error) {
	req, err := http.NewRequestWithContext(context.WithValue(ctx, fetchIssuerKey{}, ik), http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return resp.StatusCode, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(body)) > max {
		return resp.StatusCode, fmt.Errorf("GET %s: body over %d bytes", u, max)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: not the expected JSON document", u)
	}
	return resp.StatusCode, nil
}

// parseKeys keeps the usable keys of a JWKS: public P-256 keys for ES256 and
// Ed25519 keys for EdDSA, with a kid, for signatures. Other keys (RSA,
// symmetric, private, other curves, another use or alg) are skipped, and a
// kid that names two keys is dropped.
func parseKeys(raws []json.RawMessage) map[string]*verifyKey {
	jwks := make([]jose.JSONWebKey, 0, min(len(raws), maxKeysPerSet))
	for i, raw := range raws {
		if i == maxKeysPerSet {
			break
		}
		var jwk jose.JSONWebKey
		if err := json.Unmarshal(raw, &jwk); err != nil {
			continue
		}
		jwks = append(jwks, jwk)
	}
	return usableKeys(jwks)
}

// usableKeys keeps the usable keys of jwks, as parseKeys says.
func usableKeys(jwks []jose.JSONWebKey) map[string]*verifyKey {
	keys := make(map[string]*verifyKey, len(jwks))
	dup := map[string]bool{}
	for i := range jwks {
		if i == maxKeysPerSet {
			break
		}
		k := usableKey(&jwks[i])
		if k == nil || dup[k.kid] {
			continue
		}
		if keys[k.kid] != nil {
			delete(keys, k.kid)
			dup[k.kid] = true
			continue
		}
		keys[k.kid] = k
	}
	return keys
}

func usableKey(jwk *jose.JSONWebKey) *verifyKey {
	if jwk.KeyID == "" || !jwk.IsPublic() || (jwk.Use != "" && jwk.Use != "sig") {
		return nil
	}
	k := &verifyKey{kid: jwk.KeyID}
	switch pub := jwk.Key.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil
		}
		k.alg, k.pub = jose.ES256, pub
	case ed25519.PublicKey:
		if len(pub) != ed25519.PublicKeySize {
			return nil
		}
		k.alg, k.pub = jose.EdDSA, pub
	default:
		return nil
	}
	if jwk.Algorithm != "" && jwk.Algorithm != string(k.alg) {
		return nil
	}
	return k
}

// fetchIssuerKey is the context key of the issuer a fetch is for.
type fetchIssuerKey struct{}

// httpClient returns a copy of c (default http.DefaultClient) that follows
// a redirect only to a URL that checkURL accepts for the fetch's issuer.
func (v *Validator) httpClient(c *http.Client) *http.Client {
	if c == nil {
		c = http.DefaultClient
	}
	cc := *c
	next := c.CheckRedirect
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 {
			return errors.New("too many redirects")
		}
		ik, _ := req.Context().Value(fetchIssuerKey{}).(*issuerKeys)
		if ik == nil {
			return errors.New("redirect refused")
		}
		if err := v.checkURL(ik, req.URL); err != nil {
			return fmt.Errorf("redirect refused: %w", err)
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return &cc
}

// bucket is a token bucket.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func (b *bucket) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		if d := now.Sub(b.last).Seconds(); d > 0 {
			b.tokens = min(b.burst, b.tokens+d*b.rate)
		}
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
