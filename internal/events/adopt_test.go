package events_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
)

// TestSharedStreamsAdopted: a tenant's stream that an earlier version
// made in the shared account moves to the tenant's own: its messages in
// order, a consumer from its first unacknowledged message, and nothing
// left in the shared account.
func TestSharedStreamsAdopted(t *testing.T) {
	w := newWorld(t, apitest.Options{}, "old-co")
	ctx := t.Context()
	shared, err := events.SharedStream(ctx, w.env.Events, "old-co")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := shared.Publish(ctx, "t.old-co.orders", []byte(fmt.Sprint(i)), jetstream.WithMsgID(fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	c, err := shared.CreateOrUpdateConsumer(ctx, events.StreamName("old-co"), jetstream.ConsumerConfig{Durable: "w", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Fetch(2, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range b.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := events.AdoptSharedStreams(ctx, w.env.Events); err != nil {
		t.Fatal(err)
	}
	if _, err := shared.Stream(ctx, events.StreamName("old-co")); err == nil {
		t.Error("the shared stream is still there")
	}
	tok, _ := w.token(t, "old-co", events.ScopePublish, events.ScopeSubscribe)
	a, err := connect(t, w.env.Events.ClientURL(), tok, "old-co")
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(a.Conn)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, events.StreamName("old-co"))
	if err != nil {
		t.Fatalf("the tenant reads its adopted stream: %v", err)
	}
	if info, err := st.Info(ctx); err != nil || info.State.Msgs != 5 {
		t.Fatalf("adopted stream: %+v %v; want 5 messages", info, err)
	}
	w2, err := js.Consumer(ctx, events.StreamName("old-co"), "w")
	if err != nil {
		t.Fatalf("the adopted consumer: %v", err)
	}
	b, err = w2.Fetch(5, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range b.Messages() {
		got = append(got, string(m.Data()))
		if id := m.Headers().Get(jetstream.MsgIDHeader); id != "m"+string(m.Data()) {
			t.Errorf("message %s's id %q", m.Data(), id)
		}
	}
	if fmt.Sprint(got) != "[2 3 4]" {
		t.Errorf("the adopted consumer delivered %v; want [2 3 4] (the two acknowledged ones not again)", got)
	}
}
