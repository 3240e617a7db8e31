package client

import (
	"context"
	"net/http"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// The KMS calls. A key is named by its id ("key_…") or an alias
// ("alias/customer-acme"). Every encryption context must hold "tenant_id"
// equal to the caller's tenant; the server refuses any other with the
// problem code context_tenant_mismatch. The same context must be given to
// decrypt what was encrypted with it.
//
// Binary fields are []byte, sent and received as standard base64 with
// padding. The methods zero the plaintext of an answer they fail to return;
// a plaintext they return belongs to the caller, who should zero it after
// use (for example with clear). The request and answer bodies pass through
// encoding/json and net/http buffers, which are not zeroed.

// DataKeyBytes is the size of the data keys GenerateDataKey asks for
// (AES-256).
const DataKeyBytes = 32

// The API's bodies for the cryptographic operations (package sdk/api),
// under this package's names. The answers' Plaintext belongs to the
// caller, who should zero it after use.
type (
	EncryptRequest   = api.EncryptRequest
	Encrypted        = api.EncryptResponse
	DecryptRequest   = api.DecryptRequest
	Decrypted        = api.DecryptResponse
	DataKeyRequest   = api.DataKeyRequest
	DataKey          = api.DataKeyResponse
	ReEncryptRequest = api.ReEncryptRequest
	ReEncrypted      = api.ReEncryptResponse
)

// Encrypt encrypts up to 4096 bytes under a key (id or alias) with an
// encryption context that holds the caller's tenant_id. Larger data is for
// envelope encryption (package sdk/envelope).
func (c *Client) Encrypt(ctx context.Context, keyID string, plaintext []byte, ec map[string]string) (Encrypted, error) {
	return call[Encrypted](ctx, c, http.MethodPost, "/v1/kms/encrypt",
		EncryptRequest{KeyID: keyID, Plaintext: plaintext, EncryptionContext: ec})
}

// Decrypt decrypts a ciphertext of Encrypt or GenerateDataKey with the
// encryption context it was made with. The caller owns the answer's
// Plaintext and should zero it after use.
func (c *Client) Decrypt(ctx context.Context, ciphertext []byte, ec map[string]string) (Decrypted, error) {
	var out Decrypted
	if err := c.Do(ctx, http.MethodPost, "/v1/kms/decrypt", nil, DecryptRequest{Ciphertext: ciphertext, EncryptionContext: ec}, &out); err != nil {
		clear(out.Plaintext)
		return Decrypted{}, err
	}
	return out, nil
}

// GenerateDataKey asks for a new 32-byte data key wrapped under a key (id
// or alias) with an encryption context that holds the caller's tenant_id.
// With withoutPlaintext the server answers only the wrapped key (for a
// writer that encrypts later, after a Decrypt). The caller owns the
// answer's Plaintext and should zero it after use.
func (c *Client) GenerateDataKey(ctx context.Context, keyID string, ec map[string]string, withoutPlaintext bool) (DataKey, error) {
	path := "/v1/kms/generate-data-key"
	if withoutPlaintext {
		path += "-without-plaintext"
	}
	var out DataKey
	if err := c.Do(ctx, http.MethodPost, path, nil, DataKeyRequest{KeyID: keyID, EncryptionContext: ec, NumberOfBytes: DataKeyBytes}, &out); err != nil {
		clear(out.Plaintext)
		return DataKey{}, err
	}
	if withoutPlaintext {
		clear(out.Plaintext) // the server should not have sent one
		out.Plaintext = nil
	}
	return out, nil
}

// ReEncrypt decrypts a ciphertext on the server and encrypts its plaintext
// again (see ReEncryptRequest). The plaintext never reaches the client.
func (c *Client) ReEncrypt(ctx context.Context, in ReEncryptRequest) (ReEncrypted, error) {
	return call[ReEncrypted](ctx, c, http.MethodPost, "/v1/kms/re-encrypt", in)
}
