package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
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

// The API's bodies for connections (package sdk/api), under this
// package's names.
type (
	Placement         = api.Placement
	Alerts            = api.ConnectionAlerts
	Connection        = api.Connection
	ConnectionPage    = api.ConnectionPage
	GrantOptions      = api.GrantOptions
	CreateConnection  = api.CreateConnection
	ConnectionCreated = api.ConnectionCreated
	UpdateConnection  = api.UpdateConnection
	ConnectionUpdated = api.ConnectionUpdated
	Grant             = api.Grant
	IssuedGrant       = api.IssuedGrant
	TokenSource       = api.TokenSource
	Alert             = api.Alert
	AlertPage         = api.AlertPage
)

// CreateGrant is what CreateGrant sends: the new grant's settings and the
// token (see TokenSource). It is the body api.CreateGrant, in two parts.
type CreateGrant struct {
	GrantOptions
	TokenSource
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
	body := api.CreateGrant{Name: in.Name, AutoSuspend: in.AutoSuspend, Token: in.Token, PartA: in.PartA}
	return call[IssuedGrant](ctx, c, http.MethodPost, grantsPath(tenant, connection), body)
}

// ListGrants returns a connection's grants.
func (c *Client) ListGrants(ctx context.Context, tenant, connection string) ([]Grant, error) {
	out, err := call[api.List[Grant]](ctx, c, http.MethodGet, grantsPath(tenant, connection), nil)
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
	in := api.SuspendGrant{Reason: reason}
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
