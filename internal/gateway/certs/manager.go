package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"slices"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// CA is an ACME certificate authority the manager may ask.
type CA struct {
	URL string // its ACME directory
	// Roots, if set, are the roots its directory's TLS certificate chains
	// to (a test CA's); nil trusts the system's roots.
	Roots *x509.CertPool
}

// LoadRoots reads the PEM certificates of files into one pool
// (--acme-ca-root); each file must hold at least one.
func LoadRoots(files ...string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, file := range files {
		pemBytes, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("certs: read CA roots: %w", err)
		}
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("certs: %s holds no PEM certificate", file)
		}
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
	// Audit records each certificate a reissue moves (nil: not recorded).
	Audit *audit.Log
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
	storage *Storage
	email   string
	logger  *zap.Logger
	audit   *audit.Log
	// moves tells every node of a certificate a reissue moved, so that
	// each serves the new one from the shared storage at once instead of
	// the old CA's until its renewal (a CA left because it can no longer
	// be trusted).
	moves *inval.Channel
}

// movesChannel is the notification channel of moved certificates.
const movesChannel = "bulkhead_gateway_certs"

// NewManager returns a Manager. Run it to stop its maintenance with ctx.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Storage == nil || cfg.Domains == nil {
		return nil, errors.New("certs: a manager needs a storage and a domain verifier")
	}
	if len(cfg.CAs) == 0 {
		return nil, errors.New("certs: a manager needs at least one CA")
	}
	m := &Manager{cas: cfg.CAs, storage: cfg.Storage, email: cfg.Email, audit: cfg.Audit}
	logger := zap.NewNop()
	m.logger = logger
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
		iss := m.newIssuer(m.magic, ca)
		m.issuers = append(m.issuers, iss)
		issuers = append(issuers, iss)
	}
	m.magic.Issuers = issuers
	noop := func(context.Context) {}
	// Only Evict matters: a cached certificate is never wrong to serve,
	// only from a CA being left, so nothing is dropped while not
	// listening (renewals and restarts catch up).
	m.moves = inval.New(cfg.Storage.db, movesChannel, nil, nil, inval.Hooks{Evict: m.reload, Purge: noop, Enable: noop, Disable: noop})
	return m, nil
}

// reload serves name's certificate from the shared storage, where a
// reissue on some node has just put it, and stops serving any other
// issuer's for it.
func (m *Manager) reload(ctx context.Context, name string) {
	cert, err := m.magic.CacheManagedCertificate(ctx, name)
	var others []string
	for _, c := range m.cache.AllMatchingCertificates(name) {
		if err != nil || c.Hash() != cert.Hash() {
			others = append(others, c.Hash())
		}
	}
	m.cache.Remove(others)
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
	err := m.moves.Run(ctx) // until ctx ends
	m.cache.Stop()
	return err
}

func (m *Manager) newIssuer(cfg *certmagic.Config, ca CA) *certmagic.ACMEIssuer {
	return certmagic.NewACMEIssuer(cfg, certmagic.ACMEIssuer{
		CA: ca.URL, TestCA: ca.URL, Email: m.email, Agreed: true, TrustedRoots: ca.Roots,
		// The gateway answers HTTP-01 on its plain-HTTP listener
		// (HTTPChallengeHandler); TLS-ALPN-01 would need the TLS
		// listener on port 443 exactly.
		DisableTLSALPNChallenge: true,
		Logger:                  m.logger,
	})
}

// Cert is a stored certificate and the CA that issued it.
type Cert struct {
	Name     string    `json:"name"`
	CA       string    `json:"ca"` // the issuing CA's directory URL
	NotAfter time.Time `json:"not_after"`
	Serial   string    `json:"serial"`
}

