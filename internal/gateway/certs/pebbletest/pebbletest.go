// Package pebbletest runs pebble, Let's Encrypt's test ACME server, inside
// a test process, for the tests of certificates against a real CA.
package pebbletest

import (
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"

	"github.com/bulkhead-dev/bulkhead/internal/gateway/certs"
)

// CA is a running pebble.
type CA struct {
	certs.CA              // its directory URL and the root of its TLS certificate
	orders   atomic.Int32 // new-order requests
	leaf     *x509.Certificate
}

// Leaf returns the directory's TLS certificate, which is its own root: a
// node told to trust it (--acme-ca-root) reaches the CA.
func (c *CA) Leaf() *x509.Certificate { return c.leaf }

// Orders returns how many orders the CA was asked for.
func (c *CA) Orders() int { return int(c.orders.Load()) }

// Start runs a pebble over TLS on loopback until the test ends. Its
// validation authority passes every challenge (PEBBLE_VA_ALWAYS_VALID, set
// with t.Setenv, so not in parallel tests): these tests are about which
// names reach a CA and how certificates are kept and moved, not HTTP-01.
func Start(t *testing.T) *CA {
	t.Helper()
	t.Setenv("PEBBLE_VA_ALWAYS_VALID", "1")
	return start(t, 80, "")
}

// StartHTTP01 runs a pebble that validates HTTP-01 challenges for real: it
// looks names up at the DNS server dnsAddr (host:port, over TCP) and
// fetches the challenge from port httpPort of the address it finds.
func StartHTTP01(t *testing.T, httpPort int, dnsAddr string) *CA {
	t.Helper()
	t.Setenv("PEBBLE_VA_ALWAYS_VALID", "0")
	return start(t, httpPort, dnsAddr)
}

func start(t *testing.T, httpPort int, dnsAddr string) *CA {
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	logger := log.New(io.Discard, "", 0)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, 443, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	c := &CA{}
	h := front.Handler()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			c.orders.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c.CA.URL, c.CA.Roots, c.leaf = srv.URL+wfe.DirectoryPath, roots, srv.Certificate()
	return c
}
