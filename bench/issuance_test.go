package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/app"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// BenchmarkTokenIssuance issues client-credentials tokens over loopback
// HTTP to a node in the same process (GOMAXPROCS×8 concurrent callers, the
// load test's connections). bench/run measures the row with bench/loadgen
// against bulkhead serve; this benchmark is for profiles of the server side:
//
//	go test -run '^$' -bench 'TokenIssuance/sqlite' -cpuprofile cpu.out ./bench/
func BenchmarkTokenIssuance(b *testing.B) {
	for _, d := range storagetest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			a, base := serveNode(b, storagetest.DSN(b, d))
			issue := issuer(b, a, base)
			if err := issue(); err != nil { // builds the issuer and its first signing key
				b.Fatal(err)
			}
			b.SetParallelism(parallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := issue(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if s := b.Elapsed().Seconds(); s > 0 {
				b.ReportMetric(float64(b.N)/s, "tokens/s")
			}
		})
	}
}

// unlimitedTokenRate lifts the provider's per-address limit on the token
// endpoint (app.Config.TokenRatePerIP, default 1000/s): every request of a
// loopback benchmark comes from one address. bench/run passes the same
// value to bulkhead serve (--token-rate-per-ip).
const unlimitedTokenRate = 1e6

// serveNode starts a whole node (openNode) behind a loopback HTTP server,
// its URL the provider's issuer, and returns the node and the URL.
func serveNode(tb testing.TB, dsn string) (*app.App, string) {
	tb.Helper()
	srv := httptest.NewUnstartedServer(nil) // listening already: its URL is the issuer
	a := openNodeConfig(tb, app.Config{Database: dsn, PublicURL: "http://" + srv.Listener.Addr().String(),
		TokenRatePerIP: unlimitedTokenRate})
	srv.Config.Handler = a.Handler
	srv.Start()
	tb.Cleanup(srv.Close) // runs before openNode's cleanup, which stops the node
	return a, srv.URL
}

// issuer onboards a tenant, registers a client-credentials client for it
// and returns a function that gets one token over HTTP from base.
func issuer(tb testing.TB, a *app.App, base string) func() error {
	tb.Helper()
	ctx := context.Background()
	tid := tenant.ID(fmt.Sprintf("issue-%06d", seq.Add(1)))
	if _, _, err := a.Tenants.Create(ctx, tenants.CreateRequest{ID: string(tid), Name: "Issuance bench"}, "", tenant.Actor{Principal: "bench"}); err != nil {
		tb.Fatal(err)
	}
	c, err := a.Directory.CreateClient(ctx, tid, identity.CreateClientRequest{Name: "svc",
		GrantTypes: []string{identity.GrantClientCredentials}}, tenant.Actor{Principal: "bench"})
	if err != nil {
		tb.Fatal(err)
	}
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1024, DisableCompression: true}
	tb.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	form := []byte("grant_type=client_credentials")
	return func() error {
		req, err := http.NewRequest(http.MethodPost, base+"/oauth/token", bytes.NewReader(form))
		if err != nil {
			return err
		}
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.ClientSecret))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var t struct {
			AccessToken string `json:"access_token"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &t) != nil || t.AccessToken == "" {
			return fmt.Errorf("token endpoint: status %d: %.300s", resp.StatusCode, body)
		}
		return nil
	}
}

// TestTokenIssuanceSmoke gets one token on each available database.
func TestTokenIssuanceSmoke(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		a, base := serveNode(t, dsn)
		if err := issuer(t, a, base)(); err != nil {
			t.Fatal(err)
		}
	})
}
