package provider_test

import (
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// TestDeletedClientTokens: once an OAuth client is deleted, its tokens —
// its own client-credentials tokens and the tokens its users obtained
// through it — stop at once at the API, /v1/kms included (nobody could
// revoke them any more).
func TestDeletedClientTokens(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		f.user(t, "acme", "ann@acme.example", "ann's long password")
		scopes := []string{"kms:encrypt"}
		svc := f.client(t, "acme", identity.CreateClientRequest{Name: "svc", GrantTypes: []string{"client_credentials"}, Scopes: scopes})
		web := f.client(t, "acme", identity.CreateClientRequest{Name: "web", Public: true, GrantTypes: []string{"authorization_code"},
			RedirectURIs: []string{redirectURI}, Scopes: scopes})
		cc, err := (&clientcredentials.Config{ClientID: svc.ID, ClientSecret: svc.ClientSecret, TokenURL: f.env.URL + "/oauth/token",
			Scopes: scopes}).Token(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		p, err := oidc.NewProvider(f.ctx, f.env.URL)
		if err != nil {
			t.Fatal(err)
		}
		conf := oauth2.Config{ClientID: web.ID, Endpoint: p.Endpoint(), RedirectURL: redirectURI, Scopes: []string{oidc.ScopeOpenID, "kms:encrypt"}}
		user := f.signIn(t, conf, "ann@acme.example", "ann's long password")
		tokens := map[string]string{"client credentials": cc.AccessToken, "user through the client": user.AccessToken}
		encrypt := func(token string) int {
			return postJSON(t, f.env.URL, token, "/v1/kms/encrypt", map[string]any{"key_id": "alias/customer-acme",
				"plaintext": []byte("card 4242"), "encryption_context": map[string]string{"tenant_id": "acme"}}, nil)
		}
		for name, token := range tokens {
			if status, code := apiCall(t, f.env.URL, token, "/v1/tenants/acme"); status != 200 {
				t.Fatalf("%s token before the deletion: %d %s", name, status, code)
			}
			if status := encrypt(token); status != 200 {
				t.Fatalf("%s token encrypts before the deletion: %d", name, status)
			}
		}
		sts := f.client(t, "acme", identity.CreateClientRequest{Name: "sts", GrantTypes: []string{identity.GrantTokenExchange}, Scopes: scopes})
		if a := exchange(t, f.env.URL+"/oauth/token", sts, subject(user.AccessToken, "kms:encrypt")); a.status != 200 {
			t.Fatalf("exchange before the deletion: %s", a)
		}
		for _, c := range []identity.CreatedClient{svc, web} {
			if err := f.env.Admin.Do(f.ctx, "DELETE", "/v1/tenants/acme/clients/"+c.ID, nil, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		for name, token := range tokens {
			if status, code := apiCall(t, f.env.URL, token, "/v1/tenants/acme"); status != 401 || code != "invalid_token" {
				t.Errorf("%s token of a deleted client: %d %s; want 401 invalid_token", name, status, code)
			}
			if status := encrypt(token); status != 401 {
				t.Errorf("%s token of a deleted client encrypts: %d; want 401", name, status)
			}
		}
		if a := exchange(t, f.env.URL+"/oauth/token", sts, subject(user.AccessToken, "kms:encrypt")); a.status != 400 {
			t.Errorf("exchange of a deleted client's user token: %s; want 400", a)
		}
	})
}
