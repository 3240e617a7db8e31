package provider_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/identity/provider"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// postJSON sends a JSON body with a bearer token and decodes the answer.
func postJSON(t *testing.T, base, token, path string, body, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", base+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// TestAuthorizeTakesPrincipalFromToken: with tokens issued by the
// provider through a real sign-in (x/oauth2, PKCE), authorize's principal
// defaults to the token's user and its parents to the user's current
// groups; a token of another tenant cannot ask.
func TestAuthorizeTakesPrincipalFromToken(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		f.tenant(t, "acme", "basic", "acme.example")
		f.tenant(t, "globex", "basic", "globex.example")
		f.user(t, "acme", "ann@acme.example", "ann's long password", "admins")
		bob := f.user(t, "acme", "bob@acme.example", "bob's long password")
		f.user(t, "globex", "gil@globex.example", "gil's long password", "admins")
		_, conf := f.publicApp(t, identity.CreateClientRequest{Scopes: []string{provider.APIScope}, GrantTypes: []string{"authorization_code"}},
			oidc.ScopeOpenID, provider.APIScope)
		token := func(email, password string) string { return f.signIn(t, conf, email, password).AccessToken }
		ann, bobTok, gil := token("ann@acme.example", "ann's long password"), token("bob@acme.example", "bob's long password"),
			token("gil@globex.example", "gil's long password")

		var p struct{ ID string }
		if st := postJSON(t, f.env.URL, ann, "/v1/tenants/acme/policies", map[string]string{
			"statement": `permit(principal in Group::"admins", action == Action::"approve", resource);`}, &p); st != 201 {
			t.Fatalf("admin creates a policy with her token: %d", st)
		}
		req := map[string]any{"action": map[string]string{"type": "Action", "id": "approve"}, "resource": map[string]string{"type": "Invoice", "id": "i1"}}
		decide := func(tok string) string {
			t.Helper()
			var d struct{ Decision string }
			if st := postJSON(t, f.env.URL, tok, "/v1/tenants/acme/authorize", req, &d); st != 200 {
				t.Fatalf("authorize: %d", st)
			}
			return d.Decision
		}
		if got := decide(ann); got != "allow" {
			t.Errorf("ann (admins): %s", got)
		}
		if got := decide(bobTok); got != "deny" {
			t.Errorf("bob: %s", got)
		}
		// Groups are read when the token is used, not when it was issued.
		if err := f.env.Directory.SetMember(f.ctx, "acme", "admins", bob.ID, true, op); err != nil {
			t.Fatal(err)
		}
		if got := decide(bobTok); got != "allow" {
			t.Errorf("bob after joining admins, same token: %s", got)
		}
		if st := postJSON(t, f.env.URL, gil, "/v1/tenants/acme/authorize", req, nil); st != 404 {
			t.Errorf("globex's admin asks acme: %d, want 404", st)
		}
		if st := postJSON(t, f.env.URL, bobTok, "/v1/tenants/acme/policies", map[string]string{"statement": `permit(principal, action, resource);`}, nil); st != 201 {
			t.Errorf("bob, now an admin, writes a policy: %d", st)
		}
	})
}
