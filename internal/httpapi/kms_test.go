package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

var kmsScopes = []string{"kms:encrypt", "kms:decrypt", "kms:generate-data-key"}

// Tokens of the KMS tests: each tenant's service (all kms scopes), a
// service without scopes, a plain user and an admin of tenant-a.
func kmsTokens() map[string]tenant.Context {
	return map[string]tenant.Context{
		"tok-svc-a":     {TenantID: "tenant-a", Principal: "client:svc-a", Scopes: kmsScopes},
		"tok-svc-b":     {TenantID: "tenant-b", Principal: "client:svc-b", Scopes: kmsScopes},
		"tok-enc-only":  {TenantID: "tenant-a", Principal: "client:enc", Scopes: []string{"kms:encrypt"}},
		"tok-noscope-a": {TenantID: "tenant-a", Principal: "client:plain"},
		"tok-user-a":    {TenantID: "tenant-a", Principal: "user:u1"},
		"tok-admin-a":   {TenantID: "tenant-a", Principal: "user:root-a", Groups: []string{"admins"}},
		"tok-admin-b":   {TenantID: "tenant-b", Principal: "user:root-b", Groups: []string{"admins"}},
		// An admin's token exchanged by a service for encryption only.
		"tok-delegated-a": {TenantID: "tenant-a", Principal: "user:root-a", Groups: []string{"admins"}, Actor: "client:svc-a",
			Scopes: []string{"kms:encrypt"}},
	}
}

func newKMSEnv(t *testing.T, dsn string) *azEnv { return newTwoTenantEnv(t, dsn, kmsTokens()) }

type kmsCT struct {
	Ciphertext []byte `json:"ciphertext"`
	KeyID      string `json:"key_id"`
	KeyVersion int    `json:"key_version"`
	Plaintext  []byte `json:"plaintext"`
}

func encReq(key, pt string, ec map[string]string) map[string]any {
	return map[string]any{"key_id": key, "plaintext": []byte(pt), "encryption_context": ec}
}

