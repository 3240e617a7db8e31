package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"

	"github.com/bulkhead-dev/bulkhead/internal/gateway/certs"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
)

// pebble is a real ACME CA (Let's Encrypt's test server) in the process,
// over TLS on loopback. Its validation authority passes every challenge
// (PEBBLE_VA_ALWAYS_VALID): what is tested here is which names reach a CA
// at all, and how certificates are shared and moved, not HTTP-01 itself.
type pebble struct {
	ca     certs.CA
	orders atomic.Int32 // new-order requests
}

func startPebble(t *testing.T) *pebble {
	t.Helper()
	t.Setenv("PEBBLE_VA_ALWAYS_VALID", "1")
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	logger := log.New(io.Discard, "", 0)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, 80, 443, false, "", store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	p := &pebble{}
	h := front.Handler()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			p.orders.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	p.ca = certs.CA{URL: srv.URL + wfe.DirectoryPath, Roots: roots}
	return p
}

// verified is a stand-in for the custom domains' service.
type verified struct {
	mu    sync.Mutex
	names map[string]bool
}

func (v *verified) Verified(_ context.Context, name string) (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.names[name], nil
}

func (v *verified) set(name string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.names[name] = true
}

// tlsServer serves handshakes with m's certificates on loopback and
// returns its address.
func tlsServer(t *testing.T, m *certs.Manager) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: m.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
			}()
		}
	}()
	return ln.Addr().String()
}

// handshake returns the certificate addr serves for name, or the error.
func handshake(t *testing.T, addr, name string) (*x509.Certificate, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{}, "tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func newManager(t *testing.T, s *certs.Storage, v certs.Verifier, cas ...certs.CA) *certs.Manager {
	t.Helper()
	m, err := certs.NewManager(certs.ManagerConfig{Storage: s, Domains: v, CAs: cas, Email: "ops@bulkhead.example"})
	if err != nil {
		t.Fatal(err)
	}
	runtest.Go(t, m.Run)
	return m
}

func wantCert(t *testing.T, what string, cert *x509.Certificate, err error, name string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(cert.DNSNames) != 1 || cert.DNSNames[0] != name || !strings.Contains(strings.ToLower(cert.Issuer.CommonName), "pebble") {
		t.Fatalf("%s: certificate for %v from %q", what, cert.DNSNames, cert.Issuer.CommonName)
	}
}
