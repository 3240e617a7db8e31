package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
	sdkevents "github.com/bulkhead-dev/bulkhead/sdk/events"
)

// freePort is a loopback port nobody listens on (for a listener that must
// come back on the same address after a restart).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestStreamsSurviveKill9: a node killed with kill -9 while a tenant
// publishes and consumes loses no message JetStream acknowledged, and
// the messages a consumer held without acknowledging are delivered again
// after their ack wait, once the node is back on the same data.
func TestStreamsSurviveKill9(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	natsAddr := "127.0.0.1:" + freePort(t)
	p := startServeArgs(t, []string{"--data-dir", dataDir, "--nats-listen", natsAddr})
	ctx := contextT(t)
	c := p.client()
	if _, err := c.CreateTenant(ctx, client.CreateTenant{ID: "crash-ev"}, ""); err != nil {
		t.Fatal(err)
	}
	scopes := []string{sdkevents.ScopePublish, sdkevents.ScopeSubscribe}
	oc, err := c.CreateOAuthClient(ctx, "crash-ev", client.CreateOAuthClient{Name: "ev", GrantTypes: []string{"client_credentials"}, Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	cc := &clientcredentials.Config{ClientID: oc.ClientID, ClientSecret: oc.ClientSecret, TokenURL: p.url + "/oauth/token", Scopes: scopes}
	tok, err := cc.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + natsAddr
	nc, err := sdkevents.Connect(url, "crash-ev", tok.AccessToken, nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	subject := sdkevents.Subject("crash-ev", "orders")
	// A consumer holds 5 messages without acknowledging them.
	for i := range 5 {
		if _, err := js.Publish(ctx, subject, []byte("held"), jetstream.WithMsgID(fmt.Sprintf("held-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	workers, err := js.CreateOrUpdateConsumer(ctx, sdkevents.StreamName("crash-ev"), jetstream.ConsumerConfig{Durable: "workers",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := workers.Fetch(5, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for range batch.Messages() {
		held++
	}
	if held != 5 {
		t.Fatalf("held %d messages; want 5", held)
	}

	// A publisher goes on until the node dies under it.
	var mu sync.Mutex
	acked := map[string]bool{}
	var pubs sync.WaitGroup
	pubs.Go(func() {
		for i := 0; ; i++ {
			id := fmt.Sprintf("m-%d", i)
			if _, err := js.Publish(ctx, subject, []byte(id), jetstream.WithMsgID(id)); err != nil {
				return // the node is gone
			}
			mu.Lock()
			acked[id] = true
			mu.Unlock()
		}
	})
	time.Sleep(300 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	pubs.Wait()
	nc.Close()
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n == 0 {
		t.Fatal("nothing was published before the kill")
	}

	p2 := startServeArgs(t, []string{"--data-dir", dataDir, "--nats-listen", natsAddr}, "BULKHEAD_PUBLIC_URL="+p.url)
	cc.TokenURL = p2.url + "/oauth/token"
	tok2, err := cc.Token(ctx) // the first token is still good; a new one proves the node issues again
	if err != nil {
		t.Fatal(err)
	}
	nc2, err := sdkevents.Connect(url, "crash-ev", tok2.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2, err := jetstream.New(nc2)
	if err != nil {
		t.Fatal(err)
	}
	// Every acknowledged publish is in the stream.
	all, err := js2.CreateOrUpdateConsumer(ctx, sdkevents.StreamName("crash-ev"), jetstream.ConsumerConfig{Durable: "audit",
		AckPolicy: jetstream.AckNonePolicy, FilterSubject: subject})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for {
		b, err := all.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range b.Messages() {
			got++
			seen[m.Headers().Get(jetstream.MsgIDHeader)] = true
		}
		if got == 0 {
			break
		}
	}
	lost := 0
	for id := range acked {
		if !seen[id] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged messages lost across kill -9", lost, n)
	}
	// The held ones come again, after their ack wait.
	workers2, err := js2.Consumer(ctx, sdkevents.StreamName("crash-ev"), "workers")
	if err != nil {
		t.Fatal(err)
	}
	redelivered := 0
	deadline := time.Now().Add(15 * time.Second)
	for redelivered < 5 && time.Now().Before(deadline) {
		b, err := workers2.Fetch(5-redelivered, jetstream.FetchMaxWait(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range b.Messages() {
			md, _ := m.Metadata()
			if string(m.Data()) == "held" && md != nil && md.NumDelivered >= 2 {
				redelivered++
			}
			m.Ack()
		}
	}
	if redelivered != 5 {
		t.Errorf("%d of 5 unacknowledged messages delivered again after the restart", redelivered)
	}
	t.Logf("%d messages acknowledged before the kill, all there after it", n)
}
