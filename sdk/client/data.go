package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Application data: the operator registers the application's PostgreSQL
// clusters, and each tenant onboarded afterwards is placed on the default
// one by its tier (pool: the shared database; bridge: a schema; silo: a
// database). A cluster's DSNs are sent once, sealed by Bulkhead and never
// returned.

// The API's bodies for application data (package sdk/api), under this
// package's names.
type (
	DataCluster       = api.DataCluster
	CreateDataCluster = api.CreateDataCluster
	DataClusterList   = api.DataClusterList
	DataPlacement     = api.DataPlacement

	DataMigrationFile      = api.DataMigrationFile
	RegisterDataMigrations = api.RegisterDataMigrations
	DataMigration          = api.DataMigration
	DataMigrationPlace     = api.DataMigrationPlace
	DataMigrationStatus    = api.DataMigrationStatus
)

const clustersPath = "/v1/clusters"

// CreateCluster registers a cluster (operator only). Bulkhead connects
// with both DSNs first and refuses unsafe roles and unreachable clusters.
func (c *Client) CreateCluster(ctx context.Context, in CreateDataCluster) (DataCluster, error) {
	return call[DataCluster](ctx, c, http.MethodPost, clustersPath, in)
}

// ListClusters returns every cluster and the default's name.
func (c *Client) ListClusters(ctx context.Context) (DataClusterList, error) {
	return call[DataClusterList](ctx, c, http.MethodGet, clustersPath, nil)
}

// GetCluster returns one cluster.
func (c *Client) GetCluster(ctx context.Context, name string) (DataCluster, error) {
	return call[DataCluster](ctx, c, http.MethodGet, itemPath(clustersPath, name), nil)
}

// RemoveCluster unregisters a cluster that holds no placement.
func (c *Client) RemoveCluster(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, itemPath(clustersPath, name), nil, nil, nil)
}

// RegisterMigrations registers the application's migrations for a
// cluster (operator only): every file, those registered before first and
// unchanged, then the new ones. Bulkhead stores the new files and applies
// them to every placement on the cluster in the background; the answer is
// the status when they were stored.
func (c *Client) RegisterMigrations(ctx context.Context, cluster string, in RegisterDataMigrations) (DataMigrationStatus, error) {
	return call[DataMigrationStatus](ctx, c, http.MethodPut, itemPath(clustersPath, cluster)+"/migrations", in)
}

// MigrationStatus returns how far a cluster's placements are with its
// registered migrations (operator only).
func (c *Client) MigrationStatus(ctx context.Context, cluster string) (DataMigrationStatus, error) {
	return call[DataMigrationStatus](ctx, c, http.MethodGet, itemPath(clustersPath, cluster)+"/migrations", nil)
}

// GetPlacement returns where a tenant's application data lives (the
// operator, or a credential of the tenant).
func (c *Client) GetPlacement(ctx context.Context, tenant string) (DataPlacement, error) {
	return call[DataPlacement](ctx, c, http.MethodGet, "/v1/tenants/"+url.PathEscape(tenant)+"/placement", nil)
}
