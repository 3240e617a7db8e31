package signing_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

func rootKey(t *testing.T, b byte) *kms.RootKey {
	t.Helper()
	k, _, err := kms.LoadRootKey(t.TempDir(), base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(rune('a'+b)), 32))))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newStore(t *testing.T, db *storage.DB, root *kms.RootKey, clk clock.Clock, alg jose.SignatureAlgorithm) *signing.Store {
	t.Helper()
	s, err := signing.NewStore(db, root, signing.Options{Clock: clk, Algorithm: alg, TokenLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sign makes a compact JWS with k and verifies it against set.
func signAndVerify(t *testing.T, k *signing.Key, set jose.JSONWebKeySet) bool {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Algorithm, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.ID}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := sig.Sign([]byte(`{"sub":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	compact, _ := obj.CompactSerialize()
	parsed, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(parsed.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		return false
	}
	_, err = parsed.Verify(keys[0])
	return err == nil
}

func TestActiveRotateAndJWKS(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn, signing.Migrations())
		clk := clock.NewFake(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
		s := newStore(t, db, rootKey(t, 1), clk, "")
		ctx := context.Background()
		k1, err := s.Active(ctx, signing.Platform)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := k1.Private.(*ecdsa.PrivateKey); !ok || k1.Algorithm != jose.ES256 {
			t.Fatalf("default key is %T %s; want ES256", k1.Private, k1.Algorithm)
		}
		if again, _ := s.Active(ctx, signing.Platform); again.ID != k1.ID {
			t.Fatal("Active made a second key")
		}
		set, err := s.JWKS(ctx, signing.Platform)
		if err != nil || len(set.Keys) != 1 || !set.Keys[0].IsPublic() {
			t.Fatalf("jwks = %+v %v", set, err)
		}
		raw, _ := json.Marshal(set)
		if strings.Contains(string(raw), `"d"`) {
			t.Fatalf("the JWKS holds private material: %s", raw)
		}
		if !signAndVerify(t, k1, set) {
			t.Fatal("a token of the active key does not verify against the JWKS")
		}

		clk.Advance(time.Minute)
		k2, err := s.Rotate(ctx, signing.Platform)
		if err != nil || k2.ID == k1.ID {
			t.Fatalf("rotate: %v", err)
		}
		if a, _ := s.Active(ctx, signing.Platform); a.ID != k2.ID {
			t.Fatal("the rotated key is not active")
		}
		set, _ = s.JWKS(ctx, signing.Platform)
		if len(set.Keys) != 2 || !signAndVerify(t, k1, set) || !signAndVerify(t, k2, set) {
			t.Fatalf("after rotation the JWKS must publish both keys: %d keys", len(set.Keys))
		}
		// Past the token lifetime the retired key leaves the JWKS.
		clk.Advance(time.Hour + time.Second)
		set, _ = s.JWKS(ctx, signing.Platform)
		if len(set.Keys) != 1 || set.Keys[0].KeyID != k2.ID || signAndVerify(t, k1, set) {
			t.Fatalf("the retired key is still published: %d keys", len(set.Keys))
		}
		// RotateIfOlder.
		if k, _ := s.RotateIfOlder(ctx, signing.Platform, 2*time.Hour); k.ID != k2.ID {
			t.Error("RotateIfOlder rotated a young key")
		}
		clk.Advance(2 * time.Hour)
		if k, _ := s.RotateIfOlder(ctx, signing.Platform, 2*time.Hour); k.ID == k2.ID {
			t.Error("RotateIfOlder kept an old key")
		}
		// A second node (a new Store on the same database and root key) signs with the same key.
		s2 := newStore(t, db, rootKey(t, 1), clk, "")
		a1, _ := s.Active(ctx, signing.Platform)
		a2, err := s2.Active(ctx, signing.Platform)
		if err != nil || a1.ID != a2.ID {
			t.Fatalf("second node: %v", err)
		}
	})
}

// TestIssuersAreSeparate: each silo tenant has its own keys; one issuer's
// JWKS never verifies another's tokens; a wrapped key moved to another
// issuer's row, or read with another root key, does not unwrap.
func TestIssuersAreSeparate(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn, signing.Migrations())
		s := newStore(t, db, rootKey(t, 1), clock.System{}, jose.EdDSA)
		ctx := context.Background()
		a, b := signing.Issuer{Tenant: "tenant-a"}, signing.Issuer{Tenant: "tenant-b"}
		ka, err := s.Active(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := ka.Private.(ed25519.PrivateKey); !ok {
			t.Fatalf("EdDSA store made %T", ka.Private)
		}
		kb, _ := s.Active(ctx, b)
		kp, _ := s.Active(ctx, signing.Platform)
		setA, _ := s.JWKS(ctx, a)
		setB, _ := s.JWKS(ctx, b)
		setP, _ := s.JWKS(ctx, signing.Platform)
		if !signAndVerify(t, ka, setA) || signAndVerify(t, ka, setB) || signAndVerify(t, ka, setP) ||
			signAndVerify(t, kb, setA) || signAndVerify(t, kp, setA) {
			t.Fatal("a key verifies against another issuer's JWKS")
		}

		// Move tenant-a's wrapped key into tenant-b's active row.
		storagetest.ExecAsOwner(t, dsn, []string{"signing_keys"}, `UPDATE signing_keys SET private_wrapped =
			(SELECT private_wrapped FROM signing_keys WHERE tenant_id = 'tenant-a') WHERE tenant_id = 'tenant-b'`)
		fresh := newStore(t, db, rootKey(t, 1), clock.System{}, jose.EdDSA) // no cached keys
		if _, err := fresh.Active(ctx, b); err == nil {
			t.Fatal("tenant-a's wrapped key unwrapped as tenant-b's")
		}
		// Another root key opens nothing.
		other := newStore(t, db, rootKey(t, 2), clock.System{}, jose.EdDSA)
		if _, err := other.Active(ctx, a); err == nil {
			t.Fatal("a key unwrapped under another root key")
		}
		if _, err := fresh.Active(ctx, a); err != nil {
			t.Fatalf("tenant-a's own key: %v", err)
		}
	})
}

func TestDeleteIssuer(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn, signing.Migrations())
		s := newStore(t, db, rootKey(t, 1), clock.System{}, "")
		ctx := context.Background()
		a := signing.Issuer{Tenant: "tenant-a"}
		s.Active(ctx, a)
		s.Active(ctx, signing.Platform)
		err := db.Update(ctx, storage.TenantScope("tenant-a"), func(tx *storage.Tx) error { return s.DeleteIssuer(ctx, tx) })
		if err != nil {
			t.Fatal(err)
		}
		if set, _ := s.JWKS(ctx, a); len(set.Keys) != 0 {
			t.Fatalf("tenant-a's keys survive its deletion: %d", len(set.Keys))
		}
		if set, _ := s.JWKS(ctx, signing.Platform); len(set.Keys) != 1 {
			t.Fatal("deleting a tenant's issuer touched the platform's keys")
		}
	})
}

func TestUnsupportedAlgorithm(t *testing.T) {
	db := storagetest.Open(t, filepath.Join(t.TempDir(), "x.db"), signing.Migrations())
	if _, err := signing.NewStore(db, rootKey(t, 1), signing.Options{Algorithm: jose.HS256}); err == nil {
		t.Fatal("HS256 accepted")
	}
}

// TestScheduledRotation: an active key older than the rotation period is
// rotated on its next use, once, even when several nodes use it at once.
func TestScheduledRotation(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn, signing.Migrations())
		clk := clock.NewFake(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
		node := func() *signing.Store {
			s, err := signing.NewStore(db, rootKey(t, 1), signing.Options{Clock: clk, TokenLifetime: time.Hour, RotateAfter: 24 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		a, b := node(), node()
		ctx := context.Background()
		k1, err := a.Active(ctx, signing.Platform)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(23 * time.Hour)
		if k, _ := b.Active(ctx, signing.Platform); k.ID != k1.ID {
			t.Fatal("a key was rotated before its period")
		}
		clk.Advance(2 * time.Hour)
		done := make(chan string, 2)
		for _, s := range []*signing.Store{a, b} {
			go func() {
				k, err := s.Active(ctx, signing.Platform)
				if err != nil {
					t.Error(err)
					done <- ""
					return
				}
				done <- k.ID
			}()
		}
		k2, k3 := <-done, <-done
		if k2 == k1.ID || k2 != k3 {
			t.Fatalf("rotation on schedule: %s then %s and %s; want one new key for both nodes", k1.ID, k2, k3)
		}
		if set, _ := a.JWKS(ctx, signing.Platform); len(set.Keys) != 2 {
			t.Fatalf("JWKS has %d keys; want the new and the retired one", len(set.Keys))
		}
	})
}
