// Package apitest starts a whole Bulkhead node behind a real loopback HTTP
// server for tests, on SQLite or PostgreSQL.
package apitest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/app"
	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/connect"
	"github.com/bulkhead-dev/bulkhead/internal/gateway"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/certs"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/mail"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// AdminToken is the operator token every test node has.
const AdminToken = "test-admin-token-0123456789abcdef"

// Env is a running test node.
type Env struct {
	*app.App
	URL string
	// ProxyURL is the connections proxy's listener (upstreams on
	// loopback are allowed: the tests' upstreams are local servers).
	ProxyURL string
	Admin    *client.Client // authenticated as the operator
	// GatewayURL is the edge gateway's HTTP listener.
	GatewayURL string
}

// Options adjust a test node.
type Options struct {
	// Steps are added to onboarding before the registry starts.
	OnboardingSteps []tenants.Step
	// Argon2, if set, replaces the password hashing cost (tests that sign
	// many users in use a cheap one).
	Argon2 identity.Argon2Params
	// TenantPicker turns on the login page's tenant picker.
	TenantPicker bool
	// LoginDomain turns on sign-in routing by subdomain.
	LoginDomain string
	// TiersFile, if set, replaces the built-in tiers. Without it the node
	// has the built-in tiers with rates no test reaches (tests that prove
	// the tier rates name a tiers file).
	TiersFile string
	// TenantTokens maps bearer tokens to tenant contexts. It stands in for
	// the tenant credentials that the identity capability issues, so tests
	// can show that a tenant credential cannot reach another tenant.
	TenantTokens map[string]tenant.Context
	// Logger, if set, receives the node's logs.
	Logger *slog.Logger
	// Clock, if set, replaces the system clock.
	Clock clock.Clock
	// Anomaly tunes the connections' anomaly baselines.
	Anomaly connect.AnomalyOptions
	// TrustedProxies are addresses whose X-Forwarded-For names the client.
	TrustedProxies []string
	// ProxyUpstreamTimeout bounds the proxy's wait for upstream headers.
	ProxyUpstreamTimeout time.Duration
	// ProxyBodyTimeout bounds the time a client takes to send a request.
	ProxyBodyTimeout time.Duration
	// DomainsDial opens the connections that verify custom domains over
	// HTTP (app.Config.DomainsDial).
	DomainsDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ACMECAs are the node's ACME CAs (app.Config.ACMECAs).
	ACMECAs []certs.CA
	// ConnectCacheTTL bounds how long the proxy keeps a grant it read.
	ConnectCacheTTL time.Duration
	// DenyPrivateUpstreams runs the node as production does, without
	// --allow-private-upstreams (tests' upstreams are on loopback, so the
	// tests' nodes allow them unless this is set).
	DenyPrivateUpstreams bool
	// FederationTimeout bounds fetches from tenants' own OpenID providers.
	FederationTimeout time.Duration
	// RootKey (base64), if set, is the node's root key: nodes that share a
	// database share it.
	RootKey string
	// PublicURL, if set, is the node's public URL (the issuer) instead of
	// its own address: nodes that share a database share one.
	PublicURL string
	// BasePath, if set, is the path of the node's public URL on its own
	// address (as behind a proxy that serves it at https://host/auth):
	// the issuer is the node's URL + BasePath.
	BasePath string
	// OnboardingWait bounds how long a create waits for onboarding.
	OnboardingWait time.Duration
	// GatewayAppDomain serves tenant t at t.{domain} on the gateway.
	GatewayAppDomain string
	// GatewayRoutes are the gateway's routes.
	GatewayRoutes []gateway.Route
	// NATS starts the embedded NATS server on a free loopback port.
	NATS bool
	// NATSURL, instead, joins an external NATS server with the
	// credentials file NATSCredentials (see events/natstest).
	NATSURL, NATSCredentials string
	// NATSRecheck is how often live NATS connections' tokens are checked
	// again (default: the app's).
	NATSRecheck time.Duration
	// SMTPAddr, if set, is the SMTP server (see mail/mailtest) that sends
	// password reset links.
	SMTPAddr string
}

