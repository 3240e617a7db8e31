package httpapi

import (
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/usage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// usageRoutes are the gateway's usage plans (the operator's overrides of
// a tenant's tier plan) and a tenant's usage records (the operator's and
// the tenant's admins').
func (s *Server) usageRoutes() []Route {
	u := s.Usage
	getPlan := jsonCall(http.StatusOK, s.existingTenant, func(r *http.Request, tid tenant.ID, _ none) (api.UsagePlan, error) {
		p, err := u.Override(r.Context(), tid)
		return wirePlan(p), err
	})
	setPlan := jsonCall(http.StatusOK, s.existingTenant, func(r *http.Request, tid tenant.ID, in api.UsagePlan) (api.UsagePlan, error) {
		p := usage.Plan{RPS: in.RPS, Burst: in.Burst, Quota: in.Quota, QuotaPeriod: usage.Period(in.QuotaPeriod)}
		return wirePlan(p), u.SetOverride(r.Context(), tid, p, actor(r))
	})
	deletePlan := jsonCall(http.StatusNoContent, s.existingTenant, func(r *http.Request, tid tenant.ID, _ none) (none, error) {
		return none{}, u.DeleteOverride(r.Context(), tid, actor(r))
	})
	list := jsonCall(http.StatusOK, s.existingTenant, func(r *http.Request, tid tenant.ID, _ none) (api.UsageList, error) {
		from, err := queryTime(r, "from")
		if err != nil {
			return api.UsageList{}, err
		}
		to, err := queryTime(r, "to")
		if err != nil {
			return api.UsageList{}, err
		}
		recs, err := u.Usage(r.Context(), tid, from, to)
		if err != nil {
			return api.UsageList{}, err
		}
		out := api.UsageList{Items: make([]api.UsageRecord, 0, len(recs))}
		for _, b := range usage.LatencyBounds {
			out.LatencyBoundsMS = append(out.LatencyBoundsMS, float64(b)/float64(time.Millisecond))
		}
		for _, rec := range recs {
			out.Items = append(out.Items, api.UsageRecord{Hour: rec.Hour, Requests: rec.Requests, BytesIn: rec.BytesIn,
				BytesOut: rec.BytesOut, Latency: rec.Latency[:],
				Status: api.UsageStatus{S2xx: rec.Status[0], S3xx: rec.Status[1], S4xx: rec.Status[2], S5xx: rec.Status[3]}})
		}
		return out, nil
	})
	return []Route{
		{"GET", "/v1/tenants/{tenant}/usage-plan", "usage.plan_get", Operator, getPlan},
		{"PUT", "/v1/tenants/{tenant}/usage-plan", "usage.plan_set", Operator, setPlan},
		{"DELETE", "/v1/tenants/{tenant}/usage-plan", "usage.plan_delete", Operator, deletePlan},
		{"GET", "/v1/tenants/{tenant}/usage", "usage.list", TenantAdmin, list},
	}
}

func wirePlan(p usage.Plan) api.UsagePlan {
	return api.UsagePlan{RPS: p.RPS, Burst: p.Burst, Quota: p.Quota, QuotaPeriod: string(p.QuotaPeriod)}
}

// queryTime parses the query parameter name as an RFC 3339 time; it is
// required.
func queryTime(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, errs.Field(name, "invalid_time", "%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", name)
	}
	return t, nil
}
