package authn_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/auth"
	"github.com/bulkhead-dev/bulkhead/sdk/auth/authtest"
)

// fakeState is Bulkhead's records, counting reads.
type fakeState struct {
	issuer  string
	status  atomic.Value // tenants.Status
	revoked atomic.Bool
	deleted atomic.Bool // the token's client
	reads   atomic.Int64
}

func (s *fakeState) Tenant(_ context.Context, id tenant.ID) (tenants.Tenant, error) {
	s.reads.Add(1)
	return tenants.Tenant{ID: id, Status: s.status.Load().(tenants.Status), Tier: "basic"}, nil
}
func (s *fakeState) IssuerOf(tenants.Tenant) string      { return s.issuer }
func (s *fakeState) PriorIssuerOf(tenants.Tenant) string { return "" }
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
func (s *fakeState) PartnerSession(context.Context, tenant.ID, string, string, time.Time, time.Time) (tenant.PartnerSession, error) {
	return tenant.PartnerSession{}, errors.New("no partners here")
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
	st.status.Store(tenants.Active)
	var changes atomic.Uint64
	tt := authn.NewTenantTokens(v, st, authn.StateCache{TTL: time.Second, Changes: changes.Load, Now: clock}, nil)
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
	st.status.Store(tenants.Suspended)
	if err := verify(); err != nil {
		t.Errorf("within the TTL of another node's change: %v (the cache should still answer)", err)
	}
	now = now.Add(time.Second)
	if err := verify(); err == nil {
		t.Error("a suspended tenant's token works after the TTL")
	}
	// Without a change count the cache is off.
	off := authn.NewTenantTokens(v, st, authn.StateCache{TTL: time.Hour, Now: clock}, nil)
	st.status.Store(tenants.Active)
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
	st.status.Store(tenants.Active)
	var changes atomic.Uint64
	tt := authn.NewTenantTokens(v, st, authn.StateCache{TTL: time.Second, Changes: changes.Load, Now: clock}, nil)
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
	st.status.Store(tenants.Active)
	var changes atomic.Uint64
	tt := authn.NewTenantTokens(v, st, authn.StateCache{TTL: time.Second, Changes: changes.Load}, nil)
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

// TestIssuerRefusalIsLogged: a token refused for its issuer (another
// deployment's, or a node's with another public URL; or an issuer that is
// no longer its tenant's) is answered as any invalid token, and the reason
// is logged at warn level, naming the issuer this node expects and nothing
// of the token; a flood of such tokens logs a handful of lines.
func TestIssuerRefusalIsLogged(t *testing.T) {
	op := authtest.NewServer(t)
	other := authtest.NewServer(t) // another node or deployment
	key := op.AddKey(op.Issuer(), authtest.ES256)
	otherKey := other.AddKey(other.Issuer(), authtest.ES256)
	now := time.Now()
	clock := func() time.Time { return now }
	v, err := auth.NewValidator(auth.Config{Issuer: op.Issuer(), Audience: "api", HTTPClient: op.Client(), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	st := &fakeState{issuer: op.Issuer()}
	st.status.Store(tenants.Active)
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	tt := authn.NewTenantTokens(v, st, authn.StateCache{Now: clock}, log)
	lines := func() []map[string]any {
		t.Helper()
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if l == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line is not JSON: %s", l)
			}
			out = append(out, m)
		}
		buf.Reset()
		return out
	}
	tokenShown := func(token, logged string) bool {
		for _, part := range append(strings.Split(token, "."), token) {
			if strings.Contains(logged, part) {
				return true
			}
		}
		return false
	}

	foreign := otherKey.Sign(authtest.Claims(other.Issuer(), "api", "acme", now))
	if _, err := tt.Verify(context.Background(), foreign); err == nil {
		t.Fatal("another issuer's token was accepted")
	}
	logged := buf.String()
	got := lines()
	if len(got) != 1 || got[0]["level"] != "WARN" || got[0]["reason"] != "foreign_issuer" || got[0]["expected_issuer"] != op.Issuer() ||
		!strings.Contains(got[0]["msg"].(string), "--public-url") {
		t.Fatalf("log after another issuer's token: %v; want one warning naming the expected issuer and --public-url", got)
	}
	if tokenShown(foreign, logged) || strings.Contains(logged, other.Issuer()) {
		t.Errorf("the warning shows the token or its claims: %s", logged)
	}

	// A flood: a handful of lines, the next one counting those left out.
	for range 100 {
		tt.Verify(context.Background(), foreign)
	}
	if n := len(lines()); n > 5 {
		t.Errorf("100 refused tokens logged %d lines; want at most 5", n)
	}
	now = now.Add(time.Minute)
	tt.Verify(context.Background(), foreign)
	if got := lines(); len(got) != 1 || got[0]["unlogged_before"] == nil {
		t.Errorf("the next warning after a flood: %v; want one that counts those left out", got)
	}

	// A tenant whose issuer is now another (say, moved to silo).
	mine := key.Sign(authtest.Claims(op.Issuer(), "api", "acme", now))
	st.issuer = op.SiloIssuer("acme")
	if _, err := tt.Verify(context.Background(), mine); err == nil {
		t.Fatal("a token of the tenant's former issuer was accepted")
	}
	logged = buf.String()
	if got := lines(); len(got) != 1 || got[0]["reason"] != "tenant_issuer" || got[0]["tenant_id"] != "acme" || got[0]["expected_issuer"] != op.SiloIssuer("acme") {
		t.Errorf("log after a token of the tenant's former issuer: %v", got)
	}
	if tokenShown(mine, logged) {
		t.Errorf("the warning shows the token: %s", logged)
	}
	// Other refusals are not this warning.
	st.issuer = op.Issuer()
	expired := key.Sign(authtest.Claims(op.Issuer(), "api", "acme", now.Add(-2*time.Hour)))
	if _, err := tt.Verify(context.Background(), expired); err == nil {
		t.Fatal("an expired token was accepted")
	}
	if got := lines(); len(got) != 0 {
		t.Errorf("an expired token logged %v", got)
	}
}
