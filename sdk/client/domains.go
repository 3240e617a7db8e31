package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// The API's bodies for custom domains (package sdk/api), under this
// package's names.
type (
	Domain       = api.Domain
	CreateDomain = api.CreateDomain
)

func domainsPath(tenant string) string {
	return "/v1/tenants/" + url.PathEscape(tenant) + "/domains"
}

// CreateDomain claims a custom domain for a tenant, pending verification.
func (c *Client) CreateDomain(ctx context.Context, tenant string, in CreateDomain) (Domain, error) {
	var out Domain
	err := c.Do(ctx, http.MethodPost, domainsPath(tenant), nil, in, &out)
	return out, err
}

// ListDomains lists a tenant's custom domains.
func (c *Client) ListDomains(ctx context.Context, tenant string) ([]Domain, error) {
	var out api.List[Domain]
	err := c.Do(ctx, http.MethodGet, domainsPath(tenant), nil, nil, &out)
	return out.Items, err
}

// GetDomain returns one of a tenant's custom domains.
func (c *Client) GetDomain(ctx context.Context, tenant, name string) (Domain, error) {
	var out Domain
	err := c.Do(ctx, http.MethodGet, domainsPath(tenant)+"/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// VerifyDomain checks that the tenant controls the domain (its token served
// over HTTP, or in a TXT record) and marks it verified.
func (c *Client) VerifyDomain(ctx context.Context, tenant, name string) (Domain, error) {
	var out Domain
	err := c.Do(ctx, http.MethodPost, domainsPath(tenant)+"/"+url.PathEscape(name)+"/verify", nil, nil, &out)
	return out, err
}

// DeleteDomain releases a tenant's custom domain.
func (c *Client) DeleteDomain(ctx context.Context, tenant, name string) error {
	return c.Do(ctx, http.MethodDelete, domainsPath(tenant)+"/"+url.PathEscape(name), nil, nil, nil)
}
