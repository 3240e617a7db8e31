package httpapi

import (
	"net/http"
	"slices"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// The KMS scopes a tenant credential needs for each operation (a tenant
// admin's token may do them all).
const (
	ScopeEncrypt         = "kms:encrypt"
	ScopeDecrypt         = "kms:decrypt"
	ScopeGenerateDataKey = "kms:generate-data-key"
)

// callerTenant is the tenant of a TenantData route's credential, once it
// holds every scope named.
func callerTenant(r *http.Request, scopes ...string) (tenant.ID, error) {
	tc, ok := tenant.FromContext(r.Context())
	if !ok {
		return "", errs.E(errs.Unauthenticated, "invalid_token", "the bearer token is not valid")
	}
	if tc.InGroup(identity.AdminsGroup) && tc.Actor == "" {
		return tc.TenantID, nil // an admin's own token (a delegated one has only its scopes)
	}
	for _, s := range scopes {
		if !slices.Contains(tc.Scopes, s) {
			return "", errs.E(errs.Forbidden, "scope_required", "this operation needs the scope %q", s)
		}
	}
	return tc.TenantID, nil
}

// kmsStore finds the caller's tenant for a cryptographic operation.
func kmsStore(scopes ...string) func(*http.Request) (tenant.ID, error) {
	return func(r *http.Request) (tenant.ID, error) { return callerTenant(r, scopes...) }
}

// kmsRoutes are the key management and cryptographic operation routes.
func (s *Server) kmsRoutes() []Route {
	k := s.KMS
	encrypt := jsonCall(http.StatusOK, kmsStore(ScopeEncrypt), func(r *http.Request, tid tenant.ID, in api.EncryptRequest) (api.EncryptResponse, error) {
		return k.Encrypt(r.Context(), tid, encryptRequest(in), actor(r))
	})
	decrypt := jsonCall(http.StatusOK, kmsStore(ScopeDecrypt), func(r *http.Request, tid tenant.ID, in api.DecryptRequest) (api.DecryptResponse, error) {
		return k.Decrypt(r.Context(), tid, decryptRequest(in), actor(r))
	})
	dataKey := func(without bool) func(http.ResponseWriter, *http.Request) error {
		return jsonCall(http.StatusOK, kmsStore(ScopeGenerateDataKey), func(r *http.Request, tid tenant.ID, in api.DataKeyRequest) (api.DataKeyResponse, error) {
			return k.GenerateDataKey(r.Context(), tid, dataKeyRequest(in), without, actor(r))
		})
	}
	reEncrypt := jsonCall(http.StatusOK, kmsStore(ScopeDecrypt, ScopeEncrypt), func(r *http.Request, tid tenant.ID, in api.ReEncryptRequest) (api.ReEncryptResponse, error) {
		return k.ReEncrypt(r.Context(), tid, reEncryptRequest(in), actor(r))
	})
	createKey := jsonCall(http.StatusCreated, pathTenant, func(r *http.Request, tid tenant.ID, in api.CreateKey) (api.Key, error) {
		key, err := k.CreateKey(r.Context(), tid, kms.CreateKeyRequest(in), actor(r))
		return wireKey(key), err
	})
	listKeys := jsonCall(http.StatusOK, s.existingTenant, func(r *http.Request, tid tenant.ID, _ none) (api.KeyPage, error) {
		limit, err := queryLimit(r)
		if err != nil {
			return api.KeyPage{}, err
		}
		page, err := k.ListKeys(r.Context(), tid, limit, r.URL.Query().Get("cursor"))
		return wireKeyPage(page), err
	})
	getKey := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (api.Key, error) {
		key, err := k.GetKey(r.Context(), tid, r.PathValue("key"))
		return wireKey(key), err
	})
	rotate := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (api.Key, error) {
		key, err := k.Rotate(r.Context(), tid, r.PathValue("key"), actor(r))
		return wireKey(key), err
	})
	scheduleDeletion := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, in api.ScheduleKeyDeletion) (api.Key, error) {
		key, err := k.ScheduleDeletion(r.Context(), tid, r.PathValue("key"), in.PendingWindowDays, actor(r))
		return wireKey(key), err
	})
	cancelDeletion := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, _ none) (api.Key, error) {
		key, err := k.CancelDeletion(r.Context(), tid, r.PathValue("key"), actor(r))
		return wireKey(key), err
	})
	getImportParams := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, in api.ImportParamsRequest) (api.ImportParams, error) {
		return k.GetImportParams(r.Context(), tid, in.KeyID, actor(r))
	})
	importKey := jsonCall(http.StatusOK, pathTenant, func(r *http.Request, tid tenant.ID, in api.ImportRequest) (api.Key, error) {
		key, err := k.Import(r.Context(), tid, r.PathValue("key"), in, actor(r))
		return wireKey(key), err
	})
	const keys = "/v1/tenants/{tenant}/keys"
	return []Route{
		{"POST", "/v1/kms/encrypt", "kms.encrypt", TenantData, encrypt},
		{"POST", "/v1/kms/decrypt", "kms.decrypt", TenantData, decrypt},
		{"POST", "/v1/kms/generate-data-key", "kms.generate_data_key", TenantData, dataKey(false)},
		{"POST", "/v1/kms/generate-data-key-without-plaintext", "kms.generate_data_key_without_plaintext", TenantData, dataKey(true)},
		{"POST", "/v1/kms/re-encrypt", "kms.re_encrypt", TenantData, reEncrypt},
		{"POST", keys, "kms.key_create", TenantAdmin, createKey},
		{"GET", keys, "kms.key_list", TenantAdmin, listKeys},
		{"POST", keys + "/import-params", "kms.import_params", TenantAdmin, getImportParams},
		{"GET", keys + "/{key}", "kms.key_get", TenantAdmin, getKey},
		{"POST", keys + "/{key}/rotate", "kms.key_rotate", TenantAdmin, rotate},
		{"POST", keys + "/{key}/schedule-deletion", "kms.key_schedule_deletion", TenantAdmin, scheduleDeletion},
		{"POST", keys + "/{key}/cancel-deletion", "kms.key_cancel_deletion", TenantAdmin, cancelDeletion},
		{"POST", keys + "/{key}/import", "kms.key_import", TenantAdmin, importKey},
	}
}
