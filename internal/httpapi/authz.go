package httpapi

import (
	"net/http"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/authz"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/httpx"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Policy stores: a tenant's (under /v1/tenants/{tenant}) or the global
// policies (/v1/global-policies, tenant ""), served by the same handlers.

func globalStore(*http.Request) (tenant.ID, error) { return "", nil }

// none is the input of a handler that takes no body.
type none struct{}

// jsonCall makes a handler that finds the store, decodes the body into an
// In (unless In is none), calls the service and writes its answer with
// status (204 writes nothing).
func jsonCall[In, Out any](status int, store func(*http.Request) (tenant.ID, error),
	call func(r *http.Request, tid tenant.ID, in In) (Out, error)) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		tid, err := store(r)
		if err != nil {
			return err
		}
		var in In
		_, empty := any(&in).(*none)
		if _, optional := any(in).(interface{ optionalBody() }); optional && r.ContentLength == 0 {
			empty = true // an optional body left out
		}
		if !empty {
			if err := decode(w, r, &in); err != nil {
				return err
			}
		}
		out, err := call(r, tid, in)
		if err != nil {
			return err
		}
		if status == http.StatusNoContent {
			w.WriteHeader(status)
			return nil
		}
		writeJSON(w, status, out)
		return nil
	}
}

func listOptions(r *http.Request) (authz.ListOptions, error) {
	limit, err := queryLimit(r)
	return authz.ListOptions{Limit: limit, Cursor: r.URL.Query().Get("cursor")}, err
}

