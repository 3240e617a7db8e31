package kms_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

var op = tenant.Actor{Principal: "operator:test"}

type env struct {
	db    *storage.DB
	log   *audit.Log
	reg   *tenants.Registry
	svc   *kms.Service
	clock *clock.Fake
	root  *kms.RootKey
}

// rootKey is the env's root key, for a second node on the same database.
func (e *env) rootKey(t *testing.T) *kms.RootKey { return e.root }

// newEnv opens a database with the registry and the key service (its
// onboarding and offboarding steps registered) and creates active tenants.
func newEnv(t *testing.T, dsn string, tenantIDs ...string) *env {
	t.Helper()
	db := storagetest.Open(t, dsn, audit.Migrations(), tenants.Migrations(), kms.Migrations())
	fc := clock.NewFake(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	l := audit.New(db, audit.Options{Clock: fc})
	root, _, err := kms.LoadRootKey(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Close()
		root.Zero()
	})
	svc := kms.New(db, l, root, kms.Options{Clock: fc})
	reg := tenants.NewRegistry(db, l, tenants.Options{Clock: fc})
	reg.AddOnboardingStep(svc.OnboardingStep())
	reg.AddOffboardingStep(svc.OffboardingStep())
	runtest.Go(t, func(ctx context.Context) error { return reg.Run(ctx, 50*time.Millisecond) })
	runtest.Go(t, svc.Run)
	e := &env{db: db, log: l, reg: reg, svc: svc, clock: fc, root: root}
	for _, id := range tenantIDs {
		if _, _, err := reg.Create(context.Background(), tenants.CreateRequest{ID: id}, "", op); err != nil {
			t.Fatal(err)
		}
		e.waitStatus(t, id, tenants.Active)
	}
	return e
}

func (e *env) waitStatus(t *testing.T, id string, want tenants.Status) {
	t.Helper()
	runtest.Eventually(t, "tenant "+id+" "+string(want), func() bool {
		tn, err := e.reg.Get(context.Background(), tenant.ID(id))
		return err == nil && tn.Status == want
	})
}

