package envelope

import (
	"context"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// KeyProvider makes and unwraps data keys: in production Bulkhead's KMS
// (KMSProvider). The encryption context is bound to the wrapped key: a
// wrapped key unwraps only under the context it was made with, and the
// context must hold the caller's tenant_id.
//
// The caller of a KeyProvider owns the plaintext keys it returns and
// zeroes them when done; a KeyProvider must not keep or reuse them.
type KeyProvider interface {
	// GenerateDataKey returns a new DataKeySize-byte data key and the
	// same key wrapped under keyID (a key id or alias) with ec.
	GenerateDataKey(ctx context.Context, keyID string, ec map[string]string) (plaintext, wrapped []byte, err error)
	// DecryptDataKey unwraps a wrapped data key under ec.
	DecryptDataKey(ctx context.Context, wrapped []byte, ec map[string]string) ([]byte, error)
}

// KMSProvider is the KeyProvider of Bulkhead's KMS, called with Client
// (whose token's tenant must be the tenant_id of every context). Its
// errors are the client's: a *client.Error carries the server's problem
// code (for example context_tenant_mismatch).
type KMSProvider struct {
	Client *client.Client
}

// GenerateDataKey calls POST /v1/kms/generate-data-key.
func (p KMSProvider) GenerateDataKey(ctx context.Context, keyID string, ec map[string]string) ([]byte, []byte, error) {
	dk, err := p.Client.GenerateDataKey(ctx, keyID, ec, false)
	if err != nil {
		return nil, nil, err
	}
	return dk.Plaintext, dk.Ciphertext, nil
}

// DecryptDataKey calls POST /v1/kms/decrypt.
func (p KMSProvider) DecryptDataKey(ctx context.Context, wrapped []byte, ec map[string]string) ([]byte, error) {
	pt, err := p.Client.Decrypt(ctx, wrapped, ec)
	if err != nil {
		return nil, err
	}
	return pt.Plaintext, nil
}
