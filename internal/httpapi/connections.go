package httpapi

import (
	"net/http"

	"github.com/bulkhead-dev/bulkhead/internal/connect"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// suspension is the optional body of a grant's suspension.
type suspension api.SuspendGrant

func (suspension) optionalBody() {}

// connectionRoutes manage a tenant's connections to third-party APIs, their
// grants and alerts; the proxy itself has a listener of its own. The
// operator may manage any tenant's connections, a tenant's admins their own.
func (s *Server) connectionRoutes() []Route {
	c := s.Connect
	// A create decodes into connect.CreateRequest, not api.CreateConnection:
	// its grant has always been read as a whole connect.CreateGrantRequest,
	// token source included (which a create ignores), and a body that
	// names those fields must go on being accepted. TestWireConversions
	// checks that the two agree on every other field.
	create := jsonCall(http.StatusCreated, pathTenant, func(r *http.Request, tid tenant.ID, in connect.CreateRequest) (api.ConnectionCreated, error) {
		created, err := c.Create(r.Context(), tid, in, actor(r))
		return wireConnectionCreated(created), err
	})
	list := jsonCall(http.StatusOK, s.existingTenant, func(r *http.Request, tid tenant.ID, _ none) (api.ConnectionPage, error) {
		limit, err := queryLimit(r)
		if err != nil {
			return api.ConnectionPage{}, err
		}
		page, err := c.List(r.Context(), tid, limit, r.URL.Query().Get("cursor"))
		return wireConnectionPage(page), err
	})
	get := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (api.Connection, error) {
		conn, err := c.Get(r.Context(), tid, r.PathValue("connection"))
		return wireConnection(conn), err
	})
	update := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, in api.UpdateConnection) (api.ConnectionUpdated, error) {
		updated, err := c.Update(r.Context(), tid, r.PathValue("connection"), connectionUpdate(in), actor(r))
		return wireConnectionUpdated(updated), err
	})
	del := jsonCall(http.StatusNoContent, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (none, error) {
		return none{}, c.Delete(r.Context(), tid, r.PathValue("connection"), actor(r))
	})
	createGrant := jsonCall(http.StatusCreated, pathTenant, func(r *http.Request, tid tenant.ID, in api.CreateGrant) (api.IssuedGrant, error) {
		return c.CreateGrant(r.Context(), tid, r.PathValue("connection"), connect.CreateGrantRequest(in), actor(r))
	})
	listGrants := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (api.List[api.Grant], error) {
		gs, err := c.ListGrants(r.Context(), tid, r.PathValue("connection"))
		return api.List[api.Grant]{Items: gs}, err
	})
	rotate := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, in api.TokenSource) (api.IssuedGrant, error) {
		return c.Rotate(r.Context(), tid, r.PathValue("connection"), r.PathValue("grant"), in, actor(r))
	})
	status := func(suspend bool) func(http.ResponseWriter, *http.Request) error {
		return jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, in suspension) (api.Grant, error) {
			return c.SetGrantStatus(r.Context(), tid, r.PathValue("connection"), r.PathValue("grant"), suspend, in.Reason, actor(r))
		})
	}
	deleteGrant := jsonCall(http.StatusNoContent, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (none, error) {
		return none{}, c.DeleteGrant(r.Context(), tid, r.PathValue("connection"), r.PathValue("grant"), actor(r))
	})
	activity := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (api.AuditPage, error) {
		limit, err := queryLimit(r)
		if err != nil {
			return api.AuditPage{}, err
		}
		page, err := c.Activity(r.Context(), tid, r.PathValue("connection"), limit, r.URL.Query().Get("cursor"))
		return wireAuditPage(page), err
	})
	alerts := jsonCall(http.StatusOK, s.existingTenant, func(r *http.Request, tid tenant.ID, _ none) (api.AlertPage, error) {
		limit, err := queryLimit(r)
		if err != nil {
			return api.AlertPage{}, err
		}
		page, err := c.ListAlerts(r.Context(), tid, r.URL.Query().Get("connection"), limit, r.URL.Query().Get("cursor"))
		return wireAlertPage(page), err
	})
	const conns = "/v1/tenants/{tenant}/connections"
	const one = conns + "/{connection}"
	const grant = one + "/grants/{grant}"
	return []Route{
		{"POST", conns, "connection.create", TenantAdmin, create},
		{"GET", conns, "connection.list", TenantAdmin, list},
		{"GET", one, "connection.get", TenantAdmin, get},
		{"PATCH", one, "connection.update", TenantAdmin, update},
		{"DELETE", one, "connection.delete", TenantAdmin, del},
		{"POST", one + "/grants", "connection.grant_create", TenantAdmin, createGrant},
		{"GET", one + "/grants", "connection.grant_list", TenantAdmin, listGrants},
		{"POST", grant + "/rotate", "connection.grant_rotate", TenantAdmin, rotate},
		{"POST", grant + "/suspend", "connection.grant_suspend", TenantAdmin, status(true)},
		{"POST", grant + "/resume", "connection.grant_resume", TenantAdmin, status(false)},
		{"DELETE", grant, "connection.grant_delete", TenantAdmin, deleteGrant},
		{"GET", one + "/activity", "connection.activity", TenantAdmin, activity},
		{"GET", "/v1/tenants/{tenant}/alerts", "connection.alert_list", TenantAdmin, alerts},
	}
}