func ec(tid string, kv ...string) kms.Context {
	c := kms.Context{"tenant_id": tid}
	for i := 0; i+1 < len(kv); i += 2 {
		c[kv[i]] = kv[i+1]
	}
	return c
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if !errs.Is(err, code) {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

func (e *env) encrypt(t *testing.T, tid, key string, pt string, c kms.Context) kms.EncryptResponse {
	t.Helper()
	out, err := e.svc.Encrypt(context.Background(), tenant.ID(tid), kms.EncryptRequest{KeyID: key, Plaintext: []byte(pt), EncryptionContext: c}, op)
	if err != nil {
		t.Fatalf("encrypt in %s with %s: %v", tid, key, err)
	}
	return out
}

func (e *env) decrypt(tid string, ct []byte, c kms.Context) (string, error) {
	out, err := e.svc.Decrypt(context.Background(), tenant.ID(tid), kms.DecryptRequest{Ciphertext: ct, EncryptionContext: c}, op)
	return string(out.Plaintext), err
}

// TestEncryptDecrypt: the default key round-trips under its alias and id;
// the context binds; another tenant's ciphertext and context are refused.
func TestEncryptDecrypt(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, "acme", "globex")
		ct := e.encrypt(t, "acme", "alias/customer-acme", "card 4242", ec("acme", "record", "r1"))
		if ct.KeyVersion != 1 {
			t.Errorf("version %d", ct.KeyVersion)
		}
		if pt, err := e.decrypt("acme", ct.Ciphertext, ec("acme", "record", "r1")); err != nil || pt != "card 4242" {
			t.Fatalf("decrypt: %q %v", pt, err)
		}
		if again := e.encrypt(t, "acme", ct.KeyID, "card 4242", ec("acme")); again.KeyID != ct.KeyID {
			t.Errorf("by id: %+v", again)
		}
		_, err := e.decrypt("acme", ct.Ciphertext, ec("acme", "record", "r2"))
		wantCode(t, "another record's context", err, "invalid_ciphertext")
		_, err = e.decrypt("acme", ct.Ciphertext, ec("acme"))
		wantCode(t, "a pair left out", err, "invalid_ciphertext")
		// The context must name the caller's tenant, before any crypto.
		_, err = e.decrypt("acme", ct.Ciphertext, kms.Context{"record": "r1"})
		wantCode(t, "no tenant_id", err, "context_tenant_mismatch")
		_, err = e.decrypt("globex", ct.Ciphertext, ec("acme", "record", "r1"))
		wantCode(t, "globex naming acme in its context", err, "context_tenant_mismatch")
		// globex cannot decrypt acme's ciphertext, nor use acme's key.
		_, err = e.decrypt("globex", ct.Ciphertext, ec("globex", "record", "r1"))
		wantCode(t, "globex decrypts acme's ciphertext", err, "invalid_ciphertext")
		_, err = e.svc.Encrypt(context.Background(), "globex", kms.EncryptRequest{KeyID: ct.KeyID, Plaintext: []byte("x"), EncryptionContext: ec("globex")}, op)
		wantCode(t, "globex uses acme's key id", err, "key_not_found")
		_, err = e.svc.Encrypt(context.Background(), "globex", kms.EncryptRequest{KeyID: "alias/customer-acme", Plaintext: []byte("x"), EncryptionContext: ec("globex")}, op)
		wantCode(t, "globex uses acme's alias", err, "key_not_found")
		// The attempt is in the platform's chain, naming both tenants.
		runtest.Eventually(t, "the cross-tenant attempt in the audit trail", func() bool {
			p, err := e.log.ListAllTenants(context.Background(), audit.Filter{Action: "kms.cross_tenant_attempt", Limit: 10})
			return err == nil && len(p.Items) == 1 && p.Items[0].Detail["caller_tenant"] == "globex" && p.Items[0].Detail["key_tenant"] == "acme"
		})
		// Every operation is in acme's chain: key, version, context hash, outcome.
		runtest.Eventually(t, "kms events in the audit trail", func() bool {
			p, err := e.log.ListAllTenants(context.Background(), audit.Filter{Tenant: "acme", Limit: 100})
			if err != nil {
				return false
			}
			var enc, denied bool
			for _, ev := range p.Items {
				if ev.Action == "kms.encrypt" && ev.Outcome == audit.Success && ev.Target == ct.KeyID &&
					ev.Detail["key_version"] == "1" && len(ev.Detail["context_sha256"]) == 64 && ev.Principal == op.Principal {
					enc = true
				}
				if ev.Action == "kms.decrypt" && ev.Outcome == audit.Denied && ev.Detail["code"] == "context_tenant_mismatch" {
					denied = true
				}
			}
			return enc && denied
		})
		// Data keys: the plaintext key decrypts back from its ciphertext.
		dk, err := e.svc.GenerateDataKey(context.Background(), "acme", kms.DataKeyRequest{KeyID: "alias/customer-acme", EncryptionContext: ec("acme", "table", "orders")}, false, op)
		if err != nil || len(dk.Plaintext) != 32 {
			t.Fatalf("data key: %v %d", err, len(dk.Plaintext))
		}
		if pt, err := e.decrypt("acme", dk.Ciphertext, ec("acme", "table", "orders")); err != nil || pt != string(dk.Plaintext) {
			t.Errorf("data key round trip: %v", err)
		}
		noPT, err := e.svc.GenerateDataKey(context.Background(), "acme", kms.DataKeyRequest{KeyID: "alias/customer-acme", EncryptionContext: ec("acme"), NumberOfBytes: 16}, true, op)
		if err != nil || noPT.Plaintext != nil || len(noPT.Ciphertext) == 0 {
			t.Errorf("without plaintext: %+v %v", noPT, err)
		}
		// Bad input.
		_, err = e.svc.Encrypt(context.Background(), "acme", kms.EncryptRequest{KeyID: "alias/customer-acme", Plaintext: make([]byte, 4097), EncryptionContext: ec("acme")}, op)
		wantCode(t, "4097 bytes", err, "invalid_plaintext")
		_, err = e.decrypt("acme", ct.Ciphertext[:len(ct.Ciphertext)-1], ec("acme", "record", "r1"))
		wantCode(t, "truncated", err, "invalid_ciphertext")
		_, err = e.decrypt("acme", []byte("not a ciphertext at all, really"), ec("acme"))
		wantCode(t, "garbage", err, "invalid_ciphertext")
		_, err = e.svc.Encrypt(context.Background(), "acme", kms.EncryptRequest{KeyID: "alias/none", Plaintext: []byte("x"), EncryptionContext: ec("acme")}, op)
		wantCode(t, "unknown alias", err, "key_not_found")
	})
}

