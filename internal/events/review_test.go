package events_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
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
	a, _ := w.connectAs(t, url, "tenant-a", both...)
	b, _ := w.connectAs(t, url, "tenant-b", both...)
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

// TestPushConsumerDeliversIntoAnotherTenant: a push consumer's deliver
// subject is any literal subject of the account TENANTS, and JetStream
// publishes to it with no regard to the creating user's permissions. A
// tenant's consumer on its own stream must not deliver into another
// tenant's subjects or inbox: that would let tenant-a put messages of its
// choosing where tenant-b's subscribers (or its stream) take them as
// tenant-b's own.
func TestPushConsumerDeliversIntoAnotherTenant(t *testing.T) {
	eachMode(t, testPushConsumerDeliversIntoAnotherTenant)
}

func testPushConsumerDeliversIntoAnotherTenant(t *testing.T, m mode) {
	w := newWorldIn(t, m, apitest.Options{}, "tenant-a", "tenant-b")
	ctx := t.Context()
	url := w.env.Events.ClientURL()
	both := []string{events.ScopePublish, events.ScopeSubscribe}
	a, _ := w.connectAs(t, url, "tenant-a", both...)
	b, _ := w.connectAs(t, url, "tenant-b", both...)
	jsA, err := jetstream.New(a.Conn)
	if err != nil {
		t.Fatal(err)
	}
	// tenant-b listens on its own subjects and inbox.
	orders, err := b.SubscribeSync("t.tenant-b.orders")
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := b.SubscribeSync("_INBOX_tenant-b.replies")
	if err != nil {
		t.Fatal(err)
	}
	b.Flush()
	if _, err := jsA.Publish(ctx, "t.tenant-a.forged", []byte(`{"order":"forged by tenant-a"}`)); err != nil {
		t.Fatal(err)
	}
	for i, deliver := range []string{"t.tenant-b.orders", "_INBOX_tenant-b.replies", "t.tenant-b.stored"} {
		name := fmt.Sprintf("push%d", i)
		req, _ := json.Marshal(map[string]any{"stream_name": "T_tenant-a", "config": map[string]any{
			"durable_name": name, "name": name, "filter_subject": "t.tenant-a.forged",
			"deliver_subject": deliver, "ack_policy": "none"}})
		r, err := a.Request("$JS.API.CONSUMER.CREATE.T_tenant-a."+name+".t.tenant-a.forged", req, 2*time.Second)
		// tenant-a is in an account of its own: its consumer may deliver
		// to a subject named like tenant-b's, which is tenant-a's own.
		_, _ = r, err
	}
	for _, s := range []*nats.Subscription{orders, inbox} {
		if m, err := s.NextMsg(time.Second); err == nil {
			t.Errorf("tenant-b's subscription %s received %q, published by tenant-a's consumer", s.Subject, m.Data)
		}
	}
	st, err := jetstream.New(b.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := st.Stream(ctx, events.StreamName("tenant-b")); err == nil {
		if info, err := s.Info(ctx); err == nil && info.State.Msgs != 0 {
			t.Errorf("tenant-b's stream holds %d messages it did not publish", info.State.Msgs)
		}
	}
}

// TestHTTPPullBytesBounded: one pull's answer is bounded in bytes, not
// only in messages. max_messages 256 of messages up to 1 MiB each, base64
// in one JSON document that the node builds in memory: a tenant that
// fills its stream (64 MiB by default) and pulls it through many
// consumers at once (64 waiting pulls per node, 32 consumers) has the
// node hold gigabytes. JetStream bounds a pull's bytes itself
// (jetstream.FetchMaxBytes); this test wants at most 16 MiB per answer.
func TestHTTPPullBytesBounded(t *testing.T) {
	w := newWorld(t, apitest.Options{}, "big-pull")
	ctx := t.Context()
	tok, _ := w.token(t, "big-pull", events.ScopePublish, events.ScopeSubscribe)
	c := client.New(w.env.URL, tok)
	msg := bytes.Repeat([]byte("x"), events.MaxMessageSize-1024)
	const n = 40
	for i := range n {
		if _, err := c.Publish(ctx, "bulk", client.Publication{Data: msg}); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	body, _ := json.Marshal(api.StreamPull{Consumer: "greedy", MaxMessages: events.MaxPull})
	st, answer := post(t, w.env.URL, tok, "/v1/streams/bulk/pull", "application/json", body)
	if st != http.StatusOK {
		t.Fatalf("pull: %d %.300s", st, answer)
	}
	if len(answer) > 16<<20 {
		t.Errorf("one pull answered %d MiB (%d messages of ~1 MiB, base64); want at most 16 MiB", len(answer)>>20, n)
	}
}

// TestHTTPAckStaleIDsQuick: an ack id whose message is no longer pending
// (acknowledged already, or a forged sequence of the tenant's own
// consumer) draws no answer from JetStream; Ack waited 2 s for each, one
// after the other, so a call with 256 of them (a retried batch of acks)
// held its handler, its connection and the tenant's in-flight place for
// 8.5 minutes. The ids are acknowledged together, 2 s for the whole call.
func TestHTTPAckStaleIDsQuick(t *testing.T) {
	w := newWorld(t, apitest.Options{}, "ack-co")
	ctx := t.Context()
	tok, _ := w.token(t, "ack-co", events.ScopePublish, events.ScopeSubscribe)
	c := client.New(w.env.URL, tok)
	if _, err := c.Publish(ctx, "orders", client.Publication{Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	ms, err := c.Pull(ctx, "orders", client.StreamPull{Consumer: "c1", MaxMessages: 1})
	if err != nil || len(ms) != 1 {
		t.Fatalf("pull: %+v %v", ms, err)
	}
	real, err := base64.RawURLEncoding.DecodeString(ms[0].AckID)
	if err != nil {
		t.Fatal(err)
	}
	// $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
	tokens := strings.Split(string(real), ".")
	ids := []string{ms[0].AckID}
	for i := range 20 {
		stale := strings.Join(append(tokens[:4:4], "1", fmt.Sprint(1000+i), fmt.Sprint(1000+i), "0", "0"), ".")
		ids = append(ids, base64.RawURLEncoding.EncodeToString([]byte(stale)))
	}
	start := time.Now()
	res, err := c.Ack(ctx, "orders", ids...)
	took := time.Since(start)
	if err != nil || res.Acked != 1 || len(res.Expired) != 20 {
		t.Errorf("ack of 1 pending and 20 stale ids: %+v %v; want 1 acked, 20 expired", res, err)
	}
	if took > 5*time.Second {
		t.Errorf("ack of 20 stale ids took %v; want one wait of about 2 s, not one per id", took)
	}
}

// TestHTTPPullClientGone: a long poll whose client goes away stops
// waiting. The fetch waited on (FetchMaxWait, not the request's context):
// a message published meanwhile went to the abandoned pull, in flight to
// nobody until its ack wait (30 s) passed, and the pull kept one of the
// tenant's 64 waiting places for up to 20 s.
func TestHTTPPullClientGone(t *testing.T) {
	w := newWorld(t, apitest.Options{}, "gone-co")
	ctx := t.Context()
	tok, _ := w.token(t, "gone-co", events.ScopePublish, events.ScopeSubscribe)
	c := client.New(w.env.URL, tok)
	pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.Pull(pctx, "orders", client.StreamPull{Consumer: "worker", MaxMessages: 1, WaitMS: 20000}); err == nil {
		t.Fatal("a pull that waits 20 s on an empty stream answered within 300 ms")
	}
	time.Sleep(200 * time.Millisecond) // the node sees the client gone
	if _, err := c.Publish(ctx, "orders", client.Publication{Data: []byte("for the next pull")}); err != nil {
		t.Fatal(err)
	}
	ms, err := c.Pull(ctx, "orders", client.StreamPull{Consumer: "worker", MaxMessages: 1, WaitMS: 2000})
	if err != nil || len(ms) != 1 {
		t.Errorf("the next pull: %+v %v; want the message, not left in flight to the abandoned pull", ms, err)
	}
}

// TestHTTPFIFOPullConsumerLimit: a FIFO pull makes FIFOPartitions (8)
// consumers, one per partition, each counted against the tier's
// stream_max_consumers. Under a limit below 8 the pull is refused, and
// the partitions' consumers made before the refusal are left behind for
// a day (their inactivity threshold), taking the tenant's every consumer
// place: a plain pull is then refused too.
func TestHTTPFIFOPullConsumerLimit(t *testing.T) {
	tiers := filepath.Join(t.TempDir(), "tiers.json")
	if err := os.WriteFile(tiers, []byte(`{"tiers":[{"name":"basic","isolation":"pool","rate_limit_rps":1000,"rate_limit_burst":1000,`+
		`"stream_max_consumers":4},{"name":"premium","isolation":"silo","rate_limit_rps":1000,"rate_limit_burst":1000}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, apitest.Options{TiersFile: tiers}, "few-cons")
	ctx := t.Context()
	tok, _ := w.token(t, "few-cons", events.ScopePublish, events.ScopeSubscribe)
	c := client.New(w.env.URL, tok)
	if _, err := c.Pull(ctx, "fifo", client.StreamPull{Consumer: "workers"}); err == nil {
		t.Fatal("a FIFO pull (8 consumers) under a limit of 4 consumers")
	}
	if _, err := c.Pull(ctx, "orders", client.StreamPull{Consumer: "plain"}); err != nil {
		t.Errorf("a plain pull after a refused FIFO pull: %v; want a consumer place left", err)
	}
}
