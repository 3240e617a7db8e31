package api

import "time"

// EncryptRequest is the body of POST /v1/kms/encrypt.
type EncryptRequest struct {
	// KeyID is the key id (key_…) or alias (alias/…) to encrypt under.
	KeyID string `json:"key_id"`
	// Plaintext is at most 4096 bytes (a data key or a small secret).
	Plaintext []byte `json:"plaintext"`
	// EncryptionContext is authenticated with the ciphertext; it must hold
	// the caller's tenant_id.
	EncryptionContext map[string]string `json:"encryption_context"`
}

// EncryptResponse is the answer of an encrypt: the ciphertext and the key
// version that made it.
type EncryptResponse struct {
	Ciphertext []byte `json:"ciphertext"`
	KeyID      string `json:"key_id"` // the key's id, never an alias
	KeyVersion int    `json:"key_version"`
}

// DecryptRequest is the body of POST /v1/kms/decrypt.
type DecryptRequest struct {
	// Ciphertext is what an encrypt, generate-data-key or re-encrypt
	// returned; it names its key and version itself.
	Ciphertext []byte `json:"ciphertext"`
	// EncryptionContext must equal the one given at encryption.
	EncryptionContext map[string]string `json:"encryption_context"`
}

// DecryptResponse is the answer of a decrypt. Its receiver owns Plaintext
// and should zero it after use.
type DecryptResponse struct {
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
	// NumberOfBytes is the data key's size: 16 to 64, default 32 (AES-256).
	NumberOfBytes int `json:"number_of_bytes,omitempty"`
}

// DataKeyResponse is a new data key: its plaintext (absent when asked
// without) and the same key wrapped under the tenant's key. Its receiver
// owns Plaintext and should zero it after use.
type DataKeyResponse struct {
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

// ReEncryptResponse is the answer of a re-encrypt: the new ciphertext with
// its key and version, and the key and version that had made the old one.
type ReEncryptResponse struct {
	Ciphertext       []byte `json:"ciphertext"`
	KeyID            string `json:"key_id"`
	KeyVersion       int    `json:"key_version"`
	SourceKeyID      string `json:"source_key_id"`
	SourceKeyVersion int    `json:"source_key_version"`
}

// Key is a tenant master key as the API returns it.
type Key struct {
	ID          string   `json:"key_id"`
	TenantID    string   `json:"tenant_id"`
	Aliases     []string `json:"aliases"`
	Description string   `json:"description"`
	State       string   `json:"state"`  // enabled, pending_import, pending_deletion or destroyed
	Origin      string   `json:"origin"` // bulkhead, or external (imported material)
	// PrimaryVersion is the version that encrypts (0 for a key waiting for
	// imported material).
	PrimaryVersion int `json:"primary_version"`
	// RotationPeriod is a Go duration ("8760h0m0s"); "" without automatic
	// rotation.
	RotationPeriod string     `json:"rotation_period,omitempty"`
	NextRotationAt *time.Time `json:"next_rotation_at,omitempty"`
	// DeletionAt is when the material of a key pending deletion is (or
	// was) destroyed.
	DeletionAt *time.Time   `json:"deletion_at,omitempty"`
	Versions   []KeyVersion `json:"versions"`
	CreatedAt  time.Time    `json:"created_at"`
	UpdatedAt  time.Time    `json:"updated_at"`
}

// KeyVersion is one version of a key's material. Every version that is not
// destroyed still decrypts what it encrypted.
type KeyVersion struct {
	Version   int  `json:"version"`
	Destroyed bool `json:"destroyed,omitempty"`
	// ValidTo is the expiry of imported material (nil: none).
	ValidTo     *time.Time `json:"valid_to,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	DestroyedAt *time.Time `json:"destroyed_at,omitempty"`
}

// KeyPage is a page of keys.
type KeyPage struct {
	Items      []Key  `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// CreateKey is the body of a key creation.
type CreateKey struct {
	Description string `json:"description,omitempty"`
	// Alias, optional, is alias/ and 1 to 250 of a-z A-Z 0-9 / _ -, unique
	// in the tenant (alias/customer-… is reserved).
	Alias string `json:"alias,omitempty"`
	// Origin is "bulkhead" (the default: Bulkhead makes the material) or
	// "external" (the key waits, pending_import, for imported material).
	Origin string `json:"origin,omitempty"`
	// RotationPeriod is a Go duration between 24h and 87600h after which
	// the key rotates by itself ("" or "0" for none); not for external keys.
	RotationPeriod string `json:"rotation_period,omitempty"`
}

// ScheduleKeyDeletion is the body of a key's scheduled deletion.
type ScheduleKeyDeletion struct {
	// PendingWindowDays is 7 to 30; 0 asks for the default, 30.
	PendingWindowDays int `json:"pending_window_days,omitempty"`
}

// ImportParamsRequest is the body of a request for import parameters.
type ImportParamsRequest struct {
	// KeyID is the id or alias of a key of origin external.
	KeyID string `json:"key_id"`
}

// ImportParams are what a key's owner needs to wrap material for import:
// a one-time RSA-3072 public key and the import token that goes with it.
type ImportParams struct {
	KeyID       string `json:"key_id"`
	ImportToken string `json:"import_token"`
	// PublicKey is PEM ("PUBLIC KEY", SPKI). Encrypt the 32 bytes of
	// AES-256 material under it with RSA-OAEP, SHA-256 (and MGF1 SHA-256),
	// no label.
	PublicKey string `json:"public_key"`
	// Algorithm is the wrapping algorithm, RSAES_OAEP_SHA_256.
	Algorithm string    `json:"wrapping_algorithm"`
	ExpiresAt time.Time `json:"expires_at"` // of the token (24 hours)
}

// ImportRequest is the body of an import of key material.
type ImportRequest struct {
	ImportToken string `json:"import_token"`
	// EncryptedKeyMaterial is the material wrapped under the import
	// parameters' public key (raw bytes; base64 in JSON).
	EncryptedKeyMaterial []byte `json:"encrypted_key_material"`
	// ValidTo, optional, is when the material stops working, until it is
	// imported again.
	ValidTo *time.Time `json:"valid_to,omitempty"`
}
