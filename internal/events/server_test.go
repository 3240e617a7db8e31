package events_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/events/natstest"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
	sdkevents "github.com/bulkhead-dev/bulkhead/sdk/events"
)

// world is a node with a NATS server and tenants.
type world struct {
	env  *apitest.Env
	nats *natstest.Server // the external server, in mode external
}

// A mode is how a test's node reaches NATS: its embedded server, or an
// external nats-server process that it joins (--nats-url).
type mode string

const (
	embedded mode = "embedded"
	external mode = "external"
)

// eachMode runs test as a subtest in each mode: the same assertions hold
// against the embedded server and against an external one.
func eachMode(t *testing.T, test func(t *testing.T, m mode)) {
	for _, m := range []mode{embedded, external} {
		t.Run(string(m), func(t *testing.T) { test(t, m) })
	}
}

// newWorld is a node with the embedded NATS server (and opts) and the
// tenants ids, created.
func newWorld(t *testing.T, opts apitest.Options, ids ...string) *world {
	t.Helper()
	opts.NATS = true
	return (&world{}).start(t, opts, ids...)
}

// newWorldIn is newWorld with a NATS server in mode m.
func newWorldIn(t *testing.T, m mode, opts apitest.Options, ids ...string) *world {
	t.Helper()
	if m == embedded {
		return newWorld(t, opts, ids...)
	}
	w := &world{nats: natstest.Start(t)}
	opts.NATSURL, opts.NATSCredentials = w.nats.URL(), w.nats.CredentialsFile
	return w.start(t, opts, ids...)
}

// start starts w's node with opts and creates the tenants ids.
func (w *world) start(t *testing.T, opts apitest.Options, ids ...string) *world {
	t.Helper()
	w.env = apitest.New(t, storagetest.DSN(t, storage.SQLite), opts)
	w.createTenants(t, ids...)
	return w
}

func (w *world) createTenants(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := w.env.Admin.CreateTenant(t.Context(), client.CreateTenant{ID: id}, ""); err != nil {
			t.Fatal(err)
		}
	}
}

// token registers a client of tenant tid with scopes and returns a token
// from the node's token endpoint, and the client's id.
func (w *world) token(t *testing.T, tid string, scopes ...string) (string, string) {
	t.Helper()
	c, err := w.env.Admin.CreateOAuthClient(t.Context(), tid, client.CreateOAuthClient{Name: "events", GrantTypes: []string{"client_credentials"}, Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := (&clientcredentials.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, TokenURL: w.env.URL + "/oauth/token", Scopes: scopes}).Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken, c.ClientID
}

// connectAs connects to url as tenant tid with a new token of scopes,
// and returns the connection and the token.
func (w *world) connectAs(t *testing.T, url, tid string, scopes ...string) (*conn, string) {
	t.Helper()
	tok, _ := w.token(t, tid, scopes...)
	c, err := connect(t, url, tok, tid)
	if err != nil {
		t.Fatalf("%s connects with its token: %v", tid, err)
	}
	return c, tok
}

// conn is a NATS connection with its asynchronous errors.
type conn struct {
	*nats.Conn
	mu   sync.Mutex
	errs []error
}

func (c *conn) errors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.errs...)
}

func connect(t *testing.T, url, token, tid string) (*conn, error) {
	t.Helper()
	c := &conn{}
	opts := []nats.Option{nats.Timeout(5 * time.Second), nats.NoReconnect(), nats.CustomInboxPrefix("_INBOX_" + tid),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			c.errs = append(c.errs, err)
			c.mu.Unlock()
		})}
	if token != "" {
		opts = append(opts, nats.Token(token))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	c.Conn = nc
	return c, nil
}

