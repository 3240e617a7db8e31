package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/httpapi"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestAuditReadAccess: a tenant's audit trail holds what its admin routes
// hide, so every route that reads it is for the operator, the tenant's
// admins and its clients granted audit:read; any other credential of the
// tenant gets 403, another tenant's 404. The routes are taken from the
// route table, so a new audit route is checked as it is added.
func TestAuditReadAccess(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		tokens := map[string]tenant.Context{
			"tok-user":       {TenantID: "tenant-a", Principal: "user:plain"},
			"tok-user-scope": {TenantID: "tenant-a", Principal: "user:plain", Scopes: []string{httpapi.AuditReadScope}},
			"tok-client":     {TenantID: "tenant-a", Principal: "client:cli_noscope", Scopes: []string{"kms:encrypt"}},
			"tok-delegated": {TenantID: "tenant-a", Principal: "user:adm", Groups: []string{"admins"}, Actor: "client:cli_sts",
				Scopes: []string{httpapi.AuditReadScope}},
			"tok-admin":   {TenantID: "tenant-a", Principal: "user:adm", Groups: []string{"admins"}},
			"tok-auditor": {TenantID: "tenant-a", Principal: "client:cli_auditor", Scopes: []string{httpapi.AuditReadScope}},
			"tok-admin-b": {TenantID: "tenant-b", Principal: "user:adm-b", Groups: []string{"admins"}},
			"tok-audit-b": {TenantID: "tenant-b", Principal: "client:cli_auditor_b", Scopes: []string{httpapi.AuditReadScope}},
		}
		env := apitest.New(t, dsn, apitest.Options{TenantTokens: tokens})
		createTenant(t, env, client.CreateTenant{ID: "tenant-a"})
		createTenant(t, env, client.CreateTenant{ID: "tenant-b"})

		var routes []httpapi.Route
		for _, rt := range env.API.Routes() {
			if strings.HasPrefix(rt.Name, "audit.") && strings.Contains(rt.Path, "{tenant}") {
				if rt.Access != httpapi.AuditReader {
					t.Errorf("%s %s reads a tenant's audit trail with access %v; want AuditReader", rt.Method, rt.Path, rt.Access)
				}
				routes = append(routes, rt)
			}
			if rt.Access == httpapi.AuditReader && !strings.HasPrefix(rt.Name, "audit.") {
				t.Errorf("%s %s has AuditReader access but is not an audit route", rt.Method, rt.Path)
			}
		}
		if len(routes) == 0 {
			t.Fatal("no tenant audit route")
		}
		for _, rt := range routes {
			path := fillPath(rt.Path, "tenant-a")
			for _, c := range []struct {
				token  string
				status int
				code   string
			}{
				{"tok-user", http.StatusForbidden, "audit_reader_required"},
				{"tok-user-scope", http.StatusForbidden, "audit_reader_required"},
				{"tok-client", http.StatusForbidden, "audit_reader_required"},
				{"tok-delegated", http.StatusForbidden, "delegated_token_not_allowed"},
				{"tok-admin-b", http.StatusNotFound, "tenant_not_found"},
				{"tok-audit-b", http.StatusNotFound, "tenant_not_found"},
			} {
				r := send(t, env.URL, call{method: rt.Method, path: path, token: c.token})
				wantProblem(t, rt.Method+" "+path+" with "+c.token, r, c.status, c.code, "")
			}
			for _, token := range []string{"tok-admin", "tok-auditor", apitest.AdminToken} {
				var page client.AuditPage
				r := send(t, env.URL, call{method: rt.Method, path: path, token: token})
				wantJSON(t, rt.Method+" "+path+" with "+token, r, http.StatusOK, &page)
				if len(page.Items) == 0 {
					t.Errorf("%s %s with %s: empty trail", rt.Method, path, token)
				}
			}
		}
	})
}