// TestRotation: a rotated key encrypts with its new version and still
// decrypts the old; automatic rotation happens on use once due.
func TestRotation(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, "acme")
		ctx := context.Background()
		old := e.encrypt(t, "acme", "alias/customer-acme", "v1 data", ec("acme"))
		k, err := e.svc.Rotate(ctx, "acme", old.KeyID, op)
		if err != nil || k.PrimaryVersion != 2 || len(k.Versions) != 2 {
			t.Fatalf("rotate: %+v %v", k, err)
		}
		cur := e.encrypt(t, "acme", "alias/customer-acme", "v2 data", ec("acme"))
		if cur.KeyVersion != 2 {
			t.Errorf("after rotation: version %d", cur.KeyVersion)
		}
		for _, c := range []kms.EncryptResponse{old, cur} {
			if _, err := e.decrypt("acme", c.Ciphertext, ec("acme")); err != nil {
				t.Errorf("decrypt v%d: %v", c.KeyVersion, err)
			}
		}
		// Re-encrypt moves old data to the primary version.
		re, err := e.svc.ReEncrypt(ctx, "acme", kms.ReEncryptRequest{Ciphertext: old.Ciphertext, SourceEncryptionContext: ec("acme")}, op)
		if err != nil || re.KeyVersion != 2 || re.SourceKeyVersion != 1 {
			t.Fatalf("re-encrypt: %+v %v", re, err)
		}
		if pt, err := e.decrypt("acme", re.Ciphertext, ec("acme")); err != nil || pt != "v1 data" {
			t.Errorf("re-encrypted: %q %v", pt, err)
		}
		// The default key rotates itself after its period (a year), on use.
		e.clock.Advance(kms.DefaultRotationPeriod + time.Hour)
		if got := e.encrypt(t, "acme", "alias/customer-acme", "later", ec("acme")); got.KeyVersion != 3 {
			t.Errorf("after the rotation period: version %d, want 3", got.KeyVersion)
		}
		if got := e.encrypt(t, "acme", "alias/customer-acme", "later", ec("acme")); got.KeyVersion != 3 {
			t.Errorf("rotated twice: version %d", got.KeyVersion)
		}
		// An imported key does not rotate by itself or by request.
		ext, err := e.svc.CreateKey(ctx, "acme", kms.CreateKeyRequest{Origin: kms.OriginExternal}, op)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Rotate(ctx, "acme", ext.ID, op)
		wantCode(t, "rotate a key waiting for import", err, "key_pending_import")
	})
}

