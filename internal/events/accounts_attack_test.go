package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
)

// What an attacker holding a tenant's token tried against accounts per
// tenant, and was refused.

// TestBulkheadsTenantUserIsBulkheadsAlone: no outside client gets in as
// Bulkhead's own user in a tenant's account, whatever it sends.
func TestBulkheadsTenantUserIsBulkheadsAlone(t *testing.T) { eachMode(t, testTenantUserOutside) }

func testTenantUserOutside(t *testing.T, m mode) {
	w := newWorldIn(t, m, apitest.Options{}, "tenant-a", "tenant-b")
	tokA, _ := w.token(t, "tenant-a", events.ScopePublish, events.ScopeSubscribe)
	// tenant-b's account exists (its first connection).
	tokB, _ := w.token(t, "tenant-b", events.ScopePublish, events.ScopeSubscribe)
	if _, err := connect(t, w.env.Events.ClientURL(), tokB, "tenant-b"); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"bulkhead-tenant:tenant-b", "bulkhead-tenant:", "bulkhead-tenant:tenant-b.>", "bulkhead-tenant:AUTH",
		"bulkhead-tenant:SYS", "bulkhead-tenant:TENANTS", "bulkhead-tenant:$G", "bulkhead-tenant:nobody", "bulkhead-streams", "bulkhead-auth"} {
		for _, pw := range []string{"", "wrong", tokA} {
			for _, withToken := range []bool{false, true} {
				opts := []nats.Option{nats.UserInfo(user, pw), nats.Timeout(5 * time.Second), nats.NoReconnect()}
				if withToken {
					opts = append(opts, nats.Token(tokA))
				}
				nc, err := nats.Connect(w.env.Events.ClientURL(), opts...)
				if err == nil {
					t.Errorf("connected as %q with password %.10q (token %v)", user, pw, withToken)
					nc.Close()
				}
			}
		}
	}
}

// TestManyTenantsConnectAtOnce: 40 tenants' first connections at once,
// each needing its account and Bulkhead's own connection there (through
// the callout, while the first connections hold its workers): all get in.
func TestManyTenantsConnectAtOnce(t *testing.T) {
	const n = 40
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("crowd-%02d", i))
	}
	w := newWorld(t, apitest.Options{}, ids...)
	toks := make([]string, n)
	for i, id := range ids {
		toks[i], _ = w.token(t, id, events.ScopePublish, events.ScopeSubscribe)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := time.Now()
	for i, id := range ids {
		wg.Go(func() {
			nc, err := nats.Connect(w.env.Events.ClientURL(), nats.Token(toks[i]), nats.CustomInboxPrefix("_INBOX_"+id), nats.Timeout(10*time.Second), nats.NoReconnect())
			if err == nil {
				_, err = nc.Request("t."+id+".x", []byte("x"), 5*time.Second) // its stream acks
				nc.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s: %v", ids[i], err)
		}
	}
	t.Logf("%d first connections in %v", n, time.Since(start))
}

// TestTenantCannotLiftItsStreamLimits: in its own account a tenant makes
// consumers; their deliveries, and JetStream's answers to a reply subject
// it names, must not reach its account's JetStream API: a stream update
// would take its tier's limits off (the account's own storage is
// unlimited), on the node's disk.
func TestTenantCannotLiftItsStreamLimits(t *testing.T) {
	tiers := filepath.Join(t.TempDir(), "tiers.json")
	if err := os.WriteFile(tiers, []byte(`{"tiers":[{"name":"basic","isolation":"pool","rate_limit_rps":1000,"rate_limit_burst":1000,`+
		`"stream_max_msgs":3,"stream_max_consumers":4}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, apitest.Options{TiersFile: tiers}, "small-a")
	ctx := t.Context()
	tok, _ := w.token(t, "small-a", events.ScopePublish, events.ScopeSubscribe)
	a, err := connect(t, w.env.Events.ClientURL(), tok, "small-a")
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(a.Conn)
	st := events.StreamName("small-a")
	cfg, _ := json.Marshal(map[string]any{"name": st, "subjects": []string{"t.small-a.>"}, "storage": "file",
		"max_msgs": -1, "max_bytes": -1, "max_consumers": -1, "max_msg_size": -1, "discard": "new", "retention": "limits", "num_replicas": 1})
	if _, err := js.Publish(ctx, "t.small-a.cfg", cfg); err != nil {
		t.Fatal(err)
	}
	// A push consumer delivering into the stream's update API.
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateConsumer(short, st, jetstream.ConsumerConfig{Durable: "lift", DeliverSubject: "$JS.API.STREAM.UPDATE." + st,
		FilterSubject: "t.small-a.cfg", AckPolicy: jetstream.AckNonePolicy}); err != nil {
		t.Logf("push consumer into the API refused: %v", err)
	}
	// A direct get answering into it.
	a.PublishRequest("$JS.API.DIRECT.GET."+st+".t.small-a.cfg", "$JS.API.STREAM.UPDATE."+st, nil)
	a.Flush()
	time.Sleep(time.Second)
	s, err := js.Stream(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxMsgs != 3 {
		t.Errorf("the tenant changed its stream's max_msgs to %d (its tier's: 3)", info.Config.MaxMsgs)
	}
	for i := range 5 {
		if _, err := js.Publish(ctx, "t.small-a.x", []byte{byte(i)}); err != nil {
			return
		}
	}
	t.Errorf("the tenant published past its tier's 3 messages")
}
