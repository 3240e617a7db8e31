package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// The API's bodies for operators (package sdk/api), under this package's
// names.
type (
	Operator        = api.Operator
	CreateOperator  = api.CreateOperator
	CreatedOperator = api.CreatedOperator
)

func operatorPath(id string) string { return "/v1/operators/" + url.PathEscape(id) }

// CreateOperator adds an operator. The answer holds their temporary
// password and TOTP enrollment, shown once.
func (c *Client) CreateOperator(ctx context.Context, in CreateOperator) (CreatedOperator, error) {
	var out CreatedOperator
	err := c.Do(ctx, http.MethodPost, "/v1/operators", nil, in, &out)
	return out, err
}

// ListOperators lists the operators.
func (c *Client) ListOperators(ctx context.Context) ([]Operator, error) {
	var out api.List[Operator]
	err := c.Do(ctx, http.MethodGet, "/v1/operators", nil, nil, &out)
	return out.Items, err
}

// GetOperator returns one operator.
func (c *Client) GetOperator(ctx context.Context, id string) (Operator, error) {
	var out Operator
	err := c.Do(ctx, http.MethodGet, operatorPath(id), nil, nil, &out)
	return out, err
}

// DisableOperator stops an operator from signing in and returns them.
func (c *Client) DisableOperator(ctx context.Context, id string) (Operator, error) {
	var out Operator
	err := c.Do(ctx, http.MethodPost, operatorPath(id)+"/disable", nil, nil, &out)
	return out, err
}

// DeleteOperator removes an operator.
func (c *Client) DeleteOperator(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, operatorPath(id), nil, nil, nil)
}
