package api

import "time"

// StreamPublished is the answer to a publish: the message's sequence in
// the tenant's stream, and whether it was a duplicate (its id seen within
// the de-duplication window: it was dropped, Seq is the first one's).
type StreamPublished struct {
	Stream    string `json:"stream"`
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
}

// StreamPull asks for messages of a stream for a durable consumer.
type StreamPull struct {
	Consumer    string `json:"consumer"`
	MaxMessages int    `json:"max_messages,omitempty"` // default 1, at most 256
	WaitMS      int    `json:"wait_ms,omitempty"`      // wait up to this long for a first message (at most 20000)
}

// StreamMessage is a pulled message: acknowledge it by its ack id within
// 30 s, or it is delivered again.
type StreamMessage struct {
	AckID       string    `json:"ack_id"`
	Stream      string    `json:"stream"`
	Seq         uint64    `json:"seq"`
	Data        []byte    `json:"data"`
	ContentType string    `json:"content_type,omitempty"`
	ID          string    `json:"id,omitempty"`
	Time        time.Time `json:"time"`
	Deliveries  uint64    `json:"deliveries"`
}

// StreamAck acknowledges pulled messages (or, with nak, asks for their
// redelivery now).
type StreamAck struct {
	AckIDs []string `json:"ack_ids"`
	Nak    bool     `json:"nak,omitempty"`
}

// StreamAckResult counts the acknowledgements that took; Expired lists
// those that did not (already acknowledged, or the consumer is gone).
type StreamAckResult struct {
	Acked   int      `json:"acked"`
	Expired []string `json:"expired"`
}

// StreamConsumer is a durable pull consumer Bulkhead made for the
// caller's tenant: Names are its JetStream consumers on the tenant's
// stream (one, or one per FIFO partition for "fifo"), which a NATS client
// fetches from by name.
type StreamConsumer struct {
	Stream   string   `json:"stream"`
	Consumer string   `json:"consumer"`
	Names    []string `json:"names"`
}
