package httpapi

import (
	"net/http"

	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// dataRoutes register the application's PostgreSQL clusters and their
// migrations (the operator's) and answer where a tenant's application data lives (the
// operator, and the tenant's own credentials: the application's service
// credential reads its tenants' placements so).
func (s *Server) dataRoutes() []Route {
	d := s.Data
	create := jsonCall(http.StatusCreated, globalStore, func(r *http.Request, _ tenant.ID, in api.CreateDataCluster) (api.DataCluster, error) {
		return d.CreateCluster(r.Context(), in, actor(r))
	})
	list := jsonCall(http.StatusOK, globalStore, func(r *http.Request, _ tenant.ID, _ none) (api.DataClusterList, error) {
		return d.ListClusters(r.Context())
	})
	get := jsonCall(http.StatusOK, globalStore, func(r *http.Request, _ tenant.ID, _ none) (api.DataCluster, error) {
		return d.GetCluster(r.Context(), r.PathValue("name"))
	})
	remove := jsonCall(http.StatusNoContent, globalStore, func(r *http.Request, _ tenant.ID, _ none) (none, error) {
		return none{}, d.RemoveCluster(r.Context(), r.PathValue("name"), actor(r))
	})
	register := jsonCall(http.StatusAccepted, globalStore, func(r *http.Request, _ tenant.ID, in api.RegisterDataMigrations) (api.DataMigrationStatus, error) {
		return d.RegisterMigrations(r.Context(), r.PathValue("name"), in, actor(r))
	})
	migrations := jsonCall(http.StatusOK, globalStore, func(r *http.Request, _ tenant.ID, _ none) (api.DataMigrationStatus, error) {
		return d.MigrationStatus(r.Context(), r.PathValue("name"))
	})
	placement := jsonCall(http.StatusOK, s.existingTenant, func(r *http.Request, tid tenant.ID, _ none) (api.DataPlacement, error) {
		return d.Placement(r.Context(), tid)
	})
	return []Route{
		{"POST", "/v1/clusters", "data.cluster_create", Operator, create},
		{"GET", "/v1/clusters", "data.cluster_list", Operator, list},
		{"GET", "/v1/clusters/{name}", "data.cluster_get", Operator, get},
		{"DELETE", "/v1/clusters/{name}", "data.cluster_remove", Operator, remove},
		{"PUT", "/v1/clusters/{name}/migrations", "data.migrations_register", Operator, register},
		{"GET", "/v1/clusters/{name}/migrations", "data.migrations_get", Operator, migrations},
		{"GET", "/v1/tenants/{tenant}/placement", "data.placement_get", Tenant, placement},
	}
}
