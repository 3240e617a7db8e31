package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// CA is an ACME certificate authority the manager may ask.
type CA struct {
	URL string // its ACME directory
	// Roots, if set, are the roots its directory's TLS certificate chains
	// to (a test CA's); nil trusts the system's roots.
	Roots *x509.CertPool
}

// LoadRoots reads PEM certificates from file into a pool (--acme-ca-root).
func LoadRoots(file string) (*x509.CertPool, error) {
	pemBytes, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("certs: read CA roots: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("certs: %s holds no PEM certificate", file)
	}
	return pool, nil
}

// Verifier says whether a name is a verified custom domain of some tenant
// (domains.Service).
type Verifier interface {
	Verified(ctx context.Context, name string) (bool, error)
}

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	Storage *Storage
	Domains Verifier
	// CAs are the certificate authorities, in order: a name is ordered from
	// the first, and from the next ones only if the ones before fail.
	CAs   []CA
	Email string // the ACME account's contact
}

// ErrNotVerified is the refusal of a name that is no verified custom
// domain: no CA is asked for it.
var ErrNotVerified = errors.New("certs: not a verified custom domain")

// Manager gets, renews and serves certificates for verified custom
// domains, on demand: the first TLS handshake for a verified name gets it
// its certificate (from the shared storage if any node already has one,
// else from a CA). Handshakes for any other name fail before any CA is
// asked, so a stranger's SNI never costs an ACME order.
type Manager struct {
	cache   *certmagic.Cache
	magic   *certmagic.Config
	issuers []*certmagic.ACMEIssuer
	cas     []CA
}

// NewManager returns a Manager. Run it to stop its maintenance with ctx.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Storage == nil || cfg.Domains == nil {
		return nil, errors.New("certs: a manager needs a storage and a domain verifier")
	}
	if len(cfg.CAs) == 0 {
		return nil, errors.New("certs: a manager needs at least one CA")
	}
	m := &Manager{cas: cfg.CAs}
	logger := zap.NewNop()
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		Logger:           logger,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		Storage: cfg.Storage,
		Logger:  logger,
		OnDemand: &certmagic.OnDemandConfig{
			DecisionFunc: func(ctx context.Context, name string) error {
				ok, err := cfg.Domains.Verified(ctx, name)
				if err != nil {
					return fmt.Errorf("certs: check %s: %w", name, err)
				}
				if !ok {
					return ErrNotVerified
				}
				return nil
			},
		},
	})
	var issuers []certmagic.Issuer
	for _, ca := range cfg.CAs {
		iss := certmagic.NewACMEIssuer(m.magic, certmagic.ACMEIssuer{
			CA: ca.URL, TestCA: ca.URL, Email: cfg.Email, Agreed: true, TrustedRoots: ca.Roots,
			// The gateway answers HTTP-01 on its plain-HTTP listener
			// (HTTPChallengeHandler); TLS-ALPN-01 would need the TLS
			// listener on port 443 exactly.
			DisableTLSALPNChallenge: true,
			Logger:                  logger,
		})
		m.issuers = append(m.issuers, iss)
		issuers = append(issuers, iss)
	}
	m.magic.Issuers = issuers
	return m, nil
}

// GetCertificate serves the gateway's TLS handshakes (tls.Config.GetCertificate).
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.magic.GetCertificate(hello)
}

// HTTPChallengeHandler answers ACME HTTP-01 challenges for names being
// ordered, and passes every other request to next. The gateway wraps its
// plain-HTTP handler with it.
func (m *Manager) HTTPChallengeHandler(next http.Handler) http.Handler {
	for _, iss := range m.issuers {
		next = iss.HTTPChallengeHandler(next)
	}
	return next
}

// Run keeps the certificate cache's maintenance (renewals, OCSP staples)
// going until ctx is done.
func (m *Manager) Run(ctx context.Context) error {
	<-ctx.Done()
	m.cache.Stop()
	return nil
}
