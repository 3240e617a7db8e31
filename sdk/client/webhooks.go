package client

import (
	"context"
	"net/http"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Webhooks: the operator's endpoints for Bulkhead's own lifecycle events
// (a tenant suspended, a key rotated, …). Each event is POSTed as an
// Event, signed with Bulkhead-Signature under the webhook's secret, and
// retried with backoff until a 2xx answer: at least once, so a receiver
// de-duplicates by Event.ID.

// The API's bodies for webhooks (package sdk/api), under this package's names.
type (
	Event               = api.Event
	CreateWebhook       = api.CreateWebhook
	Webhook             = api.Webhook
	WebhookCreated      = api.WebhookCreated
	WebhookPage         = api.WebhookPage
	WebhookDelivery     = api.WebhookDelivery
	WebhookDeliveryPage = api.WebhookDeliveryPage
)

const webhooksPath = "/v1/webhooks"

// CreateWebhook makes a webhook and returns it with its signing secret,
// shown this once.
func (c *Client) CreateWebhook(ctx context.Context, in CreateWebhook) (WebhookCreated, error) {
	return call[WebhookCreated](ctx, c, http.MethodPost, webhooksPath, in)
}

// ListWebhooks returns a page of the webhooks, by id.
func (c *Client) ListWebhooks(ctx context.Context, limit int, cursor string) (WebhookPage, error) {
	return call[WebhookPage](ctx, c, http.MethodGet, pagePath(webhooksPath, limit, cursor), nil)
}

// GetWebhook returns a webhook (never its secret).
func (c *Client) GetWebhook(ctx context.Context, id string) (Webhook, error) {
	return call[Webhook](ctx, c, http.MethodGet, itemPath(webhooksPath, id), nil)
}

// DeleteWebhook removes a webhook: nothing more is sent to it.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, itemPath(webhooksPath, id), nil, nil, nil)
}

// WebhookDeliveries returns a page of a webhook's delivery log, newest first.
func (c *Client) WebhookDeliveries(ctx context.Context, id string, limit int, cursor string) (WebhookDeliveryPage, error) {
	return call[WebhookDeliveryPage](ctx, c, http.MethodGet, pagePath(itemPath(webhooksPath, id)+"/deliveries", limit, cursor), nil)
}
