package usage

import (
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Gather returns the per-tenant series of s as tier/tenant/class=value.
func Gather(t *testing.T, s *Service) []string {
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.metrics)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != "bulkhead_gateway_tenant_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out = append(out, fmt.Sprintf("%s/%s/%s=%g", l["tier"], l["tenant"], l["class"], m.GetCounter().GetValue()))
		}
	}
	slices.Sort(out)
	return out
}

// PlansCached reports whether s caches overrides (its channel listens).
func PlansCached(s *Service) bool { return s.plans.isEnabled() }