// TestKMSOverHTTP: who may use a tenant's keys, and what another tenant gets.
func TestKMSOverHTTP(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		a := newKMSEnv(t, dsn)
		ecA := map[string]string{"tenant_id": "tenant-a", "record": "r1"}
		var ct kmsCT
		a.ok("POST", "/v1/kms/encrypt", "tok-svc-a", encReq("alias/customer-tenant-a", "secret a", ecA), 200, &ct)
		var pt kmsCT
		a.ok("POST", "/v1/kms/decrypt", "tok-svc-a", map[string]any{"ciphertext": ct.Ciphertext, "encryption_context": ecA}, 200, &pt)
		if string(pt.Plaintext) != "secret a" || pt.KeyID != ct.KeyID {
			t.Fatalf("round trip: %+v", pt)
		}
		// A tenant admin's token may, the operator's never.
		a.ok("POST", "/v1/kms/decrypt", "tok-admin-a", map[string]any{"ciphertext": ct.Ciphertext, "encryption_context": ecA}, 200, nil)
		for _, c := range []struct{ path, tok, code string }{
			{"/v1/kms/encrypt", apitest.AdminToken, "tenant_credential_required"},
			{"/v1/kms/decrypt", apitest.AdminToken, "tenant_credential_required"},
			{"/v1/kms/generate-data-key", apitest.AdminToken, "tenant_credential_required"},
			{"/v1/kms/generate-data-key-without-plaintext", apitest.AdminToken, "tenant_credential_required"},
			{"/v1/kms/re-encrypt", apitest.AdminToken, "tenant_credential_required"},
			{"/v1/kms/decrypt", "tok-noscope-a", "scope_required"},
			{"/v1/kms/decrypt", "tok-user-a", "scope_required"},
			{"/v1/kms/decrypt", "tok-enc-only", "scope_required"},
			{"/v1/kms/re-encrypt", "tok-enc-only", "scope_required"},
			{"/v1/kms/decrypt", "tok-delegated-a", "scope_required"},
		} {
			body := map[string]any{"ciphertext": ct.Ciphertext, "encryption_context": ecA, "key_id": "alias/customer-tenant-a", "plaintext": []byte("x"),
				"source_encryption_context": ecA}
			if strings.HasSuffix(c.path, "encrypt") && !strings.HasSuffix(c.path, "re-encrypt") {
				body = encReq("alias/customer-tenant-a", "x", ecA)
			}
			if strings.Contains(c.path, "data-key") {
				body = map[string]any{"key_id": "alias/customer-tenant-a", "encryption_context": ecA}
			}
			r := a.call("POST", c.path, c.tok, body)
			wantProblem(t, c.path+" with "+c.tok, r, http.StatusForbidden, c.code, "")
			if strings.Contains(string(r.Body), "secret a") {
				t.Errorf("%s with %s: the answer holds the plaintext", c.path, c.tok)
			}
		}
		// Tenant-b's service: not with tenant-a's context, not with its own.
		ecB := map[string]string{"tenant_id": "tenant-b", "record": "r1"}
		wantProblem(t, "b decrypts a's ciphertext naming a", a.call("POST", "/v1/kms/decrypt", "tok-svc-b",
			map[string]any{"ciphertext": ct.Ciphertext, "encryption_context": ecA}), 403, "context_tenant_mismatch", "encryption_context")
		wantProblem(t, "b decrypts a's ciphertext naming b", a.call("POST", "/v1/kms/decrypt", "tok-svc-b",
			map[string]any{"ciphertext": ct.Ciphertext, "encryption_context": ecB}), 400, "invalid_ciphertext", "ciphertext")
		wantProblem(t, "b encrypts with a's key id", a.call("POST", "/v1/kms/encrypt", "tok-svc-b", encReq(ct.KeyID, "x", ecB)), 404, "key_not_found", "")
		wantProblem(t, "b encrypts with a's alias", a.call("POST", "/v1/kms/encrypt", "tok-svc-b", encReq("alias/customer-tenant-a", "x", ecB)), 404, "key_not_found", "")
		for _, path := range []string{"/v1/kms/generate-data-key", "/v1/kms/generate-data-key-without-plaintext"} {
			wantProblem(t, "b asks a data key of a's key", a.call("POST", path, "tok-svc-b",
				map[string]any{"key_id": ct.KeyID, "encryption_context": ecB}), 404, "key_not_found", "")
			wantProblem(t, "b asks a data key in a's context", a.call("POST", path, "tok-svc-b",
				map[string]any{"key_id": "alias/customer-tenant-b", "encryption_context": ecA}), 403, "context_tenant_mismatch", "encryption_context")
		}
		wantProblem(t, "b re-encrypts into a's key", a.call("POST", "/v1/kms/re-encrypt", "tok-svc-b",
			map[string]any{"ciphertext": ct.Ciphertext, "source_encryption_context": ecB, "destination_key_id": ct.KeyID}), 400, "invalid_ciphertext", "ciphertext")
		wantProblem(t, "b re-encrypts a's ciphertext", a.call("POST", "/v1/kms/re-encrypt", "tok-svc-b",
			map[string]any{"ciphertext": ct.Ciphertext, "source_encryption_context": ecB}), 400, "invalid_ciphertext", "ciphertext")
		// Key management: b's admin does not find a's key in b's store either.
		wantProblem(t, "b's admin reads a's key", a.call("GET", "/v1/tenants/tenant-b/keys/"+ct.KeyID, "tok-admin-b", nil), 404, "key_not_found", "")
		wantProblem(t, "b's admin rotates a's key", a.call("POST", "/v1/tenants/tenant-b/keys/"+ct.KeyID+"/rotate", "tok-admin-b", nil), 404, "key_not_found", "")
		wantProblem(t, "b's admin on a's keys", a.call("GET", "/v1/tenants/tenant-a/keys", "tok-admin-b", nil), 404, "tenant_not_found", "")
		var keys struct {
			Items []struct {
				ID      string   `json:"key_id"`
				Aliases []string `json:"aliases"`
			} `json:"items"`
		}
		a.ok("GET", "/v1/tenants/tenant-b/keys", "tok-admin-b", nil, 200, &keys)
		if len(keys.Items) != 1 || keys.Items[0].ID == ct.KeyID || len(keys.Items[0].Aliases) != 1 || keys.Items[0].Aliases[0] != "alias/customer-tenant-b" {
			t.Errorf("b's keys: %+v", keys.Items)
		}
		// A delegated token has its scopes, not its admin user's rights.
		a.ok("POST", "/v1/kms/encrypt", "tok-delegated-a", encReq("alias/customer-tenant-a", "x", ecA), 200, nil)
		wantProblem(t, "delegated token on key management", a.call("GET", "/v1/tenants/tenant-a/keys", "tok-delegated-a", nil), 403, "delegated_token_not_allowed", "")
		wantProblem(t, "delegated token on /v1/me", a.call("GET", "/v1/me", "tok-delegated-a", nil), 403, "delegated_token_not_allowed", "")
		wantProblem(t, "delegated token on the audit trail", a.call("GET", "/v1/tenants/tenant-a/audit", "tok-delegated-a", nil), 403, "delegated_token_not_allowed", "")
		wantProblem(t, "delegated token on the tenant", a.call("GET", "/v1/tenants/tenant-a", "tok-delegated-a", nil), 403, "delegated_token_not_allowed", "")
		wantProblem(t, "delegated token on another tenant", a.call("GET", "/v1/tenants/tenant-b", "tok-delegated-a", nil), 404, "tenant_not_found", "")
		// Still fine for a after all that.
		a.ok("POST", "/v1/kms/decrypt", "tok-svc-a", map[string]any{"ciphertext": ct.Ciphertext, "encryption_context": ecA}, 200, nil)

		// Bad input.
		for _, c := range []struct {
			name, path string
			body       any
			status     int
			code       string
			field      string
		}{
			{"bad base64", "/v1/kms/encrypt", `{"key_id":"alias/customer-tenant-a","plaintext":"%%%","encryption_context":{"tenant_id":"tenant-a"}}`, 400, "invalid_base64", ""},
			{"4 KiB + 1", "/v1/kms/encrypt", encReq("alias/customer-tenant-a", strings.Repeat("x", 4097), ecA), 400, "invalid_plaintext", "plaintext"},
			{"empty plaintext", "/v1/kms/encrypt", encReq("alias/customer-tenant-a", "", ecA), 400, "invalid_plaintext", "plaintext"},
			{"no context", "/v1/kms/encrypt", map[string]any{"key_id": "alias/customer-tenant-a", "plaintext": []byte("x")}, 403, "context_tenant_mismatch", "encryption_context"},
			{"unknown alias", "/v1/kms/encrypt", encReq("alias/nope", "x", ecA), 404, "key_not_found", ""},
			{"truncated ciphertext", "/v1/kms/decrypt", map[string]any{"ciphertext": ct.Ciphertext[:20], "encryption_context": ecA}, 400, "invalid_ciphertext", "ciphertext"},
			{"altered ciphertext", "/v1/kms/decrypt", map[string]any{"ciphertext": append(append([]byte{}, ct.Ciphertext[:len(ct.Ciphertext)-1]...), ct.Ciphertext[len(ct.Ciphertext)-1]^1), "encryption_context": ecA}, 400, "invalid_ciphertext", "ciphertext"},
			{"data key of 65 bytes", "/v1/kms/generate-data-key", map[string]any{"key_id": "alias/customer-tenant-a", "encryption_context": ecA, "number_of_bytes": 65}, 400, "invalid_number_of_bytes", "number_of_bytes"},
			{"context of a non-string", "/v1/kms/encrypt", `{"key_id":"alias/customer-tenant-a","plaintext":"eA==","encryption_context":{"tenant_id":7}}`, 400, "invalid_field_type", "encryption_context"},
		} {
			wantProblem(t, c.name, a.call("POST", c.path, "tok-svc-a", c.body), c.status, c.code, c.field)
		}
		// A key scheduled for deletion refuses use, clearly.
		a.ok("POST", "/v1/tenants/tenant-a/keys/"+ct.KeyID+"/schedule-deletion", "tok-admin-a", map[string]int{"pending_window_days": 7}, 200, nil)
		wantProblem(t, "decrypt under a key pending deletion", a.call("POST", "/v1/kms/decrypt", "tok-svc-a",
			map[string]any{"ciphertext": ct.Ciphertext, "encryption_context": ecA}), 409, "key_pending_deletion", "")
		a.ok("POST", "/v1/tenants/tenant-a/keys/"+ct.KeyID+"/cancel-deletion", "tok-admin-a", nil, 200, nil)
		a.ok("POST", "/v1/kms/decrypt", "tok-svc-a", map[string]any{"ciphertext": ct.Ciphertext, "encryption_context": ecA}, 200, nil)
	})
}
