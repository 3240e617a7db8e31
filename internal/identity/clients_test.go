package identity_test

import (
	"context"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

var clientActor = tenant.Actor{Principal: "operator:test"}

func TestClientValidation(t *testing.T) {
	env := apitest.New(t, storagetest.DSN(t, storage.SQLite), apitest.Options{})
	ctx := context.Background()
	ok := []string{"https://app.example.com/cb"}
	for _, tc := range []struct {
		req         identity.CreateClientRequest
		code, field string
	}{
		{identity.CreateClientRequest{Name: "", GrantTypes: []string{"client_credentials"}}, "invalid_name", "name"},
		{identity.CreateClientRequest{Name: "x"}, "invalid_grant_types", "grant_types"},
		{identity.CreateClientRequest{Name: "x", GrantTypes: []string{"password"}}, "invalid_grant_types", "grant_types[0]"},
		{identity.CreateClientRequest{Name: "x", GrantTypes: []string{"implicit"}}, "invalid_grant_types", "grant_types[0]"},
		{identity.CreateClientRequest{Name: "x", GrantTypes: []string{"client_credentials"}, Public: true}, "invalid_grant_types", "grant_types"},
		{identity.CreateClientRequest{Name: "x", GrantTypes: []string{identity.GrantTokenExchange}, Public: true}, "invalid_grant_types", "grant_types"},
		{identity.CreateClientRequest{Name: "x", GrantTypes: []string{"token-exchange"}}, "invalid_grant_types", "grant_types[0]"},
		{identity.CreateClientRequest{Name: "x", GrantTypes: []string{"refresh_token"}}, "invalid_grant_types", "grant_types"},
		{identity.CreateClientRequest{Name: "x", GrantTypes: []string{"authorization_code"}}, "invalid_redirect_uri", "redirect_uris"},
		{identity.CreateClientRequest{Name: "x", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"http://app.example.com/cb"}}, "invalid_redirect_uri", "redirect_uris[0]"},
		{identity.CreateClientRequest{Name: "x", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"https://app.example.com/cb#frag"}}, "invalid_redirect_uri", "redirect_uris[0]"},
		{identity.CreateClientRequest{Name: "x", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"/relative"}}, "invalid_redirect_uri", "redirect_uris[0]"},
		{identity.CreateClientRequest{Name: "x", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"javascript:alert(1)"}}, "invalid_redirect_uri", "redirect_uris[0]"},
		{identity.CreateClientRequest{Name: "x", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"https://u:p@app.example.com/cb"}}, "invalid_redirect_uri", "redirect_uris[0]"},
		{identity.CreateClientRequest{Name: "x", GrantTypes: []string{"authorization_code"}, RedirectURIs: ok, Scopes: []string{"Bad Scope"}}, "invalid_scope", "scopes[0]"},
	} {
		_, err := env.Directory.CreateClient(ctx, "", tc.req, clientActor)
		e, isE := errs.As(err)
		if !isE || e.Code != tc.code || e.Field != tc.field {
			t.Errorf("CreateClient(%+v) = %v; want %s on %s", tc.req, err, tc.code, tc.field)
		}
	}
	// A confidential service may be registered for token exchange.
	if c, err := env.Directory.CreateClient(ctx, "", identity.CreateClientRequest{Name: "svc",
		GrantTypes: []string{identity.GrantTokenExchange}, Scopes: []string{"kms:encrypt"}}, clientActor); err != nil || c.ClientSecret == "" {
		t.Fatalf("token exchange client: %+v %v", c, err)
	}
	// Loopback http redirect URIs are fine for native apps.
	c, err := env.Directory.CreateClient(ctx, "", identity.CreateClientRequest{Name: "cli", Public: true,
		GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{"http://127.0.0.1:8400/cb", "http://localhost/cb"}}, clientActor)
	if err != nil || c.ClientSecret != "" || !c.Public {
		t.Fatalf("public loopback client: %+v %v", c, err)
	}
}

