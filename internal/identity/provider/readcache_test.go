package provider_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// clientToken asks base's token endpoint for a client-credentials token
// and returns the status and the OAuth error code, if any.
func clientToken(t *testing.T, base string, c identity.CreatedClient) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.ClientSecret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	code := ""
	if i := strings.Index(string(b), `"error":"`); i >= 0 {
		code, _, _ = strings.Cut(string(b)[i+9:], `"`)
	}
	return resp.StatusCode, code
}

// TestTokenEndpointKeepsNoStaleClient: the token endpoint keeps its reads
// of clients and tenants for a moment, and a change on the same node
// applies to the very next request: a deleted client, a client whose
// secret no longer matches, a suspended tenant. Issuing tokens is no
// change (a flood of them would otherwise throw away every cached read
// on the node).
func TestTokenEndpointKeepsNoStaleClient(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic")
		svc := f.client(t, "acme", identity.CreateClientRequest{Name: "svc", GrantTypes: []string{"client_credentials"}})
		other := f.client(t, "acme", identity.CreateClientRequest{Name: "other", GrantTypes: []string{"client_credentials"}})
		for _, c := range []identity.CreatedClient{svc, other} {
			if status, code := clientToken(t, f.env.URL, c); status != 200 {
				t.Fatalf("token before any change: %d %s", status, code)
			}
		}
		before := f.env.Audit.Changes()
		for range 20 {
			clientToken(t, f.env.URL, svc)
		}
		if after := f.env.Audit.Changes(); after != before {
			t.Fatalf("issuing 20 tokens moved the node's change count from %d to %d", before, after)
		}
		// A wrong secret for a client whose read is kept.
		wrong := svc
		wrong.ClientSecret += "x"
		if status, code := clientToken(t, f.env.URL, wrong); status != 401 || code != "invalid_client" {
			t.Fatalf("a wrong secret for a cached client: %d %s", status, code)
		}
		if err := f.env.Admin.Do(f.ctx, "DELETE", "/v1/tenants/acme/clients/"+svc.ID, nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		if status, code := clientToken(t, f.env.URL, svc); status != 401 || code != "invalid_client" {
			t.Fatalf("a deleted client right after its deletion: %d %s", status, code)
		}
		if err := f.env.Admin.Do(f.ctx, "POST", "/v1/tenants/acme/suspend", nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		if status, code := clientToken(t, f.env.URL, other); status != 401 || code != "invalid_client" {
			t.Fatalf("a suspended tenant's client right after the suspension: %d %s", status, code)
		}
	})
}

// TestTokenEndpointChangesReachOtherNodes: two nodes share a PostgreSQL
// database. A client deleted and a tenant suspended through one node stop
// getting tokens from the other within the read cache's second.
func TestTokenEndpointChangesReachOtherNodes(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	f := &fixture{env: apitest.New(t, dsn, apitest.Options{Argon2: fast, RootKey: key}), ctx: context.Background()}
	n2 := apitest.New(t, dsn, apitest.Options{Argon2: fast, RootKey: key, PublicURL: f.env.URL})
	f.tenant(t, "acme", "basic")
	svc := f.client(t, "acme", identity.CreateClientRequest{Name: "svc", GrantTypes: []string{"client_credentials"}})
	other := f.client(t, "acme", identity.CreateClientRequest{Name: "other", GrantTypes: []string{"client_credentials"}})
	for _, c := range []identity.CreatedClient{svc, other} {
		if status, code := clientToken(t, n2.URL, c); status != 200 {
			t.Fatalf("node 2 before any change: %d %s", status, code)
		}
	}
	measure := func(what string, c identity.CreatedClient, act func()) {
		t.Helper()
		start := time.Now()
		act()
		for {
			status, _ := clientToken(t, n2.URL, c)
			if status == 401 {
				break
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("%s: node 2 still issues tokens after 2 s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("%s reached node 2 in %v", what, time.Since(start))
	}
	measure("client deletion", svc, func() {
		if err := f.env.Admin.Do(f.ctx, "DELETE", "/v1/tenants/acme/clients/"+svc.ID, nil, nil, nil); err != nil {
			t.Fatal(err)
		}
	})
	measure("tenant suspension", other, func() {
		if err := f.env.Admin.Do(f.ctx, "POST", "/v1/tenants/acme/suspend", nil, nil, nil); err != nil {
			t.Fatal(err)
		}
	})
}
