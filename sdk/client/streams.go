package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// The API's bodies for event streams (package sdk/api), under this
// package's names.
type (
	StreamPublished = api.StreamPublished
	StreamPull      = api.StreamPull
	StreamMessage   = api.StreamMessage
	StreamAckResult = api.StreamAckResult
	StreamConsumer  = api.StreamConsumer
)

// Publication is a message to publish over HTTP.
type Publication struct {
	Data        []byte
	ContentType string // kept with the message (default application/octet-stream)
	// ID de-duplicates: a second publication with the same id within the
	// stream's window (2 minutes) is dropped.
	ID string
}

func streamPath(stream, what string) string {
	return "/v1/streams/" + url.PathEscape(stream) + "/" + what
}

// Publish stores a message in the caller's tenant's stream (a token with
// the scope events:publish): stream "orders" is t.<tenant>.orders,
// "fifo.<group>" a message of a FIFO group.
func (c *Client) Publish(ctx context.Context, stream string, p Publication) (StreamPublished, error) {
	hdr := http.Header{"Content-Type": {"application/octet-stream"}}
	if p.ContentType != "" {
		hdr.Set("Content-Type", p.ContentType)
	}
	if p.ID != "" {
		hdr.Set("Idempotency-Key", p.ID)
	}
	var out StreamPublished
	res, err := c.raw(ctx, http.MethodPost, streamPath(stream, "messages"), hdr, p.Data)
	if err != nil {
		return out, err
	}
	return out, json.Unmarshal(res.Body, &out)
}

// Pull takes messages of stream for the durable consumer in.Consumer (a
// token with the scope events:subscribe); each is delivered again unless
// acknowledged within 30 s.
func (c *Client) Pull(ctx context.Context, stream string, in StreamPull) ([]StreamMessage, error) {
	var out api.List[StreamMessage]
	err := c.Do(ctx, http.MethodPost, streamPath(stream, "pull"), nil, in, &out)
	return out.Items, err
}

// Ack acknowledges pulled messages by their ack ids.
func (c *Client) Ack(ctx context.Context, stream string, ackIDs ...string) (StreamAckResult, error) {
	return call[StreamAckResult](ctx, c, http.MethodPost, streamPath(stream, "acks"), api.StreamAck{AckIDs: ackIDs})
}

// Nak asks for the redelivery of pulled messages now.
func (c *Client) Nak(ctx context.Context, stream string, ackIDs ...string) (StreamAckResult, error) {
	return call[StreamAckResult](ctx, c, http.MethodPost, streamPath(stream, "acks"), api.StreamAck{AckIDs: ackIDs, Nak: true})
}

// MakeConsumer makes (or finds) the caller's tenant's durable pull
// consumer of stream and returns its JetStream names, for a NATS client
// to fetch from (on an external NATS server, tenants may not make
// consumers over NATS).
func (c *Client) MakeConsumer(ctx context.Context, stream, consumer string) (StreamConsumer, error) {
	return call[StreamConsumer](ctx, c, http.MethodPut, streamPath(stream, "consumers/"+url.PathEscape(consumer)), nil)
}
