package events_test

import (
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/events/natstest"
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
