// Package auth validates Bulkhead's JWT access tokens in a resource server,
// locally: signatures are checked against the issuers' published
// keys (OpenID Connect discovery and JWKS, fetched lazily and cached), and
// the claims against the configured issuer and audience. Middleware wraps an
// http.Handler; FromContext gives a handler the verified Claims.
//
// Tokens are accepted from the platform issuer (pool and bridge tenants,
// platform clients) and, unless Config.PlatformOnly is set, from silo
// tenants' own issuers {issuer}/t/{tenant}. A silo issuer's token must name
// its own tenant in tenant_id and verify with a key of that issuer's own key
// set: no other issuer's key is ever tried.
//
// Only ES256 and EdDSA (Ed25519) signatures are accepted: go-jose parses
// the compact JWS with that allowlist, and the signature is checked with
// crypto/ecdsa or crypto/ed25519 over the token's own signing input, with
// the key the issuer's JWKS names by kid (an RSA, HMAC or unknown key never
// is). Tokens over MaxTokenSize or not shaped as a compact JWS are refused
// before any parsing. Only access tokens are accepted: the JOSE header typ
// must be "at+jwt" (RFC 9068; "application/at+jwt" too, in any case) and
// the claim token_use "access", so an ID token is never taken for one.
// Errors and logs never carry token material.
package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/go-jose/go-jose/v4"
)

// MaxTokenSize is the largest token Validate looks at.
const MaxTokenSize = 8 << 10

// Defaults and limits of Config.
const (
	DefaultCacheSize          = 10000
	DefaultLeeway             = 30 * time.Second
	MaxLeeway                 = 5 * time.Minute
	DefaultKeyRefreshInterval = 10 * time.Second
	DefaultKeyMaxAge          = 15 * time.Minute
)

// Config configures a Validator. Issuer and Audience are required.
type Config struct {
	// Issuer is the platform issuer, e.g. https://id.example.com. It must be
	// https (http only for a loopback host) with no query, fragment or
	// trailing slash.
	Issuer string
	// Audience must be one of each token's aud values.
	Audience string
	// PlatformOnly refuses silo tenants' issuers ({Issuer}/t/{tenant}),
	// which are accepted by default.
	PlatformOnly bool
	// HTTPClient fetches discovery documents and key sets (default
	// http.DefaultClient). A jwks_uri, and any redirect, must stay on the
	// issuer's origin and, for a silo issuer, under the issuer's path
	// ({Issuer}/t/{tenant}/…); the platform's may not lie under {Issuer}/t/.
	HTTPClient *http.Client
	// CacheSize bounds the verified-token cache: 0 means
	// DefaultCacheSize, a negative value turns the cache off.
	CacheSize int
	// Leeway is the clock skew allowed on exp, nbf and iat: 0 means
	// DefaultLeeway, a negative value none; at most MaxLeeway.
	Leeway time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// KeyRefreshInterval is the least time between two fetches of one
	// issuer's keys, which a token with an unknown kid triggers (default
	// DefaultKeyRefreshInterval, at least one second).
	KeyRefreshInterval time.Duration
	// KeyMaxAge is how long a fetched key set is used before it is fetched
	// again in the background (default DefaultKeyMaxAge), so that keys the
	// issuer removed stop verifying.
	KeyMaxAge time.Duration
	// Realm is the realm of the middleware's WWW-Authenticate challenges
	// (default "bulkhead").
	Realm string
	// Logger receives key fetches and their failures (default: none). It
	// never receives token material.
	Logger *slog.Logger
	// Keys, when set, gives the issuers' keys directly and nothing is
	// fetched (HTTPClient, SiloTenants and AcceptIssuer are not used).
	Keys KeySource
	// SiloTenants are the silo tenants whose issuers this service expects:
	// Prefetch fetches their keys, and a flood of tokens naming made-up
	// issuers never delays theirs.
	SiloTenants []string
	// AcceptIssuer, when set, says whether a silo tenant's issuer is one
	// this service accepts at all (an allow-list or a pattern): refused
	// ones are answered at once, without a fetch; accepted ones are
	// expected, as SiloTenants are. Without it, any well-formed silo
	// issuer may be tried, and those never seen before share a small fetch
	// budget.
	AcceptIssuer func(tenant string) bool
	// UnknownIssuerTTL is how long an issuer that the provider says does
	// not exist is refused from memory (default DefaultUnknownIssuerTTL).
	UnknownIssuerTTL time.Duration
}