// TestImport: bring your own key, with an expiry.
func TestImport(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, "acme", "globex")
		ctx := context.Background()
		k, err := e.svc.CreateKey(ctx, "acme", kms.CreateKeyRequest{Origin: kms.OriginExternal, Alias: "alias/byok"}, op)
		if err != nil || k.State != kms.StatePendingImport {
			t.Fatalf("create: %+v %v", k, err)
		}
		_, err = e.svc.Encrypt(ctx, "acme", kms.EncryptRequest{KeyID: "alias/byok", Plaintext: []byte("x"), EncryptionContext: ec("acme")}, op)
		wantCode(t, "encrypt before import", err, "key_pending_import")
		params, err := e.svc.GetImportParams(ctx, "acme", k.ID, op)
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode([]byte(params.PublicKey))
		pubAny, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		pub := pubAny.(*rsa.PublicKey)
		material := make([]byte, 32)
		rand.Read(material)
		wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, material, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The token is bound to its key and tenant.
		_, err = e.svc.Import(ctx, "globex", k.ID, kms.ImportRequest{ImportToken: params.ImportToken, EncryptedKeyMaterial: wrapped}, op)
		wantCode(t, "import into acme's key from globex", err, "key_not_found")
		short, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, material[:16], nil)
		_, err = e.svc.Import(ctx, "acme", k.ID, kms.ImportRequest{ImportToken: params.ImportToken, EncryptedKeyMaterial: short}, op)
		wantCode(t, "16 bytes of material", err, "invalid_key_material")
		validTo := e.clock.Now().Add(48 * time.Hour)
		k, err = e.svc.Import(ctx, "acme", k.ID, kms.ImportRequest{ImportToken: params.ImportToken, EncryptedKeyMaterial: wrapped, ValidTo: &validTo}, op)
		if err != nil || k.State != kms.StateEnabled || k.PrimaryVersion != 1 {
			t.Fatalf("import: %+v %v", k, err)
		}
		_, err = e.svc.Import(ctx, "acme", k.ID, kms.ImportRequest{ImportToken: params.ImportToken, EncryptedKeyMaterial: wrapped}, op)
		wantCode(t, "the token a second time", err, "invalid_import_token")
		ct := e.encrypt(t, "acme", "alias/byok", "byok data", ec("acme"))
		if pt, err := e.decrypt("acme", ct.Ciphertext, ec("acme")); err != nil || pt != "byok data" {
			t.Fatalf("decrypt with imported material: %q %v", pt, err)
		}
		e.clock.Advance(49 * time.Hour)
		_, err = e.decrypt("acme", ct.Ciphertext, ec("acme"))
		wantCode(t, "after valid_to", err, "key_material_expired")
		// Import parameters for a key Bulkhead made are refused.
		_, err = e.svc.GetImportParams(ctx, "acme", "alias/customer-acme", op)
		wantCode(t, "import into a Bulkhead key", err, "import_not_supported")
	})
}

