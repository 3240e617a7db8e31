package app_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/goleak"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/gateway"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestRunLeavesNoGoroutine serves a node (App.Run, as bulkhead serve
// does), onboards and offboards a tenant and sends the proxy and the
// gateway a request each,
// then stops it while the offboarding may still run: once Run and Close
// have returned, no goroutine of the node is left.
func TestRunLeavesNoGoroutine(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		before := goleak.IgnoreCurrent()
		// Registered first, so it runs after the node's own cleanup
		// (Run's stop, then Close).
		t.Cleanup(func() {
			http.DefaultClient.CloseIdleConnections()
			goleak.VerifyNone(t, before)
		})
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
		t.Cleanup(up.Close)
		env := apitest.New(t, dsn, apitest.Options{GatewayAppDomain: "app.test",
			GatewayRoutes: []gateway.Route{{ID: "rt", Host: "*.app.test", PathPrefix: "/", Upstream: up.URL}}})
		ctx := context.Background()
		if _, err := env.Admin.CreateTenant(ctx, client.CreateTenant{ID: "leak-co"}, ""); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", env.GatewayURL+"/x", nil)
		req.Host = "leak-co.app.test"
		gw, err := http.DefaultClient.Do(req)
		if err != nil || gw.StatusCode != 200 {
			t.Fatalf("through the gateway: %v %v", gw, err)
		}
		gw.Body.Close()
		if _, err := env.Admin.DeleteTenant(ctx, "leak-co"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(env.ProxyURL + "/c/con_none/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	})
}
