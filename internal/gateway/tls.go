package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// CertSource gives the TLS listener its certificates; the domains part
// (ACME per custom domain) implements it. The gateway asks it only for
// hosts it serves, so that a handshake naming any other host never
// reaches it (an ACME issuance is a side effect).
type CertSource interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// errUnknownHost fails the handshake of a server name the gateway does not
// serve.
var errUnknownHost = errors.New("gateway: unknown server name")

// TLSConfig returns the TLS listener's configuration: HTTP/2 and
// HTTP/1.1, certificates from certs for known hosts only.
func (g *Gateway) TLSConfig(certs CertSource) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			peer := ""
			if hello.Conn != nil {
				peer = peerAddr(hello.Conn.RemoteAddr().String())
			}
			ctx, cancel := context.WithTimeout(hello.Context(), 5*time.Second)
			defer cancel()
			if !g.misses.Ready(peer, g.cfg.Clock.Now()) {
				ctx = context.WithValue(ctx, cacheOnlyKey{}, true) // see ServeHTTP
			}
			if !g.KnownHost(ctx, canonicalHost(hello.ServerName)) {
				g.missed(peer)
				return nil, errUnknownHost
			}
			return certs.GetCertificate(hello)
		},
	}
}

// KnownHost reports whether the gateway serves host: a route's exact
// host, {tenant}.{app domain} of a tenant that exists and is not deleted,
// or a tenant's custom domain.
func (g *Gateway) KnownHost(ctx context.Context, host string) bool {
	if host == "" {
		return false
	}
	if g.routes().exactHost(host) {
		return true
	}
	if label, ok := g.subdomain(host); ok {
		if !g.routes().hasWildcard("*.") {
			return false
		}
		id := tenantID(label)
		if id == "" {
			return false
		}
		t, err := g.cfg.Tenants.Get(ctx, id)
		return err == nil && t.Status != tenants.Deleted
	}
	if g.cfg.Domains == nil || !g.routes().hasWildcard("*") {
		return false
	}
	_, ok, err := g.cfg.Domains.DomainOwner(ctx, host)
	return err == nil && ok
}

// StaticCert is a CertSource of one certificate for every known host
// (serve --gateway-tls-cert and --gateway-tls-key), for deployments whose
// certificate covers the app domain's wildcard.
type StaticCert struct{ Cert *tls.Certificate }

// GetCertificate implements CertSource.
func (s StaticCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.Cert, nil
}
