package events_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/events/natstest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestOffboardingTakesNoTenantAccount: offboarding a tenant that never
// used events must neither take a tenant account (which would then sit
// in quarantine for a day, out of every other tenant's reach) nor fail
// when every account is taken (the offboarding would be retried for
// ever and the tenant never deleted).
func TestOffboardingTakesNoTenantAccount(t *testing.T) {
	w := &world{nats: natstest.StartWith(t, 1)}
	w.start(t, apitest.Options{NATSURL: w.nats.URL(), NATSCredentials: w.nats.CredentialsFile}, "used-a", "quiet-b", "quiet-c", "later-d")
	ctx := t.Context()
	both := []string{events.ScopePublish, events.ScopeSubscribe}
	pub := func(tid string) error {
		tok, _ := w.token(t, tid, both...)
		_, err := client.New(w.env.URL, tok).Publish(ctx, "orders", client.Publication{Data: []byte(tid)})
		return err
	}
	deleted := func(tid string) bool {
		if _, err := w.env.Admin.DeleteTenant(ctx, tid); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if tn, err := w.env.Admin.GetTenant(ctx, tid); err == nil && tn.Status == "deleted" {
				return true
			}
			time.Sleep(100 * time.Millisecond)
		}
		return false
	}

	// One account, free: quiet-b, which never used events, leaves. Its
	// offboarding must not take (and quarantine) the only account.
	if !deleted("quiet-b") {
		t.Fatal("quiet-b's offboarding did not finish")
	}
	if err := pub("used-a"); err != nil {
		t.Errorf("quiet-b's offboarding took the only tenant account for a day: used-a's publish: %v", err)
	}

	// The only account is used-a's now: quiet-c, which never used events,
	// must still be able to leave.
	if err := pub("used-a"); err != nil {
		t.Fatal(err)
	}
	if !deleted("quiet-c") {
		t.Error("quiet-c, which never used events, cannot be offboarded while every tenant account is taken")
	}
}

// TestTwoNodesGiveATenantOneAccount: two nodes on one database and one
// external server give tenants accounts at once, as their first
// connections arrive at both. Half the accounts were freed by tenants
// that left more than a day ago. Every tenant must end up with one
// account, the same on both nodes, held by no one else.
func TestTwoNodesGiveATenantOneAccount(t *testing.T) {
	const tenantsN = 40
	ns := natstest.StartWith(t, 2*tenantsN)
	dsn := storagetest.PostgresDSN(t)
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	n1 := apitest.New(t, dsn, apitest.Options{RootKey: key, NATSURL: ns.URL(), NATSCredentials: ns.CredentialsFile})
	n2 := apitest.New(t, dsn, apitest.Options{RootKey: key, PublicURL: n1.URL, NATSURL: ns.URL(), NATSCredentials: ns.CredentialsFile})
	ctx := t.Context()

	// Bulkhead's bucket, as Bulkhead's streams user sees it: the first
	// tenantsN accounts were released long ago.
	nc, err := nats.Connect(ns.URL(), nats.UserInfo(ns.Credentials.AuthUser, ns.Credentials.AuthPassword)) // the bucket is in AUTH
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "bulkhead_tenant_accounts")
	if err != nil {
		t.Fatal(err)
	}
	for i := range tenantsN {
		if _, err := kv.Put(ctx, fmt.Sprintf("slot.%d", i), []byte("released:0")); err != nil {
			t.Fatal(err)
		}
	}

	got := make([][2]string, tenantsN)
	for i := range tenantsN {
		tid := fmt.Sprintf("race-%02d", i)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for j, s := range []*events.Server{n1.Events, n2.Events} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				acc, err := events.SlotOf(ctx, s, tid)
				if err != nil {
					t.Errorf("%s on node %d: %v", tid, j+1, err)
				}
				got[i][j] = acc
			}()
		}
		close(start)
		wg.Wait()
	}

	holders := map[string][]string{} // tenant → the slots whose value it is
	keys, err := kv.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "slot.") {
			continue
		}
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		holders[string(e.Value())] = append(holders[string(e.Value())], k)
	}
	split := 0
	for i := range tenantsN {
		tid := fmt.Sprintf("race-%02d", i)
		if got[i][0] != got[i][1] || len(holders[tid]) != 1 {
			split++
			t.Errorf("%s: node 1 put it in %s, node 2 in %s; the bucket gives it %v", tid, got[i][0], got[i][1], holders[tid])
		}
	}
	if split > 0 {
		t.Errorf("%d of %d tenants were given two accounts at once", split, tenantsN)
	}
}

// TestOperatorCannotWriteTheAccountsBucket: the operator's NATS user is
// in TENANTS, with Bulkhead's bucket of tenant accounts, and may only
// read the operator's stream. A reply subject (which nats-server does
// not check against permissions, and JetStream answers to) must not
// let it write into the bucket: a record "tenant.<id>" is which account
// a tenant's connections are put in.
func TestOperatorCannotWriteTheAccountsBucket(t *testing.T) {
	w := newWorldIn(t, external, apitest.Options{}, "tenant-a")
	ctx := t.Context()
	op, err := nats.Connect(w.nats.URL(), nats.Token(apitest.AdminToken), nats.CustomInboxPrefix(events.OperatorInbox))
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	if err := op.PublishRequest("$JS.API.STREAM.INFO."+events.OperatorStream, "$KV.bulkhead_tenant_accounts.tenant.tenant-a", nil); err != nil {
		t.Fatal(err)
	}
	op.Flush()
	time.Sleep(300 * time.Millisecond)
	nc, err := nats.Connect(w.nats.URL(), nats.UserInfo(w.nats.Credentials.AuthUser, w.nats.Credentials.AuthPassword)) // the bucket is in AUTH
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, "bulkhead_tenant_accounts")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(ctx, "tenant.tenant-a"); err == nil {
		t.Errorf("the operator's user wrote tenant-a's account record through a reply subject: %.80q", e.Value())
	}
}
