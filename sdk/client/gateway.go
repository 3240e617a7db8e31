package client

import (
	"context"
	"net/http"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// The edge gateway's routes (operator only). Routes from the node's routes
// file are listed with Source "file" and cannot be changed here.
type (
	GatewayRoute     = api.GatewayRoute
	PutGatewayRoute  = api.PutGatewayRoute
	GatewayRouteList = api.GatewayRouteList
)

const gatewayRoutesPath = "/v1/gateway/routes"

// ListGatewayRoutes returns every route of the gateway.
func (c *Client) ListGatewayRoutes(ctx context.Context) (GatewayRouteList, error) {
	return call[GatewayRouteList](ctx, c, http.MethodGet, gatewayRoutesPath, nil)
}

// GetGatewayRoute returns one route.
func (c *Client) GetGatewayRoute(ctx context.Context, id string) (GatewayRoute, error) {
	return call[GatewayRoute](ctx, c, http.MethodGet, itemPath(gatewayRoutesPath, id), nil)
}

// PutGatewayRoute creates or replaces the route id; every node serves it
// at once.
func (c *Client) PutGatewayRoute(ctx context.Context, id string, in PutGatewayRoute) (GatewayRoute, error) {
	return call[GatewayRoute](ctx, c, http.MethodPut, itemPath(gatewayRoutesPath, id), in)
}

// DeleteGatewayRoute removes the route id.
func (c *Client) DeleteGatewayRoute(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, itemPath(gatewayRoutesPath, id), nil, nil, nil)
}