func TestClientsAreTenantScoped(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{})
		ctx := context.Background()
		for _, id := range []string{"tenant-a", "tenant-b"} {
			if _, _, err := env.Tenants.Create(ctx, tenants.CreateRequest{ID: id}, "", clientActor); err != nil {
				t.Fatal(err)
			}
		}
		svc := identity.CreateClientRequest{Name: "a backend", GrantTypes: []string{"client_credentials"}, Scopes: []string{"orders:read"}}
		ca, err := env.Directory.CreateClient(ctx, "tenant-a", svc, clientActor)
		if err != nil {
			t.Fatal(err)
		}
		if ca.TenantID != "tenant-a" || !strings.HasPrefix(ca.ID, "cli_") || !strings.HasPrefix(ca.ClientSecret, "bhs_") {
			t.Fatalf("client = %+v", ca)
		}
		cp, err := env.Directory.CreateClient(ctx, "", svc, clientActor)
		if err != nil || cp.TenantID != "" {
			t.Fatalf("platform client: %+v %v", cp, err)
		}
		// The secret is stored only as a hash.
		err = env.DB.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
			var h string
			if err := tx.QueryRow(ctx, `SELECT secret_hash FROM oauth_clients WHERE id = ?`, ca.ID).Scan(&h); err != nil {
				return err
			}
			if h == "" || strings.Contains(h, ca.ClientSecret) || strings.Contains(ca.ClientSecret, h) {
				t.Errorf("stored secret %q", h)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Authentication: the right secret only; the client knows its tenant.
		got, err := env.Directory.AuthenticateClientAllTenants(ctx, ca.ID, ca.ClientSecret)
		if err != nil || got.TenantID != "tenant-a" {
			t.Fatalf("authenticate: %+v %v", got, err)
		}
		for _, bad := range [][2]string{{ca.ID, cp.ClientSecret}, {ca.ID, ""}, {ca.ID, ca.ClientSecret + "x"}, {"cli_nope", ca.ClientSecret}} {
			if _, err := env.Directory.AuthenticateClientAllTenants(ctx, bad[0], bad[1]); !errs.Is(err, "invalid_client") {
				t.Errorf("authenticate %s with a wrong secret: %v", bad[0], err)
			}
		}
		// Tenant B sees none of A's clients and cannot delete them; neither can the platform scope's delete.
		if cs, _ := env.Directory.ListClients(ctx, "tenant-b"); len(cs) != 0 {
			t.Errorf("tenant-b lists %d clients", len(cs))
		}
		if cs, _ := env.Directory.ListClients(ctx, ""); len(cs) != 1 || cs[0].ID != cp.ID {
			t.Errorf("platform clients = %+v", cs)
		}
		if err := env.Directory.DeleteClient(ctx, "tenant-b", ca.ID, clientActor); !errs.Is(err, "client_not_found") {
			t.Errorf("tenant-b deletes A's client: %v", err)
		}
		if err := env.Directory.DeleteClient(ctx, "", ca.ID, clientActor); !errs.Is(err, "client_not_found") {
			t.Errorf("platform delete of A's client: %v", err)
		}
		if c, err := env.Directory.ClientByIDAllTenants(ctx, ca.ID); err != nil || c.TenantID != "tenant-a" {
			t.Errorf("A's client after refused deletes: %+v %v", c, err)
		}
		// Offboarding tenant-a removes its clients.
		if _, err := env.Tenants.Delete(ctx, "tenant-a", clientActor); err != nil {
			t.Fatal(err)
		}
		runtest.Eventually(t, "tenant-a's client gone with its offboarding", func() bool {
			_, err := env.Directory.ClientByIDAllTenants(ctx, ca.ID)
			return errs.Is(err, "client_not_found")
		})
		if _, err := env.Directory.AuthenticateClientAllTenants(ctx, cp.ID, cp.ClientSecret); err != nil {
			t.Errorf("the platform client is gone too: %v", err)
		}
	})
}
