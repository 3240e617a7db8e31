package envelope_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
	"github.com/bulkhead-dev/bulkhead/sdk/envelope"
)

// TestWithBulkhead runs the SDK against a real node over loopback HTTP:
// each tenant's service has a client-credentials token with the kms scopes;
// tenant-a's envelope round-trips through its own key; tenant-b's service
// can neither decrypt it nor encrypt under tenant-a's context.
func TestWithBulkhead(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{})
		ctx := context.Background()
		token := func(tid string) *client.Client {
			t.Helper()
			if _, _, err := env.Tenants.Create(ctx, tenants.CreateRequest{ID: tid}, "", tenant.Actor{Principal: "test"}); err != nil {
				t.Fatal(err)
			}
			scopes := []string{"kms:encrypt", "kms:decrypt", "kms:generate-data-key"}
			c, err := env.Directory.CreateClient(ctx, tenant.ID(tid), identity.CreateClientRequest{Name: "svc",
				GrantTypes: []string{identity.GrantClientCredentials}, Scopes: scopes}, tenant.Actor{Principal: "test"})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := (&clientcredentials.Config{ClientID: c.ID, ClientSecret: c.ClientSecret, TokenURL: env.URL + "/oauth/token", Scopes: scopes}).Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return client.New(env.URL, tok.AccessToken)
		}
		a, b := token("tenant-a"), token("tenant-b")
		cache := envelope.NewCache(envelope.CacheConfig{})
		ca, err := envelope.New(envelope.Config{Provider: envelope.KMSProvider{Client: a}, Cache: cache})
		if err != nil {
			t.Fatal(err)
		}
		ec := map[string]string{"tenant_id": "tenant-a", "table": "documents"}
		pt := make([]byte, 300<<10)
		rand.Read(pt)
		blob, err := ca.Encrypt(ctx, "alias/customer-tenant-a", ec, pt)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := ca.Decrypt(ctx, blob, ec); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("round trip: %v", err)
		}
		// A second message takes its data key from the cache.
		if _, err := ca.Encrypt(ctx, "alias/customer-tenant-a", ec, []byte("again")); err != nil {
			t.Fatal(err)
		}
		if s := cache.Stats(); s.EncryptHits == 0 {
			t.Errorf("cache stats %+v: the second message did not hit", s)
		}
		// A fresh Crypter (no cache) asks the server to unwrap the data key.
		fresh, _ := envelope.New(envelope.Config{Provider: envelope.KMSProvider{Client: a}})
		if got, err := fresh.Decrypt(ctx, blob, ec); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("decrypt through the server: %v", err)
		}
		// Tenant-b's service.
		cb, _ := envelope.New(envelope.Config{Provider: envelope.KMSProvider{Client: b}})
		var ce *client.Error
		if _, err := cb.Decrypt(ctx, blob, ec); !errors.As(err, &ce) || ce.Code != "context_tenant_mismatch" {
			t.Errorf("tenant-b decrypts tenant-a's envelope: %v", err)
		}
		if _, err := cb.Encrypt(ctx, "alias/customer-tenant-a", ec, pt); !errors.As(err, &ce) || ce.Code != "context_tenant_mismatch" {
			t.Errorf("tenant-b encrypts under tenant-a's context: %v", err)
		}
		ecB := map[string]string{"tenant_id": "tenant-b", "table": "documents"}
		if _, err := cb.Decrypt(ctx, blob, ecB); err == nil {
			t.Error("tenant-b decrypted tenant-a's envelope under its own context")
		}
		// A field: round trip through the server, and tenant-b's service
		// refused the value copied into one of its own rows.
		ref := envelope.FieldRef{Tenant: "tenant-a", Table: "notes", PrimaryKey: "42", Column: "body"}
		val, err := ca.EncryptField(ctx, "alias/customer-tenant-a", ref, []byte("field secret"))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := fresh.DecryptField(ctx, ref, val); err != nil || string(got) != "field secret" {
			t.Fatalf("field through the server: %q %v", got, err)
		}
		refB := ref
		refB.Tenant = "tenant-b"
		if got, err := cb.DecryptField(ctx, refB, val); err == nil || got != nil {
			t.Errorf("tenant-b decrypted tenant-a's field in its own row: %q", got)
		}
		if _, err := cb.DecryptField(ctx, ref, val); !errors.As(err, &ce) || ce.Code != "context_tenant_mismatch" {
			t.Errorf("tenant-b decrypts tenant-a's field as tenant-a: %v", err)
		}
		// The client's plain operations against the same server.
		enc, err := a.Encrypt(ctx, "alias/customer-tenant-a", []byte("short secret"), ec)
		if err != nil {
			t.Fatal(err)
		}
		re, err := a.ReEncrypt(ctx, client.ReEncryptRequest{Ciphertext: enc.Ciphertext, SourceEncryptionContext: ec})
		if err != nil || re.SourceKeyID != enc.KeyID {
			t.Fatalf("re-encrypt: %+v %v", re, err)
		}
		if d, err := a.Decrypt(ctx, re.Ciphertext, ec); err != nil || string(d.Plaintext) != "short secret" {
			t.Fatalf("decrypt the re-encrypted: %v", err)
		}
		dk, err := a.GenerateDataKey(ctx, "alias/customer-tenant-a", ec, true)
		if err != nil || dk.Plaintext != nil || len(dk.Ciphertext) == 0 {
			t.Fatalf("data key without plaintext: %+v %v", dk, err)
		}
	})
}
