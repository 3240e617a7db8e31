package httpapi

import (
	"net/http"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// certRoutes are the operator's view of the gateway's certificates: which
// CA issued each, and moving them from one CA to the next.
func (s *Server) certRoutes() []Route {
	noTenant := func(*http.Request) (tenant.ID, error) { return "", nil }
	enabled := func() error {
		if s.Certs == nil {
			return errs.E(errs.Conflict, "acme_not_configured", "the node has no ACME CA (--acme-ca)")
		}
		return nil
	}
	list := jsonCall(http.StatusOK, noTenant, func(r *http.Request, _ tenant.ID, _ none) (api.List[api.Certificate], error) {
		out := api.List[api.Certificate]{Items: []api.Certificate{}}
		if err := enabled(); err != nil {
			return out, err
		}
		cs, err := s.Certs.List(r.Context())
		for _, c := range cs {
			out.Items = append(out.Items, api.Certificate{Name: c.Name, CA: c.CA, NotAfter: c.NotAfter, Serial: c.Serial})
		}
		return out, err
	})
	reissue := jsonCall(http.StatusOK, noTenant, func(r *http.Request, _ tenant.ID, in api.ReissueCertificates) (api.CertificatesReissued, error) {
		if err := enabled(); err != nil {
			return api.CertificatesReissued{}, err
		}
		if in.Max < 0 {
			return api.CertificatesReissued{}, errs.Field("max", "invalid_max", "max is 0 (all) or more")
		}
		res, err := s.Certs.Reissue(r.Context(), in.FromCA, in.Max, actor(r))
		out := api.CertificatesReissued{Items: []api.ReissuedCertificate{}, Moved: res.Moved, Remaining: res.Remaining}
		for _, m := range res.Items {
			item := api.ReissuedCertificate{Name: m.Name}
			if m.Err != nil {
				item.Error = errs.Clip(m.Err.Error(), 500)
			}
			out.Items = append(out.Items, item)
		}
		return out, err
	})
	return []Route{
		{"GET", "/v1/certs", "cert.list", Operator, list},
		{"POST", "/v1/certs/reissue", "cert.reissue", Operator, reissue},
	}
}
