package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Connections: a tenant's links to third-party APIs, for its admins (or
// the operator). Bulkhead never stores a connection's upstream token: each
// grant of the connection splits it into Part A, handed to one integration
// (and shown once), and Part B, kept encrypted under the tenant's key. The
// integration calls {proxy}/c/{connection}/{path} with Part A as its
// bearer token; the proxy recombines the token for that one request.
//
// Since Bulkhead never holds the whole token, adding a grant, rotating one
// and replacing the token take the token again, or a current Part A of the
// connection (see TokenSource).

// Placements: how the proxy presents the token to the upstream.
const (
	PlacementBearer = "bearer" // Authorization: Bearer <token> (the default)
	PlacementHeader = "header" // <Placement.Name>: <token>
	PlacementQuery  = "query"  // ?<Placement.Name>=<token>
)

// Grant states.
const (
	GrantActive    = "active"
	GrantSuspended = "suspended" // its Part A is refused (403 grant_suspended) until resumed
)

// Alert kinds.
const (
	AlertRequestRate   = "request_rate"   // far more requests in a window than the grant's baseline
	AlertBytesOut      = "bytes_out"      // far more data sent back than the baseline
	AlertDistinctPaths = "distinct_paths" // far more distinct paths (enumeration) than the baseline
	AlertNewNetwork    = "new_network"    // a source network the grant was never used from
)

// Placement says how the token is presented to the upstream.
type Placement struct {
	Type string `json:"type"`           // a Placement… constant ("" for bearer)
	Name string `json:"name,omitempty"` // the header or query parameter (header, query)
}

// Alerts are a connection's anomaly settings.
type Alerts struct {
	// Sensitivity is how far (in deviations of a grant's baseline) its
	// traffic may go before it raises an alert: 1 (most sensitive) to 50;
	// 0 asks for the default, 4.
	Sensitivity float64 `json:"sensitivity,omitempty"`
	// WebhookURL, when set, receives each alert as a signed POST.
	WebhookURL string `json:"webhook_url,omitempty"`
}

// Connection is a tenant's connection to a third-party API. It never holds
// the token.
type Connection struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	Name        string    `json:"name"`
	UpstreamURL string    `json:"upstream_url"`
	Placement   Placement `json:"placement"`
	// AllowedMethods are the methods integrations may use (empty: every
	// method).
	AllowedMethods []string `json:"allowed_methods"`
	// AllowedPaths are path prefixes under the upstream URL that
	// integrations may call (empty: every path).
	AllowedPaths []string `json:"allowed_paths"`
	Alerts       Alerts   `json:"alerts"`
	// TokenVersion counts the token's replacements (1 for the first).
	TokenVersion int       `json:"token_version"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// ConnectionPage is a page of connections, by id.
type ConnectionPage struct {
	Items      []Connection `json:"items"`
	NextCursor string       `json:"next_cursor"`
}

// GrantOptions are the settings of a new grant.
type GrantOptions struct {
	// Name says which integration the grant is for (optional; 1 to 100 of
	// A-Z a-z 0-9 . _ -).
	Name string `json:"name,omitempty"`
	// AutoSuspend makes an anomaly alert suspend the grant.
	AutoSuspend bool `json:"auto_suspend,omitempty"`
}

// CreateConnection is the body of a connection creation.
type CreateConnection struct {
	// Name is unique in the tenant: 1 to 100 of A-Z a-z 0-9 . _ -.
	Name string `json:"name"`
	// UpstreamURL is http(s)://host[:port][/path prefix], without
	// userinfo, query or fragment; the proxy sends requests there only.
	UpstreamURL string `json:"upstream_url"`
	// Token is the upstream token (visible ASCII, at most 8192 bytes): it
	// is split at once and never stored whole.
	Token          string    `json:"token"`
	Placement      Placement `json:"placement"`
	AllowedMethods []string  `json:"allowed_methods,omitempty"`
	AllowedPaths   []string  `json:"allowed_paths,omitempty"`
	Alerts         Alerts    `json:"alerts"`
	// Grant sets the connection's first grant, made with it.
	Grant GrantOptions `json:"grant"`
}

// ConnectionCreated is a new connection with its first grant, whose Part A
// is shown this once, and the signing secret of its alert webhook, if it
// has one (shown this once too).
type ConnectionCreated struct {
	Connection
	Grant         IssuedGrant `json:"grant"`
	WebhookSecret string      `json:"webhook_secret,omitempty"`
}

// UpdateConnection is a partial update of a connection; nil fields are
// left alone. A new Token re-splits every grant: each gets a new Part A
// and the old ones stop working. UpstreamURL changes only with Token, so
// that a token is never sent to a host it was not given for. Alerts
// replaces both settings (a WebhookURL left empty removes the webhook).
type UpdateConnection struct {
	Name           *string    `json:"name,omitempty"`
	UpstreamURL    *string    `json:"upstream_url,omitempty"`
	Token          *string    `json:"token,omitempty"`
	Placement      *Placement `json:"placement,omitempty"`
	AllowedMethods *[]string  `json:"allowed_methods,omitempty"`
	AllowedPaths   *[]string  `json:"allowed_paths,omitempty"`
	Alerts         *Alerts    `json:"alerts,omitempty"`
}

// ConnectionUpdated is a changed connection; after a token replacement,
// its grants with their new Part As (shown this once), and the signing
// secret of a new alert webhook.
type ConnectionUpdated struct {
	Connection
	Grants        []IssuedGrant `json:"grants,omitempty"`
	WebhookSecret string        `json:"webhook_secret,omitempty"`
}

// Grant is one integration's access to a connection.
type Grant struct {
	ID           string `json:"id"`
	ConnectionID string `json:"connection_id"`
	Name         string `json:"name,omitempty"`
	Status       string `json:"status"` // GrantActive or GrantSuspended
	AutoSuspend  bool   `json:"auto_suspend"`
	// SuspendedReason says why a suspended grant was suspended.
	SuspendedReason string     `json:"suspended_reason,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	RotatedAt       *time.Time `json:"rotated_at,omitempty"`
}

