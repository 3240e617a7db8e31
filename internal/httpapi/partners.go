package httpapi

import (
	"net/http"

	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// partnerRoutes register partners (the operator) and keep tenants'
// trusts in them (the tenant's admins). A partner's secret and a trust's
// external id are in the answer that makes them only.
func (s *Server) partnerRoutes() []Route {
	p := s.Partners
	createPartner := jsonCall(http.StatusCreated, globalStore, func(r *http.Request, _ tenant.ID, in api.CreatePartner) (api.PartnerCreated, error) {
		return p.CreatePartner(r.Context(), in, actor(r))
	})
	listPartners := jsonCall(http.StatusOK, globalStore, func(r *http.Request, _ tenant.ID, _ none) (api.PartnerPage, error) {
		limit, err := queryLimit(r)
		if err != nil {
			return api.PartnerPage{}, err
		}
		items, next, err := p.ListPartners(r.Context(), limit, r.URL.Query().Get("cursor"))
		return api.PartnerPage{Items: nonNil(items), NextCursor: next}, err
	})
	getPartner := jsonCall(http.StatusOK, globalStore, func(r *http.Request, _ tenant.ID, _ none) (api.Partner, error) {
		return p.GetPartner(r.Context(), r.PathValue("partner"))
	})
	deletePartner := jsonCall(http.StatusNoContent, globalStore, func(r *http.Request, _ tenant.ID, _ none) (none, error) {
		return none{}, p.DeletePartner(r.Context(), r.PathValue("partner"), actor(r))
	})
	rotateSecret := jsonCall(http.StatusOK, globalStore, func(r *http.Request, _ tenant.ID, _ none) (api.PartnerCreated, error) {
		return p.RotatePartnerSecret(r.Context(), r.PathValue("partner"), actor(r))
	})
	createTrust := jsonCall(http.StatusCreated, pathTenant, func(r *http.Request, tid tenant.ID, in api.CreateTrust) (api.TrustCreated, error) {
		return p.CreateTrust(r.Context(), tid, in, actor(r))
	})
	listTrusts := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (api.TrustPage, error) {
		limit, err := queryLimit(r)
		if err != nil {
			return api.TrustPage{}, err
		}
		items, next, err := p.ListTrusts(r.Context(), tid, limit, r.URL.Query().Get("cursor"))
		return api.TrustPage{Items: nonNil(items), NextCursor: next}, err
	})
	getTrust := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (api.Trust, error) {
		return p.GetTrust(r.Context(), tid, r.PathValue("trust"))
	})
	updateTrust := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, in api.PatchTrust) (api.Trust, error) {
		return p.UpdateTrust(r.Context(), tid, r.PathValue("trust"), in, actor(r))
	})
	deleteTrust := jsonCall(http.StatusNoContent, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (none, error) {
		return none{}, p.DeleteTrust(r.Context(), tid, r.PathValue("trust"), actor(r))
	})
	setStatus := func(active bool) func(http.ResponseWriter, *http.Request) error {
		return jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (api.Trust, error) {
			return p.SetTrustStatus(r.Context(), tid, r.PathValue("trust"), active, actor(r))
		})
	}
	rotateExternalID := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (api.TrustCreated, error) {
		return p.RotateExternalID(r.Context(), tid, r.PathValue("trust"), actor(r))
	})
	const trusts = "/v1/tenants/{tenant}/trusts"
	return []Route{
		{"POST", "/v1/partners", "partner.create", Operator, createPartner},
		{"GET", "/v1/partners", "partner.list", Operator, listPartners},
		{"GET", "/v1/partners/{partner}", "partner.get", Operator, getPartner},
		{"DELETE", "/v1/partners/{partner}", "partner.delete", Operator, deletePartner},
		{"POST", "/v1/partners/{partner}/secret", "partner.rotate_secret", Operator, rotateSecret},
		{"POST", trusts, "trust.create", TenantAdmin, createTrust},
		{"GET", trusts, "trust.list", TenantAdmin, listTrusts},
		{"GET", trusts + "/{trust}", "trust.get", TenantAdmin, getTrust},
		{"PATCH", trusts + "/{trust}", "trust.update", TenantAdmin, updateTrust},
		{"DELETE", trusts + "/{trust}", "trust.delete", TenantAdmin, deleteTrust},
		{"POST", trusts + "/{trust}/suspend", "trust.suspend", TenantAdmin, setStatus(false)},
		{"POST", trusts + "/{trust}/resume", "trust.resume", TenantAdmin, setStatus(true)},
		{"POST", trusts + "/{trust}/external-id", "trust.rotate_external_id", TenantAdmin, rotateExternalID},
	}
}

// nonNil gives an empty list as [] rather than null.
func nonNil[T any](items []T) []T {
	if items == nil {
		return []T{}
	}
	return items
}