// List returns the stored certificates, by CA (in the configured order),
// then name. Where a certificate was issued is recorded by where certmagic
// stores it: under the issuing CA's key.
func (m *Manager) List(ctx context.Context) ([]Cert, error) {
	var out []Cert
	for i, iss := range m.issuers {
		cs, err := m.listIssuer(ctx, iss, m.cas[i].URL)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	return out, nil
}

func (m *Manager) listIssuer(ctx context.Context, iss *certmagic.ACMEIssuer, url string) ([]Cert, error) {
	key := iss.IssuerKey()
	sites, err := m.storage.List(ctx, certmagic.StorageKeys.CertsPrefix(key), false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Cert
	for _, site := range sites {
		name := path.Base(site)
		raw, err := m.storage.Load(ctx, certmagic.StorageKeys.SiteCert(key, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // a site being written or deleted
		}
		if err != nil {
			return nil, err
		}
		block, _ := pem.Decode(raw)
		if block == nil {
			return nil, fmt.Errorf("certs: %s: no PEM certificate", name)
		}
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certs: %s: %w", name, err)
		}
		out = append(out, Cert{Name: name, CA: url, NotAfter: leaf.NotAfter.UTC(), Serial: leaf.SerialNumber.Text(16)})
	}
	return out, nil
}

// Moved is one certificate a Reissue moved, or failed to.
type Moved struct {
	Name string
	Err  error // nil if the certificate was moved
}

// Reissued is what a Reissue did.
type Reissued struct {
	Items     []Moved // in order
	Moved     int     // certificates now from the next CA
	Remaining int     // certificates still from the CA, failed ones included
}

// Reissue moves certificates of the CA at fromURL to the next CA in the
// list, one at a time, at most max of them (0: all): it orders the name
// from the next CA, stores the new certificate, serves it, and only then
// deletes and stops serving the old one, so no handshake finds no
// certificate. It goes on past a name that fails. A caller that moves one
// at a time (max 1) until Remaining is 0 reports progress as it goes and
// never holds one request open for more than one order.
//
// Renewals go to the first CA in the list that answers: to leave a CA for
// good, take it off the list (--acme-ca) once its certificates are moved.
func (m *Manager) Reissue(ctx context.Context, fromURL string, max int, by tenant.Actor) (Reissued, error) {
	i := slices.IndexFunc(m.cas, func(ca CA) bool { return ca.URL == fromURL })
	if i < 0 {
		return Reissued{}, errs.Field("from_ca", "unknown_ca", "%q is not a configured ACME CA", errs.Clip(fromURL, 200))
	}
	if i == len(m.cas)-1 {
		return Reissued{}, errs.Field("from_ca", "last_ca", "%q is the last CA in the list: there is no CA to move to", errs.Clip(fromURL, 200))
	}
	from := m.issuers[i]
	certs, err := m.listIssuer(ctx, from, fromURL)
	if err != nil {
		return Reissued{}, err
	}
	// A configuration whose only issuer is the next CA: an obtain through
	// it orders from that CA whatever the other CAs hold for the name.
	to := certmagic.New(m.cache, certmagic.Config{Storage: m.storage, Logger: m.logger})
	to.Issuers = []certmagic.Issuer{m.newIssuer(to, m.cas[i+1])}
	out := Reissued{Remaining: len(certs)}
	for _, c := range certs {
		if max > 0 && len(out.Items) == max {
			break
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		err := m.move(ctx, to, from.IssuerKey(), c.Name)
		out.Items = append(out.Items, Moved{Name: c.Name, Err: err})
		if aerr := m.record(ctx, by, c.Name, fromURL, m.cas[i+1].URL, err); aerr != nil {
			return out, aerr
		}
		if err == nil {
			out.Moved++
			out.Remaining--
		}
	}
	return out, nil
}

// record audits one certificate of a reissue, moved or not.
func (m *Manager) record(ctx context.Context, by tenant.Actor, name, from, to string, err error) error {
	if m.audit == nil {
		return nil
	}
	e := audit.Event{Principal: by.Principal, Action: "cert.reissue", Target: name, RequestID: by.RequestID, SourceIP: by.SourceIP,
		Detail: map[string]string{"from_ca": from, "to_ca": to}}
	if err != nil {
		e.Outcome = audit.Failure
		e.Detail["error"] = errs.Clip(err.Error(), 200)
	}
	return m.audit.Append(ctx, e)
}

func (m *Manager) move(ctx context.Context, to *certmagic.Config, fromKey, name string) error {
	if err := to.ObtainCertSync(ctx, name); err != nil {
		return fmt.Errorf("certs: order %s: %w", name, err)
	}
	// The new certificate is stored: serve it, then drop the old one.
	if err := m.storage.Delete(ctx, certmagic.StorageKeys.CertsSitePrefix(fromKey, name)); err != nil {
		return err
	}
	if _, err := m.magic.CacheManagedCertificate(ctx, name); err != nil {
		return fmt.Errorf("certs: load %s: %w", name, err)
	}
	m.cache.RemoveManaged([]certmagic.SubjectIssuer{{Subject: name, IssuerKey: fromKey}})
	// The other nodes, told at the commit, do the same.
	return m.storage.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return m.moves.Changed(ctx, tx, name)
	})
}
