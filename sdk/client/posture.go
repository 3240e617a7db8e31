package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Posture: risky settings of the deployment (tenant admins without a
// second factor, policies that permit everything, keys overdue for
// rotation, …), found by scans that run every 6 hours and on demand.

// The API's bodies for posture (package sdk/api), under this package's names.
type (
	PostureFinding = api.PostureFinding
	PosturePage    = api.PosturePage
	PostureScan    = api.PostureScan
)

// PostureQuery selects findings.
type PostureQuery struct {
	// Tenant is a tenant's findings ("-": the platform's own; "": all,
	// for the operator).
	Tenant   string
	Severity string // this severity or worse
	Resolved bool   // the resolved ones instead of the open ones
	Limit    int
	Cursor   string
}

func (q PostureQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"tenant": q.Tenant, "severity": q.Severity, "cursor": q.Cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Resolved {
		v.Set("resolved", "true")
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// ListPosture returns the operator's view of the findings.
func (c *Client) ListPosture(ctx context.Context, q PostureQuery) (PosturePage, error) {
	path := "/v1/posture"
	if v := q.values(); len(v) > 0 {
		path += "?" + v.Encode()
	}
	return call[PosturePage](ctx, c, http.MethodGet, path, nil)
}

// ListTenantPosture returns a tenant's findings (its admins may call it).
func (c *Client) ListTenantPosture(ctx context.Context, tenant string, q PostureQuery) (PosturePage, error) {
	q.Tenant = ""
	path := authzPath(tenant, "posture")
	if v := q.values(); len(v) > 0 {
		path += "?" + v.Encode()
	}
	return call[PosturePage](ctx, c, http.MethodGet, path, nil)
}

// ScanPosture runs a scan now (operator).
func (c *Client) ScanPosture(ctx context.Context) (PostureScan, error) {
	return call[PostureScan](ctx, c, http.MethodPost, "/v1/posture/scan", nil)
}
