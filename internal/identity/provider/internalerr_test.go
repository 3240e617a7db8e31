package provider_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// TestInternalErrorsStayInternal: when the provider fails inside (here
// the issuer's signing key does not unwrap, as on a node whose root key
// is not the database's), the token endpoint answers 500 server_error and
// nothing of the cause; it used to send the error's text (key id, the
// unwrap failure) as the error_description.
func TestInternalErrorsStayInternal(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		// The node's clock moves only when the test moves it.
		clk := clock.NewFake(time.Now())
		f := &fixture{env: apitest.New(t, dsn, apitest.Options{Argon2: fast, Clock: clk}), ctx: context.Background()}
		f.tenant(t, "acme", "basic")
		c := f.client(t, "acme", identity.CreateClientRequest{Name: "svc", GrantTypes: []string{"client_credentials"}})
		cfg := clientcredentials.Config{ClientID: c.ID, ClientSecret: c.ClientSecret, TokenURL: f.env.URL + "/oauth/token"}
		if _, err := cfg.Token(f.ctx); err != nil { // the platform issuer's key exists now
			t.Fatal(err)
		}
		// A new key id breaks the key's binding: it no longer unwraps.
		err := f.env.DB.Update(f.ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
			_, err := tx.Exec(f.ctx, `UPDATE signing_keys SET kid = kid || 'x' WHERE tenant_id = ''`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(2 * time.Second) // past the signing store's memory of the active key (a second)
		req, _ := http.NewRequest("POST", cfg.TokenURL, strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(c.ID, c.ClientSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != http.StatusInternalServerError || e.Error != "server_error" {
			t.Fatalf("token request with a key that does not unwrap: %d %s; want 500 server_error", resp.StatusCode, body)
		}
		for _, leak := range []string{"sig_", "signing", "kms", "unwrap", "root key"} {
			if strings.Contains(string(body), leak) {
				t.Errorf("the answer tells the cause (%q): %s", leak, body)
			}
		}
	})
}
