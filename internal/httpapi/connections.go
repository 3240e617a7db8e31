package httpapi

import (
	"net/http"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/connect"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// suspension is the optional body of a grant's suspension.
type suspension struct {
	Reason string `json:"reason,omitempty"`
}

func (suspension) optionalBody() {}

// connectionRoutes manage a tenant's connections to third-party APIs, their
// grants and alerts; the proxy itself has a listener of its own. The
// operator may manage any tenant's connections, a tenant's admins their own.
func (s *Server) connectionRoutes() []Route {
	c := s.Connect
	create := jsonCall(http.StatusCreated, pathTenant, func(r *http.Request, tid tenant.ID, in connect.CreateRequest) (connect.Created, error) {
		return c.Create(r.Context(), tid, in, actor(r))
	})
	list := jsonCall(http.StatusOK, s.existingTenant, func(r *http.Request, tid tenant.ID, _ none) (connect.Page, error) {
		limit, err := queryLimit(r)
		if err != nil {
			return connect.Page{}, err
		}
		return c.List(r.Context(), tid, limit, r.URL.Query().Get("cursor"))
	})
	get := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (connect.Connection, error) {
		return c.Get(r.Context(), tid, r.PathValue("connection"))
	})
	update := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, in connect.UpdateRequest) (connect.Updated, error) {
		return c.Update(r.Context(), tid, r.PathValue("connection"), in, actor(r))
	})
	del := jsonCall(http.StatusNoContent, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (none, error) {
		return none{}, c.Delete(r.Context(), tid, r.PathValue("connection"), actor(r))
	})
	createGrant := jsonCall(http.StatusCreated, pathTenant, func(r *http.Request, tid tenant.ID, in connect.CreateGrantRequest) (connect.IssuedGrant, error) {
		return c.CreateGrant(r.Context(), tid, r.PathValue("connection"), in, actor(r))
	})
	listGrants := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (map[string][]connect.Grant, error) {
		gs, err := c.ListGrants(r.Context(), tid, r.PathValue("connection"))
		return map[string][]connect.Grant{"items": gs}, err
	})
	rotate := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, in connect.TokenSource) (connect.IssuedGrant, error) {
		return c.Rotate(r.Context(), tid, r.PathValue("connection"), r.PathValue("grant"), in, actor(r))
	})
	status := func(suspend bool) func(http.ResponseWriter, *http.Request) error {
		return jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, in suspension) (connect.Grant, error) {
			return c.SetGrantStatus(r.Context(), tid, r.PathValue("connection"), r.PathValue("grant"), suspend, in.Reason, actor(r))
		})
	}
	deleteGrant := jsonCall(http.StatusNoContent, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (none, error) {
		return none{}, c.DeleteGrant(r.Context(), tid, r.PathValue("connection"), r.PathValue("grant"), actor(r))
	})
	activity := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (audit.Page, error) {
		limit, err := queryLimit(r)
		if err != nil {
			return audit.Page{}, err
		}
		return c.Activity(r.Context(), tid, r.PathValue("connection"), limit, r.URL.Query().Get("cursor"))
	})
	alerts := jsonCall(http.StatusOK, s.existingTenant, func(r *http.Request, tid tenant.ID, _ none) (connect.AlertPage, error) {
		limit, err := queryLimit(r)
		if err != nil {
			return connect.AlertPage{}, err
		}
		return c.ListAlerts(r.Context(), tid, r.URL.Query().Get("connection"), limit, r.URL.Query().Get("cursor"))
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
