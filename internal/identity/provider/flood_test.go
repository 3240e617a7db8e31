package provider_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// TestMadeUpIssuerFlood is the flood of the hardening issue, at the API: a
// node that has just started takes hundreds of forged tokens naming
// made-up silo issuers, then genuine tokens whose issuers' keys it has
// never used (a pool tenant's, a silo tenant's, a silo tenant onboarded
// after the flood). Every forged token is refused and every genuine one
// accepted: the API reads its own keys in memory and fetches nothing.
func TestMadeUpIssuerFlood(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic")
		f.tenant(t, "bigco", "premium")
		svc := identity.CreateClientRequest{Name: "svc", GrantTypes: []string{"client_credentials"}}
		acme, bigco := f.client(t, "acme", svc), f.client(t, "bigco", svc)

		priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		var wg sync.WaitGroup
		var mu sync.Mutex
		accepted := 0
		for i := range 400 {
			wg.Go(func() {
				tenant := fmt.Sprintf("made-up-%03d", i)
				tok := signJWT(t, jose.ES256, priv, "sig_forged", map[string]any{
					"iss": f.env.URL + "/t/" + tenant, "sub": "x", "aud": []string{f.env.Provider.APIAudience()}, "tenant_id": tenant,
					"token_use": "access", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
				})
				if status, _ := apiCall(t, f.env.URL, tok, "/v1/tenants/"+tenant); status != 401 {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if accepted > 0 {
			t.Errorf("%d forged tokens were not refused with 401", accepted)
		}
		token := func(c identity.CreatedClient, tokenURL string) string {
			t.Helper()
			tok, err := (&clientcredentials.Config{ClientID: c.ID, ClientSecret: c.ClientSecret, TokenURL: tokenURL}).Token(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			return tok.AccessToken
		}
		for name, c := range map[string]struct {
			token, tenant string
		}{
			"pool tenant": {token(acme, f.env.URL+"/oauth/token"), "acme"},
			"silo tenant": {token(bigco, f.env.URL+"/t/bigco/oauth/token"), "bigco"},
		} {
			if status, code := apiCall(t, f.env.URL, c.token, "/v1/tenants/"+c.tenant); status != 200 {
				t.Errorf("%s after the flood: %d %s", name, status, code)
			}
		}
		f.tenant(t, "newco", "premium")
		newco := f.client(t, "newco", svc)
		if status, code := apiCall(t, f.env.URL, token(newco, f.env.URL+"/t/newco/oauth/token"), "/v1/tenants/newco"); status != 200 {
			t.Errorf("a silo tenant onboarded after the flood: %d %s", status, code)
		}
	})
}
