package posture_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// The checks of unused credentials, alerts that reach no one and stuck
// key rotations (here and in connections_test.go, signingkeys_test.go).
// Each builds a deployment with the defect, finds it (its severity, object
// and tenant) and nothing where the defect is absent, then removes the
// defect and sees the finding resolved.

const days = 24 * time.Hour

// ago is a time d before now, in µs, as the tables keep times.
func ago(d time.Duration) int64 { return time.Now().Add(-d).UnixMicro() }

// migratedAgo moves when migration version of component was applied to d
// before now: the checks that read records a migration began count from
// then. Only the tables' owner may write schema_migrations.
func migratedAgo(t *testing.T, dsn, component string, version int, d time.Duration) {
	t.Helper()
	storagetest.ExecAsOwner(t, dsn, nil, "UPDATE schema_migrations SET applied_at = "+strconv.FormatInt(ago(d), 10)+
		" WHERE component = '"+component+"' AND version = "+strconv.Itoa(version))
}

// want finds the open finding of check on object and checks its severity
// and tenant.
func (f *fixture) want(t *testing.T, check, object, severity, tid string) api.PostureFinding {
	t.Helper()
	got, ok := find(f.findings(t, ""), check, object)
	if !ok {
		t.Fatalf("no %s finding for %s in %+v", check, object, f.findings(t, ""))
	}
	if got.Object != object || got.Severity != severity || got.TenantID != tid || got.Why == "" || got.Fix == "" || got.Title == "" {
		t.Fatalf("%s: %+v", check, got)
	}
	return got
}

func (f *fixture) none(t *testing.T, check, object string) {
	t.Helper()
	if got, ok := find(f.findings(t, ""), check, object); ok {
		t.Fatalf("a %s finding for %s: %+v", check, object, got)
	}
}

// TestClientScopeUnused: a tenant's client registered 100 days ago with two
// scopes, granted only one in a token since, has the other found; a client
// that used its scope and one younger than 90 days are not; nothing is
// found before use has been recorded for 90 days; issuing tokens writes a
// scope's use once a day, not once a token; a token with the scope
// resolves the finding.
func TestClientScopeUnused(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme")
		mk := func(name string, scopes ...string) identity.CreatedClient {
			c, err := f.env.Directory.CreateClient(f.ctx, "acme", identity.CreateClientRequest{Name: name,
				GrantTypes: []string{identity.GrantClientCredentials}, Scopes: scopes}, op)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		token := func(c identity.CreatedClient, scopes ...string) {
			t.Helper()
			if _, err := (&clientcredentials.Config{ClientID: c.ID, ClientSecret: c.ClientSecret, TokenURL: f.env.URL + "/oauth/token",
				Scopes: scopes}).Token(f.ctx); err != nil {
				t.Fatal(err)
			}
		}
		reports, auditor, young := mk("reports", "reports:read", "reports:write"), mk("siem", "audit:read"), mk("new", "reports:read")
		token(reports, "reports:read")
		token(auditor, "audit:read")
		for _, c := range []string{reports.ID, auditor.ID} {
			f.exec(t, `UPDATE oauth_clients SET created_at = ? WHERE id = ?`, ago(100*days), c)
		}

		// Use has been recorded since the migration, minutes ago: no
		// finding yet.
		f.scan(t)
		f.none(t, "client_scope_unused", "client:"+reports.ID)

		migratedAgo(t, dsn, "identity", 5, 100*days)
		f.scan(t)
		got := f.want(t, "client_scope_unused", "client:"+reports.ID, api.SeverityLow, "acme")
		if !strings.Contains(got.Detail, "reports:write") || strings.Contains(got.Detail, "reports:read") {
			t.Errorf("detail: %q", got.Detail)
		}
		f.none(t, "client_scope_unused", "client:"+auditor.ID)
		f.none(t, "client_scope_unused", "client:"+young.ID)

		// A scope's use is written once a day, not once a token.
		f.exec(t, `UPDATE oauth_client_scope_use SET used_at = ? WHERE client_id = ?`, ago(time.Hour), auditor.ID)
		token(auditor, "audit:read")
		var used int64
		if err := f.env.DB.View(f.ctx, storage.TenantScope("acme"), func(tx *storage.Tx) error {
			return tx.QueryRow(f.ctx, `SELECT used_at FROM oauth_client_scope_use WHERE tenant_id = 'acme' AND client_id = ?`, auditor.ID).Scan(&used)
		}); err != nil || used > ago(30*time.Minute) {
			t.Errorf("a second token the same day wrote the scope's use again (%v)", err)
		}

		// Unused for 90 days once the last use is that old.
		f.exec(t, `UPDATE oauth_client_scope_use SET used_at = ? WHERE client_id = ?`, ago(91*days), auditor.ID)
		f.scan(t)
		f.want(t, "client_scope_unused", "client:"+auditor.ID, api.SeverityLow, "acme")

		// The scope used again: resolved.
		token(reports, "reports:write")
		f.scan(t)
		f.none(t, "client_scope_unused", "client:"+reports.ID)
	})
}
