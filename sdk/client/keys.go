package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Key management: a tenant's master keys, for its admins (or the
// operator). A key is named by its id ("key_…") or one of its aliases
// ("alias/…"); onboarding gives every tenant a default key,
// alias/customer-<tenant> (see DefaultKeyAlias). The cryptographic
// operations with the keys are in kms.go (Encrypt, Decrypt, …).

// Key states.
const (
	KeyStateEnabled         = "enabled"
	KeyStatePendingImport   = "pending_import"   // origin external, no material imported yet
	KeyStatePendingDeletion = "pending_deletion" // deletion scheduled; CancelKeyDeletion undoes it
	KeyStateDestroyed       = "destroyed"        // the material is gone for good
)

// Key origins.
const (
	KeyOriginBulkhead = "bulkhead" // Bulkhead makes the material
	KeyOriginExternal = "external" // the material is imported (bring your own key)
)

// The deletion window of ScheduleKeyDeletion, in days.
const (
	MinKeyDeletionDays     = 7
	MaxKeyDeletionDays     = 30
	DefaultKeyDeletionDays = 30
)

// DefaultKeyAlias is the alias of the key onboarding makes for a tenant.
func DefaultKeyAlias(tenant string) string { return "alias/customer-" + tenant }

// Key is a tenant master key as the API returns it.
type Key struct {
	ID          string   `json:"key_id"`
	TenantID    string   `json:"tenant_id"`
	Aliases     []string `json:"aliases"`
	Description string   `json:"description"`
	State       string   `json:"state"`  // a KeyState… constant
	Origin      string   `json:"origin"` // KeyOriginBulkhead or KeyOriginExternal
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

// CreateKeyRequest is the body of a key creation.
type CreateKeyRequest struct {
	Description string `json:"description,omitempty"`
	// Alias, optional, is alias/ and 1 to 250 of a-z A-Z 0-9 / _ -, unique
	// in the tenant (alias/customer-… is reserved).
	Alias string `json:"alias,omitempty"`
	// Origin is KeyOriginBulkhead (the default) or KeyOriginExternal (the
	// key waits, pending_import, for material: see GetImportParams).
	Origin string `json:"origin,omitempty"`
	// RotationPeriod is a Go duration between 24h and 87600h after which
	// the key rotates by itself ("" for none); not for external keys.
	RotationPeriod string `json:"rotation_period,omitempty"`
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

func keysPath(tenant string) string { return "/v1/tenants/" + url.PathEscape(tenant) + "/keys" }

// keyPath is the path of a key (id or alias; an alias's slashes are
// escaped, so it stays one path segment) or of an action on it.
func keyPath(tenant, key string, action ...string) string {
	p := itemPath(keysPath(tenant), key)
	for _, a := range action {
		p += "/" + a
	}
	return p
}

// CreateKey makes a new key in a tenant.
func (c *Client) CreateKey(ctx context.Context, tenant string, in CreateKeyRequest) (Key, error) {
	return call[Key](ctx, c, http.MethodPost, keysPath(tenant), in)
}

// ListKeys returns a page of a tenant's keys.
func (c *Client) ListKeys(ctx context.Context, tenant string, limit int, cursor string) (KeyPage, error) {
	return call[KeyPage](ctx, c, http.MethodGet, pagePath(keysPath(tenant), limit, cursor), nil)
}

// GetKey returns a key (by id or alias) with its aliases and versions.
func (c *Client) GetKey(ctx context.Context, tenant, key string) (Key, error) {
	return call[Key](ctx, c, http.MethodGet, keyPath(tenant, key), nil)
}

// RotateKey gives a key a new primary version; older versions still
// decrypt. An external key rotates by importing new material instead.
func (c *Client) RotateKey(ctx context.Context, tenant, key string) (Key, error) {
	return call[Key](ctx, c, http.MethodPost, keyPath(tenant, key, "rotate"), nil)
}

// ScheduleKeyDeletion puts a key in pending_deletion: after
// pendingWindowDays (MinKeyDeletionDays to MaxKeyDeletionDays; 0 for
// DefaultKeyDeletionDays) its material is destroyed, and what it encrypted
// can no longer be decrypted.
func (c *Client) ScheduleKeyDeletion(ctx context.Context, tenant, key string, pendingWindowDays int) (Key, error) {
	in := struct {
		PendingWindowDays int `json:"pending_window_days,omitempty"`
	}{pendingWindowDays}
	return call[Key](ctx, c, http.MethodPost, keyPath(tenant, key, "schedule-deletion"), in)
}

// CancelKeyDeletion takes a key out of pending_deletion.
func (c *Client) CancelKeyDeletion(ctx context.Context, tenant, key string) (Key, error) {
	return call[Key](ctx, c, http.MethodPost, keyPath(tenant, key, "cancel-deletion"), nil)
}

// GetImportParams makes a one-time key pair for importing material into a
// key of origin external.
func (c *Client) GetImportParams(ctx context.Context, tenant, key string) (ImportParams, error) {
	in := struct {
		KeyID string `json:"key_id"`
	}{key}
	return call[ImportParams](ctx, c, http.MethodPost, keysPath(tenant)+"/import-params", in)
}

// ImportKeyMaterial uploads wrapped material (see ImportParams) as the
// key's new primary version. Each import token works once.
func (c *Client) ImportKeyMaterial(ctx context.Context, tenant, key string, in ImportRequest) (Key, error) {
	return call[Key](ctx, c, http.MethodPost, keyPath(tenant, key, "import"), in)
}