// authzRoutes are the policy store, decision and global-policy routes.
func (s *Server) authzRoutes() []Route {
	a := s.Authz
	tenantStore := pathTenant
	getStore := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, _ none) (api.PolicyStore, error) {
		st, err := a.GetStore(r.Context(), tid)
		return wirePolicyStore(st), err
	})
	updateStore := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, in api.PatchPolicyStore) (api.PolicyStore, error) {
		st, err := a.UpdateStore(r.Context(), tid, in, actor(r))
		return wirePolicyStore(st), err
	})
	getSchema := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, _ none) (api.PolicySchema, error) {
		sc, err := a.GetSchema(r.Context(), tid)
		return api.PolicySchema(sc), err
	})
	putSchema := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, in api.PolicySchema) (api.PolicySchema, error) {
		sc, err := a.PutSchema(r.Context(), tid, authz.Schema(in), actor(r))
		return api.PolicySchema(sc), err
	})
	createPolicy := func(store func(*http.Request) (tenant.ID, error)) func(http.ResponseWriter, *http.Request) error {
		return jsonCall(http.StatusCreated, store, func(r *http.Request, tid tenant.ID, in api.PolicyInput) (api.Policy, error) {
			p, err := a.CreatePolicy(r.Context(), tid, policyInput(in), actor(r))
			return wirePolicy(p), err
		})
	}
	validatePolicy := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, in api.PolicyInput) (api.PolicyValidation, error) {
		err := a.ValidatePolicy(r.Context(), tid, policyInput(in))
		if e, ok := errs.As(err); ok && (e.Kind == errs.Invalid || e.Kind == errs.TooLarge) {
			p := httpx.ProblemFor(err).Problem
			return api.PolicyValidation{Problem: &p}, nil
		}
		return api.PolicyValidation{Valid: err == nil}, err
	})
	listPolicies := func(store func(*http.Request) (tenant.ID, error)) func(http.ResponseWriter, *http.Request) error {
		return jsonCall(http.StatusOK, store, func(r *http.Request, tid tenant.ID, _ none) (api.PolicyPage, error) {
			opts, err := listOptions(r)
			if err != nil {
				return api.PolicyPage{}, err
			}
			page, err := a.ListPolicies(r.Context(), tid, opts)
			return wirePolicyPage(page), err
		})
	}
	getPolicy := func(store func(*http.Request) (tenant.ID, error)) func(http.ResponseWriter, *http.Request) error {
		return jsonCall(http.StatusOK, store, func(r *http.Request, tid tenant.ID, _ none) (api.Policy, error) {
			p, err := a.GetPolicy(r.Context(), tid, r.PathValue("policy"))
			return wirePolicy(p), err
		})
	}
	replacePolicy := func(store func(*http.Request) (tenant.ID, error)) func(http.ResponseWriter, *http.Request) error {
		return jsonCall(http.StatusOK, store, func(r *http.Request, tid tenant.ID, in api.PolicyInput) (api.Policy, error) {
			p, err := a.ReplacePolicy(r.Context(), tid, r.PathValue("policy"), policyInput(in), actor(r))
			return wirePolicy(p), err
		})
	}
	deletePolicy := func(store func(*http.Request) (tenant.ID, error)) func(http.ResponseWriter, *http.Request) error {
		return jsonCall(http.StatusNoContent, store, func(r *http.Request, tid tenant.ID, _ none) (none, error) {
			return none{}, a.DeletePolicy(r.Context(), tid, r.PathValue("policy"), actor(r))
		})
	}
	createTemplate := jsonCall(http.StatusCreated, tenantStore, func(r *http.Request, tid tenant.ID, in api.PolicyTemplateInput) (api.PolicyTemplate, error) {
		t, err := a.CreateTemplate(r.Context(), tid, in, actor(r))
		return wireTemplate(t), err
	})
	listTemplates := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, _ none) (api.PolicyTemplatePage, error) {
		opts, err := listOptions(r)
		if err != nil {
			return api.PolicyTemplatePage{}, err
		}
		page, err := a.ListTemplates(r.Context(), tid, opts)
		return wireTemplatePage(page), err
	})
	getTemplate := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, _ none) (api.PolicyTemplate, error) {
		t, err := a.GetTemplate(r.Context(), tid, r.PathValue("template"))
		return wireTemplate(t), err
	})
	replaceTemplate := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, in api.PolicyTemplateInput) (api.PolicyTemplate, error) {
		t, err := a.ReplaceTemplate(r.Context(), tid, r.PathValue("template"), in, actor(r))
		return wireTemplate(t), err
	})
	deleteTemplate := jsonCall(http.StatusNoContent, tenantStore, func(r *http.Request, tid tenant.ID, _ none) (none, error) {
		return none{}, a.DeleteTemplate(r.Context(), tid, r.PathValue("template"), actor(r))
	})
	authorize := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, in api.AuthorizationRequest) (api.Decision, error) {
		return a.Authorize(r.Context(), tid, authzRequest(in), asker(r, tid))
	})
	authorizeBatch := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, in api.AuthorizationBatch) (api.AuthorizationBatchResult, error) {
		// The first decision was charged on admission.
		if err := chargeMore(r, len(in.Requests)-1); err != nil {
			return api.AuthorizationBatchResult{}, err
		}
		ds, err := a.AuthorizeBatch(r.Context(), tid, each(in.Requests, authzRequest), asker(r, tid))
		return api.AuthorizationBatchResult{Results: ds}, err
	})
	const (
		store    = "/v1/tenants/{tenant}/policy-store"
		policies = "/v1/tenants/{tenant}/policies"
		tpls     = "/v1/tenants/{tenant}/policy-templates"
		globals  = "/v1/global-policies"
	)
	return []Route{
		{"GET", store, "authz.store_get", TenantAdmin, getStore},
		{"PATCH", store, "authz.store_update", TenantAdmin, updateStore},
		{"GET", store + "/schema", "authz.schema_get", TenantAdmin, getSchema},
		{"PUT", store + "/schema", "authz.schema_put", TenantAdmin, putSchema},
		{"POST", policies, "authz.policy_create", TenantAdmin, createPolicy(tenantStore)},
		{"GET", policies, "authz.policy_list", TenantAdmin, listPolicies(tenantStore)},
		{"POST", policies + "/validate", "authz.policy_validate", TenantAdmin, validatePolicy},
		{"GET", policies + "/{policy}", "authz.policy_get", TenantAdmin, getPolicy(tenantStore)},
		{"PUT", policies + "/{policy}", "authz.policy_replace", TenantAdmin, replacePolicy(tenantStore)},
		{"DELETE", policies + "/{policy}", "authz.policy_delete", TenantAdmin, deletePolicy(tenantStore)},
		{"POST", tpls, "authz.template_create", TenantAdmin, createTemplate},
		{"GET", tpls, "authz.template_list", TenantAdmin, listTemplates},
		{"GET", tpls + "/{template}", "authz.template_get", TenantAdmin, getTemplate},
		{"PUT", tpls + "/{template}", "authz.template_replace", TenantAdmin, replaceTemplate},
		{"DELETE", tpls + "/{template}", "authz.template_delete", TenantAdmin, deleteTemplate},
		{"POST", "/v1/tenants/{tenant}/authorize", "authz.authorize", Tenant, authorize},
		{"POST", "/v1/tenants/{tenant}/authorize/batch", "authz.authorize_batch", Tenant, authorizeBatch},
		{"POST", globals, "authz.global_create", Operator, createPolicy(globalStore)},
		{"GET", globals, "authz.global_list", Operator, listPolicies(globalStore)},
		{"GET", globals + "/{policy}", "authz.global_get", Operator, getPolicy(globalStore)},
		{"PUT", globals + "/{policy}", "authz.global_replace", Operator, replacePolicy(globalStore)},
		{"DELETE", globals + "/{policy}", "authz.global_delete", Operator, deletePolicy(globalStore)},
	}
}

// asker says who asks for a decision: the operator, or a credential of
// tenant tid (with its user, authorize's default principal, if any).
func asker(r *http.Request, tid tenant.ID) authz.Asker {
	a := authz.Asker{Actor: actor(r)}
	if _, ok := authn.OperatorFrom(r.Context()); ok {
		a.Operator = true
		return a
	}
	if tc, ok := tenant.FromContext(r.Context()); ok && tc.TenantID == tid {
		if tc.Partner != nil {
			a.Partner = authz.PartnerFrom(tc.Partner)
			return a
		}
		if id, ok := strings.CutPrefix(tc.Principal, "user:"); ok {
			a.User = &authz.Caller{UserID: id, Groups: tc.Groups}
		}
	}
	return a
}
