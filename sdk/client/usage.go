package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// The gateway's usage plans and usage records (package sdk/api), under
// this package's names.
type (
	UsagePlan   = api.UsagePlan
	UsageRecord = api.UsageRecord
	UsageStatus = api.UsageStatus
	UsageList   = api.UsageList
)

func usagePlanPath(tenant string) string {
	return "/v1/tenants/" + url.PathEscape(tenant) + "/usage-plan"
}

// GetUsagePlan returns a tenant's own usage plan (operator only); an
// error of code usage_plan_not_found means its tier's applies.
func (c *Client) GetUsagePlan(ctx context.Context, tenant string) (UsagePlan, error) {
	return call[UsagePlan](ctx, c, http.MethodGet, usagePlanPath(tenant), nil)
}

// SetUsagePlan gives a tenant a usage plan of its own, replacing its
// tier's on every gateway node (operator only).
func (c *Client) SetUsagePlan(ctx context.Context, tenant string, p UsagePlan) (UsagePlan, error) {
	return call[UsagePlan](ctx, c, http.MethodPut, usagePlanPath(tenant), p)
}

// DeleteUsagePlan returns a tenant to its tier's usage plan (operator only).
func (c *Client) DeleteUsagePlan(ctx context.Context, tenant string) error {
	return c.Do(ctx, http.MethodDelete, usagePlanPath(tenant), nil, nil, nil)
}

// Usage returns a tenant's hourly gateway usage from the hour that holds
// from to the one before to (the operator, or an admin of the tenant).
func (c *Client) Usage(ctx context.Context, tenant string, from, to time.Time) (UsageList, error) {
	q := url.Values{"from": {from.UTC().Format(time.RFC3339)}, "to": {to.UTC().Format(time.RFC3339)}}
	return call[UsageList](ctx, c, http.MethodGet, "/v1/tenants/"+url.PathEscape(tenant)+"/usage?"+q.Encode(), nil)
}
