package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

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

// tlsDomains is how many custom domains, each with its certificate in
// the cache, BenchmarkGatewayTLSHandshake serves.
const tlsDomains = 1000

// BenchmarkGatewayTLSHandshake: full TLS handshakes (TLS 1.3, ECDSA
// P-256 certificates, no session resumption) with the gateway's HTTPS
// listener as the node serves it (KnownHost, then the certificate from a
// certmagic cache, as certs.Manager does), the server name drawn from
// 1,000 verified custom domains whose certificates are all cached. The
// client verifies each chain (a test CA) and is in this process.
func BenchmarkGatewayTLSHandshake(b *testing.B) {
	ctx := context.Background()
	// A route for every custom domain ("*"): its upstream is never called.
	env := apitest.New(b, storagetest.DSN(b, storage.SQLite), apitest.Options{GatewayAppDomain: "edge.test",
		GatewayRoutes: []gateway.Route{{ID: "domains", Host: "*", PathPrefix: "/", Upstream: "http://127.0.0.1:9"}}})
	tid := tenant.ID(fmt.Sprintf("tls-%06d", seq.Add(1)))
	if _, _, err := env.Tenants.Create(ctx, tenants.CreateRequest{ID: string(tid)}, "", tenant.Actor{Principal: "bench"}); err != nil {
		b.Fatal(err)
	}
	if _, err := env.Tenants.AwaitOnboarding(ctx, tid); err != nil {
		b.Fatal(err)
	}
	names := make([]string, tlsDomains)
	for i := range names {
		names[i] = fmt.Sprintf("shop%04d.tls-bench.example", i)
	}
	// Verified as a check would leave them.
	err := env.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		for _, n := range names {
			if _, err := tx.Exec(ctx, `INSERT INTO gateway_domains (domain, tenant_id, state, token, method, created_at, verified_at)
				VALUES (?, ?, 'verified', 'bhdv_bench', 'http', 1, 1)`, n, string(tid)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	roots, magic := tlsBenchCerts(b, names)
	// The refused name above would log its handshake error.
	srv := gateway.NewServer(env.Gateway, log.New(io.Discard, "", 0))
	srv.TLSConfig = env.Gateway.TLSConfig(magic)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(gateway.NewTLSListener(ln, srv.TLSConfig, gateway.MaxHeaderBytes, gateway.ReadHeaderTimeout))
	b.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()
	handshake := func(name string) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{ServerName: name, RootCAs: roots, MinVersion: tls.VersionTLS13})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return c.Close()
	}
	for _, n := range names { // every name known and its certificate found
		if err := handshake(n); err != nil {
			b.Fatal(err)
		}
	}
	if err := handshake("unknown.tls-bench.example"); err == nil {
		b.Fatal("a handshake for a name the gateway does not serve succeeded")
	}
	var i atomic.Int64
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := handshake(names[int(i.Add(1))%len(names)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
}

// tlsBenchCerts makes a test CA and a certificate of it for each name,
// cached in a certmagic configuration built as certs.Manager builds its
// own.
func tlsBenchCerts(b *testing.B, names []string) (*x509.CertPool, *certmagic.Config) {
	b.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		b.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	var magic *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		Logger:           zap.NewNop(),
	})
	b.Cleanup(cache.Stop)
	magic = certmagic.New(cache, certmagic.Config{Storage: &certmagic.FileStorage{Path: b.TempDir()}, Logger: zap.NewNop()})
	for i, n := range names {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: n}, DNSNames: []string{n},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			b.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(der)
		if _, err := magic.CacheUnmanagedTLSCertificate(context.Background(),
			tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key, Leaf: leaf}, nil); err != nil {
			b.Fatal(err)
		}
	}
	return roots, magic
}