// consumers are a tenant's consumers of stream named name: made over NATS
// with cfg in the tenant's own account on the embedded server, through
// Bulkhead's API (PUT …/consumers/{name}) on an external one, so that
// both ways are tested. An error is the refusal to make them.
func consumers(t *testing.T, w *world, m mode, js jetstream.JetStream, tid, token, stream, name string, cfg jetstream.ConsumerConfig) ([]jetstream.Consumer, error) {
	t.Helper()
	ctx := t.Context()
	if m == embedded {
		if stream == "fifo" {
			return sdkevents.FIFOConsumers(ctx, js, tid, name, cfg)
		}
		cfg.Durable = name
		c, err := js.CreateOrUpdateConsumer(ctx, events.StreamName(tid), cfg)
		return []jetstream.Consumer{c}, err
	}
	mc, err := client.New(w.env.URL, token).MakeConsumer(ctx, stream, name)
	if err != nil {
		return nil, err
	}
	var out []jetstream.Consumer
	for _, n := range mc.Names {
		c, err := js.Consumer(ctx, events.StreamName(tid), n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out, nil
}

// TestStreamsIsolation: a NATS client connects with a Bulkhead token and
// nothing else, and reaches its own tenant's subjects only. Another
// tenant's subjects, wildcards over them and everyone's inboxes are
// refused; no token, a forged one, one whose client
// was deleted, one without the events scopes: the connection is refused,
// with one reason that tells nothing. (An operator's token connects to
// read the operator's stream alone: TestOperatorStreamIsTheOperatorsAlone.)
func TestStreamsIsolation(t *testing.T) { eachMode(t, testStreamsIsolation) }

func testStreamsIsolation(t *testing.T, m mode) {
	w := newWorldIn(t, m, apitest.Options{}, "tenant-a", "tenant-b")
	ctx := t.Context()
	url := w.env.Events.ClientURL()
	both := []string{events.ScopePublish, events.ScopeSubscribe}
	tokA, _ := w.token(t, "tenant-a", both...)
	tokB, _ := w.token(t, "tenant-b", both...)
	subOnly, _ := w.token(t, "tenant-a", events.ScopeSubscribe)
	noScope, _ := w.token(t, "tenant-a", "kms:decrypt")
	gone, goneID := w.token(t, "tenant-a", both...)
	if err := w.env.Admin.DeleteOAuthClient(ctx, "tenant-a", goneID); err != nil {
		t.Fatal(err)
	}

	a, err := connect(t, url, tokA, "tenant-a")
	if err != nil {
		t.Fatalf("tenant-a connects with its token: %v", err)
	}
	b, err := connect(t, url, tokB, "tenant-b")
	if err != nil {
		t.Fatalf("tenant-b connects with its token: %v", err)
	}

	// A's own traffic flows, requests included.
	got := make(chan *nats.Msg, 16)
	if _, err := a.ChanSubscribe("t.tenant-a.orders", got); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Subscribe("t.tenant-a.rpc", func(m *nats.Msg) { m.Respond([]byte("pong")) }); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish("t.tenant-a.orders", []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, got); m == nil || string(m.Data) != "mine" {
		t.Fatalf("tenant-a's own message: %v", m)
	}
	// A request's reply comes back on the tenant's own inbox prefix (here
	// from JetStream, which keeps everything under t.<tenant>.>: its ack).
	if r, err := a.Request("t.tenant-a.rpc", []byte("ping"), 5*time.Second); err != nil || !strings.HasPrefix(r.Subject, "_INBOX_tenant-a.") {
		t.Fatalf("a request within tenant-a: %v %v", r, err)
	}

	// B: into A's subjects, over them, over everything, into A's inbox.
	for _, subj := range []string{"t.tenant-a.orders", "t.tenant-a.rpc", "_INBOX_tenant-a.x", "_INBOX.x", "$JS.API.INFO"} {
		if err := b.Publish(subj, []byte("intrusion")); err != nil {
			t.Fatal(err)
		}
	}
	var spied []*nats.Subscription
	for _, subj := range []string{"t.tenant-a.>", "t.*.orders", ">", "t.>", "_INBOX_tenant-a.>", "_INBOX.>"} {
		s, err := b.SubscribeSync(subj)
		if err != nil {
			t.Fatal(err)
		}
		spied = append(spied, s)
	}
	b.Flush()
	if err := a.Publish("t.tenant-a.orders", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	a.Flush()
	if m := receive(t, got); m == nil || string(m.Data) != "secret" {
		t.Fatalf("tenant-a's second message: %v", m)
	}
	select {
	case m := <-got:
		t.Errorf("tenant-a received %q, which tenant-b published", m.Data)
	case <-time.After(200 * time.Millisecond):
	}
	for _, s := range spied {
		if m, err := s.NextMsg(100 * time.Millisecond); err == nil {
			t.Errorf("tenant-b's subscription %s received %q on %s", s.Subject, m.Data, m.Subject)
		}
	}
	runtest.Eventually(t, "the server to refuse each of tenant-b's attempts", func() bool {
		return countPermissionErrors(b.errors()) >= 11
	})
	if n := countPermissionErrors(a.errors()); n != 0 {
		t.Errorf("tenant-a's own traffic drew %d permission errors: %v", n, a.errors())
	}

	// A subscribe-only token cannot publish, even to its own tenant.
	so, err := connect(t, url, subOnly, "tenant-a")
	if err != nil {
		t.Fatalf("a subscribe-only token connects: %v", err)
	}
	bOrders, err := b.SubscribeSync("t.tenant-b.orders")
	if err != nil {
		t.Fatal(err)
	}
	b.Flush()
	so.Publish("t.tenant-a.orders", []byte("not allowed"))
	so.Publish("t.tenant-b.orders", []byte("not allowed either")) // an empty allow list would allow this
	so.Flush()
	if m, err := bOrders.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("a subscribe-only token of tenant-a published %q into tenant-b", m.Data)
	}
	select {
	case m := <-got:
		t.Errorf("a subscribe-only token published %q", m.Data)
	case <-time.After(200 * time.Millisecond):
	}

	// Refused connections.
	for name, tok := range map[string]string{
		"no token":           "",
		"a forged token":     "eyJhbGciOiJFUzI1NiJ9.eyJ0ZW5hbnRfaWQiOiJ0ZW5hbnQtYiJ9.AAAA",
		"a deleted client's": gone,
		"no events scope":    noScope,
	} {
		_, err := connect(t, url, tok, "tenant-a")
		if err == nil {
			t.Errorf("%s: connected", name)
			continue
		}
		if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("%s: %v; want an authorization violation", name, err)
		}
		if strings.Contains(err.Error(), "scope") || strings.Contains(err.Error(), "delet") {
			t.Errorf("%s: the refusal tells why: %v", name, err)
		}
	}
}

func receive(t *testing.T, ch chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		return nil
	}
}

