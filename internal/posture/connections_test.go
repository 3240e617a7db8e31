package posture_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestGrantIdle: of a connection's two active grants made 100 days ago,
// the one not used through the proxy since is found, with its
// connection; the one used is not, nor a suspended one; a request with
// the idle grant resolves its finding.
func TestGrantIdle(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme")
		upstream := upstreamServer(t)
		c := f.connection(t, "crm", upstream.URL, client.Alerts{}, false)
		busy := f.grant(t, c, "sync", false)
		parked := f.grant(t, c, "parked", false)
		if _, err := f.env.Admin.SuspendGrant(f.ctx, "acme", c.ID, parked.ID, "holiday"); err != nil {
			t.Fatal(err)
		}
		f.proxy(t, c.ID, busy.PartA)
		f.exec(t, `UPDATE connect_grants SET created_at = ? WHERE tenant_id = 'acme'`, ago(100*days))

		f.scan(t)
		f.none(t, "grant_idle", "grant:"+c.Grant.ID) // use recorded for minutes only

		migratedAgo(t, dsn, "connect", 2, 100*days)
		f.scan(t)
		got := f.want(t, "grant_idle", "grant:"+c.Grant.ID, api.SeverityMedium, "acme")
		if !strings.Contains(got.Detail, c.ID) {
			t.Errorf("detail: %q", got.Detail)
		}
		f.none(t, "grant_idle", "grant:"+busy.ID)
		f.none(t, "grant_idle", "grant:"+parked.ID)

		// Idle once its last use is 90 days old.
		f.exec(t, `UPDATE connect_grants SET last_used_at = ? WHERE id = ?`, ago(91*days), busy.ID)
		f.scan(t)
		if got := f.want(t, "grant_idle", "grant:"+busy.ID, api.SeverityMedium, "acme"); !strings.Contains(got.Detail, "last used") {
			t.Errorf("detail: %q", got.Detail)
		}

		f.proxy(t, c.ID, c.Grant.PartA)
		f.scan(t)
		f.none(t, "grant_idle", "grant:"+c.Grant.ID)
	})
}

// TestConnectionWithoutAlerts: a connection with no alert webhook and a
// grant that an alert does not suspend is found; one whose grants all
// auto-suspend, and one with a webhook, are not; setting a webhook
// resolves the finding.
func TestConnectionWithoutAlerts(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme")
		upstream := upstreamServer(t)
		quiet := f.connection(t, "quiet", upstream.URL, client.Alerts{}, false)
		f.grant(t, quiet, "auto", true)
		suspends := f.connection(t, "suspends", upstream.URL, client.Alerts{}, true)
		hooked := f.connection(t, "hooked", upstream.URL, client.Alerts{WebhookURL: upstream.URL + "/alerts"}, false)

		f.scan(t)
		got := f.want(t, "connection_without_alerts", "connection:"+quiet.ID, api.SeverityLow, "acme")
		if !strings.Contains(got.Detail, quiet.Grant.ID) {
			t.Errorf("detail: %q", got.Detail)
		}
		f.none(t, "connection_without_alerts", "connection:"+suspends.ID)
		f.none(t, "connection_without_alerts", "connection:"+hooked.ID)

		if _, err := f.env.Admin.UpdateConnection(f.ctx, "acme", quiet.ID, client.UpdateConnection{
			Alerts: &client.Alerts{WebhookURL: upstream.URL + "/alerts"}}); err != nil {
			t.Fatal(err)
		}
		f.scan(t)
		f.none(t, "connection_without_alerts", "connection:"+quiet.ID)
	})
}

func upstreamServer(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "{}") }))
	t.Cleanup(s.Close)
	return s
}

// connection makes a connection of acme to upstream, with its first grant.
func (f *fixture) connection(t *testing.T, name, upstream string, alerts client.Alerts, autoSuspend bool) client.ConnectionCreated {
	t.Helper()
	c, err := f.env.Admin.CreateConnection(f.ctx, "acme", client.CreateConnection{Name: name, UpstreamURL: upstream,
		Token: "upstream-token-0123456789", Alerts: alerts, Grant: client.GrantOptions{Name: "first", AutoSuspend: autoSuspend}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) grant(t *testing.T, c client.ConnectionCreated, name string, autoSuspend bool) client.IssuedGrant {
	t.Helper()
	g, err := f.env.Admin.CreateGrant(f.ctx, "acme", c.ID, client.CreateGrant{GrantOptions: client.GrantOptions{Name: name, AutoSuspend: autoSuspend},
		TokenSource: client.TokenSource{PartA: c.Grant.PartA}})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// proxy sends one request through the proxy with partA.
func (f *fixture) proxy(t *testing.T, conn, partA string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(f.ctx, "GET", f.env.ProxyURL+"/c/"+conn+"/contacts", nil)
	req.Header.Set("Authorization", "Bearer "+partA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("proxied request: %s", resp.Status)
	}
}
