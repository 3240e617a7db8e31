package bench

import (
	"context"
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

	raw, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		JetStream: true, StoreDir: b.TempDir(), Username: "static", Password: "static-password"})
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
	tenantJS, err := jetstream.New(tenantConn)
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 256)
	const perRound = 500
	var spent [2]time.Duration
	var sent [2]int
	b.ResetTimer()
	for i := 0; i < b.N; i += perRound {
		for side, js := range []jetstream.JetStream{tenantJS, rawJS} {
			start := time.Now()
			for range perRound {
				if _, err := js.Publish(ctx, "t.bench-events.orders", body); err != nil {
					b.Fatal(err)
				}
			}
			spent[side] += time.Since(start)
			sent[side] += perRound
		}
	}
	b.StopTimer()
	bulkhead := float64(sent[0]) / spent[0].Seconds()
	plain := float64(sent[1]) / spent[1].Seconds()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(bulkhead, "msgs/s")
	b.ReportMetric(plain, "raw_msgs/s")
	b.ReportMetric(100*bulkhead/plain, "raw_%")
	b.ReportMetric(float64(setup.Microseconds())/50/1000, "connect_ms")
}
