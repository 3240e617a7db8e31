package httpapi

import (
	"net/http"

	"github.com/bulkhead-dev/bulkhead/internal/gateway/domains"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// domainRoutes manage a tenant's custom domains. The operator may manage
// any tenant's, a tenant's admins their own; the gateway serves a domain
// only once it is verified.
func (s *Server) domainRoutes() []Route {
	d := s.Domains
	create := jsonCall(http.StatusCreated, s.existingTenant, func(r *http.Request, tid tenant.ID, in api.CreateDomain) (api.Domain, error) {
		dom, err := d.Create(r.Context(), tid, in.Name, actor(r))
		return wireDomain(dom), err
	})
	list := jsonCall(http.StatusOK, s.existingTenant, func(r *http.Request, tid tenant.ID, _ none) (api.List[api.Domain], error) {
		ds, err := d.List(r.Context(), tid)
		out := api.List[api.Domain]{Items: make([]api.Domain, 0, len(ds))}
		for _, dom := range ds {
			out.Items = append(out.Items, wireDomain(dom))
		}
		return out, err
	})
	get := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (api.Domain, error) {
		dom, err := d.Get(r.Context(), tid, r.PathValue("domain"))
		return wireDomain(dom), err
	})
	verify := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (api.Domain, error) {
		dom, err := d.Verify(r.Context(), tid, r.PathValue("domain"), actor(r))
		return wireDomain(dom), err
	})
	del := jsonCall(http.StatusNoContent, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (none, error) {
		return none{}, d.Delete(r.Context(), tid, r.PathValue("domain"), actor(r))
	})
	const base = "/v1/tenants/{tenant}/domains"
	return []Route{
		{"POST", base, "domain.create", TenantAdmin, create},
		{"GET", base, "domain.list", TenantAdmin, list},
		{"GET", base + "/{domain}", "domain.get", TenantAdmin, get},
		{"DELETE", base + "/{domain}", "domain.delete", TenantAdmin, del},
		{"POST", base + "/{domain}/verify", "domain.verify", TenantAdmin, verify},
	}
}

func wireDomain(d domains.Domain) api.Domain {
	out := api.Domain{Name: d.Name, TenantID: string(d.TenantID), State: string(d.State), Token: d.Token,
		Method: d.Method, CreatedAt: d.CreatedAt}
	if !d.VerifiedAt.IsZero() {
		v := d.VerifiedAt
		out.VerifiedAt = &v
	}
	return out
}
