package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
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

// The API's bodies for keys (package sdk/api), under this package's names.
type (
	Key              = api.Key
	KeyVersion       = api.KeyVersion
	KeyPage          = api.KeyPage
	CreateKeyRequest = api.CreateKey
	ImportParams     = api.ImportParams
	ImportRequest    = api.ImportRequest
)

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
	in := api.ScheduleKeyDeletion{PendingWindowDays: pendingWindowDays}
	return call[Key](ctx, c, http.MethodPost, keyPath(tenant, key, "schedule-deletion"), in)
}

// CancelKeyDeletion takes a key out of pending_deletion.
func (c *Client) CancelKeyDeletion(ctx context.Context, tenant, key string) (Key, error) {
	return call[Key](ctx, c, http.MethodPost, keyPath(tenant, key, "cancel-deletion"), nil)
}

// GetImportParams makes a one-time key pair for importing material into a
// key of origin external.
func (c *Client) GetImportParams(ctx context.Context, tenant, key string) (ImportParams, error) {
	in := api.ImportParamsRequest{KeyID: key}
	return call[ImportParams](ctx, c, http.MethodPost, keysPath(tenant)+"/import-params", in)
}

// ImportKeyMaterial uploads wrapped material (see ImportParams) as the
// key's new primary version. Each import token works once.
func (c *Client) ImportKeyMaterial(ctx context.Context, tenant, key string, in ImportRequest) (Key, error) {
	return call[Key](ctx, c, http.MethodPost, keyPath(tenant, key, "import"), in)
}
