package bench

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

const (
	kmsTenants   = 100000
	kmsCacheSize = 10000
)

// BenchmarkKMSDecrypt/spread measures kms.Service.Decrypt in-process on SQLite
// with 100,000 tenants' keys and a cache of 10,000 unwrapped keys: each
// decryption is of a random tenant's ciphertext, so about nine in ten load
// and unwrap the tenant's key first. It reports p50 and p99.
func BenchmarkKMSDecrypt(b *testing.B) {
	a := openNode(b, storagetest.DSN(b, storage.SQLite))
	root, _, err := kms.LoadRootKey(b.TempDir(), "")
	if err != nil {
		b.Fatal(err)
	}
	defer root.Zero()
	ctx := context.Background()
	start := time.Now()
	keyIDs, err := seedKeys(ctx, a.DB, root)
	if err != nil {
		b.Fatal(err)
	}
	svc := kms.New(a.DB, a.Audit, root, kms.Options{CacheSize: kmsCacheSize})
	actor := tenant.Actor{Principal: "bench"}
	cts := make([][]byte, kmsTenants)
	for i := range kmsTenants {
		tid := kmsTenant(i)
		out, err := svc.Encrypt(ctx, tid, kms.EncryptRequest{KeyID: keyIDs[i], Plaintext: []byte("a 32-byte data key goes here...."),
			EncryptionContext: kms.Context{"tenant_id": string(tid)}}, actor)
		if err != nil {
			b.Fatal(err)
		}
		cts[i] = out.Ciphertext
	}
	b.Logf("seeded %d keys and ciphertexts in %v", kmsTenants, time.Since(start).Round(time.Millisecond))
	b.Run("spread", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			i := rng.IntN(kmsTenants)
			tid := kmsTenant(i)
			t0 := time.Now()
			if _, err := svc.Decrypt(ctx, tid, kms.DecryptRequest{Ciphertext: cts[i], EncryptionContext: kms.Context{"tenant_id": string(tid)}}, actor); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		b.StopTimer()
		reportLatency(b, lat)
	})
}

func kmsTenant(i int) tenant.ID { return tenant.ID(fmt.Sprintf("kz-%06d", i)) }

// seedKeys writes one key (version 1, material wrapped by root) for each
// of kmsTenants tenants straight into the tables.
func seedKeys(ctx context.Context, db *storage.DB, root *kms.RootKey) ([]string, error) {
	out := make([]string, kmsTenants)
	now := time.Now().UnixMicro()
	raw := make([]byte, 32)
	for lo := 0; lo < kmsTenants; lo += 1000 {
		err := db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
			for i := lo; i < min(lo+1000, kmsTenants); i++ {
				tid, id := string(kmsTenant(i)), ids.New("key")
				out[i] = id
				if _, err := tx.Exec(ctx, `INSERT INTO kms_keys (tenant_id, id, description, state, origin, primary_version, rotation_period_s,
					next_rotation_at, deletion_at, created_at, updated_at) VALUES (?, ?, '', 'enabled', 'bulkhead', 1, 0, 0, 0, ?, ?)`,
					tid, id, now, now); err != nil {
					return err
				}
				for j := range raw {
					raw[j] = byte(i + j)
				}
				w, err := root.Wrap(raw, fmt.Appendf(nil, "bulkhead/kms/v1|%s|%s|%d", tid, id, 1))
				if err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, `INSERT INTO kms_key_versions (tenant_id, key_id, version, material, valid_to, created_at, destroyed_at)
					VALUES (?, ?, 1, ?, 0, ?, 0)`, tid, id, base64.StdEncoding.EncodeToString(w), now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("seed keys: %w", err)
		}
	}
	return out, nil
}
