package envelope

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

// localProvider is an in-process KeyProvider: it wraps data keys with
// AES-256-GCM under a fixed key per tenant, with the key id and the
// encryption context as additional data, and refuses a context whose
// tenant_id is not one of its tenants — what the KMS does, in memory.
//
// A wrapped key is: key id length (1 byte), key id, nonce (12), sealed key.
type localProvider struct {
	keys map[string]cipher.AEAD // by tenant

	generates, decrypts atomic.Int64

	// gate, if not nil, holds every call until it is closed (or the
	// call's context ends).
	gate chan struct{}
}

var errTenantMismatch = errors.New("localProvider: context_tenant_mismatch")

func newLocalProvider(tenants ...string) *localProvider {
	p := &localProvider{keys: make(map[string]cipher.AEAD)}
	for _, t := range tenants {
		k := sha256.Sum256([]byte("bulkhead test tenant key:" + t))
		block, err := aes.NewCipher(k[:])
		if err != nil {
			panic(err)
		}
		p.keys[t], _ = cipher.NewGCM(block)
	}
	return p
}

func (p *localProvider) wait(ctx context.Context) error {
	if p.gate == nil {
		return nil
	}
	select {
	case <-p.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *localProvider) key(ec map[string]string) (cipher.AEAD, error) {
	k := p.keys[ec["tenant_id"]]
	if k == nil {
		return nil, errTenantMismatch
	}
	return k, nil
}

func wrapAAD(keyID string, ec map[string]string) []byte {
	b, _ := json.Marshal(ec) // keys sorted: deterministic
	return append([]byte(keyID+"\x00"), b...)
}

func (p *localProvider) GenerateDataKey(ctx context.Context, keyID string, ec map[string]string) ([]byte, []byte, error) {
	p.generates.Add(1)
	if err := p.wait(ctx); err != nil {
		return nil, nil, err
	}
	k, err := p.key(ec)
	if err != nil {
		return nil, nil, err
	}
	if keyID == "" || len(keyID) > 255 {
		return nil, nil, fmt.Errorf("localProvider: bad key id %q", keyID)
	}
	dk := make([]byte, DataKeySize)
	rand.Read(dk)
	w := append([]byte{byte(len(keyID))}, keyID...)
	nonce := make([]byte, k.NonceSize())
	rand.Read(nonce)
	w = append(w, nonce...)
	w = k.Seal(w, nonce, dk, wrapAAD(keyID, ec))
	return dk, w, nil
}

func (p *localProvider) DecryptDataKey(ctx context.Context, wrapped []byte, ec map[string]string) ([]byte, error) {
	p.decrypts.Add(1)
	if err := p.wait(ctx); err != nil {
		return nil, err
	}
	k, err := p.key(ec)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < 1 || len(wrapped) < 1+int(wrapped[0])+k.NonceSize() {
		return nil, errors.New("localProvider: malformed wrapped key")
	}
	keyID := string(wrapped[1 : 1+wrapped[0]])
	rest := wrapped[1+len(keyID):]
	dk, err := k.Open(nil, rest[:k.NonceSize()], rest[k.NonceSize():], wrapAAD(keyID, ec))
	if err != nil {
		return nil, errors.New("localProvider: wrapped key does not decrypt")
	}
	return dk, nil
}

var testCtx = context.Background()

func acmeEC() map[string]string {
	return map[string]string{"tenant_id": "acme", "table": "invoices"}
}

const testKeyID = "alias/customer-acme"

// newCrypter returns a Crypter of p with the given frame size and cache
// (nil: none).
func newCrypter(t testing.TB, p KeyProvider, frameSize int, cache *Cache) *Crypter {
	t.Helper()
	c, err := New(Config{Provider: p, Cache: cache, FrameSize: frameSize})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testData returns n bytes of deterministic non-zero-looking data.
func testData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8 + 1)
	}
	return b
}

func TestLocalProvider(t *testing.T) {
	p := newLocalProvider("acme")
	dk, w, err := p.GenerateDataKey(testCtx, testKeyID, acmeEC())
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.DecryptDataKey(testCtx, w, acmeEC())
	if err != nil || string(got) != string(dk) {
		t.Fatalf("unwrap: %v", err)
	}
	other := acmeEC()
	other["table"] = "orders"
	if _, err := p.DecryptDataKey(testCtx, w, other); err == nil {
		t.Fatal("unwrapped under another context")
	}
	if _, _, err := p.GenerateDataKey(testCtx, testKeyID, map[string]string{"tenant_id": "globex"}); !errors.Is(err, errTenantMismatch) {
		t.Fatalf("other tenant: %v", err)
	}
}