func countPermissionErrors(errs []error) int {
	n := 0
	for _, err := range errs {
		if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			n++
		}
	}
	return n
}

// TestJetStreamIsolation: each tenant's messages persist in a stream of
// its own, made by Bulkhead at its first connection, which it reads
// through consumers; another tenant can neither read its info, make a
// consumer on it, fetch from its consumers, nor make, change or delete
// streams; a message id seen within the window is a duplicate.
func TestJetStreamIsolation(t *testing.T) { eachMode(t, testJetStreamIsolation) }

func testJetStreamIsolation(t *testing.T, m mode) {
	w := newWorldIn(t, m, apitest.Options{}, "tenant-a", "tenant-b")
	ctx := t.Context()
	url := w.env.Events.ClientURL()
	both := []string{events.ScopePublish, events.ScopeSubscribe}
	a, tokA := w.connectAs(t, url, "tenant-a", both...)
	b, _ := w.connectAs(t, url, "tenant-b", both...)
	jsA, err := jetstream.NewWithAPIPrefix(a.Conn, "$JS.API")
	if err != nil {
		t.Fatal(err)
	}
	jsB, err := jetstream.New(b.Conn)
	if err != nil {
		t.Fatal(err)
	}

	// A publishes (twice with one message id) and reads back through a consumer.
	for range 2 {
		ack, err := jsA.Publish(ctx, "t.tenant-a.orders", []byte("order 1"), jetstream.WithMsgID("order-1"))
		if err != nil {
			t.Fatalf("tenant-a publishes: %v", err)
		}
		if ack.Stream != events.StreamName("tenant-a") {
			t.Fatalf("stored in %q", ack.Stream)
		}
	}
	if _, err := jsA.Publish(ctx, "t.tenant-a.orders", []byte("order 2"), jetstream.WithMsgID("order-2")); err != nil {
		t.Fatal(err)
	}
	streamA, err := jsA.Stream(ctx, events.StreamName("tenant-a"))
	if err != nil {
		t.Fatalf("tenant-a reads its stream: %v", err)
	}
	if info, err := streamA.Info(ctx); err != nil || info.State.Msgs != 2 {
		t.Fatalf("tenant-a's stream: %+v %v; want 2 messages (the duplicate dropped)", info, err)
	}
	made, err := consumers(t, w, m, jsA, "tenant-a", tokA, "orders", "reader", jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("tenant-a makes a consumer: %v", err)
	}
	cons := made[0]
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		if err := m.Ack(); err != nil {
			t.Errorf("ack: %v", err)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("tenant-a fetched %d messages", n)
	}

	// B, on A's stream and on streams at all.
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := jsB.Stream(short, events.StreamName("tenant-a")); err == nil {
		t.Error("tenant-b read tenant-a's stream")
	}
	if _, err := jsB.CreateOrUpdateConsumer(short, events.StreamName("tenant-a"), jetstream.ConsumerConfig{Durable: "spy"}); err == nil {
		t.Error("tenant-b made a consumer on tenant-a's stream")
	}
	if _, err := jsB.Consumer(short, events.StreamName("tenant-a"), "reader"); err == nil {
		t.Error("tenant-b opened tenant-a's consumer")
	}
	if _, err := jsB.CreateStream(short, jetstream.StreamConfig{Name: "GRAB", Subjects: []string{"t.tenant-a.>"}}); err == nil {
		t.Error("tenant-b made a stream over tenant-a's subjects")
	}
	if err := jsB.DeleteStream(short, events.StreamName("tenant-a")); err == nil {
		t.Error("tenant-b deleted tenant-a's stream")
	}
	if err := jsB.DeleteStream(short, events.StreamName("tenant-b")); err == nil {
		t.Error("tenant-b deleted its own stream (Bulkhead manages streams and their limits)")
	}
	names := jsB.StreamNames(short)
	for name := range names.Name() {
		t.Errorf("tenant-b listed stream %s", name)
	}
	// B's own stream works, and holds nothing of A's.
	if _, err := jsB.Publish(ctx, "t.tenant-b.orders", []byte("b's")); err != nil {
		t.Fatalf("tenant-b publishes: %v", err)
	}
	streamB, err := jsB.Stream(ctx, events.StreamName("tenant-b"))
	if err != nil {
		t.Fatal(err)
	}
	if info, err := streamB.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Errorf("tenant-b's stream: %+v %v", info, err)
	}
	if info, err := streamA.Info(ctx); err != nil || info.State.Msgs != 2 {
		t.Errorf("tenant-a's stream after tenant-b's attempts: %+v %v", info, err)
	}
}

