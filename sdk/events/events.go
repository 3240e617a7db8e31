// Package events connects an application to its tenant's event streams in
// Bulkhead: NATS with a Bulkhead token and nothing else.
//
// Bulkhead is the NATS server's auth callout: Connect hands the server the
// application's Bulkhead token (a client-credentials token of the tenant
// with the scopes events:publish and/or events:subscribe) and sets the
// tenant's own reply inbox, the only one its connection may use. The
// connection may publish and subscribe under t.<tenant>.> and read its
// tenant's JetStream stream (StreamName), nothing else. It ends with the
// token: reconnect with a fresh one.
//
// FIFO per message group (SQS FIFO's semantics): publish to
// FIFOSubject(tenant, group); Bulkhead keeps it under the group's
// partition, and the consumers FIFOConsumers makes (one per partition, one
// message in flight each) deliver each group's messages in order, one at a
// time, while groups in other partitions go on. A Nats-Msg-Id
// (jetstream.WithMsgID) seen again within 2 minutes is dropped.
//
// Applications without NATS use the HTTP routes (package sdk/client:
// Publish, Pull, Ack), with the same token and scopes.
package events

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The token scopes that allow a connection to publish and to subscribe.
const (
	ScopePublish   = "events:publish"
	ScopeSubscribe = "events:subscribe"
)

// FIFOPartitions is how many partitions FIFO groups are spread over.
const FIFOPartitions = 8

// StreamName is tenant tid's JetStream stream.
func StreamName(tid string) string { return "T_" + tid }

// Subject is the subject of stream name under tenant tid's prefix:
// Subject("acme", "orders") is t.acme.orders.
func Subject(tid, name string) string { return "t." + tid + "." + name }

// FIFOSubject is where a message of FIFO group group is published.
func FIFOSubject(tid, group string) string { return "t." + tid + ".fifo." + group }

// InboxPrefix is tenant tid's reply inbox prefix: the default _INBOX. is
// shared by every tenant, and refused.
func InboxPrefix(tid string) string { return "_INBOX_" + tid }

// Connect connects to Bulkhead's NATS at url as tenant tid, with token.
// opts add to (and may override) the token and the inbox prefix.
func Connect(url, tid, token string, opts ...nats.Option) (*nats.Conn, error) {
	if tid == "" || token == "" {
		return nil, errors.New("events: a tenant id and a token are needed")
	}
	all := append([]nats.Option{nats.Token(token), nats.CustomInboxPrefix(InboxPrefix(tid)), nats.Name("bulkhead-events " + tid)}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		return nil, fmt.Errorf("events: connect as tenant %s: %w", tid, err)
	}
	return nc, nil
}

// FIFOConsumers makes (or finds) the durable consumers name_p0 …
// name_p<FIFOPartitions-1> on tenant tid's stream, one per FIFO partition,
// each with one message in flight: fetch from each, ack, fetch again.
// cfg sets the rest (AckWait, MaxDeliver, …); its name, filter, ack policy
// and MaxAckPending are set here.
func FIFOConsumers(ctx context.Context, js jetstream.JetStream, tid, name string, cfg jetstream.ConsumerConfig) ([]jetstream.Consumer, error) {
	out := make([]jetstream.Consumer, 0, FIFOPartitions)
	for n := range FIFOPartitions {
		c := cfg
		c.Durable, c.Name = name+"_p"+strconv.Itoa(n), ""
		c.FilterSubject, c.FilterSubjects = "t."+tid+".p."+strconv.Itoa(n)+".*", nil
		c.AckPolicy, c.MaxAckPending = jetstream.AckExplicitPolicy, 1
		con, err := js.CreateOrUpdateConsumer(ctx, StreamName(tid), c)
		if err != nil {
			return nil, fmt.Errorf("events: FIFO consumer %s: %w", c.Durable, err)
		}
		out = append(out, con)
	}
	return out, nil
}
