package events_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
)

// TestReplySubjectsStayWithTheTenant: a publish's reply subject is not
// checked against its publisher's permissions, and JetStream answers to
// it (a publish's ack, a direct get, an API call): tenant-a naming
// tenant-b's subject, inbox or stream API as the reply must not put
// anything into tenant-b's subjects or touch tenant-b's stream.
func TestReplySubjectsStayWithTheTenant(t *testing.T) { eachMode(t, testReplySubjects) }

func testReplySubjects(t *testing.T, m mode) {
	w := newWorldIn(t, m, apitest.Options{}, "tenant-a", "tenant-b")
	ctx := t.Context()
	url := w.env.Events.ClientURL()
	both := []string{events.ScopePublish, events.ScopeSubscribe}
	a, tokA := w.connectAs(t, url, "tenant-a", both...)
	b, _ := w.connectAs(t, url, "tenant-b", both...)
	jsA, _ := jetstream.New(a.Conn)
	jsB, _ := jetstream.New(b.Conn)
	if _, err := jsB.Publish(ctx, "t.tenant-b.orders", []byte("b's own")); err != nil {
		t.Fatal(err)
	}
	// A's message that a direct get returns: its payload and headers are A's choice.
	h := nats.Header{}
	h.Set(jetstream.MsgIDHeader, "b-future-id")
	if _, err := jsA.PublishMsg(ctx, &nats.Msg{Subject: "t.tenant-a.payload", Data: []byte("forged by tenant-a"), Header: h}); err != nil {
		t.Fatal(err)
	}
	spy, err := b.SubscribeSync("t.tenant-b.>")
	if err != nil {
		t.Fatal(err)
	}
	inboxB, err := b.SubscribeSync("_INBOX_tenant-b.>")
	if err != nil {
		t.Fatal(err)
	}
	b.Flush()

	stA := events.StreamName("tenant-a")
	stB := events.StreamName("tenant-b")
	// A's own pull consumer of its payload (made as mode m allows).
	cs, err := consumers(t, w, m, jsA, "tenant-a", tokA, "payload", "relay", jetstream.ConsumerConfig{FilterSubject: "t.tenant-a.payload", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	relay := cs[0].CachedInfo().Name
	opBefore, err := events.OperatorStreamMsgs(ctx, w.env.Events)
	if err != nil {
		t.Fatal(err)
	}
	for _, reply := range []string{events.OperatorSubject + ".tenant.deleted", "t.tenant-b.orders", "_INBOX_tenant-b.x", "$JS.API.STREAM.DELETE." + stB, "$JS.API.STREAM.PURGE." + stB} {
		// JetStream acks the publish to the reply subject.
		a.PublishRequest("t.tenant-a.orders", reply, []byte("x"))
		// A direct get answers with A's message.
		a.PublishRequest("$JS.API.DIRECT.GET."+stA+".t.tenant-a.payload", reply, nil)
		// An API call answers with its result.
		a.PublishRequest("$JS.API.STREAM.INFO."+stA, reply, nil)
	}
	// A pull request is answered with A's message itself, its payload and
	// headers as A wrote them.
	a.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+stA+"."+relay, "t.tenant-b.orders", []byte(`{"batch":1}`))
	a.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+stA+"."+relay, events.OperatorSubject+".tenant.deleted", []byte(`{"batch":1}`))
	a.Flush()
	time.Sleep(500 * time.Millisecond)
	for _, s := range []*nats.Subscription{spy, inboxB} {
		for {
			msg, err := s.NextMsg(100 * time.Millisecond)
			if err != nil {
				break
			}
			t.Errorf("tenant-b received on %s, from tenant-a: %q %v", msg.Subject, msg.Data, msg.Header)
		}
	}
	st, err := jsB.Stream(ctx, stB)
	if err != nil {
		t.Fatalf("tenant-b's stream after tenant-a's replies: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 1 {
		t.Errorf("tenant-b's stream after tenant-a's replies: %d messages (%v); want its 1", info.State.Msgs, err)
	}
	// Nor into the operator's stream, Bulkhead's own events.
	if n, err := events.OperatorStreamMsgs(ctx, w.env.Events); err != nil || n != opBefore {
		t.Errorf("the operator's stream after tenant-a's replies: %d messages (%v); want %d", n, err, opBefore)
	}
	// A message id A chose is not one B has used.
	if ack, err := jsB.Publish(ctx, "t.tenant-b.orders", []byte("b's next"), jetstream.WithMsgID("b-future-id")); err != nil || ack.Duplicate {
		t.Errorf("tenant-b's publish with a fresh message id: %+v %v; dropped as a duplicate of tenant-a's", ack, err)
	}
}
