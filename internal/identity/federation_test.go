package identity_test

import (
	"context"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// withKey returns a directory over e's database that can seal client
// secrets, accepting private issuers or not.
func (e *env) withKey(t *testing.T, allowPrivate bool) *identity.Directory {
	t.Helper()
	rk, _, err := kms.LoadRootKey(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rk.Zero)
	return identity.NewDirectory(e.db, e.log, identity.Options{Clock: e.clock, Argon2: fastArgon, Wrapper: rk, AllowPrivateIssuers: allowPrivate})
}

// TestFederatedUserLinks: the linking rules at the directory, including
// two first sign-ins of one identity at once.
func TestFederatedUserLinks(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, tenantA, tenantB)
		d := e.withKey(t, false)
		ctx := context.Background()
		const iss = "https://idp.example.com"
		if _, err := d.SetIdP(ctx, tenantA, identity.IdPRequest{Issuer: iss, ClientID: "c", ClientSecret: "s"}, op); err != nil {
			t.Fatal(err)
		}
		admin := e.createUser(t, tenantA, identity.CreateUserRequest{Email: "ann@a.example", Password: goodPassword})

		// Concurrent first sign-ins of one identity: one user, one link.
		var wg sync.WaitGroup
		got := make([]string, 8)
		for i := range got {
			wg.Go(func() {
				u, _, err := d.FederatedUser(ctx, tenantA, identity.FederatedLogin{Issuer: iss, Subject: "bob", Email: "bob@a.example"})
				if err != nil {
					t.Errorf("sign-in %d: %v", i, err)
				}
				got[i] = u.ID
			})
		}
		wg.Wait()
		for _, id := range got {
			if id != got[0] || id == "" {
				t.Fatalf("concurrent first sign-ins made different users: %v", got)
			}
		}
		if users := e.allUsers(t, tenantA, 100); len(users) != 2 {
			t.Errorf("%d users, want ann and bob", len(users))
		}

		// The rules.
		taken := identity.FederatedLogin{Issuer: iss, Subject: "mallory", Email: "ANN@a.example", EmailVerified: true}
		_, _, err := d.FederatedUser(ctx, tenantA, taken)
		wantErr(t, "verified email of an existing account, linking off", err, "federated_email_taken", "")
		if _, err := d.SetIdP(ctx, tenantA, identity.IdPRequest{Issuer: iss, ClientID: "c", ClientSecret: "s",
			IdPSettings: identity.IdPSettings{LinkExistingByEmail: true}}, op); err != nil {
			t.Fatal(err)
		}
		taken.EmailVerified = false
		_, _, err = d.FederatedUser(ctx, tenantA, taken)
		wantErr(t, "unverified email of an existing account, linking on", err, "federated_email_taken", "")
		_, _, err = d.FederatedUser(ctx, tenantA, identity.FederatedLogin{Issuer: iss, Subject: "eve", Email: "bob@a.example", EmailVerified: true})
		wantErr(t, "verified email of an account linked to another subject", err, "federated_account_linked", "")
		_, _, err = d.FederatedUser(ctx, tenantA, identity.FederatedLogin{Issuer: "https://other.example", Subject: "ann", Email: "ann@a.example", EmailVerified: true})
		wantErr(t, "another issuer than the tenant's", err, "federated_issuer_changed", "")
		_, _, err = d.FederatedUser(ctx, tenantB, identity.FederatedLogin{Issuer: iss, Subject: "bob", Email: "bob@a.example"})
		wantErr(t, "a tenant without a provider", err, "federated_issuer_changed", "")
		_, _, err = d.FederatedUser(ctx, tenantA, identity.FederatedLogin{Issuer: iss, Subject: "", Email: "x@a.example"})
		wantErr(t, "no subject", err, "federated_subject_invalid", "")
		taken.EmailVerified = true
		u, how, err := d.FederatedUser(ctx, tenantA, taken)
		if err != nil || u.ID != admin.ID || how != identity.FederatedLinkedByEmail {
			t.Fatalf("verified email, linking on: %s %s %v", u.ID, how, err)
		}
		if u, how, err := d.FederatedUser(ctx, tenantA, identity.FederatedLogin{Issuer: iss, Subject: "mallory"}); err != nil ||
			u.ID != admin.ID || how != identity.FederatedLinked {
			t.Errorf("the link, without an email: %s %s %v", u.ID, how, err)
		}
		// The link is the tenant's: another tenant's scope does not see it.
		if _, err := d.SetIdP(ctx, tenantB, identity.IdPRequest{Issuer: iss, ClientID: "c", ClientSecret: "s"}, op); err != nil {
			t.Fatal(err)
		}
		if u, how, err := d.FederatedUser(ctx, tenantB, identity.FederatedLogin{Issuer: iss, Subject: "mallory", Email: "m@b.example"}); err != nil ||
			how != identity.FederatedCreated || u.TenantID != tenantB {
			t.Errorf("the same upstream identity at another tenant: %+v %s %v", u, how, err)
		}
	})
}

// TestIdPIssuerRule: issuers are https; IP literals and localhost that
// are not public, and http on loopback, only with private upstreams.
func TestIdPIssuerRule(t *testing.T) {
	e := newEnv(t, storagetest.DSN(t, "sqlite"), tenantA)
	strict, lax := e.withKey(t, false), e.withKey(t, true)
	for issuer, want := range map[string][2]string{ // code without, with private upstreams
		"https://idp.example.com/realms/a": {"", ""},
		"https://8.8.8.8":                  {"", ""},
		"http://idp.example.com":           {"invalid_issuer", "invalid_issuer"},
		"http://10.0.0.1":                  {"invalid_issuer", "invalid_issuer"},
		"http://127.0.0.1:8080/t/x":        {"invalid_issuer", ""},
		"http://localhost:8080":            {"invalid_issuer", ""},
		"http://[::1]:8080":                {"invalid_issuer", ""},
		"https://127.0.0.1":                {"issuer_not_allowed", ""},
		"https://10.0.0.1":                 {"issuer_not_allowed", ""},
		"https://169.254.169.254":          {"issuer_not_allowed", ""},
		"https://[fd00::1]":                {"issuer_not_allowed", ""},
		"https://localhost":                {"issuer_not_allowed", ""},
		"https://idp.example.com#x":        {"invalid_issuer", "invalid_issuer"},
		"https://u:p@idp.example.com":      {"invalid_issuer", "invalid_issuer"},
		"idp.example.com":                  {"invalid_issuer", "invalid_issuer"},
	} {
		for i, d := range []*identity.Directory{strict, lax} {
			_, err := d.SetIdP(context.Background(), tenantA, identity.IdPRequest{Issuer: issuer, ClientID: "c", ClientSecret: "s"}, op)
			switch {
			case want[i] == "" && err != nil:
				t.Errorf("%s (private %v): %v", issuer, i == 1, err)
			case want[i] != "":
				wantErr(t, issuer, err, want[i], "issuer")
			}
		}
	}
}
