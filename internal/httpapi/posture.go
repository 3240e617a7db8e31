package httpapi

import (
	"net/http"
	"strconv"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/posture"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// postureRoutes show the deployment's posture findings: all of them to
// the operator (filtered by tenant, or the platform's own), a tenant's to
// its admins; and run a scan on demand.
func (s *Server) postureRoutes() []Route {
	p := s.Posture
	filter := func(r *http.Request) (posture.Filter, error) {
		q := r.URL.Query()
		limit, err := queryLimit(r)
		if err != nil {
			return posture.Filter{}, err
		}
		f := posture.Filter{Severity: q.Get("severity"), Limit: limit, Cursor: q.Get("cursor")}
		if v := q.Get("resolved"); v != "" {
			if f.Resolved, err = strconv.ParseBool(v); err != nil {
				return posture.Filter{}, errs.Field("resolved", "invalid_query", "resolved is true or false")
			}
		}
		return f, nil
	}
	list := jsonCall(http.StatusOK, globalStore, func(r *http.Request, _ tenant.ID, _ none) (api.PosturePage, error) {
		f, err := filter(r)
		if err != nil {
			return api.PosturePage{}, err
		}
		switch t := r.URL.Query().Get("tenant"); t {
		case "":
			f.AllTenants = true
		case "-":
			// the platform's own findings
		default:
			id, err := tenant.ParseID(t)
			if err != nil {
				return api.PosturePage{}, errs.Field("tenant", "invalid_tenant_id", "tenant is a tenant id, or - for the platform's own findings")
			}
			f.Tenant = id
		}
		return p.List(r.Context(), f)
	})
	tenantList := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (api.PosturePage, error) {
		f, err := filter(r)
		if err != nil {
			return api.PosturePage{}, err
		}
		f.Tenant = tid
		return p.List(r.Context(), f)
	})
	scan := jsonCall(http.StatusOK, globalStore, func(r *http.Request, _ tenant.ID, _ none) (api.PostureScan, error) {
		return p.Scan(r.Context(), actor(r))
	})
	return []Route{
		{"GET", "/v1/posture", "posture.list", Operator, list},
		{"POST", "/v1/posture/scan", "posture.scan", Operator, scan},
		{"GET", "/v1/tenants/{tenant}/posture", "posture.list_tenant", TenantAdmin, tenantList},
	}
}
