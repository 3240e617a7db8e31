// Package client is the Go client of Bulkhead's HTTP API.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Client calls one Bulkhead server.
type Client struct {
	BaseURL string       // e.g. http://127.0.0.1:8080
	Token   string       // bearer token
	HTTP    *http.Client // default http.DefaultClient
}

// New returns a client for the server at baseURL using token.
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token}
}

// Error is a problem answer from the server (problem+json): its Status,
// its stable Code, and the Field of a bad request.
type Error = api.Problem

// The API's bodies for tenants and the audit trail (package sdk/api),
// under this package's names.
type (
	Tenant       = api.Tenant
	InitialAdmin = api.InitialAdmin
	CreateTenant = api.CreateTenant
	TenantPatch  = api.PatchTenant
	TenantPage   = api.TenantPage
	AuditEvent   = api.AuditEvent
	AuditPage    = api.AuditPage
	VerifyReport = api.VerifyReport
)

// AuditQuery filters audit events.
type AuditQuery struct {
	Tenant       string // tenant id, or "-" for platform events
	Action       string
	Since, Until time.Time
	Limit        int
	Cursor       string
}

// Do sends a request with a JSON body (if in is not nil) and decodes a JSON
// answer into out (if not nil). Extra headers may be given in hdr.
func (c *Client) Do(ctx context.Context, method, path string, hdr http.Header, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: encode request: %w", err)
		}
		body = bytes.NewReader(b)
		hdr = hdr.Clone()
		if hdr == nil {
			hdr = http.Header{}
		}
		hdr.Set("Content-Type", "application/json")
	}
	resp, err := c.send(ctx, method, path, hdr, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("client: decode %s %s: %w", method, path, err)
	}
	return nil
}

// send sends a request and returns a successful answer; a problem answer
// becomes an *Error.
func (c *Client) send(ctx context.Context, method, path string, hdr http.Header, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		e := &Error{Status: resp.StatusCode}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(e); err != nil || e.Code == "" {
			e.Code = "http_" + strconv.Itoa(resp.StatusCode)
		}
		return nil, e
	}
	return resp, nil
}

// ListTiers returns the tiers the deployment offers, by name (operator).
func (c *Client) ListTiers(ctx context.Context) ([]api.Tier, error) {
	var out api.List[api.Tier]
	err := c.Do(ctx, http.MethodGet, "/v1/tiers", nil, nil, &out)
	return out.Items, err
}

// CreateTenant creates a tenant. A non-empty idempotencyKey makes retries safe.
func (c *Client) CreateTenant(ctx context.Context, in CreateTenant, idempotencyKey string) (Tenant, error) {
	var hdr http.Header
	if idempotencyKey != "" {
		hdr = http.Header{"Idempotency-Key": {idempotencyKey}}
	}
	var t Tenant
	err := c.Do(ctx, http.MethodPost, "/v1/tenants", hdr, in, &t)
	return t, err
}

// GetTenant returns one tenant.
func (c *Client) GetTenant(ctx context.Context, id string) (Tenant, error) {
	var t Tenant
	err := c.Do(ctx, http.MethodGet, "/v1/tenants/"+url.PathEscape(id), nil, nil, &t)
	return t, err
}

// ListTenants returns a page of tenants.
func (c *Client) ListTenants(ctx context.Context, limit int, cursor string) (TenantPage, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var p TenantPage
	err := c.Do(ctx, http.MethodGet, "/v1/tenants?"+q.Encode(), nil, nil, &p)
	return p, err
}

// UpdateTenant applies a partial update.
func (c *Client) UpdateTenant(ctx context.Context, id string, p TenantPatch) (Tenant, error) {
	var t Tenant
	err := c.Do(ctx, http.MethodPatch, "/v1/tenants/"+url.PathEscape(id), nil, p, &t)
	return t, err
}

// SuspendTenant suspends a tenant.
func (c *Client) SuspendTenant(ctx context.Context, id string) (Tenant, error) {
	var t Tenant
	err := c.Do(ctx, http.MethodPost, "/v1/tenants/"+url.PathEscape(id)+"/suspend", nil, nil, &t)
	return t, err
}

// ResumeTenant resumes a suspended tenant.
func (c *Client) ResumeTenant(ctx context.Context, id string) (Tenant, error) {
	var t Tenant
	err := c.Do(ctx, http.MethodPost, "/v1/tenants/"+url.PathEscape(id)+"/resume", nil, nil, &t)
	return t, err
}

// DeleteTenant starts offboarding.
func (c *Client) DeleteTenant(ctx context.Context, id string) (Tenant, error) {
	var t Tenant
	err := c.Do(ctx, http.MethodDelete, "/v1/tenants/"+url.PathEscape(id), nil, nil, &t)
	return t, err
}

// TenantWorkflows returns a tenant's onboarding and offboarding workflows
// (operator).
func (c *Client) TenantWorkflows(ctx context.Context, id string) ([]api.Workflow, error) {
	var out api.List[api.Workflow]
	err := c.Do(ctx, http.MethodGet, "/v1/tenants/"+url.PathEscape(id)+"/workflows", nil, nil, &out)
	return out.Items, err
}

// ListAudit returns audit events matching q, of every chain (operator).
func (c *Client) ListAudit(ctx context.Context, q AuditQuery) (AuditPage, error) {
	var p AuditPage
	err := c.Do(ctx, http.MethodGet, "/v1/audit?"+q.values().Encode(), nil, nil, &p)
	return p, err
}

// ListTenantAudit returns the audit events of one tenant's chain matching
// q (q.Tenant is not needed). Its admins may read it, and its clients
// registered for the scope audit:read.
func (c *Client) ListTenantAudit(ctx context.Context, tenant string, q AuditQuery) (AuditPage, error) {
	var p AuditPage
	err := c.Do(ctx, http.MethodGet, "/v1/tenants/"+url.PathEscape(tenant)+"/audit?"+q.values().Encode(), nil, nil, &p)
	return p, err
}

// values is q as a query string's parameters.
func (q AuditQuery) values() url.Values {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("tenant", q.Tenant)
	set("action", q.Action)
	set("cursor", q.Cursor)
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// VerifyAudit asks the server to verify every audit chain.
func (c *Client) VerifyAudit(ctx context.Context) (VerifyReport, error) {
	var r VerifyReport
	err := c.Do(ctx, http.MethodPost, "/v1/audit/verify", nil, nil, &r)
	return r, err
}