// TestDeletionShredsData: scheduled deletion can be canceled; once its
// window has passed the material is gone from the database and every
// ciphertext under the key is unreadable (crypto-shredding). Offboarding
// schedules the deletion of every key of the tenant.
func TestDeletionShredsData(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, "acme", "globex")
		ctx := context.Background()
		ct := e.encrypt(t, "acme", "alias/customer-acme", "to be shredded", ec("acme"))
		_, err := e.svc.ScheduleDeletion(ctx, "acme", ct.KeyID, 3, op)
		wantCode(t, "a 3-day window", err, "invalid_deletion_window")
		k, err := e.svc.ScheduleDeletion(ctx, "acme", ct.KeyID, 7, op)
		if err != nil || k.State != kms.StatePendingDeletion || k.DeletionAt == nil {
			t.Fatalf("schedule: %+v %v", k, err)
		}
		_, err = e.decrypt("acme", ct.Ciphertext, ec("acme"))
		wantCode(t, "decrypt while pending deletion", err, "key_pending_deletion")
		if _, err := e.svc.CancelDeletion(ctx, "acme", ct.KeyID, op); err != nil {
			t.Fatal(err)
		}
		if pt, err := e.decrypt("acme", ct.Ciphertext, ec("acme")); err != nil || pt != "to be shredded" {
			t.Fatalf("after canceling: %q %v", pt, err)
		}
		if _, err := e.svc.ScheduleDeletion(ctx, "acme", ct.KeyID, 7, op); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(6 * 24 * time.Hour)
		if n, err := e.svc.DestroyDue(ctx); err != nil || n != 0 {
			t.Fatalf("destroyed before the window passed: %d %v", n, err)
		}
		e.clock.Advance(25 * time.Hour)
		if n, err := e.svc.DestroyDue(ctx); err != nil || n != 1 {
			t.Fatalf("destroy due: %d %v", n, err)
		}
		_, err = e.decrypt("acme", ct.Ciphertext, ec("acme"))
		wantCode(t, "decrypt after destruction", err, "key_destroyed")
		_, err = e.svc.CancelDeletion(ctx, "acme", ct.KeyID, op)
		wantCode(t, "cancel after destruction", err, "key_not_pending_deletion")
		if n := storedMaterial(t, e, ct.KeyID); n != 0 {
			t.Errorf("%d versions still hold material after destruction", n)
		}

		// Offboarding: globex's keys are scheduled for deletion, destroyed after 30 days.
		gct := e.encrypt(t, "globex", "alias/customer-globex", "globex data", ec("globex"))
		if _, err := e.reg.Delete(ctx, "globex", op); err != nil {
			t.Fatal(err)
		}
		e.waitStatus(t, "globex", tenants.Deleted)
		gk, err := e.svc.GetKey(ctx, "globex", gct.KeyID)
		if err != nil || gk.State != kms.StatePendingDeletion {
			t.Fatalf("globex's key after offboarding: %+v %v", gk, err)
		}
		e.clock.Advance(kms.MaxDeletionDays*24*time.Hour + time.Hour)
		if n, err := e.svc.DestroyDue(ctx); err != nil || n != 1 {
			t.Fatalf("destroy globex's key: %d %v", n, err)
		}
		_, err = e.decrypt("globex", gct.Ciphertext, ec("globex"))
		wantCode(t, "globex's data after offboarding", err, "key_destroyed")
		if n := storedMaterial(t, e, gct.KeyID); n != 0 {
			t.Errorf("globex's key still holds material")
		}
	})
}

// storedMaterial counts the versions of a key that still hold material,
// read as the tables' owner would (row-level security off).
func storedMaterial(t *testing.T, e *env, keyID string) int {
	t.Helper()
	var n int
	err := e.db.View(context.Background(), storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT COUNT(*) FROM kms_key_versions WHERE key_id = ? AND material <> ''`, keyID).Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestKeyChangesReachOtherNodes: two nodes on one PostgreSQL database; a
// rotation or a scheduled deletion on one is seen by the other at once
// (LISTEN/NOTIFY drops its cached key), not after the cache's TTL.
func TestKeyChangesReachOtherNodes(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	e := newEnv(t, dsn, "acme")
	db2 := storagetest.Open(t, dsn, audit.Migrations(), tenants.Migrations(), kms.Migrations())
	l2 := audit.New(db2, audit.Options{Clock: e.clock})
	t.Cleanup(func() { l2.Close() })
	root := e.rootKey(t)
	n2 := kms.New(db2, l2, root, kms.Options{Clock: e.clock, CacheTTL: time.Hour})
	runtest.Go(t, n2.Run)
	enc := func() kms.EncryptResponse {
		t.Helper()
		out, err := n2.Encrypt(context.Background(), "acme", kms.EncryptRequest{KeyID: "alias/customer-acme", Plaintext: []byte("x"), EncryptionContext: ec("acme")}, op)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	runtest.Eventually(t, "node 2 listening and caching", func() bool { return enc().KeyVersion == 1 && n2.CachedKeys() == 1 })
	ct := enc()
	if _, err := e.svc.Rotate(context.Background(), "acme", ct.KeyID, op); err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, "node 2 encrypting with the rotated version", func() bool { return enc().KeyVersion == 2 })
	if _, err := e.svc.ScheduleDeletion(context.Background(), "acme", ct.KeyID, 7, op); err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, "node 2 refusing the key pending deletion", func() bool {
		_, err := n2.Decrypt(context.Background(), "acme", kms.DecryptRequest{Ciphertext: ct.Ciphertext, EncryptionContext: ec("acme")}, op)
		return errs.Is(err, "key_pending_deletion")
	})
}
