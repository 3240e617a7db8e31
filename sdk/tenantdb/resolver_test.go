package tenantdb_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/auth"
	"github.com/bulkhead-dev/bulkhead/sdk/auth/authtest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
	"github.com/bulkhead-dev/bulkhead/sdk/tenantdb"
)

// TestClientResolver: the default resolver asks Bulkhead's API over HTTP
// with the service's token, and a problem answer fails the transaction.
func TestClientResolver(t *testing.T) {
	e := newEnv(t)
	pa := e.cluster.Bridge(t, "ten-a")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer svc-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet || r.URL.EscapedPath() != "/v1/tenants/ten-a/placement" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(api.Problem{Status: 404, Code: "tenant_not_found"})
			return
		}
		json.NewEncoder(w).Encode(pa)
	}))
	t.Cleanup(srv.Close)
	db := e.open(t, tenantdb.Config{Resolver: tenantdb.ClientResolver{Client: client.New(srv.URL, "svc-token")}}, "")
	insert(t, db, "ten-a", "a")
	if u, _, _ := settings(t, db, "ten-a"); u != pa.Role {
		t.Fatalf("runs as %q", u)
	}
	err := db.Tx(as("ten-b"), noop)
	var pe *client.Error
	if !errors.As(err, &pe) || pe.Code != "tenant_not_found" {
		t.Fatalf("unknown tenant: %v", err)
	}
}

// TestTenantFromToken: behind sdk/auth's middleware (real tokens over
// loopback HTTP) the request's token names the tenant; WithTenant cannot
// switch a request to another tenant; a platform token names none.
func TestTenantFromToken(t *testing.T) {
	e := newEnv(t)
	e.resolver.Set(e.cluster.Pool(t, "ten-a"), e.cluster.Pool(t, "ten-b"))
	db := e.open(t, tenantdb.Config{}, "")
	insert(t, db, "ten-a", "a")
	insert(t, db, "ten-b", "b")

	op := authtest.NewServer(t)
	key := op.AddKey(op.Issuer(), authtest.ES256)
	v, err := auth.NewValidator(auth.Config{Issuer: op.Issuer(), Audience: "api", HTTPClient: op.Client()})
	if err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if as := r.URL.Query().Get("as"); as != "" {
			ctx = tenantdb.WithTenant(ctx, as)
		}
		var notes []string
		err := db.ReadTx(ctx, func(tx pgx.Tx) error {
			rows, _ := tx.Query(ctx, "SELECT body FROM notes")
			var err error
			notes, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		switch {
		case errors.Is(err, tenantdb.ErrNoTenant), errors.Is(err, tenantdb.ErrTenantMismatch):
			http.Error(w, err.Error(), http.StatusForbidden)
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			w.Write([]byte(strings.Join(notes, ",")))
		}
	})))
	t.Cleanup(app.Close)
	get := func(token, query string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, app.URL+"/?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	tokA := key.Sign(op.Claims(op.Issuer(), "api", "ten-a"))
	platform := key.Sign(op.Claims(op.Issuer(), "api", ""))
	for _, tc := range []struct {
		token, query string
		status       int
		body         string
	}{
		{tokA, "", 200, "a"},
		{tokA, "as=ten-a", 200, "a"},
		{tokA, "as=ten-b", 403, ""},
		{platform, "", 403, ""},
		{platform, "as=ten-b", 200, "b"}, // a platform job acting for a tenant
	} {
		st, body := get(tc.token, tc.query)
		if st != tc.status || (st == 200 && body != tc.body) {
			t.Errorf("%s: %d %q, want %d %q", tc.query, st, body, tc.status, tc.body)
		}
	}
}

// TestUnsafeServingRole: a serving role that INHERITs (here the admin
// role, which also owns the tables) gets no transaction.
func TestUnsafeServingRole(t *testing.T) {
	e := newEnv(t)
	e.resolver.Set(e.cluster.Pool(t, "ten-a"))
	db, err := tenantdb.Open(tenantdb.Config{Clusters: map[string]string{"app": e.app.AdminDSN}, Resolver: e.resolver})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if err := db.Tx(as("ten-a"), noop); !errors.Is(err, tenantdb.ErrUnsafeRole) {
		t.Fatalf("as the admin role: %v", err)
	}
}

// TestOpenKeepsSecrets: a DSN that does not parse is named by its
// cluster, not quoted.
func TestOpenKeepsSecrets(t *testing.T) {
	_, err := tenantdb.Open(tenantdb.Config{Resolver: tenantdb.ClientResolver{},
		Clusters: map[string]string{"app": "postgres://app:hunter2-secret@db.internal:notaport/app?pool_max_conns=x"}})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), `"app"`) {
		t.Fatalf("Open: %v", err)
	}
}
