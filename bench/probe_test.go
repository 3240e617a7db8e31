package bench

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/probe"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// BenchmarkProbe measures bulkhead probe scanning Bulkhead's own API (its
// served OpenAPI document, the recipe of internal/probe/testdata, two
// tenants' admins; an in-process node on SQLite over loopback HTTP): the
// time of a whole scan and its throughput, unbounded and with a rate of
// 200 requests a second, where the limiter should be all that bounds it.
func BenchmarkProbe(b *testing.B) {
	env := apitest.New(b, storagetest.DSN(b, storage.SQLite), apitest.Options{TenantTokens: map[string]tenant.Context{
		"bench-probe-token-a-0123456789": {TenantID: "bench-probe-a", Principal: "user:a", Groups: []string{"admins"}},
		"bench-probe-token-b-0123456789": {TenantID: "bench-probe-b", Principal: "user:b", Groups: []string{"admins"}},
	}})
	for _, id := range []string{"bench-probe-a", "bench-probe-b"} {
		if _, err := env.Admin.CreateTenant(b.Context(), client.CreateTenant{ID: id}, ""); err != nil {
			b.Fatal(err)
		}
	}
	doc, err := probe.FetchDocument(b.Context(), env.URL, env.URL+"/v1/openapi.json")
	if err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile("../internal/probe/testdata/bulkhead.recipe.json")
	if err != nil {
		b.Fatal(err)
	}
	recipe, err := probe.ParseRecipe(raw)
	if err != nil {
		b.Fatal(err)
	}
	for _, rate := range []float64{0, 200} {
		b.Run(fmt.Sprintf("rate=%g", rate), func(b *testing.B) {
			var requests, probed int
			var took time.Duration
			for b.Loop() {
				start := time.Now()
				rep, err := probe.Run(b.Context(), probe.Config{Document: doc, DocumentName: "openapi.json", BaseURL: env.URL,
					Recipe: recipe, Rate: rate, Identities: []probe.Identity{
						{Label: "a", Tenant: "bench-probe-a", Token: "bench-probe-token-a-0123456789"},
						{Label: "b", Tenant: "bench-probe-b", Token: "bench-probe-token-b-0123456789"}}})
				took += time.Since(start)
				if err != nil || len(rep.Findings) > 0 || rep.Incomplete != "" {
					b.Fatalf("a scan: %v, %d findings, incomplete %q", err, len(rep.Findings), rep.Incomplete)
				}
				requests += rep.Requests
				probed += rep.Probed
			}
			b.ReportMetric(took.Seconds()/float64(b.N), "s/scan")
			b.ReportMetric(float64(requests)/took.Seconds(), "requests/s")
			b.ReportMetric(float64(probed)/took.Seconds(), "operations/s")
			b.ReportMetric(float64(probed)/float64(b.N), "operations/scan")
			b.ReportMetric(float64(requests)/float64(b.N), "requests/scan")
		})
	}
}
