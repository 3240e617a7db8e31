package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// OAuthClient is an OAuth client registered with Bulkhead's OpenID provider.
type OAuthClient struct {
	ClientID     string    `json:"client_id"`
	ClientSecret string    `json:"client_secret,omitempty"` // only in a create's answer
	TenantID     string    `json:"tenant_id,omitempty"`
	Name         string    `json:"name"`
	GrantTypes   []string  `json:"grant_types"`
	RedirectURIs []string  `json:"redirect_uris"`
	Scopes       []string  `json:"scopes"`
	Public       bool      `json:"public"`
	CreatedAt    time.Time `json:"created_at"`
}

// CreateOAuthClient is the body of a client registration.
type CreateOAuthClient struct {
	Name         string   `json:"name"`
	GrantTypes   []string `json:"grant_types"`
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
	Public       bool     `json:"public,omitempty"`
}

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
	var out struct {
		Items []OAuthClient `json:"items"`
	}
	err := c.Do(ctx, http.MethodGet, clientsPath(tenant), nil, nil, &out)
	return out.Items, err
}

// DeleteOAuthClient removes a client.
func (c *Client) DeleteOAuthClient(ctx context.Context, tenant, id string) error {
	return c.Do(ctx, http.MethodDelete, clientsPath(tenant)+"/"+url.PathEscape(id), nil, nil, nil)
}