// IssuedGrant is a grant with its Part A, shown once: the integration's
// bearer token at the proxy.
type IssuedGrant struct {
	Grant
	PartA string `json:"part_a"`
}

// TokenSource brings a connection's token to a request that needs it
// whole (Bulkhead keeps only Part Bs): either Token, the upstream token
// (checked against the connection's), or PartA, a current Part A of an
// active grant of the connection. Not both.
type TokenSource struct {
	Token string `json:"token,omitempty"`
	PartA string `json:"part_a,omitempty"`
}

// CreateGrant is the body of a grant creation: the new grant's settings
// and the token (see TokenSource).
type CreateGrant struct {
	GrantOptions
	TokenSource
}

// Alert is an anomaly of a grant's traffic.
type Alert struct {
	ID           string            `json:"id"`
	TenantID     string            `json:"tenant_id"`
	ConnectionID string            `json:"connection_id"`
	GrantID      string            `json:"grant_id"`
	Kind         string            `json:"kind"` // an Alert… constant
	Detail       map[string]string `json:"detail"`
	// GrantSuspended reports that the alert suspended the grant (its
	// AutoSuspend was set).
	GrantSuspended bool      `json:"grant_suspended"`
	CreatedAt      time.Time `json:"created_at"`
}

// AlertPage is a page of alerts, newest first.
type AlertPage struct {
	Items      []Alert `json:"items"`
	NextCursor string  `json:"next_cursor"`
}

func connectionsPath(tenant string) string {
	return "/v1/tenants/" + url.PathEscape(tenant) + "/connections"
}

func connectionPath(tenant, connection string) string {
	return itemPath(connectionsPath(tenant), connection)
}

func grantsPath(tenant, connection string) string {
	return connectionPath(tenant, connection) + "/grants"
}

func grantPath(tenant, connection, grant string) string {
	return itemPath(grantsPath(tenant, connection), grant)
}

// CreateConnection makes a connection in a tenant, with its first grant.
func (c *Client) CreateConnection(ctx context.Context, tenant string, in CreateConnection) (ConnectionCreated, error) {
	return call[ConnectionCreated](ctx, c, http.MethodPost, connectionsPath(tenant), in)
}

