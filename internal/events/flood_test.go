package events_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
)

// TestOneTenantsConnectionsAreBounded: one token cannot open connections
// to the embedded server without end (each a socket and server memory,
// until the node has none left for anyone): past MaxTenantConns its
// tenant is refused, and the neighbour still connects.
func TestOneTenantsConnectionsAreBounded(t *testing.T) {
	w := newWorld(t, apitest.Options{}, "flood-a", "flood-b")
	tokA, _ := w.token(t, "flood-a", events.ScopePublish, events.ScopeSubscribe)
	tokB, _ := w.token(t, "flood-b", events.ScopePublish, events.ScopeSubscribe)
	n := 0
	for range events.MaxTenantConns + 10 {
		nc, err := nats.Connect(w.env.Events.ClientURL(), nats.Token(tokA), nats.NoReconnect(), nats.Timeout(5*time.Second))
		if err != nil {
			break
		}
		t.Cleanup(nc.Close)
		n++
	}
	if n > events.MaxTenantConns {
		t.Errorf("one tenant opened %d connections; want at most %d", n, events.MaxTenantConns)
	}
	if n < events.MaxTenantConns {
		t.Errorf("one tenant opened only %d connections before a refusal; want %d", n, events.MaxTenantConns)
	}
	if _, err := connect(t, w.env.Events.ClientURL(), tokB, "flood-b"); err != nil {
		t.Errorf("the neighbour, while flood-a is at its limit: %v", err)
	}
}