// New starts a node on the database at dsn (see storagetest.DSN) and stops it
// when the test ends.
func New(t testing.TB, dsn string, opts Options) *Env {
	t.Helper()
	ctx := context.Background()
	if opts.TiersFile == "" {
		opts.TiersFile = unlimitedTiers(t)
	}
	ln := listen(t) // listening already: its URL is the issuer
	url := "http://" + ln.Addr().String()
	if opts.PublicURL == "" {
		opts.PublicURL = url + opts.BasePath
	}
	proxyLn := listen(t)
	gatewayLn := listen(t)
	// On PostgreSQL the owner role migrates and the node serves as the
	// ordinary role, as in a deployment.
	cfg := app.Config{DataDir: t.TempDir(), Database: dsn, MigrationDatabase: storagetest.MigrationDSN(t, dsn), Version: "test", TiersFile: opts.TiersFile, Notices: io.Discard,
		PublicURL: opts.PublicURL, Argon2: opts.Argon2, LoginDomain: opts.LoginDomain, TenantPicker: opts.TenantPicker,
		Logger: opts.Logger, Clock: opts.Clock, Anomaly: opts.Anomaly, TrustedProxies: opts.TrustedProxies, AllowPrivateUpstreams: !opts.DenyPrivateUpstreams,
		ProxyUpstreamTimeout: opts.ProxyUpstreamTimeout, ProxyBodyTimeout: opts.ProxyBodyTimeout, ConnectCacheTTL: opts.ConnectCacheTTL,
		RootKey: opts.RootKey, OnboardingWait: opts.OnboardingWait, DomainsDial: opts.DomainsDial, ACMECAs: opts.ACMECAs,
		FederationTimeout: opts.FederationTimeout, GatewayAppDomain: opts.GatewayAppDomain, GatewayRoutes: opts.GatewayRoutes, WorkflowRetry: time.Second, ShutdownTimeout: 10 * time.Second,
		NATSListen: natsListen(opts.NATS), NATSURL: opts.NATSURL, NATSCredentials: opts.NATSCredentials, NATSRecheck: opts.NATSRecheck,
		// Publishing a function compiles it: far slower on a loaded machine.
		WriteTimeout: -1}
	if opts.SMTPAddr != "" {
		cfg.SMTP = &mail.Config{Addr: opts.SMTPAddr, From: "bulkhead@test.example"}
	}
	if opts.TenantTokens != nil {
		cfg.Verifiers = []authn.Verifier{staticTenantTokens(opts.TenantTokens)}
	}
	a, err := app.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open node: %v", err)
	}
	if _, err := a.Admin.Bootstrap(ctx, AdminToken); err != nil {
		t.Fatalf("bootstrap admin: %v", err)
	}
	for _, s := range opts.OnboardingSteps {
		a.Tenants.AddOnboardingStep(s)
	}
	t.Cleanup(a.Close) // after Run has returned
	runtest.Go(t, func(ctx context.Context) error {
		return a.Run(ctx, app.Listeners{API: ln, Proxy: proxyLn, Gateway: gatewayLn})
	})
	t.Cleanup(func() {
		if t.Failed() {
			// A failed test may have left handlers stuck on the database (a
			// deadlock, say); closing it first makes them return, so that
			// the shutdown, which waits for them, cannot hang the test binary.
			a.DB.Close()
		}
	})
	return &Env{App: a, URL: url, ProxyURL: "http://" + proxyLn.Addr().String(), Admin: client.New(url, AdminToken),
		GatewayURL: "http://" + gatewayLn.Addr().String()}
}

// listen returns a loopback listener on a free port.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() }) // the node's Run closes it, unless the node did not start
	return ln
}

// Client returns a client of the node that sends token.
func (e *Env) Client(token string) *client.Client { return client.New(e.URL, token) }

type staticTenantTokens map[string]tenant.Context

func (s staticTenantTokens) Verify(ctx context.Context, token string) (context.Context, error) {
	tc, ok := s[token]
	if !ok {
		return nil, authn.ErrUnknownToken
	}
	return tenant.NewContext(ctx, tc), nil
}

// unlimitedTiers writes the built-in tiers with rates no test reaches.
func unlimitedTiers(t testing.TB) string {
	t.Helper()
	var f struct {
		Tiers []tenants.Tier `json:"tiers"`
	}
	for _, tr := range tenants.DefaultTiers() {
		tr.RateLimitRPS, tr.RateLimitBurst = 1e6, 1e6
		tr.StreamPublishRPS, tr.StreamPublishBurst = 1e7, 1e8
		f.Tiers = append(f.Tiers, tr)
	}
	b, _ := json.Marshal(f)
	p := filepath.Join(t.TempDir(), "tiers.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func natsListen(on bool) string {
	if on {
		return "127.0.0.1:0"
	}
	return ""
}
