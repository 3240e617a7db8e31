package client

import (
	"context"
	"net/http"
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

// EncryptRequest is the body of POST /v1/kms/encrypt.
type EncryptRequest struct {
	// KeyID is the key id or alias to encrypt under.
	KeyID string `json:"key_id"`
	// Plaintext is at most 4096 bytes (a data key or a small secret).
	Plaintext []byte `json:"plaintext"`
	// EncryptionContext is authenticated with the ciphertext; it must hold
	// the caller's tenant_id.
	EncryptionContext map[string]string `json:"encryption_context"`
}

// Encrypted is the answer of an encrypt: the ciphertext and the key
// version that made it.
type Encrypted struct {
	Ciphertext []byte `json:"ciphertext"`
	KeyID      string `json:"key_id"` // the key's id, never an alias
	KeyVersion int    `json:"key_version"`
}

// DecryptRequest is the body of POST /v1/kms/decrypt.
type DecryptRequest struct {
	// Ciphertext is what an encrypt or generate-data-key returned; it names
	// its key and version itself.
	Ciphertext []byte `json:"ciphertext"`
	// EncryptionContext must equal the one given at encryption.
	EncryptionContext map[string]string `json:"encryption_context"`
}

// Decrypted is the answer of a decrypt. The caller owns Plaintext and
// should zero it after use.
type Decrypted struct {
	Plaintext  []byte `json:"plaintext"`
	KeyID      string `json:"key_id"`
	KeyVersion int    `json:"key_version"`
}

// DataKeyRequest is the body of POST /v1/kms/generate-data-key and
// /v1/kms/generate-data-key-without-plaintext.
type DataKeyRequest struct {
	// KeyID is the key id or alias that wraps the data key.
	KeyID string `json:"key_id"`
	// EncryptionContext is bound to the wrapped key; it must hold the
	// caller's tenant_id and be given again to unwrap it.
	EncryptionContext map[string]string `json:"encryption_context"`
	// NumberOfBytes is the data key's size (32 for AES-256).
	NumberOfBytes int `json:"number_of_bytes"`
}

// DataKey is a new data key: its plaintext (empty when asked without) and
// the same key wrapped under the tenant's key. The caller owns Plaintext and
// should zero it after use.
type DataKey struct {
	Plaintext  []byte `json:"plaintext,omitempty"`
	Ciphertext []byte `json:"ciphertext"` // the wrapped data key
	KeyID      string `json:"key_id"`
	KeyVersion int    `json:"key_version"`
}

// ReEncryptRequest is the body of POST /v1/kms/re-encrypt: decrypt a
// ciphertext on the server and encrypt its plaintext again, under another
// key, another context or the key's current version, without the plaintext
// leaving the server.
type ReEncryptRequest struct {
	Ciphertext []byte `json:"ciphertext"`
	// SourceEncryptionContext is the context the ciphertext was made with.
	SourceEncryptionContext map[string]string `json:"source_encryption_context"`
	// DestinationKeyID is the key to encrypt under; empty means the
	// ciphertext's own key (its current version).
	DestinationKeyID string `json:"destination_key_id,omitempty"`
	// DestinationEncryptionContext is the new ciphertext's context; nil
	// means the source context.
	DestinationEncryptionContext map[string]string `json:"destination_encryption_context,omitempty"`
}

// ReEncrypted is the answer of a re-encrypt: the new ciphertext with its
// key and version, and the key and version that had made the old one.
type ReEncrypted struct {
	Ciphertext       []byte `json:"ciphertext"`
	KeyID            string `json:"key_id"`
	KeyVersion       int    `json:"key_version"`
	SourceKeyID      string `json:"source_key_id"`
	SourceKeyVersion int    `json:"source_key_version"`
}

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
