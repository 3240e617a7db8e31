package api

import "time"

// Event is one of Bulkhead's own lifecycle events, as the operator's
// stream (subject bulkhead.events.<type>) and the operator's webhooks get
// it. The shape is stable; fields may be added.
type Event struct {
	// ID (evt_…) is the stream message's Nats-Msg-Id; a webhook may get
	// an event more than once, and its receiver de-duplicates by ID.
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	TenantID string    `json:"tenant_id,omitempty"` // empty for the platform's own events
	Time     time.Time `json:"time"`
	// Subject is what the event is about: a tenant id, a key id, a grant id.
	Subject   string            `json:"subject,omitempty"`
	Principal string            `json:"principal,omitempty"` // who made the change ("system" for workflows)
	Data      map[string]string `json:"data"`
}

// CreateWebhook makes an operator's webhook for the events whose types
// match Events: a type ("tenant.suspended"), a prefix and ".*"
// ("tenant.*") or "*" (every type).
type CreateWebhook struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
}

// Webhook is an operator's webhook.
type Webhook struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"created_at"`
}

// WebhookCreated is a new webhook with its signing secret (whsec_…),
// shown this once: it signs every delivery (Bulkhead-Signature).
type WebhookCreated struct {
	Webhook
	Secret string `json:"secret"`
}

// WebhookPage is a page of webhooks, by id.
type WebhookPage struct {
	Items      []Webhook `json:"items"`
	NextCursor string    `json:"next_cursor"`
}

// WebhookDelivery is one event's delivery to a webhook. Status is
// pending (NextAttemptAt says when it is tried again), delivered (a 2xx
// answer, at DeliveredAt) or failed (the retries ran out).
type WebhookDelivery struct {
	ID             string    `json:"id"`
	EventID        string    `json:"event_id"`
	Type           string    `json:"type"`
	Status         string    `json:"status"`
	Attempts       int       `json:"attempts"`
	LastStatusCode int       `json:"last_status_code,omitempty"`
	LastError      string    `json:"last_error,omitempty"`
	NextAttemptAt  time.Time `json:"next_attempt_at,omitzero"`
	DeliveredAt    time.Time `json:"delivered_at,omitzero"`
	CreatedAt      time.Time `json:"created_at"`
}

// WebhookDeliveryPage is a page of a webhook's delivery log, newest first.
type WebhookDeliveryPage struct {
	Items      []WebhookDelivery `json:"items"`
	NextCursor string            `json:"next_cursor"`
}
