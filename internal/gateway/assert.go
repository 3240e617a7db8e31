package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// AssertionHeader carries the gateway's tenant assertion to the upstream.
const AssertionHeader = "X-Bulkhead-Tenant-Assertion"

// AssertionLifetime is how long an assertion is valid.
const AssertionLifetime = 60 * time.Second

// DefaultAudience is the aud of assertions unless configured otherwise. It
// is not the API's audience, so an assertion that leaks from the upstream
// is no credential for Bulkhead's API.
const DefaultAudience = "bulkhead-gateway"

// KeySource gives the platform issuer's active signing key;
// *signing.Store is one.
type KeySource interface {
	Active(ctx context.Context, issuer signing.Issuer) (*signing.Key, error)
}

// Asserter signs tenant assertions: JWTs with the JOSE typ at+jwt and
// token_use "access", issued by the platform issuer, so that sdk/auth
// verifies them with Config.Audience set to the assertion audience. An
// assertion is reused for the same tenant, tier and subject while it has
// more than half of its life left: signing each request would cost as much
// as the rest of the gateway's work.
type Asserter struct {
	keys     KeySource
	issuer   string
	audience string
	clock    clock.Clock

	mu    sync.Mutex
	cache map[assertionKey]assertion
}

type assertionKey struct {
	tenant  tenant.ID
	tier    string
	subject string
	kid     string
}

type assertion struct {
	jwt string
	exp time.Time
}

// maxAssertions bounds the reused assertions; past it, the cache starts
// over.
const maxAssertions = 10000

// NewAsserter returns an Asserter signing with keys as issuer for audience
// (default DefaultAudience).
func NewAsserter(keys KeySource, issuer, audience string, clk clock.Clock) *Asserter {
	if audience == "" {
		audience = DefaultAudience
	}
	if clk == nil {
		clk = clock.System{}
	}
	return &Asserter{keys: keys, issuer: issuer, audience: audience, clock: clk, cache: map[assertionKey]assertion{}}
}

// Audience is the aud of the assertions.
func (a *Asserter) Audience() string { return a.audience }

type assertionClaims struct {
	Iss      string `json:"iss"`
	Sub      string `json:"sub"`
	Aud      string `json:"aud"`
	Exp      int64  `json:"exp"`
	Iat      int64  `json:"iat"`
	Nbf      int64  `json:"nbf"`
	Jti      string `json:"jti"`
	TenantID string `json:"tenant_id"`
	Tier     string `json:"tier"`
	TokenUse string `json:"token_use"`
	ClientID string `json:"client_id"`
}

// AnonymousSubject is the sub of an assertion for a request without a
// Bulkhead token (a tenant found by its domain or subdomain alone).
const AnonymousSubject = "anonymous"

// Assert returns an assertion that the request is for id, of tier, from
// subject ("" for AnonymousSubject).
func (a *Asserter) Assert(ctx context.Context, id tenant.ID, tier, subject string) (string, error) {
	if subject == "" {
		subject = AnonymousSubject
	}
	k, err := a.keys.Active(ctx, signing.Platform)
	if err != nil {
		return "", fmt.Errorf("gateway: signing key: %w", err)
	}
	now := a.clock.Now()
	key := assertionKey{tenant: id, tier: tier, subject: subject, kid: k.ID}
	a.mu.Lock()
	c, ok := a.cache[key]
	a.mu.Unlock()
	if ok && c.exp.Sub(now) > AssertionLifetime/2 {
		return c.jwt, nil
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Algorithm, Key: &jose.JSONWebKey{Key: k.Private, KeyID: k.ID}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		return "", fmt.Errorf("gateway: signer: %w", err)
	}
	exp := now.Add(AssertionLifetime)
	payload, err := json.Marshal(assertionClaims{Iss: a.issuer, Sub: subject, Aud: a.audience, Exp: exp.Unix(), Iat: now.Unix(),
		Nbf: now.Unix(), Jti: ids.New("asr"), TenantID: string(id), Tier: tier, TokenUse: "access", ClientID: "bulkhead-gateway"})
	if err != nil {
		return "", err
	}
	sig, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("gateway: sign: %w", err)
	}
	jwt, err := sig.CompactSerialize()
	if err != nil {
		return "", err
	}
	a.mu.Lock()
	if len(a.cache) >= maxAssertions {
		clear(a.cache)
	}
	a.cache[key] = assertion{jwt: jwt, exp: exp}
	a.mu.Unlock()
	return jwt, nil
}
