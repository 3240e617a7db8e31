package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// Event streams (issue 17: publish through Bulkhead's credentials ≥ 90 %
// of raw JetStream with static credentials; the auth callout's latency).
//
// Two NATS servers of the same version in this process: Bulkhead's
// embedded one, which a tenant reaches with its token (the callout, the
// tenant's permissions and its own stream), and a plain one with a static
// user and the same stream configuration. Each round publishes 500
// messages with a synchronous JetStream ack on each side in turn (one
// connection each), so both see the same machine; raw_% is Bulkhead's
// rate over the plain server's. connect_ms is a token connection's set-up
// (TCP, CONNECT, the callout, the token's verification), over 50 of them.
// In one process, CPU per message cannot be told apart; the rates can.
func BenchmarkEventsPublish(b *testing.B) {
	ctx := context.Background()
	env := apitest.New(b, storagetest.DSN(b, storage.SQLite), apitest.Options{NATS: true})
	if _, err := env.Admin.CreateTenant(ctx, client.CreateTenant{ID: "bench-events"}, ""); err != nil {
		b.Fatal(err)
	}
	scopes := []string{events.ScopePublish, events.ScopeSubscribe}
	oc, err := env.Admin.CreateOAuthClient(ctx, "bench-events", client.CreateOAuthClient{Name: "bench", GrantTypes: []string{"client_credentials"}, Scopes: scopes})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := (&clientcredentials.Config{ClientID: oc.ClientID, ClientSecret: oc.ClientSecret, TokenURL: env.URL + "/oauth/token", Scopes: scopes}).Token(ctx)
	if err != nil {
		b.Fatal(err)
	}
	connect := func() (*nats.Conn, error) {
		return nats.Connect(env.Events.ClientURL(), nats.Token(tok.AccessToken), nats.CustomInboxPrefix("_INBOX_bench-events"))
	}
	var setup time.Duration
	for range 50 {
		start := time.Now()
		nc, err := connect()
		if err != nil {
			b.Fatal(err)
		}
		setup += time.Since(start)
		nc.Close()
	}
	tenantConn, err := connect()
	if err != nil {
		b.Fatal(err)
	}
	defer tenantConn.Close()

	// The plain server's users: one with no permissions at all, and one
	// with the permissions Bulkhead gives the tenant's token (what an
	// operator would configure by hand to keep tenants apart).
	pubAllow, subAllow := events.Permissions("bench-events", true, true)
	raw, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: b.TempDir(), Users: []*server.User{{Username: "static", Password: "static-password"},
			{Username: "static-isolated", Password: "static-password", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Allow: pubAllow}, Subscribe: &server.SubjectPermission{Allow: subAllow}}}}})
	if err != nil {
		b.Fatal(err)
	}
	go raw.Start()
	defer raw.Shutdown()
	if !raw.ReadyForConnections(10 * time.Second) {
		b.Fatal("the plain NATS server did not start")
	}
	rawConn, err := nats.Connect(raw.ClientURL(), nats.UserInfo("static", "static-password"))
	if err != nil {
		b.Fatal(err)
	}
	defer rawConn.Close()
	rawJS, err := jetstream.New(rawConn)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := rawJS.CreateStream(ctx, jetstream.StreamConfig{Name: events.StreamName("bench-events"), Subjects: []string{"t.bench-events.>"},
		Storage: jetstream.FileStorage, MaxBytes: 64 << 20, MaxMsgs: 1_000_000, MaxConsumers: 32, MaxMsgSize: 1 << 20,
		Duplicates: 2 * time.Minute, Discard: jetstream.DiscardNew}); err != nil {
		b.Fatal(err)
	}
	isoConn, err := nats.Connect(raw.ClientURL(), nats.UserInfo("static-isolated", "static-password"), nats.CustomInboxPrefix("_INBOX_bench-events"))
	if err != nil {
		b.Fatal(err)
	}
	defer isoConn.Close()
	isoJS, err := jetstream.New(isoConn)
	if err != nil {
		b.Fatal(err)
	}
	tenantJS, err := jetstream.New(tenantConn)
	if err != nil {
		b.Fatal(err)
	}
	// The sides: Bulkhead's token, the plain server's unrestricted user,
	// its user with the tenant's permissions. Each round, each side in
	// turn, who goes first rotating.
	sides := []jetstream.JetStream{tenantJS, rawJS, isoJS}
	body := make([]byte, 256)
	const perRound = 500
	var spent [3]time.Duration
	var sent [3]int
	b.ResetTimer()
	for round := 0; round*perRound < b.N; round++ {
		for k := range sides {
			side := (k + round) % len(sides)
			start := time.Now()
			for range perRound {
				if _, err := sides[side].Publish(ctx, "t.bench-events.orders", body); err != nil {
					b.Fatal(err)
				}
			}
			spent[side] += time.Since(start)
			sent[side] += perRound
		}
	}
	b.StopTimer()
	// Consume as many as each side sent, in rounds of perRound messages a
	// side in turn: batches of 100 with an ack each (the ack's reply not
	// awaited, as consumers usually do), through a durable pull consumer.
	var got [3]int
	var took [3]time.Duration
	cons := make([]jetstream.Consumer, len(sides))
	for side, js := range sides {
		if cons[side], err = js.CreateOrUpdateConsumer(ctx, events.StreamName("bench-events"),
			jetstream.ConsumerConfig{Durable: fmt.Sprintf("bench%d", side), AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 10_000}); err != nil {
			b.Fatal(err)
		}
	}
	for round := 0; got[0] < sent[0] || got[1] < sent[1] || got[2] < sent[2]; round++ {
		for k := range cons {
			side := (k + round) % len(cons)
			start := time.Now()
			for n := 0; n < perRound && got[side] < sent[side]; {
				batch, err := cons[side].Fetch(min(100, sent[side]-got[side]), jetstream.FetchMaxWait(5*time.Second))
				if err != nil {
					b.Fatal(err)
				}
				for m := range batch.Messages() {
					m.Ack()
					n++
					got[side]++
				}
				if err := batch.Error(); err != nil {
					b.Fatal(err)
				}
			}
			took[side] += time.Since(start)
		}
	}
	// HTTP publish through the API, one connection, for those without a
	// NATS client: the token's check, the tenant's limits, JetStream's ack.
	api := client.New(env.URL, tok.AccessToken)
	const httpN = 2000
	start := time.Now()
	for range httpN {
		if _, err := api.Publish(ctx, "orders", client.Publication{Data: body}); err != nil {
			b.Fatal(err)
		}
	}
	httpRate := httpN / time.Since(start).Seconds()
	rate := func(n [3]int, d [3]time.Duration, side int) float64 { return float64(n[side]) / d[side].Seconds() }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rate(sent, spent, 0), "msgs/s")
	b.ReportMetric(rate(sent, spent, 1), "raw_msgs/s")
	b.ReportMetric(100*rate(sent, spent, 0)/rate(sent, spent, 1), "raw_%")
	b.ReportMetric(100*rate(sent, spent, 0)/rate(sent, spent, 2), "iso_%")
	b.ReportMetric(rate(got, took, 0), "consume_msgs/s")
	b.ReportMetric(rate(got, took, 1), "raw_consume_msgs/s")
	b.ReportMetric(100*rate(got, took, 0)/rate(got, took, 1), "consume_raw_%")
	b.ReportMetric(100*rate(got, took, 0)/rate(got, took, 2), "consume_iso_%")
	b.ReportMetric(httpRate, "http_msgs/s")
	b.ReportMetric(float64(setup.Microseconds())/50/1000, "connect_ms")
}