// ListConnections returns a page of a tenant's connections.
func (c *Client) ListConnections(ctx context.Context, tenant string, limit int, cursor string) (ConnectionPage, error) {
	return call[ConnectionPage](ctx, c, http.MethodGet, pagePath(connectionsPath(tenant), limit, cursor), nil)
}

// GetConnection returns a connection of a tenant.
func (c *Client) GetConnection(ctx context.Context, tenant, connection string) (Connection, error) {
	return call[Connection](ctx, c, http.MethodGet, connectionPath(tenant, connection), nil)
}

// UpdateConnection applies a partial update to a connection.
func (c *Client) UpdateConnection(ctx context.Context, tenant, connection string, in UpdateConnection) (ConnectionUpdated, error) {
	return call[ConnectionUpdated](ctx, c, http.MethodPatch, connectionPath(tenant, connection), in)
}

// DeleteConnection removes a connection and its grants: every Part A of
// it stops working at once.
func (c *Client) DeleteConnection(ctx context.Context, tenant, connection string) error {
	return c.Do(ctx, http.MethodDelete, connectionPath(tenant, connection), nil, nil, nil)
}

// CreateGrant adds a grant to a connection and returns it with its Part A.
func (c *Client) CreateGrant(ctx context.Context, tenant, connection string, in CreateGrant) (IssuedGrant, error) {
	return call[IssuedGrant](ctx, c, http.MethodPost, grantsPath(tenant, connection), in)
}

// ListGrants returns a connection's grants.
func (c *Client) ListGrants(ctx context.Context, tenant, connection string) ([]Grant, error) {
	out, err := call[struct {
		Items []Grant `json:"items"`
	}](ctx, c, http.MethodGet, grantsPath(tenant, connection), nil)
	return out.Items, err
}

// RotateGrant gives a grant a new Part A (the old one stops working at
// once) without changing the upstream token, which src brings.
func (c *Client) RotateGrant(ctx context.Context, tenant, connection, grant string, src TokenSource) (IssuedGrant, error) {
	return call[IssuedGrant](ctx, c, http.MethodPost, grantPath(tenant, connection, grant)+"/rotate", src)
}

// SuspendGrant suspends a grant: its Part A is refused from the next
// request on. reason is optional.
func (c *Client) SuspendGrant(ctx context.Context, tenant, connection, grant, reason string) (Grant, error) {
	in := struct {
		Reason string `json:"reason,omitempty"`
	}{reason}
	return call[Grant](ctx, c, http.MethodPost, grantPath(tenant, connection, grant)+"/suspend", in)
}

// ResumeGrant makes a suspended grant active again.
func (c *Client) ResumeGrant(ctx context.Context, tenant, connection, grant string) (Grant, error) {
	return call[Grant](ctx, c, http.MethodPost, grantPath(tenant, connection, grant)+"/resume", nil)
}

// DeleteGrant removes a grant: its Part A stops working at once.
func (c *Client) DeleteGrant(ctx context.Context, tenant, connection, grant string) error {
	return c.Do(ctx, http.MethodDelete, grantPath(tenant, connection, grant), nil, nil, nil)
}

// ConnectionActivity returns a page of a connection's proxied requests
// (audit events of action connection.request), newest first.
func (c *Client) ConnectionActivity(ctx context.Context, tenant, connection string, limit int, cursor string) (AuditPage, error) {
	return call[AuditPage](ctx, c, http.MethodGet, pagePath(connectionPath(tenant, connection)+"/activity", limit, cursor), nil)
}

// ListAlerts returns a page of a tenant's anomaly alerts, newest first:
// of one connection, or of all of them when connection is "".
func (c *Client) ListAlerts(ctx context.Context, tenant, connection string, limit int, cursor string) (AlertPage, error) {
	q := url.Values{}
	if connection != "" {
		q.Set("connection", connection)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	return call[AlertPage](ctx, c, http.MethodGet, "/v1/tenants/"+url.PathEscape(tenant)+"/alerts?"+q.Encode(), nil)
}
