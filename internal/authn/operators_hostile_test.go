package authn_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/auth"
	"github.com/bulkhead-dev/bulkhead/sdk/auth/authtest"
)

// operatorRecords answers for one operator account.
type operatorRecords struct {
	id       string
	disabled bool
	changed  time.Time
}

func (o *operatorRecords) OperatorActive(_ context.Context, id string) (time.Time, error) {
	if id != o.id || o.disabled {
		return time.Time{}, errors.New("no such active operator")
	}
	return o.changed, nil
}

// TestOperatorTokensHostile: an operator account's token is an operator
// credential only for a verifier made WithOperators (the API's), and only
// in the console's exact shape: platform issuer, the console's client, the
// operator scope, no actor, an active account whose password has not
// changed since, not revoked. The gateway's and the event streams'
// verifier (no WithOperators) refuse every one.
func TestOperatorTokensHostile(t *testing.T) {
	srv := authtest.NewServer(t)
	key := srv.AddKey(srv.Issuer(), authtest.ES256)
	siloKey := srv.AddKey(srv.SiloIssuer("acme"), authtest.ES256)
	now := time.Now()
	v, err := auth.NewValidator(auth.Config{Issuer: srv.Issuer(), Audience: "api", HTTPClient: srv.Client(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	st := &fakeState{issuer: srv.Issuer()}
	st.status.Store(tenants.Active)
	plain := authn.NewTenantTokens(v, st, authn.StateCache{}, nil)
	opr := ids.New("opr")
	rec := &operatorRecords{id: opr, changed: now.Add(-time.Hour)}
	api := plain.WithOperators(rec, "bulkhead-console", "bulkhead:operator")

	good := authtest.With(authtest.Claims(srv.Issuer(), "api", "", now), "sub", opr, "client_id", "bulkhead-console",
		"scope", "openid bulkhead:api bulkhead:operator", "groups", nil, "tier", nil, "jti", ids.New("at"))
	ctx := context.Background()
	if c, err := api.Verify(ctx, key.Sign(good)); err != nil {
		t.Fatalf("the console's operator token at the API: %v", err)
	} else if o, ok := authn.OperatorFrom(c); !ok || o.Account != opr || o.Name() != "operator:"+opr {
		t.Fatalf("operator principal: %+v", o)
	} else if _, ok := tenant.FromContext(c); ok {
		t.Fatal("an operator token also carries a tenant context")
	}
	if _, err := plain.Verify(ctx, key.Sign(good)); err == nil {
		t.Error("the gateway's / NATS verifier took an operator token")
	}

	for name, claims := range map[string]map[string]any{
		"another client":              authtest.With(good, "client_id", "cli_web"),
		"no operator scope":           authtest.With(good, "scope", "openid bulkhead:api"),
		"a scope that only contains":  authtest.With(good, "scope", "bulkhead:operators"),
		"an actor":                    authtest.With(good, "act", map[string]any{"sub": "bulkhead-console"}),
		"a user subject":              authtest.With(good, "sub", ids.New("usr")),
		"a client subject":            authtest.With(good, "sub", "bulkhead-console"),
		"an unknown operator":         authtest.With(good, "sub", ids.New("opr")),
		"no iat":                      authtest.With(good, "iat", nil),
		"issued before the pw change": authtest.With(good, "iat", now.Add(-2*time.Hour).Unix(), "nbf", now.Add(-2*time.Hour).Unix()),
		"a tenant named":              authtest.With(good, "tenant_id", "acme"),
		"an ID token (no client_id)":  authtest.With(good, "client_id", nil),
		"an empty client id":          authtest.With(good, "client_id", ""),
	} {
		tok := key.Sign(claims)
		if c, err := api.Verify(ctx, tok); err == nil {
			if _, ok := authn.OperatorFrom(c); ok {
				t.Errorf("%s: taken as an operator", name)
			}
		}
		if c, err := plain.Verify(ctx, tok); err == nil {
			if _, ok := authn.OperatorFrom(c); ok {
				t.Errorf("%s: the plain verifier made an operator", name)
			}
		}
	}
	// A silo issuer's token shaped like the console's.
	silo := authtest.With(good, "iss", srv.SiloIssuer("acme"))
	if c, err := api.Verify(ctx, siloKey.Sign(silo)); err == nil {
		if _, ok := authn.OperatorFrom(c); ok {
			t.Error("a silo issuer's token taken as an operator")
		}
	}
	// Revoked; the account disabled.
	st.revoked.Store(true)
	if _, err := api.Verify(ctx, key.Sign(good)); err == nil {
		t.Error("a revoked operator token was taken")
	}
	st.revoked.Store(false)
	rec.disabled = true
	if _, err := api.Verify(ctx, key.Sign(good)); err == nil {
		t.Error("a disabled operator's token was taken")
	}
}
