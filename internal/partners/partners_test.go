package partners_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/gateway"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// fixture is a node with partners and trusts.
type fixture struct {
	env *apitest.Env
	ctx context.Context
}

func newFixture(t *testing.T, dsn string, opts apitest.Options) *fixture {
	t.Helper()
	return &fixture{env: apitest.New(t, dsn, opts), ctx: context.Background()}
}

func (f *fixture) tenant(t *testing.T, id, tier string) {
	t.Helper()
	if _, _, err := f.env.Tenants.Create(f.ctx, tenants.CreateRequest{ID: id, Tier: tier}, "", tenant.Actor{Principal: "operator:test"}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) partner(t *testing.T, name string) api.PartnerCreated {
	t.Helper()
	p, err := f.env.Admin.CreatePartner(f.ctx, api.CreatePartner{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) trust(t *testing.T, tenant string, in api.CreateTrust) api.TrustCreated {
	t.Helper()
	tr, err := f.env.Admin.CreateTrust(f.ctx, tenant, in)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// assume is the raw token request of a partner: its status and body.
func assume(t *testing.T, base string, p api.PartnerCreated, tenant, externalID string, extra url.Values) (int, []byte) {
	t.Helper()
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {externalID},
		"subject_token_type": {client.PartnerTokenType}, "tenant": {tenant}}
	for k, v := range extra {
		form[k] = v
	}
	return postForm(t, base+"/oauth/token", p.ID, p.ClientSecret, form)
}

// token assumes a trust and returns the access token.
func token(t *testing.T, base string, p api.PartnerCreated, tenant, externalID string, extra url.Values) string {
	t.Helper()
	status, body := assume(t, base, p, tenant, externalID, extra)
	if status != 200 {
		t.Fatalf("assume %s: %d %s", tenant, status, body)
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(body, &out)
	return out.AccessToken
}

// call sends a request with a bearer token and returns status and body.
func call(t *testing.T, method, u, bearer string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, u, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// claims decodes a JWT's payload (the node verified it; the test reads it).
func claims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// assumed counts the partner.session_assumed events of a chain ("" is
// the platform's) by outcome.
func (f *fixture) assumed(t *testing.T, tenant string) map[audit.Outcome]int {
	t.Helper()
	chain := tenant
	if chain == "" {
		chain = audit.PlatformChain
	}
	p, err := f.env.Audit.ListAllTenants(f.ctx, audit.Filter{Tenant: chain, Action: "partner.session_assumed", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[audit.Outcome]int{}
	for _, e := range p.Items {
		if e.Action == "partner.session_assumed" {
			out[e.Outcome]++
		}
	}
	return out
}

// TestConfusedDeputy: partner P serves acme and globex; initech never
// trusted it. Every way of asking for acme without acme's current
// external id gets the same answer, byte for byte, and is audited; P's
// token for acme reaches acme's data routes only, never globex's objects
// nor any administration.
func TestConfusedDeputy(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, apitest.Options{})
		for _, id := range []string{"acme", "globex", "initech"} {
			f.tenant(t, id, "basic")
		}
		p := f.partner(t, "Reporting Co")
		q := f.partner(t, "Other Co")
		in := api.CreateTrust{Partner: p.ID, Scopes: []string{"kms:decrypt", "reports:read"}}
		acme := f.trust(t, "acme", in)
		globex := f.trust(t, "globex", in)
		if !strings.HasPrefix(acme.ExternalID, "bhx_") || acme.ExternalID == globex.ExternalID || acme.ExternalIDHint != acme.ExternalID[len(acme.ExternalID)-4:] {
			t.Fatalf("external ids: %q %q hint %q", acme.ExternalID, globex.ExternalID, acme.ExternalIDHint)
		}
		good := token(t, f.env.URL, p, "acme", acme.ExternalID, nil)
		c := claims(t, good)
		act, _ := c["act"].(map[string]any)
		tags, _ := c["tags"].(map[string]any)
		if c["sub"] != acme.ID || act["sub"] != p.ID || c["client_id"] != p.ID || c["tenant_id"] != "acme" ||
			tags["partner"] != p.ID || tags["trust"] != acme.ID || c["scope"] != "kms:decrypt reports:read" {
			t.Fatalf("claims: %v", c)
		}
		before := f.assumed(t, "acme")

		// A stale external id: the one before a rotation.
		rotated, err := f.env.Admin.RotateExternalID(f.ctx, "acme", acme.ID)
		if err != nil {
			t.Fatal(err)
		}
		refusals := map[string]func() (int, []byte){
			"globex's external id":        func() (int, []byte) { return assume(t, f.env.URL, p, "acme", globex.ExternalID, nil) },
			"a stale external id":         func() (int, []byte) { return assume(t, f.env.URL, p, "acme", acme.ExternalID, nil) },
			"no external id":              func() (int, []byte) { return assume(t, f.env.URL, p, "acme", "", nil) },
			"a made-up external id":       func() (int, []byte) { return assume(t, f.env.URL, p, "acme", "bhx_"+strings.Repeat("A", 43), nil) },
			"a tenant that never trusted": func() (int, []byte) { return assume(t, f.env.URL, p, "initech", rotated.ExternalID, nil) },
			"a tenant that does not exist": func() (int, []byte) {
				return assume(t, f.env.URL, p, "nosuch", rotated.ExternalID, nil)
			},
			"another partner with acme's id": func() (int, []byte) { return assume(t, f.env.URL, q, "acme", rotated.ExternalID, nil) },
		}
		var first []byte
		for what, do := range refusals {
			status, body := do()
			if status != 400 {
				t.Fatalf("%s: %d %s", what, status, body)
			}
			if first == nil {
				first = body
			} else if !bytes.Equal(body, first) {
				t.Fatalf("%s answers %s, others %s", what, body, first)
			}
		}
		if !strings.Contains(string(first), `"invalid_grant"`) {
			t.Fatalf("refusal: %s", first)
		}
		after := f.assumed(t, "acme")
		if got := after[audit.Denied] - before[audit.Denied]; got != 4 {
			t.Errorf("acme's chain holds %d new refusals, want 4 (globex's id, stale, none, made up)", got)
		}
		// A partner that a tenant does not trust (initech for P, acme for
		// Q) cannot write into that tenant's chain: its refusals, and
		// those for a tenant that does not exist, are the platform's.
		if f.assumed(t, "initech")[audit.Denied] != 0 || f.assumed(t, "")[audit.Denied] != 3 {
			t.Errorf("initech's chain: %v, the platform's: %v", f.assumed(t, "initech"), f.assumed(t, ""))
		}

		// The rotation stopped the token assumed before it; a new one works.
		if status, body := call(t, "POST", f.env.URL+"/v1/tenants/acme/authorize", good, map[string]any{
			"action": map[string]string{"type": "Action", "id": "read"}, "resource": map[string]string{"type": "Doc", "id": "1"}}); status != 401 {
			t.Fatalf("a token from before the rotation: %d %s", status, body)
		}
		tok := token(t, f.env.URL, p, "acme", rotated.ExternalID, nil)

		// Another tenant's objects: 404, byte-identical to no such tenant.
		_, other := call(t, "GET", f.env.URL+"/v1/tenants/globex/placement", tok, nil)
		_, none := call(t, "GET", f.env.URL+"/v1/tenants/nosuch/placement", tok, nil)
		same := func(b []byte, name string) []byte {
			return bytes.ReplaceAll(stripRequestID(b), []byte(name), []byte("T"))
		}
		if !bytes.Equal(same(other, "globex"), same(none, "nosuch")) || !strings.Contains(string(other), "tenant_not_found") {
			t.Fatalf("globex: %s\nnosuch: %s", other, none)
		}
		// No administration, nothing but data routes and its own decisions.
		for _, r := range []struct{ method, path string }{
			{"GET", "/v1/tenants/acme"}, {"GET", "/v1/tenants/acme/trusts"}, {"POST", "/v1/tenants/acme/trusts"},
			{"POST", "/v1/tenants/acme/clients"}, {"POST", "/v1/tenants/acme/users"}, {"POST", "/v1/tenants/acme/keys"},
			{"GET", "/v1/tenants/acme/audit"}, {"GET", "/v1/tenants/acme/placement"}, {"GET", "/v1/me"},
		} {
			status, body := call(t, r.method, f.env.URL+r.path, tok, map[string]string{})
			if status != 403 {
				t.Errorf("%s %s with a partner's token: %d %s", r.method, r.path, status, body)
			}
		}
		if status, body := call(t, "GET", f.env.URL+"/v1/tenants", tok, nil); status != 403 {
			t.Errorf("the operator's tenant list: %d %s", status, body)
		}

		// Its data scope reaches acme's key (kms:decrypt), and acme's only.
		ct := encryptAs(t, f, "acme", "acme's report")
		gct := encryptAs(t, f, "globex", "globex's report")
		if status, body := call(t, "POST", f.env.URL+"/v1/kms/decrypt", tok, map[string]any{"ciphertext": ct,
			"encryption_context": map[string]string{"tenant_id": "acme"}}); status != 200 || !strings.Contains(string(body), base64.StdEncoding.EncodeToString([]byte("acme's report"))) {
			t.Fatalf("decrypt acme's: %d %s", status, body)
		}
		if status, body := call(t, "POST", f.env.URL+"/v1/kms/decrypt", tok, map[string]any{"ciphertext": gct,
			"encryption_context": map[string]string{"tenant_id": "globex"}}); status == 200 {
			t.Fatalf("decrypt globex's with acme's partner token: %d %s", status, body)
		}

		// No chaining: the partner's token is no subject token.
		svc, err := f.env.Admin.CreateOAuthClient(f.ctx, "acme", client.CreateOAuthClient{Name: "svc",
			GrantTypes: []string{"urn:ietf:params:oauth:grant-type:token-exchange"}, Scopes: []string{"kms:decrypt"}})
		if err != nil {
			t.Fatal(err)
		}
		form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {tok},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}}
		req, _ := http.NewRequest("POST", f.env.URL+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(svc.ClientID, svc.ClientSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("exchanging a partner's token: %d %s", resp.StatusCode, b)
		}
		// Nor does a partner's credential serve any other grant.
		status, body := postForm(t, f.env.URL+"/oauth/token", p.ID, p.ClientSecret, url.Values{"grant_type": {"client_credentials"}})
		if status != 401 {
			t.Fatalf("client_credentials as a partner: %d %s", status, body)
		}

		// Deleting the trust stops the token at once.
		if err := f.env.Admin.DeleteTrust(f.ctx, "acme", acme.ID); err != nil {
			t.Fatal(err)
		}
		if status, body := call(t, "POST", f.env.URL+"/v1/kms/decrypt", tok, map[string]any{"ciphertext": ct,
			"encryption_context": map[string]string{"tenant_id": "acme"}}); status != 401 {
			t.Fatalf("after the trust's deletion: %d %s", status, body)
		}
	})
}

func postForm(t *testing.T, u, user, pass string, form url.Values) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// stripRequestID drops the per-request id from a problem body.
func stripRequestID(b []byte) []byte {
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return b
	}
	delete(m, "request_id")
	delete(m, "instance")
	out, _ := json.Marshal(m)
	return out
}

// encryptAs encrypts plaintext with tenant's own client token.
func encryptAs(t *testing.T, f *fixture, tenant, plaintext string) string {
	t.Helper()
	c, err := f.env.Admin.CreateOAuthClient(f.ctx, tenant, client.CreateOAuthClient{Name: "enc", GrantTypes: []string{"client_credentials"},
		Scopes: []string{"kms:encrypt"}})
	if err != nil {
		t.Fatal(err)
	}
	status, body := postForm(t, f.env.URL+"/oauth/token", c.ClientID, c.ClientSecret, url.Values{"grant_type": {"client_credentials"}, "scope": {"kms:encrypt"}})
	if status != 200 {
		t.Fatalf("token: %d %s", status, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(body, &tok)
	status, body = call(t, "POST", f.env.URL+"/v1/kms/encrypt", tok.AccessToken, map[string]any{"key_id": "alias/customer-" + tenant,
		"plaintext": base64.StdEncoding.EncodeToString([]byte(plaintext)), "encryption_context": map[string]string{"tenant_id": tenant}})
	if status != 200 {
		t.Fatalf("encrypt: %d %s", status, body)
	}
	var out struct {
		Ciphertext string `json:"ciphertext"`
	}
	json.Unmarshal(body, &out)
	return out.Ciphertext
}

// TestRevocationAcrossNodes: two nodes share a PostgreSQL database. A
// partner's token assumed on one is used on the other; suspending the
// trust, rotating its external id, deleting it and deleting the partner
// through the first node each stop the token on the second within a
// second.
func TestRevocationAcrossNodes(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	f := newFixture(t, dsn, apitest.Options{RootKey: key})
	n2 := apitest.New(t, dsn, apitest.Options{RootKey: key, PublicURL: f.env.URL})
	f.tenant(t, "acme", "basic")
	p := f.partner(t, "Reporting Co")
	tr := f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"}})
	decide := func(tok string) int {
		status, _ := call(t, "POST", n2.URL+"/v1/tenants/acme/authorize", tok, map[string]any{
			"action": map[string]string{"type": "Action", "id": "read"}, "resource": map[string]string{"type": "Doc", "id": "1"}})
		return status
	}
	measure := func(what, tok string, act func()) {
		t.Helper()
		if status := decide(tok); status != 200 {
			t.Fatalf("%s: node 2 before: %d", what, status)
		}
		start := time.Now()
		act()
		for decide(tok) != 401 {
			if time.Since(start) > time.Second {
				t.Fatalf("%s: node 2 still takes the token after %v", what, time.Since(start))
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("%s reached node 2 in %v", what, time.Since(start))
	}
	ext := tr.ExternalID
	measure("suspension", token(t, f.env.URL, p, "acme", ext, nil), func() {
		if _, err := f.env.Admin.SuspendTrust(f.ctx, "acme", tr.ID); err != nil {
			t.Fatal(err)
		}
	})
	if status, body := assume(t, n2.URL, p, "acme", ext, nil); status != 400 {
		t.Fatalf("assume a suspended trust on node 2: %d %s", status, body)
	}
	if _, err := f.env.Admin.ResumeTrust(f.ctx, "acme", tr.ID); err != nil {
		t.Fatal(err)
	}
	measure("rotation", token(t, n2.URL, p, "acme", ext, nil), func() {
		r, err := f.env.Admin.RotateExternalID(f.ctx, "acme", tr.ID)
		if err != nil {
			t.Fatal(err)
		}
		ext = r.ExternalID
	})
	measure("trust deletion", token(t, n2.URL, p, "acme", ext, nil), func() {
		if err := f.env.Admin.DeleteTrust(f.ctx, "acme", tr.ID); err != nil {
			t.Fatal(err)
		}
	})
	tr = f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"}})
	measure("partner deletion", token(t, n2.URL, p, "acme", tr.ExternalID, nil), func() {
		if err := f.env.Admin.DeletePartner(f.ctx, p.ID); err != nil {
			t.Fatal(err)
		}
	})
}

// TestGatewayKeepsPartnersToTheirNetworks: a partner's token passes the
// edge gateway to the application only from its trust's networks, and a
// change of them applies to a token already issued.
func TestGatewayKeepsPartnersToTheirNetworks(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") }))
	defer app.Close()
	f := newFixture(t, storagetest.DSN(t, storage.SQLite), apitest.Options{GatewayAppDomain: "app.test",
		GatewayRoutes: []gateway.Route{{ID: "rt_app", Host: "*.app.test", PathPrefix: "/", Upstream: app.URL}}})
	f.tenant(t, "acme", "basic")
	p := f.partner(t, "Reporting Co")
	tr := f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"}, SourceNetworks: []string{"127.0.0.1/32"}})
	tok := token(t, f.env.URL, p, "acme", tr.ExternalID, nil)
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", f.env.GatewayURL+"/reports", nil)
		req.Host = "acme.app.test"
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get(); status != 200 || body != "app" {
		t.Fatalf("from the trust's network: %d %s", status, body)
	}
	nets := []string{"10.0.0.0/8"}
	if _, err := f.env.Admin.UpdateTrust(f.ctx, "acme", tr.ID, api.PatchTrust{SourceNetworks: &nets}); err != nil {
		t.Fatal(err)
	}
	if status, body := get(); status != 403 || !strings.Contains(body, "source_network_not_allowed") {
		t.Fatalf("from outside the trust's networks: %d %s", status, body)
	}
}

// TestTemplateLinkForAPartner: a tenant grants a partner through one of
// its policy store's templates, linked for the principal
// Bulkhead::Partner::"<partner id>"; the link is what allows, and the
// trust's bound still applies.
func TestTemplateLinkForAPartner(t *testing.T) {
	f := newFixture(t, storagetest.DSN(t, storage.SQLite), apitest.Options{})
	f.tenant(t, "acme", "basic")
	p := f.partner(t, "Reporting Co")
	tr := f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"},
		// A bound permits at most: reads, and no secret report.
		Policy: `permit(principal, action == Action::"read", resource);
			forbid(principal, action, resource) when { resource has secret && resource.secret };`})
	tok := token(t, f.env.URL, p, "acme", tr.ExternalID, nil)
	decide := func(secret bool) string {
		t.Helper()
		status, body := call(t, "POST", f.env.URL+"/v1/tenants/acme/authorize", tok, map[string]any{
			"action": map[string]string{"type": "Action", "id": "read"}, "resource": map[string]string{"type": "Report", "id": "q3"},
			"entities": []map[string]any{{"uid": map[string]string{"type": "Report", "id": "q3"}, "attrs": map[string]any{"secret": secret}, "parents": []any{}}}})
		var d struct {
			Decision string `json:"decision"`
		}
		if status != 200 || json.Unmarshal(body, &d) != nil {
			t.Fatalf("authorize: %d %s", status, body)
		}
		return d.Decision
	}
	if got := decide(false); got != "deny" {
		t.Fatalf("before the link: %s", got)
	}
	tpl, err := f.env.Admin.CreateTemplate(f.ctx, "acme", api.PolicyTemplateInput{Statement: `permit(principal == ?principal, action == Action::"read", resource is Report);`})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.Admin.CreatePolicy(f.ctx, "acme", api.PolicyInput{TemplateID: tpl.ID,
		Principal: &api.EntityRef{Type: "Bulkhead::Partner", ID: p.ID}}); err != nil {
		t.Fatal(err)
	}
	if got := decide(false); got != "allow" {
		t.Fatalf("with the link: %s", got)
	}
	if got := decide(true); got != "deny" {
		t.Fatalf("a secret report, with the link: %s (the trust's bound forbids it)", got)
	}
}

// TestLiveTokensFollowTheTrust: a scope the tenant takes off the trust no
// longer counts on a token already issued, and rotating the partner's
// secret stops the tokens issued with the old one.
func TestLiveTokensFollowTheTrust(t *testing.T) {
	f := newFixture(t, storagetest.DSN(t, storage.SQLite), apitest.Options{})
	f.tenant(t, "acme", "basic")
	p := f.partner(t, "Reporting Co")
	tr := f.trust(t, "acme", api.CreateTrust{Partner: p.ID, Scopes: []string{"kms:decrypt", "reports:read"}})
	ct := encryptAs(t, f, "acme", "acme's report")
	decrypt := func(tok string) (int, []byte) {
		return call(t, "POST", f.env.URL+"/v1/kms/decrypt", tok, map[string]any{"ciphertext": ct,
			"encryption_context": map[string]string{"tenant_id": "acme"}})
	}
	tok := token(t, f.env.URL, p, "acme", tr.ExternalID, nil)
	if status, body := decrypt(tok); status != 200 {
		t.Fatalf("decrypt: %d %s", status, body)
	}
	if _, err := f.env.Admin.UpdateTrust(f.ctx, "acme", tr.ID, api.PatchTrust{Scopes: []string{"reports:read"}}); err != nil {
		t.Fatal(err)
	}
	if status, body := decrypt(tok); status != 403 {
		t.Fatalf("decrypt after kms:decrypt left the trust: %d %s", status, body)
	}
	rotated, err := f.env.Admin.RotatePartnerSecret(f.ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	authorize := func(tok string) int {
		status, _ := call(t, "POST", f.env.URL+"/v1/tenants/acme/authorize", tok, map[string]any{
			"action": map[string]string{"type": "Action", "id": "read"}, "resource": map[string]string{"type": "Doc", "id": "1"}})
		return status
	}
	if status := authorize(tok); status != 401 {
		t.Fatalf("a token from before the partner's secret rotation: %d", status)
	}
	if status, body := assume(t, f.env.URL, p, "acme", tr.ExternalID, nil); status != 401 {
		t.Fatalf("the old secret: %d %s", status, body)
	}
	p.ClientSecret = rotated.ClientSecret
	if status := authorize(token(t, f.env.URL, p, "acme", tr.ExternalID, nil)); status != 200 {
		t.Fatalf("a token with the new secret: %d", status)
	}
}
