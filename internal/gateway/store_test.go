package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/gateway"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// gatewayGet sends GET path to a node's gateway as host, with token if
// not empty.
func gatewayGet(t *testing.T, gatewayURL, host, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", gatewayURL+path, nil)
	req.Host = host
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func named(name string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
}

// TestRoutesAcrossNodes: two nodes on one PostgreSQL database; a route set,
// changed or removed through one node's API is served by the other's
// gateway.
func TestRoutesAcrossNodes(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	opts := apitest.Options{RootKey: key, GatewayAppDomain: appDomain}
	n1 := apitest.New(t, dsn, opts)
	opts.PublicURL = n1.URL
	n2 := apitest.New(t, dsn, opts)
	ctx := context.Background()
	if _, err := n1.Admin.CreateTenant(ctx, api.CreateTenant{ID: "acme"}, ""); err != nil {
		t.Fatal(err)
	}
	one, two := named("one"), named("two")
	defer one.Close()
	defer two.Close()
	host := "acme." + appDomain
	if st, _ := gatewayGet(t, n2.GatewayURL, host, "/", ""); st != 404 {
		t.Fatalf("before any route: %d", st)
	}
	put := func(upstream string) {
		t.Helper()
		if _, err := n1.Admin.PutGatewayRoute(ctx, "rt-app", client.PutGatewayRoute{Host: "*." + appDomain, PathPrefix: "/", Upstream: upstream}); err != nil {
			t.Fatal(err)
		}
	}
	put(one.URL)
	runtest.Eventually(t, "node 2 serves the new route", func() bool {
		st, body := gatewayGet(t, n2.GatewayURL, host, "/", "")
		return st == 200 && body == "one"
	})
	put(two.URL)
	runtest.Eventually(t, "node 2 serves the changed route", func() bool {
		_, body := gatewayGet(t, n2.GatewayURL, host, "/", "")
		return body == "two"
	})
	if err := n1.Admin.DeleteGatewayRoute(ctx, "rt-app"); err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, "node 2 drops the removed route", func() bool {
		st, _ := gatewayGet(t, n2.GatewayURL, host, "/", "")
		return st == 404
	})
	if l, err := n2.Admin.ListGatewayRoutes(ctx); err != nil || len(l.Routes) != 0 {
		t.Fatalf("node 2 lists %v %v", l, err)
	}
}

// TestRouteStore: file routes are read-only; bad routes are refused with
// their field; production nodes refuse private upstreams.
func TestRouteStore(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fileRoute := gateway.Route{ID: "rt-file", Host: "*", PathPrefix: "/", Upstream: "https://app.example.com"}
		e := apitest.New(t, dsn, apitest.Options{GatewayAppDomain: appDomain, DenyPrivateUpstreams: true, GatewayRoutes: []gateway.Route{fileRoute}})
		l, err := e.Admin.ListGatewayRoutes(ctx)
		if err != nil || len(l.Routes) != 1 || l.Routes[0].Source != "file" {
			t.Fatalf("list: %+v %v", l, err)
		}
		if _, err := e.Admin.PutGatewayRoute(ctx, "rt-file", client.PutGatewayRoute{Host: "*", PathPrefix: "/", Upstream: "https://x.example.com"}); !isCode(err, "route_in_file") {
			t.Fatalf("replace a file route: %v", err)
		}
		if err := e.Admin.DeleteGatewayRoute(ctx, "rt-file"); !isCode(err, "route_in_file") {
			t.Fatalf("delete a file route: %v", err)
		}
		for name, in := range map[string]client.PutGatewayRoute{
			"loopback upstream":  {Host: "*", PathPrefix: "/", Upstream: "http://127.0.0.1:8080"},
			"metadata upstream":  {Host: "*", PathPrefix: "/", Upstream: "http://169.254.169.254/"},
			"localhost upstream": {Host: "*", PathPrefix: "/", Upstream: "http://localhost/"},
			"user info":          {Host: "*", PathPrefix: "/", Upstream: "https://u:p@app.example.com"},
			"not http":           {Host: "*", PathPrefix: "/", Upstream: "file:///etc/passwd"},
			"foreign wildcard":   {Host: "*.evil.example", PathPrefix: "/", Upstream: "https://app.example.com"},
			"relative prefix":    {Host: "*", PathPrefix: "api", Upstream: "https://app.example.com"},
			"dot-dot prefix":     {Host: "*", PathPrefix: "/a/../b", Upstream: "https://app.example.com"},
			"uppercase host":     {Host: "API.example.com", PathPrefix: "/", Upstream: "https://app.example.com"},
			"bad silo tenant":    {Host: "*", PathPrefix: "/", Upstream: "https://app.example.com", Silo: map[string]string{"-x": "https://s.example.com"}},
			"private silo":       {Host: "*", PathPrefix: "/", Upstream: "https://app.example.com", Silo: map[string]string{"acme": "http://10.0.0.1"}},
			"bad timeout":        {Host: "*", PathPrefix: "/", Upstream: "https://app.example.com", Timeout: "soon"},
			"huge timeout":       {Host: "*", PathPrefix: "/", Upstream: "https://app.example.com", Timeout: "48h"},
		} {
			if _, err := e.Admin.PutGatewayRoute(ctx, "rt-bad", in); !isCode(err, "invalid_route") {
				t.Errorf("%s: %v", name, err)
			}
		}
		if _, err := e.Admin.PutGatewayRoute(ctx, "Bad ID", client.PutGatewayRoute{Host: "*", PathPrefix: "/", Upstream: "https://app.example.com"}); !isCode(err, "invalid_route") {
			t.Errorf("bad id: %v", err)
		}
		if _, err := e.Admin.GetGatewayRoute(ctx, "rt-none"); !isCode(err, "route_not_found") {
			t.Errorf("get unknown: %v", err)
		}
		if err := e.Admin.DeleteGatewayRoute(ctx, "rt-none"); !isCode(err, "route_not_found") {
			t.Errorf("delete unknown: %v", err)
		}
	})
}

func isCode(err error, code string) bool {
	var p *client.Error
	return errors.As(err, &p) && p.Code == code
}
