package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/probe"
	"github.com/bulkhead-dev/bulkhead/internal/probe/probetest"
)

// BenchmarkProbe measures bulkhead probe scanning Bulkhead's own API (its
// served OpenAPI document, the recipe of internal/probe/probetest, two
// tenants' admins; an in-process node on SQLite over loopback HTTP): the
// time of a whole scan and its throughput, unbounded and with a rate of
// 200 requests a second, where the limiter should be all that bounds it.
func BenchmarkProbe(b *testing.B) {
	cfg := probetest.Bulkhead(b)
	for _, rate := range []float64{0, 200} {
		b.Run(fmt.Sprintf("rate=%g", rate), func(b *testing.B) {
			var requests, probed int
			var took time.Duration
			cfg.Rate = rate
			for b.Loop() {
				start := time.Now()
				rep, err := probe.Run(b.Context(), cfg)
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
