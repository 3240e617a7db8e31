package httpapi

import (
	"net/http"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/authz"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
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
	getStore := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, _ none) (authz.Store, error) {
		return a.GetStore(r.Context(), tid)
	})
	updateStore := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, in authz.StoreUpdate) (authz.Store, error) {
		return a.UpdateStore(r.Context(), tid, in, actor(r))
	})
	getSchema := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, _ none) (authz.Schema, error) {
		return a.GetSchema(r.Context(), tid)
	})
	putSchema := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, in authz.Schema) (authz.Schema, error) {
		return a.PutSchema(r.Context(), tid, in, actor(r))
	})
	createPolicy := func(store func(*http.Request) (tenant.ID, error)) func(http.ResponseWriter, *http.Request) error {
		return jsonCall(http.StatusCreated, store, func(r *http.Request, tid tenant.ID, in authz.PolicyInput) (authz.Policy, error) {
			return a.CreatePolicy(r.Context(), tid, in, actor(r))
		})
	}
	listPolicies := func(store func(*http.Request) (tenant.ID, error)) func(http.ResponseWriter, *http.Request) error {
		return jsonCall(http.StatusOK, store, func(r *http.Request, tid tenant.ID, _ none) (authz.PolicyPage, error) {
			opts, err := listOptions(r)
			if err != nil {
				return authz.PolicyPage{}, err
			}
			return a.ListPolicies(r.Context(), tid, opts)
		})
	}
	getPolicy := func(store func(*http.Request) (tenant.ID, error)) func(http.ResponseWriter, *http.Request) error {
		return jsonCall(http.StatusOK, store, func(r *http.Request, tid tenant.ID, _ none) (authz.Policy, error) {
			return a.GetPolicy(r.Context(), tid, r.PathValue("policy"))
		})
	}
	replacePolicy := func(store func(*http.Request) (tenant.ID, error)) func(http.ResponseWriter, *http.Request) error {
		return jsonCall(http.StatusOK, store, func(r *http.Request, tid tenant.ID, in authz.PolicyInput) (authz.Policy, error) {
			return a.ReplacePolicy(r.Context(), tid, r.PathValue("policy"), in, actor(r))
		})
	}
	deletePolicy := func(store func(*http.Request) (tenant.ID, error)) func(http.ResponseWriter, *http.Request) error {
		return jsonCall(http.StatusNoContent, store, func(r *http.Request, tid tenant.ID, _ none) (none, error) {
			return none{}, a.DeletePolicy(r.Context(), tid, r.PathValue("policy"), actor(r))
		})
	}
	createTemplate := jsonCall(http.StatusCreated, tenantStore, func(r *http.Request, tid tenant.ID, in authz.TemplateInput) (authz.Template, error) {
		return a.CreateTemplate(r.Context(), tid, in, actor(r))
	})
	listTemplates := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, _ none) (authz.TemplatePage, error) {
		opts, err := listOptions(r)
		if err != nil {
			return authz.TemplatePage{}, err
		}
		return a.ListTemplates(r.Context(), tid, opts)
	})
	getTemplate := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, _ none) (authz.Template, error) {
		return a.GetTemplate(r.Context(), tid, r.PathValue("template"))
	})
	replaceTemplate := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, in authz.TemplateInput) (authz.Template, error) {
		return a.ReplaceTemplate(r.Context(), tid, r.PathValue("template"), in, actor(r))
	})
	deleteTemplate := jsonCall(http.StatusNoContent, tenantStore, func(r *http.Request, tid tenant.ID, _ none) (none, error) {
		return none{}, a.DeleteTemplate(r.Context(), tid, r.PathValue("template"), actor(r))
	})
	authorize := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, in authz.Request) (authz.Decision, error) {
		return a.Authorize(r.Context(), tid, in, asker(r, tid))
	})
	type batch struct {
		Requests []authz.Request `json:"requests"`
	}
	type batchResult struct {
		Results []authz.Decision `json:"results"`
	}
	authorizeBatch := jsonCall(http.StatusOK, tenantStore, func(r *http.Request, tid tenant.ID, in batch) (batchResult, error) {
		ds, err := a.AuthorizeBatch(r.Context(), tid, in.Requests, asker(r, tid))
		return batchResult{ds}, err
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
		if id, ok := strings.CutPrefix(tc.Principal, "user:"); ok {
			a.User = &authz.Caller{UserID: id, Groups: tc.Groups}
		}
	}
	return a
}
