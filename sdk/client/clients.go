package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// The API's bodies for OAuth clients (package sdk/api), under this
// package's names.
type (
	OAuthClient       = api.Client
	CreateOAuthClient = api.CreateClient
)

func clientsPath(tenant string) string {
	if tenant == "" {
		return "/v1/clients"
	}
	return "/v1/tenants/" + url.PathEscape(tenant) + "/clients"
}

// CreateOAuthClient registers a client of a tenant, or a platform client when tenant is "".
func (c *Client) CreateOAuthClient(ctx context.Context, tenant string, in CreateOAuthClient) (OAuthClient, error) {
	var out OAuthClient
	err := c.Do(ctx, http.MethodPost, clientsPath(tenant), nil, in, &out)
	return out, err
}

// ListOAuthClients lists a tenant's clients, or the platform clients when tenant is "".
func (c *Client) ListOAuthClients(ctx context.Context, tenant string) ([]OAuthClient, error) {
	var out api.List[OAuthClient]
	err := c.Do(ctx, http.MethodGet, clientsPath(tenant), nil, nil, &out)
	return out.Items, err
}

// DeleteOAuthClient removes a client.
func (c *Client) DeleteOAuthClient(ctx context.Context, tenant, id string) error {
	return c.Do(ctx, http.MethodDelete, clientsPath(tenant)+"/"+url.PathEscape(id), nil, nil, nil)
}
