package authn_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/auth"
	"github.com/bulkhead-dev/bulkhead/sdk/auth/authtest"
)

// fakeState is Bulkhead's records, counting reads.
type fakeState struct {
	issuer  string
	status  atomic.Value // tenant.Status
	revoked atomic.Bool
	deleted atomic.Bool // the token's client
	reads   atomic.Int64
}

func (s *fakeState) Tenant(_ context.Context, id tenant.ID) (tenant.Tenant, error) {
	s.reads.Add(1)
	return tenant.Tenant{ID: id, Status: s.status.Load().(tenant.Status), Tier: "basic"}, nil
}
func (s *fakeState) IssuerOf(tenant.Tenant) string { return s.issuer }
func (s *fakeState) Revoked(context.Context, string) bool {
	s.reads.Add(1)
	return s.revoked.Load()
}
func (s *fakeState) ClientActive(context.Context, tenant.ID, string) error {
	s.reads.Add(1)
	if s.deleted.Load() {
		return errors.New("client deleted")
	}
	return nil
}
func (s *fakeState) UserGroups(context.Context, tenant.ID, string) ([]string, error) {
	s.reads.Add(1)
	return []string{"admins"}, nil
}

// TestStateCache: a token's state is read once per TTL, at once again after
// a change on this node, and failures are never kept.
func TestStateCache(t *testing.T) {
	op := authtest.NewServer(t)
	key := op.AddKey(op.Issuer(), authtest.ES256)
	now := time.Now()
	clock := func() time.Time { return now }
	v, err := auth.NewValidator(auth.Config{Issuer: op.Issuer(), Audience: "api", HTTPClient: op.Client(), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	st := &fakeState{issuer: op.Issuer()}
	st.status.Store(tenant.Active)
	var changes atomic.Uint64
	tt := authn.NewTenantTokens(v, st, authn.StateCache{TTL: time.Second, Changes: changes.Load, Now: clock})
	token := key.Sign(authtest.Claims(op.Issuer(), "api", "acme", now))
	verify := func() error {
		t.Helper()
		ctx, err := tt.Verify(context.Background(), token)
		if err == nil {
			if tc, ok := tenant.FromContext(ctx); !ok || tc.TenantID != "acme" || tc.Principal != "user:usr_0123456789" || !tc.InGroup("admins") {
				t.Fatalf("tenant context: %+v", tc)
			}
		}
		return err
	}
	reads := func() int64 { return st.reads.Swap(0) }

	if err := verify(); err != nil || reads() != 4 {
		t.Fatalf("first use: %v, want 4 reads", err)
	}
	for range 5 {
		if err := verify(); err != nil {
			t.Fatal(err)
		}
	}
	if n := reads(); n != 0 {
		t.Errorf("within the TTL: %d reads, want 0", n)
	}
	// A change on this node: the next use reads again, and sees it.
	st.revoked.Store(true)
	changes.Add(1)
	if err := verify(); err == nil {
		t.Error("a token revoked on this node still works")
	}
	// Failures are not kept: every use reads again.
	verify()
	if n := reads(); n != 4 {
		t.Errorf("refused uses: %d reads, want 2 × 2 (tenant, revocation)", n)
	}
	st.revoked.Store(false)
	if err := verify(); err != nil {
		t.Fatal(err)
	}
	reads()
	// A change elsewhere (no count here) is seen once the TTL has passed.
	st.status.Store(tenant.Suspended)
	if err := verify(); err != nil {
		t.Errorf("within the TTL of another node's change: %v (the cache should still answer)", err)
	}
	now = now.Add(time.Second)
	if err := verify(); err == nil {
		t.Error("a suspended tenant's token works after the TTL")
	}
	// Without a change count the cache is off.
	off := authn.NewTenantTokens(v, st, authn.StateCache{TTL: time.Hour, Now: clock})
	st.status.Store(tenant.Active)
	reads()
	for range 3 {
		if _, err := off.Verify(context.Background(), token); err != nil {
			t.Fatal(err)
		}
	}
	if n := reads(); n != 12 {
		t.Errorf("cache without a change count: %d reads, want 12", n)
	}
}

// TestDeletedClient: the tokens of a deleted client stop at once when it
// was deleted on this node, and within the TTL when on another node.
func TestDeletedClient(t *testing.T) {
	op := authtest.NewServer(t)
	key := op.AddKey(op.Issuer(), authtest.ES256)
	now := time.Now()
	clock := func() time.Time { return now }
	v, err := auth.NewValidator(auth.Config{Issuer: op.Issuer(), Audience: "api", HTTPClient: op.Client(), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	st := &fakeState{issuer: op.Issuer()}
	st.status.Store(tenant.Active)
	var changes atomic.Uint64
	tt := authn.NewTenantTokens(v, st, authn.StateCache{TTL: time.Second, Changes: changes.Load, Now: clock})
	token := key.Sign(authtest.Claims(op.Issuer(), "api", "acme", now))
	verify := func() error {
		_, err := tt.Verify(context.Background(), token)
		return err
	}
	if err := verify(); err != nil {
		t.Fatal(err)
	}
	// Deleted on this node (the deletion is audited, so the count moves).
	st.deleted.Store(true)
	changes.Add(1)
	if err := verify(); err == nil {
		t.Error("a token of a client deleted on this node still works")
	}
	// Deleted on another node: seen once the TTL has passed.
	st.deleted.Store(false)
	if err := verify(); err != nil {
		t.Fatal(err)
	}
	st.deleted.Store(true)
	now = now.Add(time.Second)
	if err := verify(); err == nil {
		t.Error("a token of a client deleted on another node works after the TTL")
	}
}

// TestDelegatedToken: a token made by token exchange (act names its
// client) yields the user's tenant context with the client as its actor,
// and audit names both; an act that is not the token's client is refused.
func TestDelegatedToken(t *testing.T) {
	op := authtest.NewServer(t)
	key := op.AddKey(op.Issuer(), authtest.ES256)
	now := time.Now()
	v, err := auth.NewValidator(auth.Config{Issuer: op.Issuer(), Audience: "api", HTTPClient: op.Client()})
	if err != nil {
		t.Fatal(err)
	}
	st := &fakeState{issuer: op.Issuer()}
	st.status.Store(tenant.Active)
	var changes atomic.Uint64
	tt := authn.NewTenantTokens(v, st, authn.StateCache{TTL: time.Second, Changes: changes.Load})
	claims := authtest.Claims(op.Issuer(), "api", "acme", now)
	claims["client_id"], claims["scope"], claims["act"] = "cli_svc", "kms:encrypt data:read", map[string]any{"sub": "cli_svc"}
	for range 2 { // read, then cached
		ctx, err := tt.Verify(context.Background(), key.Sign(claims))
		if err != nil {
			t.Fatal(err)
		}
		tc, _ := tenant.FromContext(ctx)
		if tc.TenantID != "acme" || tc.Principal != "user:usr_0123456789" || tc.Actor != "client:cli_svc" ||
			!tc.HasScope("kms:encrypt") || !tc.HasScope("data:read") || tc.HasScope("openid") {
			t.Fatalf("tenant context: %+v", tc)
		}
		if got := authn.PrincipalName(ctx); got != "user:usr_0123456789 via client:cli_svc" {
			t.Errorf("PrincipalName = %q", got)
		}
	}
	// A plain user token names the user alone.
	plain := authtest.Claims(op.Issuer(), "api", "acme", now)
	plain["jti"] = "tok_plain"
	ctx, err := tt.Verify(context.Background(), key.Sign(plain))
	if err != nil {
		t.Fatal(err)
	}
	if tc, _ := tenant.FromContext(ctx); tc.Actor != "" || authn.PrincipalName(ctx) != "user:usr_0123456789" {
		t.Errorf("plain token: %+v %q", tc, authn.PrincipalName(ctx))
	}
	for name, act := range map[string]map[string]any{
		"another client":      {"sub": "cli_other"},
		"the subject itself":  {"sub": "usr_0123456789"},
		"a client for itself": {"sub": "cli_svc"},
	} {
		c := authtest.Claims(op.Issuer(), "api", "acme", now)
		c["jti"], c["client_id"], c["act"] = "tok_"+name, "cli_svc", act
		if name == "a client for itself" {
			c["sub"] = "cli_svc"
		}
		if _, err := tt.Verify(context.Background(), key.Sign(c)); err == nil {
			t.Errorf("act naming %s was accepted", name)
		}
	}
}
