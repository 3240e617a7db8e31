package provider_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// migrate moves tenant id to tier and waits for the migration to end. It
// starts in the second after the tokens the test has (iat counts whole
// seconds, and a token of the move's own second is refused).
func (f *fixture) migrate(t *testing.T, id, tier string) {
	t.Helper()
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	m, err := f.env.Tenants.StartMigration(f.ctx, "movco", tier, op)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := f.env.Tenants.GetMigration(f.ctx, "movco", m.ID)
		if err == nil && got.Status == tenants.WorkflowDone {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("migration to %s: %+v %v", tier, got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTierMigrationMovesIssuer moves a pool tenant to silo and back: its
// user signs in with the same password at the new issuer and keeps the
// same id; tokens issued before each move stay valid (Bulkhead's API and
// a relying party's verifier accept them), a refresh token moves to the
// new issuer on its next use and is refused by the old one, and the silo
// issuer left behind publishes its keys for as long as its tokens live.
func TestTierMigrationMovesIssuer(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "movco", "basic")
		ann := f.user(t, "movco", "ann@movco.example", "correct horse battery")
		app := f.client(t, "movco", identity.CreateClientRequest{Name: "web", Public: true, RedirectURIs: []string{redirectURI},
			GrantTypes: []string{"authorization_code", "refresh_token"}})
		platform, silo := f.env.URL, f.env.URL+"/t/movco"
		conf := func(issuer string) oauth2.Config {
			p, err := oidc.NewProvider(f.ctx, issuer)
			if err != nil {
				t.Fatalf("discovery of %s: %v", issuer, err)
			}
			return oauth2.Config{ClientID: app.ID, Endpoint: p.Endpoint(), RedirectURL: redirectURI, Scopes: []string{"openid", "offline_access"}}
		}
		apiAccepts := func(token string) bool {
			_, err := f.env.Client(token).GetTenant(f.ctx, "movco")
			return err == nil
		}

		before := f.signIn(t, conf(platform), "ann@movco.example", "correct horse battery")
		f.migrate(t, "movco", "premium")

		// The token from before the move: still an API credential, still
		// verified by a relying party against the platform's keys.
		if !apiAccepts(before.AccessToken) {
			t.Error("the API refused a token issued before the move")
		}
		if c, err := claimsOf(t, f.ctx, platform, "", before.AccessToken); err != nil || c["sub"] != ann.ID {
			t.Errorf("the pre-move token against the platform's keys: %v %v", c, err)
		}
		// Sign-in at the new issuer with the same password, as the same user.
		after := f.signIn(t, conf(silo), "ann@movco.example", "correct horse battery")
		if c, err := claimsOf(t, f.ctx, silo, "", after.AccessToken); err != nil || c["sub"] != ann.ID || c["iss"] != silo {
			t.Errorf("the post-move token: %v %v", c, err)
		}
		// The refresh token: refused by the issuer it came from, taken by
		// the new one, whose token it now is.
		oldConf, newConf := conf(platform), conf(silo)
		if _, err := oldConf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: before.RefreshToken}).Token(); err == nil {
			t.Error("the platform issuer refreshed the token of a tenant that moved to silo")
		}
		refreshed, err := newConf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: before.RefreshToken}).Token()
		if err != nil {
			t.Fatalf("refresh at the new issuer: %v", err)
		}
		if c, err := claimsOf(t, f.ctx, silo, "", refreshed.AccessToken); err != nil || c["sub"] != ann.ID {
			t.Errorf("the refreshed token: %v %v", c, err)
		}
		if _, err := newConf.TokenSource(f.ctx, &oauth2.Token{RefreshToken: before.RefreshToken}).Token(); err == nil {
			t.Error("a refresh token was used twice")
		}

		// And back to pool: the silo's tokens stay valid, its keys published.
		f.migrate(t, "movco", "basic")
		if !apiAccepts(after.AccessToken) {
			t.Error("the API refused a silo token issued before the move back")
		}
		if _, err := claimsOf(t, f.ctx, silo, "", after.AccessToken); err != nil {
			t.Errorf("the silo token after the move back: %v", err)
		}
		// The silo issuer left behind serves no sign-in, only what verifies.
		resp, err := http.Get(silo + "/authorize?client_id=" + app.ID)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("the silo issuer left behind answers /authorize with %d; want 404", resp.StatusCode)
		}
		again := f.signIn(t, conf(platform), "ann@movco.example", "correct horse battery")
		if !apiAccepts(again.AccessToken) {
			t.Error("a sign-in at the platform issuer after the move back gives no API credential")
		}
	})
}
