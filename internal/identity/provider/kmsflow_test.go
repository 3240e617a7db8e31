package provider_test

import (
	"context"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/identity/provider"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// TestTenantKeyFlow is the keys issue's end-to-end acceptance: a user of
// tenant-a signs in (x/oauth2, PKCE, the hosted login page); a service
// exchanges the user's token for a credential of tenant-a and encrypts a
// record under alias/customer-tenant-a with tenant_id=tenant-a in the
// context; holding a credential for tenant-b (another user's token,
// exchanged the same way) it cannot decrypt the record; tenant-a's
// offboarding makes the record undecryptable for good.
func TestTenantKeyFlow(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "tenant-a", "basic", "a.example")
		f.tenant(t, "tenant-b", "basic", "b.example")
		f.user(t, "tenant-a", "ann@a.example", "ann's long password")
		f.user(t, "tenant-b", "bo@b.example", "bo's long password")
		_, conf := f.publicApp(t, identity.CreateClientRequest{Scopes: []string{provider.APIScope}, GrantTypes: []string{"authorization_code"}},
			oidc.ScopeOpenID, provider.APIScope)
		// The service: one platform client, allowed to exchange tokens for kms scopes.
		svc := f.client(t, "", identity.CreateClientRequest{Name: "records-service", GrantTypes: []string{identity.GrantTokenExchange},
			Scopes: []string{"kms:encrypt", "kms:decrypt"}})
		credential := func(email, password string) string {
			t.Helper()
			user := f.signIn(t, conf, email, password).AccessToken
			a := exchange(t, f.env.URL+"/oauth/token", svc, subject(user, "kms:encrypt", "kms:decrypt"))
			if a.status != 200 || a.body.AccessToken == "" {
				t.Fatalf("exchange for %s: %s", email, a)
			}
			return a.body.AccessToken
		}
		credA, credB := credential("ann@a.example", "ann's long password"), credential("bo@b.example", "bo's long password")

		ecA := map[string]string{"tenant_id": "tenant-a", "record": "invoice-17"}
		var ct struct {
			Ciphertext []byte `json:"ciphertext"`
			KeyID      string `json:"key_id"`
		}
		if st := postJSON(t, f.env.URL, credA, "/v1/kms/encrypt", map[string]any{"key_id": "alias/customer-tenant-a",
			"plaintext": []byte("IBAN DE89 3704 0044 0532 0130 00"), "encryption_context": ecA}, &ct); st != 200 || len(ct.Ciphertext) == 0 {
			t.Fatalf("encrypt with the exchanged credential: %d", st)
		}
		stored := ct.Ciphertext // the service stores the record
		var pt struct{ Plaintext []byte }
		if st := postJSON(t, f.env.URL, credA, "/v1/kms/decrypt", map[string]any{"ciphertext": stored, "encryption_context": ecA}, &pt); st != 200 ||
			string(pt.Plaintext) != "IBAN DE89 3704 0044 0532 0130 00" {
			t.Fatalf("decrypt with tenant-a's credential: %d %q", st, pt.Plaintext)
		}
		// With tenant-b's credential: neither naming tenant-a nor naming itself.
		if st := postJSON(t, f.env.URL, credB, "/v1/kms/decrypt", map[string]any{"ciphertext": stored, "encryption_context": ecA}, nil); st != 403 {
			t.Errorf("tenant-b's credential with tenant-a's context: %d, want 403", st)
		}
		ecB := map[string]string{"tenant_id": "tenant-b", "record": "invoice-17"}
		if st := postJSON(t, f.env.URL, credB, "/v1/kms/decrypt", map[string]any{"ciphertext": stored, "encryption_context": ecB}, nil); st != 400 {
			t.Errorf("tenant-b's credential with its own context: %d, want 400", st)
		}

		// Offboarding: the credential stops at once; the key's material is
		// destroyed when the deletion window has passed.
		if _, err := f.env.Tenants.Delete(f.ctx, "tenant-a", op); err != nil {
			t.Fatal(err)
		}
		runtest.Eventually(t, "tenant-a deleted", func() bool {
			tn, err := f.env.Tenants.Get(f.ctx, "tenant-a")
			return err == nil && tn.Status == tenants.Deleted
		})
		if st := postJSON(t, f.env.URL, credA, "/v1/kms/decrypt", map[string]any{"ciphertext": stored, "encryption_context": ecA}, nil); st != 401 {
			t.Errorf("tenant-a's credential after offboarding: %d, want 401", st)
		}
		k, err := f.env.KMS.GetKey(f.ctx, "tenant-a", ct.KeyID)
		if err != nil || k.State != kms.StatePendingDeletion {
			t.Fatalf("tenant-a's key after offboarding: %+v %v", k, err)
		}
		// 30 days later (the window moved into the past, as the tables' owner could).
		storagetest.ExecAsOwner(t, dsn, []string{"kms_keys"}, `UPDATE kms_keys SET deletion_at = 1 WHERE tenant_id = 'tenant-a'`)
		if n, err := f.env.KMS.DestroyDue(f.ctx); err != nil || n < 1 {
			t.Fatalf("destroy: %d %v", n, err)
		}
		var left int
		if err := f.env.DB.View(f.ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
			return tx.QueryRow(f.ctx, `SELECT COUNT(*) FROM kms_key_versions WHERE tenant_id = 'tenant-a' AND material <> ''`).Scan(&left)
		}); err != nil || left != 0 {
			t.Fatalf("tenant-a's key material after destruction: %d versions left, %v", left, err)
		}
		_, err = f.env.KMS.Decrypt(context.Background(), "tenant-a", kms.DecryptRequest{Ciphertext: stored, EncryptionContext: ecA}, op)
		if !errs.Is(err, "key_destroyed") {
			t.Errorf("the stored record after destruction: %v, want key_destroyed", err)
		}
	})
}
