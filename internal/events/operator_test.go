package events_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// operatorConn connects with the operator's token and its inbox prefix.
func operatorConn(t *testing.T, url string) *conn {
	t.Helper()
	c := &conn{}
	nc, err := nats.Connect(url, nats.Token(apitest.AdminToken), nats.CustomInboxPrefix(events.OperatorInbox),
		nats.Timeout(5*time.Second), nats.NoReconnect(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err)
			c.mu.Unlock()
		}))
	if err != nil {
		t.Fatalf("the operator connects: %v", err)
	}
	t.Cleanup(nc.Close)
	c.Conn = nc
	return c
}

// TestOperatorStreamIsTheOperatorsAlone: the operator's token reads
// Bulkhead's own events from the operator's stream (a tenant suspended
// appears there), and can do nothing else: no publish under bulkhead.>,
// no purge or delete of the stream, no tenant's subjects or stream. A
// tenant's token can neither subscribe to bulkhead.>, nor read the
// stream's info, nor make a consumer on it.
func TestOperatorStreamIsTheOperatorsAlone(t *testing.T) {
	// The suspended tenant's connection is kept for the test (it would be
	// closed at the next recheck: TestConnectionsEndWithTheirToken).
	w := newWorld(t, apitest.Options{NATSRecheck: time.Hour}, "tenant-a")
	ctx := t.Context()
	url := w.env.Events.ClientURL()
	tokA, _ := w.token(t, "tenant-a", events.ScopePublish, events.ScopeSubscribe)
	// The tenant connects (and spies) before it is suspended.
	a, err := connect(t, url, tokA, "tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	spied := make(chan *nats.Msg, 8)
	for _, subj := range []string{"bulkhead.>", "bulkhead.events.>", ">"} {
		if _, err := a.ChanSubscribe(subj, spied); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.env.Admin.SuspendTenant(ctx, "tenant-a"); err != nil {
		t.Fatal(err)
	}

	op := operatorConn(t, url)
	js, err := jetstream.New(op.Conn)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, events.OperatorStream)
	if err != nil {
		t.Fatalf("the operator reads its stream: %v", err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "ops", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("the operator makes a consumer: %v", err)
	}
	var types []string
	runtest.Eventually(t, "tenant.suspended on the operator's stream", func() bool {
		batch, err := cons.Fetch(10, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			return false
		}
		for m := range batch.Messages() {
			var e api.Event
			if err := json.Unmarshal(m.Data(), &e); err != nil || m.Headers().Get(jetstream.MsgIDHeader) != e.ID || m.Subject() != "bulkhead.events."+e.Type {
				t.Errorf("message %s %q: %v", m.Subject(), m.Data(), err)
			}
			m.Ack()
			types = append(types, e.Type)
			if e.Type == "tenant.suspended" && e.TenantID != "tenant-a" {
				t.Errorf("event %+v", e)
			}
		}
		return len(types) > 0 && types[len(types)-1] == "tenant.suspended"
	})
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := info.State.Msgs

	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		t.Cleanup(cancel)
		return c
	}
	// The operator may only read.
	if err := op.Publish("bulkhead.events.tenant.deleted", []byte(`{"forged":true}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Subscribe("t.tenant-a.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(short()); err == nil {
		t.Error("the operator purged its stream")
	}
	if err := js.DeleteStream(short(), events.OperatorStream); err == nil {
		t.Error("the operator deleted its stream")
	}
	if _, err := js.CreateOrUpdateStream(short(), jetstream.StreamConfig{Name: events.OperatorStream, Subjects: []string{"bulkhead.>"}}); err == nil {
		t.Error("the operator changed its stream")
	}
	if _, err := js.Stream(short(), events.StreamName("tenant-a")); err == nil {
		t.Error("the operator read a tenant's stream")
	}
	runtest.Eventually(t, "the operator's refusals", func() bool { return countPermissionErrors(op.errors()) >= 2 })
	if info, err := st.Info(ctx); err != nil || info.State.Msgs != before {
		t.Errorf("the operator's stream after its refused publish: %+v %v; want %d messages", info, err, before)
	}

	// A tenant reaches none of it.
	jsA, err := jetstream.New(a.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jsA.Stream(short(), events.OperatorStream); err == nil {
		t.Error("a tenant read the operator's stream's info")
	}
	if _, err := jsA.CreateOrUpdateConsumer(short(), events.OperatorStream, jetstream.ConsumerConfig{Durable: "spy"}); err == nil {
		t.Error("a tenant made a consumer on the operator's stream")
	}
	if _, err := jsA.Consumer(short(), events.OperatorStream, "ops"); err == nil {
		t.Error("a tenant opened the operator's consumer")
	}
	if err := a.Publish("bulkhead.events.tenant.deleted", []byte(`{"forged":true}`)); err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, "the tenant's refusals", func() bool { return countPermissionErrors(a.errors()) >= 4 })
	if _, err := w.env.Admin.ResumeTenant(ctx, "tenant-a"); err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, "tenant.resumed on the operator's stream", func() bool {
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs > before
	})
	select {
	case m := <-spied:
		t.Errorf("a tenant received %s %q", m.Subject, m.Data)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestOperatorStreamMadeAgain: a server that lost the operator's stream
// (a new cluster) gets it made again at the next event.
func TestOperatorStreamMadeAgain(t *testing.T) {
	w := newWorld(t, apitest.Options{})
	ctx := t.Context()
	srv := w.env.Events
	nc, err := nats.Connect(srv.ClientURL(), nats.Token(apitest.AdminToken), nats.CustomInboxPrefix(events.OperatorInbox))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.DeleteOperatorStream(ctx, srv); err != nil {
		t.Fatal(err)
	}
	if err := srv.PublishEvent(ctx, "tenant.suspended", "evt_again", []byte(`{}`)); err != nil {
		t.Fatalf("publish after the stream was lost: %v", err)
	}
	st, err := js.Stream(ctx, events.OperatorStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := st.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("the stream made again: %+v %v", info, err)
	}
}
