package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/gateway"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// BenchmarkGatewayRequest: one GET through the edge gateway (a tenant
// found by its subdomain) to a loopback upstream, in process, for
// profiling the gateway's own work (bench/run's edge rows measure it
// beside nginx from other processes).
func BenchmarkGatewayRequest(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`+"\n")
	}))
	b.Cleanup(up.Close)
	env := apitest.New(b, storagetest.DSN(b, storage.SQLite), apitest.Options{GatewayAppDomain: "edge.test",
		GatewayRoutes: []gateway.Route{{ID: "app", Host: "*.edge.test", PathPrefix: "/", Upstream: up.URL}}})
	tid := tenant.ID(fmt.Sprintf("gw-%06d", seq.Add(1)))
	if _, _, err := env.Tenants.Create(context.Background(), tenants.CreateRequest{ID: string(tid)}, "", tenant.Actor{Principal: "bench"}); err != nil {
		b.Fatal(err)
	}
	if _, err := env.Tenants.AwaitOnboarding(context.Background(), tid); err != nil {
		b.Fatal(err)
	}
	bareURL, _ := url.Parse(up.URL)
	bare := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(bareURL) },
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 256, DisableCompression: true}})
	b.Cleanup(bare.Close)
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}
	b.Cleanup(client.CloseIdleConnections)
	base := env.GatewayURL
	if os.Getenv("BENCH_GATEWAY_BARE") == "1" {
		base = bare.URL
	}
	get := func() error {
		req, _ := http.NewRequest("GET", base+"/v1/items", nil)
		req.Host = string(tid) + ".edge.test"
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := get(); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := get(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
