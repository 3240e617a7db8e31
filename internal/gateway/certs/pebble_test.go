package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/gateway/certs"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
)

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
