package httpapi_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// TestDomainsCrossTenant: a tenant's admin claims, reads, verifies and
// releases only its own domains, and a claim of a name another tenant holds
// answers exactly as a claim of its own does, naming no tenant.
func TestDomainsCrossTenant(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		// Every verification fetch reaches the gateway's challenge handler,
		// as if each domain pointed at this node.
		var gateway string
		opts := apitest.Options{TenantTokens: authzTokens(), DomainsDial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, gateway)
		}}
		a := newTwoTenantEnvWith(t, dsn, opts)
		srv := httptest.NewServer(a.env.App.Domains.ChallengeHandler())
		defer srv.Close()
		gateway = srv.Listener.Addr().String()

		const base = "/v1/tenants/tenant-b/domains"
		var b api.Domain
		a.ok("POST", base, tokAdminB, api.CreateDomain{Name: "Shop.B.Example"}, http.StatusCreated, &b)
		if b.Name != "shop.b.example" || b.State != "pending" || b.TenantID != "tenant-b" {
			t.Fatalf("created %+v", b)
		}

		// A's admin claiming B's name, and B's admin claiming it again: the
		// same answer, which names no tenant.
		rA := a.call("POST", "/v1/tenants/tenant-a/domains", tokAdminA, api.CreateDomain{Name: "shop.b.example"})
		rB := a.call("POST", base, tokAdminB, api.CreateDomain{Name: "SHOP.b.example."})
		pA := stripProblem(t, "A claims B's", rA, "tenant-a")
		pB := stripProblem(t, "B claims again", rB, "tenant-b")
		wantProblem(t, "A claims B's", rA, http.StatusConflict, "domain_taken", "domain")
		if pA != pB {
			t.Errorf("answers differ:\nA %s\nB %s", pA, pB)
		}
		if bytes.Contains(rA.Body, []byte("tenant-b")) || bytes.Contains(rA.Body, []byte(b.Token)) {
			t.Errorf("the conflict reveals the holder: %s", rA.Body)
		}

		// A's admin, naming B's tenant or B's domain under its own, gets nothing.
		for _, c := range []call{
			{method: "GET", path: base, token: tokAdminA},
			{method: "GET", path: base + "/shop.b.example", token: tokAdminA},
			{method: "POST", path: base + "/shop.b.example/verify", token: tokAdminA},
			{method: "DELETE", path: base + "/shop.b.example", token: tokAdminA},
		} {
			r := send(t, a.env.URL, c)
			wantProblem(t, c.String(), r, http.StatusNotFound, "tenant_not_found", "")
		}
		for _, c := range []call{
			{method: "GET", path: "/v1/tenants/tenant-a/domains/shop.b.example", token: tokAdminA},
			{method: "POST", path: "/v1/tenants/tenant-a/domains/shop.b.example/verify", token: tokAdminA},
			{method: "DELETE", path: "/v1/tenants/tenant-a/domains/shop.b.example", token: tokAdminA},
		} {
			r := send(t, a.env.URL, c)
			wantProblem(t, c.String(), r, http.StatusNotFound, "domain_not_found", "")
		}
		var list api.List[api.Domain]
		a.ok("GET", "/v1/tenants/tenant-a/domains", tokAdminA, nil, http.StatusOK, &list)
		if len(list.Items) != 0 {
			t.Errorf("A lists %+v", list.Items)
		}
		// A user of B who is not an admin may not manage B's domains.
		wantProblem(t, "B's non-admin", a.call("GET", base, tokAliceB, nil), http.StatusForbidden, "tenant_admin_required", "")

		// B verifies; the gateway now resolves the host to B.
		var v api.Domain
		a.ok("POST", base+"/shop.b.example/verify", tokAdminB, nil, http.StatusOK, &v)
		if v.State != "verified" || v.Method != "http" || v.VerifiedAt == nil {
			t.Fatalf("verified %+v", v)
		}
		if tid, ok, err := a.env.App.Domains.DomainOwner(t.Context(), "shop.b.example"); tid != "tenant-b" || !ok || err != nil {
			t.Errorf("owner: %q %v %v", tid, ok, err)
		}
		if r := a.call("DELETE", base+"/shop.b.example", tokAdminB, nil); r.Status != http.StatusNoContent {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		if _, ok, _ := a.env.App.Domains.DomainOwner(t.Context(), "shop.b.example"); ok {
			t.Error("a released domain has an owner")
		}

		// Offboarding B releases its verified domain: it resolves to no one,
		// and A may claim it.
		a.ok("POST", base, tokAdminB, api.CreateDomain{Name: "shop.b.example"}, http.StatusCreated, &b)
		a.ok("POST", base+"/shop.b.example/verify", tokAdminB, nil, http.StatusOK, &v)
		if _, err := a.env.Admin.DeleteTenant(t.Context(), "tenant-b"); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, a.env, "tenant-b", "deleted")
		if _, ok, _ := a.env.App.Domains.DomainOwner(t.Context(), "shop.b.example"); ok {
			t.Error("an offboarded tenant's domain has an owner")
		}
		a.ok("POST", "/v1/tenants/tenant-a/domains", tokAdminA, api.CreateDomain{Name: "shop.b.example"}, http.StatusCreated, &b)
	})
}

// TestCertsNotConfigured: a node without ACME CAs says so, to the operator.
func TestCertsNotConfigured(t *testing.T) {
	t.Parallel()
	env := apitest.New(t, storagetest.DSN(t, storage.SQLite), apitest.Options{})
	for _, c := range []call{
		{method: "GET", path: "/v1/certs", token: apitest.AdminToken},
		{method: "POST", path: "/v1/certs/reissue", token: apitest.AdminToken, body: []byte(`{"from_ca":"https://ca.example/dir"}`)},
	} {
		wantProblem(t, c.String(), send(t, env.URL, c), http.StatusConflict, "acme_not_configured", "")
	}
}
