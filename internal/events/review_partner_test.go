package events_test

import (
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestPartnerConnectionKeepsToItsNetworks: a partner's session connects
// to the tenant's event streams from its trust's networks only, and when
// the tenant narrows those networks to exclude the connection's address,
// the open connection is closed at the next recheck, as every request of
// the same token on the API and the gateway is refused at once. It was
// not: only the token was checked again, so the connection kept
// receiving the tenant's events until the token expired (up to an hour)
// from a network the tenant had just cut off.
func TestPartnerConnectionKeepsToItsNetworks(t *testing.T) {
	eachMode(t, testPartnerConnectionKeepsToItsNetworks)
}

func testPartnerConnectionKeepsToItsNetworks(t *testing.T, m mode) {
	w := newWorldIn(t, m, apitest.Options{NATSRecheck: 100 * time.Millisecond}, "acme")
	ctx := t.Context()
	p, err := w.env.Admin.CreatePartner(ctx, client.CreatePartner{Name: "Reporting Co"})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := w.env.Admin.CreateTrust(ctx, "acme", client.CreateTrust{Partner: p.ID, Scopes: []string{events.ScopeSubscribe},
		SourceNetworks: []string{"127.0.0.1/32", "::1/128"}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := client.AssumeTrustToken(ctx, client.AssumeTrust{TokenURL: w.env.URL + "/oauth/token", PartnerID: p.ID,
		ClientSecret: p.ClientSecret, Tenant: "acme", ExternalID: tr.ExternalID})
	if err != nil {
		t.Fatal(err)
	}
	url := w.env.Events.ClientURL()
	c, err := connect(t, url, tok.AccessToken, "acme")
	if err != nil {
		t.Fatalf("from the trust's networks: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // a few rechecks: the connection stays while its network is the trust's
	if c.IsClosed() {
		t.Fatal("the connection closed while its address is in the trust's networks")
	}
	nets := []string{"10.0.0.0/8"}
	if _, err := w.env.Admin.UpdateTrust(ctx, "acme", tr.ID, client.PatchTrust{SourceNetworks: &nets}); err != nil {
		t.Fatal(err)
	}
	if _, err := connect(t, url, tok.AccessToken, "acme"); err == nil {
		t.Error("a new connection from outside the trust's networks was let in")
	}
	runtest.Eventually(t, "the connection outside the trust's new networks to close", func() bool { return c.IsClosed() })
}