// Validator validates tokens. It is safe for concurrent use.
type Validator struct {
	hmu     sync.RWMutex
	headers map[string]joseHeader // parsed protected headers by their encoding

	issuer          string
	siloPrefix      string // issuer + "/t/", "" when PlatformOnly
	issuerURL       *url.URL
	audience        string
	leeway          time.Duration
	now             func() time.Time
	client          *http.Client
	refreshInterval time.Duration
	maxAge          time.Duration
	realm           string
	log             *slog.Logger
	cache           *tokenCache

	platform     *issuerKeys
	mu           sync.RWMutex
	silos        map[string]*issuerKeys // by tenant id
	fetchLimit   bucket                 // fetches of unknown issuers
	source       KeySource
	acceptIssuer func(string) bool
	unknownTTL   time.Duration
}

// allowedAlgorithms is the one allowlist handed to go-jose.
var allowedAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA}

// NewValidator checks cfg and returns a Validator. It fetches nothing: each
// issuer's keys are fetched when its first token arrives, or by Prefetch.
func NewValidator(cfg Config) (*Validator, error) {
	if cfg.Audience == "" {
		return nil, errors.New("auth: Config.Audience is required")
	}
	u, err := parseIssuer(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	v := &Validator{
		issuer:          cfg.Issuer,
		issuerURL:       u,
		audience:        cfg.Audience,
		leeway:          cfg.Leeway,
		now:             cfg.Now,
		refreshInterval: cfg.KeyRefreshInterval,
		maxAge:          cfg.KeyMaxAge,
		realm:           cfg.Realm,
		log:             cfg.Logger,
		silos:           map[string]*issuerKeys{},
		headers:         map[string]joseHeader{},
		fetchLimit:      bucket{rate: fetchRate, burst: fetchBurst, tokens: fetchBurst},
		source:          cfg.Keys,
		acceptIssuer:    cfg.AcceptIssuer,
		unknownTTL:      cfg.UnknownIssuerTTL,
	}
	if v.unknownTTL <= 0 {
		v.unknownTTL = DefaultUnknownIssuerTTL
	}
	if !cfg.PlatformOnly {
		v.siloPrefix = cfg.Issuer + "/t/"
	}
	switch {
	case v.leeway == 0:
		v.leeway = DefaultLeeway
	case v.leeway < 0:
		v.leeway = 0
	case v.leeway > MaxLeeway:
		return nil, fmt.Errorf("auth: Config.Leeway %v is over the maximum of %v", cfg.Leeway, MaxLeeway)
	}
	if v.now == nil {
		v.now = time.Now
	}
	switch {
	case v.refreshInterval == 0:
		v.refreshInterval = DefaultKeyRefreshInterval
	case v.refreshInterval < time.Second:
		return nil, fmt.Errorf("auth: Config.KeyRefreshInterval %v is under one second", cfg.KeyRefreshInterval)
	}
	switch {
	case v.maxAge == 0:
		v.maxAge = DefaultKeyMaxAge
	case v.maxAge < v.refreshInterval:
		return nil, fmt.Errorf("auth: Config.KeyMaxAge %v is under the key refresh interval", cfg.KeyMaxAge)
	}
	if v.realm == "" {
		v.realm = "bulkhead"
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	v.client = v.httpClient(cfg.HTTPClient)
	if cfg.CacheSize >= 0 {
		n := cfg.CacheSize
		if n == 0 {
			n = DefaultCacheSize
		}
		v.cache = newTokenCache(n)
	}
	v.platform = &issuerKeys{issuer: cfg.Issuer}
	v.platform.known.Store(true)
	if v.source == nil && v.siloPrefix != "" {
		for _, t := range cfg.SiloTenants {
			if !ValidTenantID(t) {
				return nil, fmt.Errorf("auth: Config.SiloTenants: %q is not a tenant id", t)
			}
			ik := &issuerKeys{issuer: v.siloPrefix + t, tenant: t}
			ik.known.Store(true)
			v.silos[t] = ik
		}
	}
	return v, nil
}

func parseIssuer(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || s == "" {
		return nil, errors.New("auth: Config.Issuer must be an absolute URL")
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "" ||
		strings.HasSuffix(s, "/") || u.Opaque != "" {
		return nil, fmt.Errorf("auth: Config.Issuer %q must be scheme://host[/path] with no trailing slash, query or fragment", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("auth: Config.Issuer %q: http is allowed only for a loopback host", s)
		}
	default:
		return nil, fmt.Errorf("auth: Config.Issuer %q must be an https URL", s)
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == "." || seg == ".." {
			return nil, fmt.Errorf("auth: Config.Issuer %q has a dot segment", s)
		}
	}
	return u, nil
}

// Issuer returns the platform issuer the validator accepts (Config.Issuer).
func (v *Validator) Issuer() string { return v.issuer }

// testHookParse, when set by a test, is called before a token is parsed.
var testHookParse func()

// Validate checks token and returns its claims. A refusal is an *Error
// (errors.Is(err, ErrTokenExpired) and so on). ctx bounds the wait for an
// issuer's keys when they must be fetched.
//
// The Claims are the caller's own: changing them changes nothing else.
func (v *Validator) Validate(ctx context.Context, token string) (*Claims, error) {
	if len(token) > MaxTokenSize {
		return nil, ErrTokenTooLarge
	}
	if !compactJWS(token) {
		return nil, ErrTokenMalformed
	}
	now := v.now()
	var sum [sha256.Size]byte
	if v.cache != nil {
		// The cache key is the token's hash, never the token (hashed in
		// place: Sum256 does not write its input).
		sum = sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
		if e := v.cache.get(&sum, now); e != nil {
			ks := e.issuer.keys.Load()
			switch {
			case v.source != nil:
				if ks.version == v.source.Version() && ks.keys[e.key.kid] != nil {
					return e.claims.clone(), nil
				}
				// The keys changed since: check the token again below.
			case now.Sub(ks.fetched) >= v.maxAge:
				v.refresh(ctx, e.issuer, now, false)
				return e.claims.clone(), nil
			default:
				return e.claims.clone(), nil
			}
		}
	}
	c, ik, key, err := v.validate(ctx, token, now)
	if err != nil {
		return nil, err
	}
	if v.cache != nil && now.Before(c.Expiry) {
		v.cache.put(&sum, &cacheEntry{claims: c, exp: c.Expiry.UnixNano(), issuer: ik, key: key})
		return c.clone(), nil
	}
	return c, nil
}

// compactJWS reports whether token is three non-empty base64url segments,
// without decoding anything.
func compactJWS(token string) bool {
	i := strings.IndexByte(token, '.')
	if i <= 0 {
		return false
	}
	j := strings.IndexByte(token[i+1:], '.') + i + 1
	if j <= i+1 || j == len(token)-1 {
		return false
	}
	n := 0 // bytes outside the alphabet: only the two dots found above
	for k := 0; k < len(token); k++ {
		n += int(notB64URL[token[k]])
	}
	return n == 2
}

// notB64URL is 0 for the base64url alphabet and 1 for every other byte.
var notB64URL = func() (t [256]byte) {
	for c := range 256 {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			t[c] = 1
		}
	}
	return t
}()

// validate does the work of Validate without the cache.
func (v *Validator) validate(ctx context.Context, token string, now time.Time) (*Claims, *issuerKeys, *verifyKey, error) {
	if testHookParse != nil {
		testHookParse()
	}
	alg, kid, payload, sig, err := v.parseCompact(token)
	if err != nil {
		return nil, nil, nil, err
	}

	// The claims are decoded before the signature is checked only to learn
	// the issuer, whose keys verify the token; nothing else of them is
	// trusted until the signature holds.
	raw, err := decodeClaims(payload)
	if err != nil {
		return nil, nil, nil, err
	}
	ik, err := v.issuerKeys(raw.Iss, now)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := v.key(ctx, ik, kid, now)
	if err != nil {
		return nil, nil, nil, err
	}
	if key.alg != alg {
		return nil, nil, nil, refuse(ErrAlgorithm, "the token's algorithm is not its key's")
	}
	// The signing input is the token up to its second dot, verbatim (the
	// payload is base64url: b64 and crit were refused above).
	if !key.verify(token[:strings.LastIndexByte(token, '.')], sig) {
		return nil, nil, nil, ErrSignature
	}

	c, err := v.checkClaims(raw, ik, now)
	if err != nil {
		return nil, nil, nil, err
	}
	return c, ik, key, nil
}

// joseHeader is what a token's protected header says, once go-jose has
// parsed and checked it.
type joseHeader struct {
	alg jose.SignatureAlgorithm
	kid string
}

// maxHeaders bounds the cache of parsed headers (a key set has a handful;
// past the bound the cache starts over).
const maxHeaders = 1024

// parseCompact splits a compact JWS into its checked header, payload and
// signature. Headers repeat for every token of one key, so a header that
// go-jose has parsed and accepted once is remembered by its exact encoded
// bytes, and later tokens with it skip go-jose: their payload and signature
// are decoded with strict base64url, as go-jose would.
func (v *Validator) parseCompact(token string) (alg jose.SignatureAlgorithm, kid string, payload, sig []byte, err error) {
	first := strings.IndexByte(token, '.')
	last := strings.LastIndexByte(token, '.')
	if first <= 0 || last <= first {
		return "", "", nil, nil, ErrTokenMalformed
	}
	head := token[:first]
	v.hmu.RLock()
	h, ok := v.headers[head]
	v.hmu.RUnlock()
	if ok {
		enc := base64.RawURLEncoding.Strict()
		payload, perr := enc.DecodeString(token[first+1 : last])
		sig, serr := enc.DecodeString(token[last+1:])
		if perr != nil || serr != nil {
			return "", "", nil, nil, ErrTokenMalformed
		}
		return h.alg, h.kid, payload, sig, nil
	}
	jws, err := jose.ParseSignedCompact(token, allowedAlgorithms)
	if err != nil {
		// go-jose's messages quote header values: never pass them on.
		var algErr *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &algErr) {
			return "", "", nil, nil, ErrAlgorithm
		}
		return "", "", nil, nil, ErrTokenMalformed
	}
	if len(jws.Signatures) != 1 {
		return "", "", nil, nil, ErrTokenMalformed
	}
	jh := jws.Signatures[0].Header
	if jh.KeyID == "" {
		return "", "", nil, nil, refuse(ErrUnknownKey, "the token has no kid")
	}
	if _, ok := jh.ExtraHeaders["crit"]; ok {
		return "", "", nil, nil, refuse(ErrTokenMalformed, "the token has critical header parameters")
	}
	if _, ok := jh.ExtraHeaders["b64"]; ok {
		return "", "", nil, nil, refuse(ErrTokenMalformed, "the token has an unencoded payload")
	}
	// Access tokens say what they are in their header (RFC 9068 §2.1): an
	// ID token (typ JWT) signed by the same key is refused by its type,
	// before its claims are looked at. Only accepted headers are cached,
	// so the check costs nothing for later tokens of the same header.
	if typ, _ := jh.ExtraHeaders[jose.HeaderType].(string); !accessTokenType(typ) {
		return "", "", nil, nil, ErrTokenType
	}
	h = joseHeader{alg: jose.SignatureAlgorithm(jh.Algorithm), kid: jh.KeyID}
	v.hmu.Lock()
	if len(v.headers) >= maxHeaders {
		clear(v.headers)
	}
	v.headers[head] = h
	v.hmu.Unlock()
	return h.alg, h.kid, jws.UnsafePayloadWithoutVerification(), jws.Signatures[0].Signature, nil
}

// accessTokenType reports whether a JOSE typ names a JWT access token:
// "at+jwt", or its media type "application/at+jwt" (RFC 9068 §2.1; media
// types compare without regard to case).
func accessTokenType(typ string) bool {
	typ = strings.TrimPrefix(strings.ToLower(typ), "application/")
	return typ == "at+jwt"
}

// checkClaims validates signed claims and converts them.
func (v *Validator) checkClaims(raw *rawClaims, ik *issuerKeys, now time.Time) (*Claims, error) {
	c := &Claims{
		Issuer:   raw.Iss,
		Subject:  raw.Sub,
		Audience: raw.Aud,
		ID:       raw.Jti,
		Tier:     raw.Tier,
		Groups:   raw.Groups,
		Scopes:   scopes(raw.Scope),
		ClientID: raw.ClientID,
		Actor:    raw.Act,
		Tags:     raw.Tags,
	}
	// Only access tokens are credentials: an ID token (token_use "id" or
	// none) is for the client that asked for it, not for resource servers.
	if raw.TokenUse != "access" {
		return nil, refuse(ErrClaims, "the token is not an access token")
	}
	// Issuer binding: a silo issuer's token acts for that tenant only.
	switch {
	case ik.tenant != "":
		if !raw.HasTenant || raw.TenantID != ik.tenant {
			return nil, ErrTenantMismatch
		}
		c.TenantID = ik.tenant
	case raw.HasTenant:
		if !ValidTenantID(raw.TenantID) {
			return nil, refuse(ErrClaims, "the token's tenant_id is not a tenant id")
		}
		c.TenantID = raw.TenantID
	}
	if !contains(raw.Aud, v.audience) {
		return nil, ErrAudience
	}
	if !raw.HasExp {
		return nil, refuse(ErrClaims, "the token has no exp")
	}
	c.Expiry = raw.Exp
	if !now.Before(c.Expiry.Add(v.leeway)) {
		return nil, ErrTokenExpired
	}
	if raw.HasNbf {
		c.NotBefore = raw.Nbf
		if now.Add(v.leeway).Before(c.NotBefore) {
			return nil, ErrTokenNotYetValid
		}
	}
	if raw.HasIat {
		c.IssuedAt = raw.Iat
		if now.Add(v.leeway).Before(c.IssuedAt) {
			return nil, refuse(ErrTokenNotYetValid, "the token was issued in the future")
		}
	}
	if raw.Sub == "" {
		return nil, refuse(ErrClaims, "the token has no sub")
	}
	return c, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// issuerKeys returns the key source of iss, which must be the platform
// issuer or (unless PlatformOnly) a silo issuer {issuer}/t/{tenant}.
func (v *Validator) issuerKeys(iss string, now time.Time) (*issuerKeys, error) {
	if iss == v.issuer {
		return v.platform, nil
	}
	if v.siloPrefix == "" || !strings.HasPrefix(iss, v.siloPrefix) {
		return nil, ErrIssuer
	}
	tenant := iss[len(v.siloPrefix):]
	if !ValidTenantID(tenant) {
		return nil, ErrIssuer
	}
	return v.silo(tenant, now)
}

// ValidTenantID reports whether s is a tenant id:
// [a-z0-9][a-z0-9-]{1,61}[a-z0-9].
func ValidTenantID(s string) bool {
	if len(s) < 3 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
