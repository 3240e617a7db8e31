package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/hooksig"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// hookReceiver is a webhook endpoint that verifies each delivery, takes
// its time to answer (so that a kill finds deliveries in flight) and
// counts the events it got.
type hookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	secret string
	got    map[string]int // event id → deliveries
	bad    int
}

func newHookReceiver(t *testing.T, delay time.Duration) *hookReceiver {
	r := &hookReceiver{got: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		time.Sleep(delay)
		r.mu.Lock()
		defer r.mu.Unlock()
		var e client.Event
		if hooksig.Verify([]byte(r.secret), req.Header.Get(hooksig.Header), body, time.Now(), 5*time.Minute) != nil ||
			json.Unmarshal(body, &e) != nil {
			r.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.got[e.ID]++
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *hookReceiver) ids() (map[string]int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.got))
	for k, v := range r.got {
		out[k] = v
	}
	return out, r.bad
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// operatorStreamIDs reads the Nats-Msg-Id of every message of the
// operator's stream, connecting with the admin token.
func operatorStreamIDs(t *testing.T, natsAddr string) []string {
	t.Helper()
	nc, err := nats.Connect("nats://"+natsAddr, nats.Token(testAdminToken), nats.CustomInboxPrefix(events.OperatorInbox), nats.NoReconnect())
	if err != nil {
		t.Fatalf("the operator connects to NATS: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := contextT(t)
	st, err := js.Stream(ctx, events.OperatorStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Header.Get(jetstream.MsgIDHeader))
	}
	return out
}

// TestOutboxSurvivesKill9 kills bulkhead with SIGKILL while it delivers
// lifecycle events to a slow webhook (and relays them to the operator's
// stream), restarts it, and shows that every event reached the webhook at
// least once, signed, and the operator's stream exactly once (counted by
// Nats-Msg-Id), and that the delivery log ends with every delivery
// delivered.
func TestOutboxSurvivesKill9(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	natsAddr := freeAddr(t)
	env := []string{"BULKHEAD_NATS_LISTEN=" + natsAddr, "BULKHEAD_ALLOW_PRIVATE_UPSTREAMS=true"}
	p := startServe(t, dataDir, "", env...)
	c := p.client()
	ctx := contextT(t)
	recv := newHookReceiver(t, 150*time.Millisecond)
	hook, err := c.CreateWebhook(ctx, client.CreateWebhook{URL: recv.URL + "/events", Events: []string{"tenant.*"}})
	if err != nil {
		t.Fatal(err)
	}
	recv.mu.Lock()
	recv.secret = hook.Secret
	recv.mu.Unlock()

	const tenants = 8
	for i := range tenants {
		id := fmt.Sprintf("hooked-%d", i)
		if _, err := c.CreateTenant(ctx, client.CreateTenant{ID: id}, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := c.SuspendTenant(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	want := tenants * 3 // onboarding.started, activated, suspended
	runtest.Eventually(t, "some deliveries before the kill", func() bool {
		got, _ := recv.ids()
		return len(got) >= 3
	})
	if got, _ := recv.ids(); len(got) >= want {
		t.Fatalf("every event was delivered before the kill (%d): nothing was in flight", len(got))
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited

	p2 := startServe(t, dataDir, "", append(env, "BULKHEAD_PUBLIC_URL="+p.url)...)
	c2 := p2.client()
	runtest.Eventually(t, "every delivery delivered after the restart", func() bool {
		log, err := c2.WebhookDeliveries(ctx, hook.ID, 1000, "")
		if err != nil || len(log.Items) != want {
			return false
		}
		for _, d := range log.Items {
			if d.Status != "delivered" {
				return false
			}
		}
		return true
	})
	stream := operatorStreamIDs(t, natsAddr)
	seen := map[string]bool{}
	for _, id := range stream {
		if seen[id] {
			t.Errorf("event %s is on the operator's stream more than once", id)
		}
		seen[id] = true
	}
	if len(stream) != want {
		t.Errorf("the operator's stream holds %d messages; want %d, one per event", len(stream), want)
	}
	got, bad := recv.ids()
	if bad != 0 {
		t.Errorf("%d deliveries failed the signature check", bad)
	}
	again := 0
	for _, id := range stream {
		if got[id] == 0 {
			t.Errorf("event %s never reached the webhook", id)
		}
		if got[id] > 1 {
			again++
		}
	}
	if len(got) != want {
		t.Errorf("the webhook got %d distinct events; want %d", len(got), want)
	}
	t.Logf("%d events, %d of them delivered more than once (the kill cut their answers)", want, again)
}
