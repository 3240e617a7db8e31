package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Tier migrations: a tenant moved to another tier while it serves (its
// data placement, issuer, usage plan and routes), by a durable workflow.

// The API's bodies for tier migrations, under this package's names.
type (
	StartTenantMigration = api.StartTenantMigration
	TenantMigration      = api.TenantMigration
	DataMoveProgress     = api.DataMoveProgress
)

func migrationsPath(tenantID string) string {
	return "/v1/tenants/" + url.PathEscape(tenantID) + "/migrations"
}

// StartMigration starts moving tenant tenantID to tier targetTier
// (operator only) and returns the migration as started; poll it with
// GetMigration.
func (c *Client) StartMigration(ctx context.Context, tenantID, targetTier string) (TenantMigration, error) {
	return call[TenantMigration](ctx, c, http.MethodPost, migrationsPath(tenantID), StartTenantMigration{TargetTier: targetTier})
}

// GetMigration returns one of the tenant's migrations, with its progress.
func (c *Client) GetMigration(ctx context.Context, tenantID, id string) (TenantMigration, error) {
	return call[TenantMigration](ctx, c, http.MethodGet, migrationsPath(tenantID)+"/"+url.PathEscape(id), nil)
}

// ListMigrations returns the tenant's migrations, newest first.
func (c *Client) ListMigrations(ctx context.Context, tenantID string) ([]TenantMigration, error) {
	out, err := call[api.List[TenantMigration]](ctx, c, http.MethodGet, migrationsPath(tenantID), nil)
	return out.Items, err
}
