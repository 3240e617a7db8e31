package probe_test

import (
	"os"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/probe"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestBulkheadHasNoFindings probes Bulkhead's own API, as the document it
// serves describes it, with two tenants' administrators: nothing found.
func TestBulkheadHasNoFindings(t *testing.T) {
	env := apitest.New(t, storagetest.DSN(t, storage.SQLite), apitest.Options{TenantTokens: map[string]tenant.Context{
		"probe-token-of-a-0123456789": {TenantID: "probe-a", Principal: "user:a", Groups: []string{"admins"}},
		"probe-token-of-b-0123456789": {TenantID: "probe-b", Principal: "user:b", Groups: []string{"admins"}},
	}})
	for _, id := range []string{"probe-a", "probe-b"} {
		if _, err := env.Admin.CreateTenant(t.Context(), client.CreateTenant{ID: id}, ""); err != nil {
			t.Fatal(err)
		}
	}
	doc, err := probe.FetchDocument(t.Context(), env.URL, env.URL+"/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("testdata/bulkhead.recipe.json")
	if err != nil {
		t.Fatal(err)
	}
	recipe, err := probe.ParseRecipe(b)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := probe.Run(t.Context(), probe.Config{Document: doc, DocumentName: "openapi.json", BaseURL: env.URL, Recipe: recipe,
		Identities: []probe.Identity{{Label: "a", Tenant: "probe-a", Token: "probe-token-of-a-0123456789"},
			{Label: "b", Tenant: "probe-b", Token: "probe-token-of-b-0123456789"}}})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Log(text.String())
	if len(rep.Findings) != 0 || rep.Incomplete != "" {
		t.Fatalf("findings on Bulkhead's own API:\n%s", text.String())
	}
}
