package events_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
)

// TestCrossTenantConsumerByName: tenant-a may not make a consumer on
// tenant-b's stream by naming the consumer after its own stream. The
// permission $JS.API.CONSUMER.*.*.T_<tenant>.> (meant for MSG.NEXT and
// DURABLE.CREATE) also matched $JS.API.CONSUMER.CREATE.T_b.T_a.<filter>:
// stream T_b, consumer "T_a", and a push consumer's deliver subject in
// tenant-a's inbox then handed it tenant-b's messages.
func TestCrossTenantConsumerByName(t *testing.T) { eachMode(t, testCrossTenantConsumerByName) }

func testCrossTenantConsumerByName(t *testing.T, m mode) {
	w := newWorldIn(t, m, apitest.Options{}, "tenant-a", "tenant-b")
	ctx := t.Context()
	url := w.env.Events.ClientURL()
	both := []string{events.ScopePublish, events.ScopeSubscribe}
	tokA, _ := w.token(t, "tenant-a", both...)
	tokB, _ := w.token(t, "tenant-b", both...)
	a, err := connect(t, url, tokA, "tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := connect(t, url, tokB, "tenant-b")
	if err != nil {
		t.Fatal(err)
	}
	jsB, err := jetstream.New(b.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jsB.Publish(ctx, "t.tenant-b.orders", []byte("tenant-b's secret")); err != nil {
		t.Fatal(err)
	}
	loot, err := a.SubscribeSync("_INBOX_tenant-a.loot")
	if err != nil {
		t.Fatal(err)
	}
	a.Flush()
	const name = "T_tenant-a" // tenant-a's stream name, as a consumer name
	subj := "$JS.API.CONSUMER.CREATE.T_tenant-b." + name + ".t.tenant-b.orders"
	req, _ := json.Marshal(map[string]any{"stream_name": "T_tenant-b", "config": map[string]any{
		"durable_name": name, "name": name, "filter_subject": "t.tenant-b.orders",
		"deliver_subject": "_INBOX_tenant-a.loot", "ack_policy": "none"}})
	if r, err := a.Request(subj, req, 2*time.Second); err == nil {
		t.Errorf("tenant-a's %s answered: %.300s", subj, r.Data)
	}
	if m, err := loot.NextMsg(time.Second); err == nil {
		t.Errorf("tenant-a received tenant-b's message %q (%s)", m.Data, m.Subject)
	}
	if info, err := jsB.Stream(ctx, events.StreamName("tenant-b")); err == nil {
		if st, err := info.Info(ctx); err == nil && st.State.Consumers != 0 {
			t.Errorf("tenant-b's stream has %d consumers it did not make", st.State.Consumers)
		}
	}
}
