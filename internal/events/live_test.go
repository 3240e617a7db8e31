package events_test

import (
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
)

// TestConnectionsEndWithTheirToken: a connection lasts only while the
// token it connected with is good, as the API would take it now: its
// client deleted, or its tenant suspended, closes it within the recheck
// interval; the neighbour's connection stays. A leaving tenant's stream
// goes with it.
func TestConnectionsEndWithTheirToken(t *testing.T) { eachMode(t, testConnectionsEndWithTheirToken) }

func testConnectionsEndWithTheirToken(t *testing.T, m mode) {
	w := newWorldIn(t, m, apitest.Options{NATSRecheck: 100 * time.Millisecond}, "live-a", "live-b", "live-c")
	url := w.env.Events.ClientURL()
	ctx := t.Context()
	both := []string{events.ScopePublish, events.ScopeSubscribe}
	tokA, clientA := w.token(t, "live-a", both...)
	tokB, _ := w.token(t, "live-b", both...)
	tokC, _ := w.token(t, "live-c", both...)
	closed := func(c *conn) bool { return c.IsClosed() }
	connectTo := func(tok, tid string) *conn {
		c, err := connect(t, url, tok, tid)
		if err != nil {
			t.Fatalf("%s: %v", tid, err)
		}
		return c
	}
	a, b, c := connectTo(tokA, "live-a"), connectTo(tokB, "live-b"), connectTo(tokC, "live-c")
	if err := c.Publish("t.live-c.orders", []byte("kept until c leaves")); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}

	if err := w.env.Admin.DeleteOAuthClient(ctx, "live-a", clientA); err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, "a's connection to close once its client is gone", func() bool { return closed(a) })
	if closed(b) || closed(c) {
		t.Fatal("the neighbours' connections closed with a's")
	}
	if _, err := connect(t, url, tokA, "live-a"); err == nil {
		t.Error("a connected again with the token of a deleted client")
	}

	if _, err := w.env.Admin.SuspendTenant(ctx, "live-b"); err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, "b's connection to close once b is suspended", func() bool { return closed(b) })
	if closed(c) {
		t.Fatal("c's connection closed with b's")
	}

	if ok, err := events.StreamExists(ctx, w.env.Events, "live-c"); err != nil || !ok {
		t.Fatalf("c's stream before c leaves: %v %v", ok, err)
	}
	if _, err := w.env.Admin.DeleteTenant(ctx, "live-c"); err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, "c to be offboarded", func() bool {
		tn, err := w.env.Admin.GetTenant(ctx, "live-c")
		return err == nil && tn.Status == "deleted"
	})
	if ok, err := events.StreamExists(ctx, w.env.Events, "live-c"); err != nil || ok {
		t.Errorf("c's stream after c left: exists %v (%v)", ok, err)
	}
	runtest.Eventually(t, "c's connection to close", func() bool { return closed(c) })
}
