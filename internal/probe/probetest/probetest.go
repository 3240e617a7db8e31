// Package probetest points bulkhead probe at Bulkhead's own API: an
// in-process node on SQLite with two tenants whose administrators the
// probe acts as, the document the node serves, and the recipe for it
// (bulkhead.recipe.json, which users may copy to probe a deployment of
// their own). The probe's tests and its benchmark share it.
package probetest

import (
	_ "embed"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/probe"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// Recipe is the recipe for Bulkhead's own API.
//
//go:embed bulkhead.recipe.json
var Recipe []byte

// Bulkhead starts a node with tenants probe-a and probe-b and returns a
// probe run over its API as their administrators (labels a and b).
func Bulkhead(tb testing.TB) probe.Config {
	tb.Helper()
	const tokA, tokB = "probe-token-of-a-0123456789", "probe-token-of-b-0123456789"
	env := apitest.New(tb, storagetest.DSN(tb, storage.SQLite), apitest.Options{TenantTokens: map[string]tenant.Context{
		tokA: {TenantID: "probe-a", Principal: "user:a", Groups: []string{"admins"}},
		tokB: {TenantID: "probe-b", Principal: "user:b", Groups: []string{"admins"}},
	}})
	for _, id := range []string{"probe-a", "probe-b"} {
		if _, err := env.Admin.CreateTenant(tb.Context(), client.CreateTenant{ID: id}, ""); err != nil {
			tb.Fatal(err)
		}
	}
	doc, err := probe.FetchDocument(tb.Context(), env.URL, env.URL+"/v1/openapi.json")
	if err != nil {
		tb.Fatal(err)
	}
	recipe, err := probe.ParseRecipe(Recipe)
	if err != nil {
		tb.Fatal(err)
	}
	return probe.Config{Document: doc, DocumentName: "openapi.json", BaseURL: env.URL, Recipe: recipe,
		Identities: []probe.Identity{{Label: "a", Tenant: "probe-a", Token: tokA}, {Label: "b", Tenant: "probe-b", Token: tokB}}}
}