// TestStreamLimits: a tenant's stream has its tier's limits, and a
// tenant at them is refused while its neighbour's publishes go on.
func TestStreamLimits(t *testing.T) { eachMode(t, testStreamLimits) }

func testStreamLimits(t *testing.T, m mode) {
	tiers := filepath.Join(t.TempDir(), "tiers.json")
	if err := os.WriteFile(tiers, []byte(`{"tiers":[{"name":"basic","isolation":"pool","rate_limit_rps":1000,"rate_limit_burst":1000,`+
		`"stream_max_msgs":3,"stream_max_consumers":1},{"name":"premium","isolation":"silo","rate_limit_rps":1000,"rate_limit_burst":1000}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newWorldIn(t, m, apitest.Options{TiersFile: tiers}, "small-a", "small-b")
	ctx := t.Context()
	both := []string{events.ScopePublish, events.ScopeSubscribe}
	js, toks := map[string]jetstream.JetStream{}, map[string]string{}
	for _, id := range []string{"small-a", "small-b"} {
		tok, _ := w.token(t, id, both...)
		toks[id] = tok
		c, err := connect(t, w.env.Events.ClientURL(), tok, id)
		if err != nil {
			t.Fatal(err)
		}
		if js[id], err = jetstream.New(c.Conn); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if _, err := js["small-a"].Publish(ctx, "t.small-a.x", []byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("message %d within the limit: %v", i, err)
		}
	}
	if _, err := js["small-a"].Publish(ctx, "t.small-a.x", []byte("one too many")); err == nil {
		t.Error("a fourth message went into a stream limited to three")
	}
	if _, err := js["small-b"].Publish(ctx, "t.small-b.x", []byte("the neighbour's")); err != nil {
		t.Errorf("the neighbour's publish, while small-a is full: %v", err)
	}
	if _, err := js["small-a"].Stream(ctx, events.StreamName("small-a")); err != nil {
		t.Fatal(err)
	}
	if _, err := consumers(t, w, m, js["small-a"], "small-a", toks["small-a"], "x", "one", jetstream.ConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := consumers(t, w, m, js["small-a"], "small-a", toks["small-a"], "x", "two", jetstream.ConsumerConfig{}); err == nil {
		t.Error("a second consumer on a stream limited to one")
	}
}

// TestFIFOGroups: 16 message groups published interleaved, consumed by 4
// workers over the FIFO partitions' consumers: every group's messages
// arrive in the order sent, never two of one group at once, and a
// message id sent twice is kept once.
func TestFIFOGroups(t *testing.T) { eachMode(t, testFIFOGroups) }

func testFIFOGroups(t *testing.T, m mode) {
	w := newWorldIn(t, m, apitest.Options{}, "fifo-co")
	ctx := t.Context()
	tok, _ := w.token(t, "fifo-co", events.ScopePublish, events.ScopeSubscribe)
	nc, err := sdkevents.Connect(w.env.Events.ClientURL(), "fifo-co", tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const groups, perGroup = 16, 10
	for i := range perGroup {
		for g := range groups {
			id := fmt.Sprintf("g%d-%d", g, i)
			if _, err := js.Publish(ctx, sdkevents.FIFOSubject("fifo-co", fmt.Sprintf("user%d", g)), []byte(fmt.Sprint(i)), jetstream.WithMsgID(id)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ack, err := js.Publish(ctx, "t.fifo-co.fifo.user0", []byte("0"), jetstream.WithMsgID("g0-0")); err != nil || !ack.Duplicate {
		t.Fatalf("a repeated message id: %+v %v; want a duplicate", ack, err)
	}
	cons, err := consumers(t, w, m, js, "fifo-co", tok, "fifo", "workers", jetstream.ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string][]string{}
	inFlight := map[string]int{}
	var overlap []string
	var wg sync.WaitGroup
	for k := range 4 { // 4 workers, each over 2 partitions' consumers
		wg.Go(func() {
			for idle := 0; idle < 3; {
				fetched := 0
				for _, c := range cons[k*2 : k*2+2] {
					b, err := c.Fetch(1, jetstream.FetchMaxWait(200*time.Millisecond))
					if err != nil {
						continue
					}
					for m := range b.Messages() {
						fetched++
						group := m.Subject()[strings.LastIndex(m.Subject(), ".")+1:]
						mu.Lock()
						if inFlight[group]++; inFlight[group] > 1 {
							overlap = append(overlap, group)
						}
						mu.Unlock()
						time.Sleep(time.Millisecond)
						mu.Lock()
						inFlight[group]--
						got[group] = append(got[group], string(m.Data()))
						mu.Unlock()
						m.Ack()
					}
				}
				if fetched == 0 {
					idle++
				} else {
					idle = 0
				}
			}
		})
	}
	wg.Wait()
	if len(overlap) > 0 {
		t.Errorf("groups with two messages in flight at once: %v", overlap)
	}
	for g := range groups {
		group := fmt.Sprintf("user%d", g)
		want := make([]string, perGroup)
		for i := range want {
			want[i] = fmt.Sprint(i)
		}
		if strings.Join(got[group], ",") != strings.Join(want, ",") {
			t.Errorf("group %s got %v; want %v in order", group, got[group], want)
		}
	}
}
