package events_test

import (
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestPullsOutliveAnEvictedAccountConnection: Bulkhead's connection to a
// tenant's account, dropped from its cache (more than 1,024 tenants in
// use) and closed 30 s later, leaves the tenant's HTTP pulls working.
func TestPullsOutliveAnEvictedAccountConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the eviction grace")
	}
	w := newWorld(t, apitest.Options{}, "evicted")
	ctx := t.Context()
	tok, _ := w.token(t, "evicted", events.ScopePublish, events.ScopeSubscribe)
	c := client.New(w.env.URL, tok)
	if _, err := c.Publish(ctx, "orders", client.Publication{Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pull(ctx, "orders", client.StreamPull{Consumer: "w", MaxMessages: 1}); err != nil {
		t.Fatal(err)
	}
	events.EvictAccount(w.env.Events, "evicted")
	time.Sleep(events.AccountConnGrace + time.Second)
	if _, err := c.Publish(ctx, "orders", client.Publication{Data: []byte("2")}); err != nil {
		t.Errorf("publish after the eviction: %v", err)
	}
	if _, err := c.Pull(ctx, "orders", client.StreamPull{Consumer: "w", MaxMessages: 1}); err != nil {
		t.Errorf("pull after the eviction: %v", err)
	}
}
