package events_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/events/natstest"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestTenantAccountsOnAnExternalServer: on an external server with two
// tenant accounts, two tenants get one each; a third is refused, over
// NATS and over HTTP, with a clear answer and nobody else's account; a
// tenant that leaves does not hand its account to the next at once (its
// connections may outlive it until their tokens expire).
func TestTenantAccountsOnAnExternalServer(t *testing.T) {
	w := &world{nats: natstest.StartWith(t, 2)}
	w.start(t, apitest.Options{NATSURL: w.nats.URL(), NATSCredentials: w.nats.CredentialsFile}, "slot-a", "slot-b", "slot-c", "slot-d")
	ctx := t.Context()
	both := []string{events.ScopePublish, events.ScopeSubscribe}
	pub := func(tid string) error {
		tok, _ := w.token(t, tid, both...)
		_, err := client.New(w.env.URL, tok).Publish(ctx, "orders", client.Publication{Data: []byte(tid)})
		return err
	}
	for _, tid := range []string{"slot-a", "slot-b"} {
		if err := pub(tid); err != nil {
			t.Fatalf("%s: %v", tid, err)
		}
	}
	err := pub("slot-c")
	var p *client.Error
	if !errors.As(err, &p) || p.Status != http.StatusServiceUnavailable {
		t.Errorf("a third tenant with two accounts: %v; want 503", err)
	}
	tokC, _ := w.token(t, "slot-c", both...)
	if _, err := connect(t, w.nats.URL(), tokC, "slot-c"); err == nil {
		t.Error("a third tenant connected over NATS with two accounts for two tenants")
	}
	if _, err := w.env.Admin.DeleteTenant(ctx, "slot-a"); err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, "slot-a to be offboarded", func() bool {
		tn, err := w.env.Admin.GetTenant(ctx, "slot-a")
		return err == nil && tn.Status == "deleted"
	})
	if err := pub("slot-d"); err == nil {
		t.Error("slot-a's account went to slot-d the moment slot-a left")
	}
}
