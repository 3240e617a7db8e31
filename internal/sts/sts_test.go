package sts_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/sts"
)

func TestExchangeable(t *testing.T) {
	for s, want := range map[string]bool{
		"kms:encrypt": true, "kms:decrypt": true, "kms:generate-data-key": true, "data:read": true, "data:write": true,
		"kms:": false, "data:": false, "openid": false, "bulkhead:api": false, "orders:read": false, "": false, "KMS:encrypt": false,
		"xkms:encrypt": false,
	} {
		if got := sts.Exchangeable(s); got != want {
			t.Errorf("Exchangeable(%q) = %v; want %v", s, got, want)
		}
	}
}

func TestScopes(t *testing.T) {
	registered := []string{"kms:encrypt", "kms:decrypt", "data:read", "orders:read", "bulkhead:api"}
	for _, tc := range []struct {
		requested []string
		want      []string
		err       error
	}{
		{nil, []string{"kms:encrypt", "kms:decrypt", "data:read"}, nil},
		{[]string{}, []string{"kms:encrypt", "kms:decrypt", "data:read"}, nil},
		{[]string{"data:read", "kms:encrypt"}, []string{"data:read", "kms:encrypt"}, nil},
		{[]string{"kms:encrypt", "kms:encrypt"}, []string{"kms:encrypt"}, nil},
		// Not registered, or not a data-plane scope: dropped.
		{[]string{"kms:encrypt", "data:write", "orders:read", "bulkhead:api", "openid"}, []string{"kms:encrypt"}, nil},
		{[]string{"data:write"}, nil, sts.ErrNoScope},
		{[]string{"orders:read"}, nil, sts.ErrNoScope},
		{make([]string, sts.MaxRequestedScopes+1), nil, sts.ErrTooManyScopes},
	} {
		got, err := sts.Scopes(registered, tc.requested)
		if !errors.Is(err, tc.err) || !slices.Equal(got, tc.want) {
			t.Errorf("Scopes(%q) = %q, %v; want %q, %v", tc.requested, got, err, tc.want, tc.err)
		}
	}
	if _, err := sts.Scopes([]string{"orders:read"}, nil); !errors.Is(err, sts.ErrNoScope) {
		t.Errorf("a client with no data-plane scope: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name             string
		subject          time.Time
		lifetime, tenant time.Duration
		want             time.Time
		err              error
	}{
		{"default", now.Add(time.Hour), 0, 0, now.Add(15 * time.Minute), nil},
		{"provider shorter", now.Add(time.Hour), 5 * time.Minute, 0, now.Add(5 * time.Minute), nil},
		{"provider longer is capped", now.Add(time.Hour), time.Hour, 0, now.Add(15 * time.Minute), nil},
		{"tenant shorter", now.Add(time.Hour), 10 * time.Minute, 2 * time.Minute, now.Add(2 * time.Minute), nil},
		{"tenant longer", now.Add(time.Hour), 0, 24 * time.Hour, now.Add(15 * time.Minute), nil},
		{"subject ends first", now.Add(90 * time.Second), 0, 0, now.Add(90 * time.Second), nil},
		{"subject expired", now, 0, 0, time.Time{}, sts.ErrExpired},
		{"subject long expired", now.Add(-time.Hour), 0, 0, time.Time{}, sts.ErrExpired},
	} {
		got, err := sts.Expiry(now, tc.subject, tc.lifetime, tc.tenant)
		if !errors.Is(err, tc.err) || !got.Equal(tc.want) {
			t.Errorf("%s: Expiry = %v, %v; want %v, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func TestDecide(t *testing.T) {
	now := time.Now()
	base := sts.Request{ClientTenant: "acme", ClientScopes: []string{"kms:encrypt", "data:read"}, SubjectTenant: "acme",
		Requested: []string{"kms:encrypt", "kms:decrypt"}, Now: now, SubjectExpiry: now.Add(time.Hour)}
	g, err := sts.Decide(base)
	if err != nil || !slices.Equal(g.Scopes, []string{"kms:encrypt"}) || !g.Expiry.Equal(now.Add(sts.MaxLifetime)) {
		t.Fatalf("Decide = %+v, %v", g, err)
	}
	// A tenant's client never gets a token for another tenant's user.
	other := base
	other.SubjectTenant = "globex"
	if _, err := sts.Decide(other); !errors.Is(err, sts.ErrCrossTenant) {
		t.Errorf("cross-tenant: %v", err)
	}
	// A subject without a tenant is no subject.
	none := base
	none.SubjectTenant = ""
	if _, err := sts.Decide(none); !errors.Is(err, sts.ErrCrossTenant) {
		t.Errorf("no subject tenant: %v", err)
	}
	// A platform client may act in any tenant.
	platform := other
	platform.ClientTenant = ""
	if _, err := sts.Decide(platform); err != nil {
		t.Errorf("platform client: %v", err)
	}
	expired := base
	expired.SubjectExpiry = now.Add(-time.Second)
	if _, err := sts.Decide(expired); !errors.Is(err, sts.ErrExpired) {
		t.Errorf("expired subject: %v", err)
	}
}

func TestCheckLifetime(t *testing.T) {
	for d, ok := range map[time.Duration]bool{0: true, time.Minute: true, sts.MaxLifetime: true, sts.MaxLifetime + 1: false, -1: false} {
		if err := sts.CheckLifetime(d); (err == nil) != ok {
			t.Errorf("CheckLifetime(%v) = %v", d, err)
		}
	}
}

// FuzzScopes: whatever a client asks for, the grant is a subset of its
// registered data-plane scopes, each once, or a refusal when that is empty.
func FuzzScopes(f *testing.F) {
	f.Add("kms:encrypt data:read", "kms:encrypt kms:decrypt data:read orders:read")
	f.Add("", "kms:encrypt")
	f.Add("kms:encrypt kms:encrypt openid", "kms:encrypt openid")
	f.Add("data:write", "data:read")
	f.Add("kms: data: kms:x\x00", "kms:x\x00 kms:")
	f.Fuzz(func(t *testing.T, requested, registered string) {
		req, reg := strings.Fields(requested), strings.Fields(registered)
		got, err := sts.Scopes(reg, req)
		if err != nil {
			if got != nil {
				t.Fatalf("refused with scopes %q", got)
			}
			want := req
			if len(want) == 0 {
				want = reg
			}
			for _, s := range want {
				if len(req) <= sts.MaxRequestedScopes && sts.Exchangeable(s) && slices.Contains(reg, s) {
					t.Fatalf("refused %q though %q is registered and exchangeable: %v", req, s, err)
				}
			}
			return
		}
		if len(got) == 0 {
			t.Fatal("granted no scope without an error")
		}
		for i, s := range got {
			if !sts.Exchangeable(s) || !slices.Contains(reg, s) || (len(req) > 0 && !slices.Contains(req, s)) || slices.Contains(got[:i], s) {
				t.Fatalf("Scopes(%q, %q) = %q: %q should not be granted", reg, req, got, s)
			}
		}
	})
}
