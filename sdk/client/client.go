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

// Error is a problem+json answer from the server.
type Error struct {
	Status    int    `json:"status"`
	Code      string `json:"code"`
	Title     string `json:"title"`
	Detail    string `json:"detail"`
	Field     string `json:"field"`
	RequestID string `json:"request_id"`
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%d %s", e.Status, e.Code)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Tenant is a tenant as the API returns it.
type Tenant struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Tier      string          `json:"tier"`
	Isolation string          `json:"isolation"`
	Status    string          `json:"status"`
	Domains   []string        `json:"domains"`
	Config    json.RawMessage `json:"config"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`

	// InitialAdmin is set only in the answer of the create that made the
	// tenant with an admin_email: the temporary password, shown once.
	InitialAdmin *InitialAdmin `json:"initial_admin,omitempty"`
}

// InitialAdmin is a new tenant's first admin and their temporary password.
type InitialAdmin struct {
	Email             string `json:"email"`
	TemporaryPassword string `json:"temporary_password"`
}

// CreateTenant is the body of a tenant creation.
type CreateTenant struct {
	ID      string          `json:"id"`
	Name    string          `json:"name,omitempty"`
	Tier    string          `json:"tier,omitempty"`
	Domains []string        `json:"domains,omitempty"`
	Config  json.RawMessage `json:"config,omitempty"`
	// AdminEmail, if set, makes onboarding create the tenant's first admin.
	AdminEmail string `json:"admin_email,omitempty"`
}

// TenantPatch is a partial update; nil fields are left alone.
type TenantPatch struct {
	Name    *string         `json:"name,omitempty"`
	Tier    *string         `json:"tier,omitempty"`
	Domains *[]string       `json:"domains,omitempty"`
	Config  json.RawMessage `json:"config,omitempty"`
}

// TenantPage is a page of tenants.
type TenantPage struct {
	Items      []Tenant `json:"items"`
	NextCursor string   `json:"next_cursor"`
}

// AuditEvent is one audit event.
type AuditEvent struct {
	ID        int64             `json:"id"`
	Time      time.Time         `json:"time"`
	TenantID  string            `json:"tenant_id"`
	Seq       int64             `json:"seq"`
	Principal string            `json:"principal"`
	Action    string            `json:"action"`
	Target    string            `json:"target"`
	Outcome   string            `json:"outcome"`
	RequestID string            `json:"request_id"`
	SourceIP  string            `json:"source_ip"`
	Detail    map[string]string `json:"detail"`
	PrevHash  string            `json:"prev_hash"`
	Hash      string            `json:"hash"`
}

// AuditPage is a page of audit events, newest first.
type AuditPage struct {
	Items      []AuditEvent `json:"items"`
	NextCursor string       `json:"next_cursor"`
}

// AuditQuery filters audit events.
type AuditQuery struct {
	Tenant       string // tenant id, or "-" for platform events
	Action       string
	Since, Until time.Time
	Limit        int
	Cursor       string
}

// VerifyReport is the result of an audit chain verification.
type VerifyReport struct {
	OK     bool  `json:"ok"`
	Chains int   `json:"chains"`
	Events int64 `json:"events"`
	Broken *struct {
		TenantID string `json:"tenant_id"`
		Seq      int64  `json:"seq"`
		EventID  int64  `json:"event_id"`
		Reason   string `json:"reason"`
	} `json:"broken"`
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

// ListAudit returns audit events matching q.
func (c *Client) ListAudit(ctx context.Context, q AuditQuery) (AuditPage, error) {
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
	var p AuditPage
	err := c.Do(ctx, http.MethodGet, "/v1/audit?"+v.Encode(), nil, nil, &p)
	return p, err
}

// VerifyAudit asks the server to verify every audit chain.
func (c *Client) VerifyAudit(ctx context.Context) (VerifyReport, error) {
	var r VerifyReport
	err := c.Do(ctx, http.MethodPost, "/v1/audit/verify", nil, nil, &r)
	return r, err
}
