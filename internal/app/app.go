// Package app wires Bulkhead's services into one node: the data directory
// and root key, the database and its migrations, the services and the API.
// The bulkhead command and the tests assemble a node the same way, here.
//
// Every goroutine of a node has an owner, and every owner answers to
// App.Run: the HTTP servers and each service's background work (its
// Run(ctx) error: the workflow engine, the cache listeners, purges and
// sweeps, webhook deliveries) run in one errgroup. When Run's context ends,
// or one of them fails, the node stops in dependency order, each part
// after everything that uses it:
//
//  1. listeners: the HTTP servers stop accepting and finish their
//     in-flight requests while the lifecycle workflows reach their next
//     checkpoint, both within Config.ShutdownTimeout (past it, connections
//     are closed and the steps still running are cancelled: they run again
//     at the next start);
//  2. workers: every service's Run returns, and with it every goroutine it
//     started;
//  3. audit flush: Close has the audit log write what is queued and stop
//     its writer;
//  4. database: Close closes it, then zeroes the root key.
//
// Nothing of the node runs after Close returns.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/authz"
	"github.com/bulkhead-dev/bulkhead/internal/clientip"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/compute"
	"github.com/bulkhead-dev/bulkhead/internal/connect"
	"github.com/bulkhead-dev/bulkhead/internal/console"
	"github.com/bulkhead-dev/bulkhead/internal/data"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/gateway"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/certs"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/domains"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/usage"
	"github.com/bulkhead-dev/bulkhead/internal/httpapi"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/identity/provider"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/logging"
	"github.com/bulkhead-dev/bulkhead/internal/mail"
	"github.com/bulkhead-dev/bulkhead/internal/netguard"
	"github.com/bulkhead-dev/bulkhead/internal/outbox"
	"github.com/bulkhead-dev/bulkhead/internal/partners"
	"github.com/bulkhead-dev/bulkhead/internal/posture"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/statecache"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/auth"
)

// Config says where a node keeps its state and how it behaves.
type Config struct {
	DataDir   string       // root key and, by default, the SQLite database; created 0700
	Database  string       // a postgres:// URL or an SQLite path; default DataDir/bulkhead.db
	RootKey   string       // base64 root key; default DataDir/root.key
	TiersFile string       // default tenants.DefaultTiers()
	Version   string       // reported by /healthz
	Logger    *slog.Logger // default: discard
	Clock     clock.Clock  // default: the system clock
	Notices   io.Writer    // where first-start notices go (dev-mode root key); default os.Stderr

	// MigrationDatabase (PostgreSQL only) is a postgres:// URL of the same
	// database as the role that owns Bulkhead's tables. Open migrates with
	// it, grants Database's role its privileges and closes it; without it
	// the database must have been migrated (bulkhead migrate). Database's
	// role may own nothing either way.
	MigrationDatabase string

	// PublicURL is the platform issuer of the OpenID provider, the URL where
	// clients reach this node (default http://127.0.0.1:8080). When set, it
	// is recorded in the database at the first start, and a node with
	// another refuses to start (provider.CheckPublicURL).
	PublicURL string
	// ChangePublicURL replaces the public URL recorded in the database with
	// PublicURL (bulkhead init --new-public-url).
	ChangePublicURL bool

	// NewRootKey makes the node's root key, or a new one, the database's
	// although the database knows another (bulkhead init --new-root-key):
	// everything wrapped under the old key becomes unreadable.
	NewRootKey bool

	// TrustedProxies are the reverse proxies (CIDRs or addresses) whose
	// X-Forwarded-For names the client; none by default.
	TrustedProxies []string

	// TenantPicker lists tenants on the login page (it reveals them; off by default).
	TenantPicker bool

	// LoginDomain routes sign-ins by subdomain ({tenant}.{LoginDomain}); empty turns it off.
	LoginDomain string

	// TokenRatePerIP bounds token endpoint requests per second per address (default 1000).
	TokenRatePerIP float64

	// AuthzCacheSize bounds the compiled policy sets kept in memory (default 1000).
	AuthzCacheSize int

	// Argon2 sets the password hashing cost; default identity.DefaultArgon2.
	Argon2 identity.Argon2Params
	// AccessLog, if set, takes the gateway's access log (JSON lines at
	// LogLevel), written a few lines at a time (logging.Buffer); nil: the
	// lines go to Logger.
	AccessLog io.Writer
	LogLevel  slog.Leveler
	// HashCommand runs password hashing in low-priority child processes
	// started with it (identity.Options.HashCommand); empty: in the server.
	HashCommand []string

	// Verifiers are tried after the admin token store for every bearer token.
	Verifiers []authn.Verifier

	// AllowPrivateUpstreams lets connections (and their alert webhooks)
	// and federation (tenants' own OpenID providers) reach loopback,
	// private and link-local addresses.
	AllowPrivateUpstreams bool
	// DomainsDial, if set, opens the connections that verify custom
	// domains over HTTP (tests point it at loopback); by default they
	// reach public addresses only, unless AllowPrivateUpstreams.
	DomainsDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// DomainsDNSResolver is the host:port of the DNS server asked for
	// custom domains' TXT records and for the addresses their HTTP checks
	// connect to ("" for the system's resolver).
	DomainsDNSResolver string
	// ACMECAs are the ACME CAs that certificates for verified custom
	// domains are ordered from, in order (--acme-ca); none leaves App.Certs nil.
	ACMECAs []certs.CA
	// ACMEEmail is the ACME account's contact (--acme-email).
	ACMEEmail string
	// FederationTimeout bounds each fetch from a tenant's own OpenID
	// provider and the upstream part of each sign-in step (default 10s).
	FederationTimeout time.Duration
	// ProxyUpstreamTimeout bounds the connections proxy's wait for an
	// upstream's response headers (default 30s).
	ProxyUpstreamTimeout time.Duration
	// ProxyBodyTimeout bounds the time a client takes to send a proxied
	// request, body included (default 30s).
	ProxyBodyTimeout time.Duration
	// Anomaly tunes the connections' anomaly baselines (defaults: see connect.AnomalyOptions).
	Anomaly connect.AnomalyOptions
	// ConnectCacheTTL bounds how long the proxy keeps a grant it read
	// (default 1s; changes to grants reach it at once regardless).
	ConnectCacheTTL time.Duration
	// OnboardingWait bounds how long POST /v1/tenants waits for the
	// tenant's onboarding before answering 202 (default 10s).
	OnboardingWait time.Duration
	// PostureInterval is how often the posture of the deployment is
	// scanned (0: DefaultPostureInterval; negative: never on a schedule,
	// only on demand).
	PostureInterval time.Duration

	// WorkflowRetry is how often Run retries stalled lifecycle workflows
	// (default 10s).
	WorkflowRetry time.Duration
	// ShutdownTimeout bounds how long Run, once stopping, waits for
	// in-flight requests and workflow steps (default 30s).
	ShutdownTimeout time.Duration
	// DataRetention is how long an offboarded tenant's application data
	// is kept before it is dropped (default data.DefaultRetention, 720h).
	DataRetention time.Duration

	// GatewayNodes divides each usage plan's rate between this many
	// gateway nodes (default 1: the rate is per node).
	GatewayNodes int
	// GatewayBodyTimeout bounds the time a client takes to send the
	// gateway a request body (default gateway.DefaultBodyTimeout).
	GatewayBodyTimeout time.Duration
	// DataProvisioned, if set, runs on each new bridge or silo placement
	// before it is recorded ready (the application's migrations).
	DataProvisioned data.Provisioned
	// NATSListen, if set, starts the embedded NATS server for tenants'
	// event streams on that address (internal/events); "" starts none.
	NATSListen string
	// NATSURL, instead of NATSListen, joins an external NATS server or
	// cluster with the credentials in the file NATSCredentials
	// (events.ReadCredentials: mode 0600).
	NATSURL, NATSCredentials string
	// NATSRecheck is how often the embedded server's tenant connections
	// have their token checked again (default events.DefaultRecheckInterval).
	NATSRecheck time.Duration
	// DataMoveHook, if set, is called at each checkpoint of a tier
	// migration's data move (data.MoveHook): the crash tests' pause.
	DataMoveHook data.MoveHook
	// WriteTimeout bounds how long the API takes to answer a request once
	// its headers are read (default 60s; negative: unbounded, for tests
	// that publish functions, whose compilation a loaded machine slows).
	WriteTimeout time.Duration

	// GatewayAppDomain makes {tenant}.{GatewayAppDomain} a tenant's host at
	// the gateway; empty: no subdomains.
	GatewayAppDomain string
	// GatewayAudience is the aud of the gateway's tenant assertions
	// (default gateway.DefaultAudience).
	GatewayAudience string
	// GatewayCerts gives the gateway's TLS listener its certificates.
	GatewayCerts gateway.CertSource
	// GatewayRoutes are the gateway's routes (serve --gateway-routes).
	GatewayRoutes []gateway.Route

	// SMTP, if set, is the server that sends password reset links; nil:
	// the login page offers no reset by email.
	SMTP *mail.Config
}

// App is one wired Bulkhead node.
type App struct {
	DB        *storage.DB
	Audit     *audit.Log
	Tenants   *tenants.Registry
	Directory *identity.Directory
	Authz     *authz.Service
	KMS       *kms.Service
	Functions *compute.Registry
	Connect   *connect.Service
	Data      *data.Service
	Usage     *usage.Service
	Domains   *domains.Service
	// Certs gets and serves certificates for verified custom domains; its
	// GetCertificate is the gateway's CertSource. Nil without ACMECAs.
	Certs   *certs.Manager
	Signing *signing.Store
	Admin   *authn.AdminTokens
	// Events is the NATS server of tenants' event streams (embedded or
	// external); nil without Config.NATSListen or NATSURL.
	Events   *events.Server
	API      *httpapi.Server
	Provider *provider.Provider
	Metrics  *prometheus.Registry

	// Outbox relays Bulkhead's own lifecycle events, which the audit log
	// writes to it in each change's transaction, to the operator's stream
	// (Events) and webhooks.
	Outbox *outbox.Service
	// Partners keeps partners and tenants' trusts in them.
	Partners *partners.Service
	// Mail sends Bulkhead's emails (password reset links); nil without Config.SMTP.
	Mail *mail.Sender
	// Console is the web console, served on the API's listener.
	Console *console.Console
	// Posture scans the deployment for risky settings.
	Posture         *posture.Service
	postureInterval time.Duration

	// Handler serves the API and the OpenID provider on one listener.
	Handler http.Handler
	// Proxy is the connections proxy, served on a listener of its own.
	Proxy http.Handler
	// Gateway is the edge gateway, served on listeners of its own.
	Gateway *gateway.Gateway
	// Routes keeps the gateway's routes.
	Routes *gateway.Store
	// gatewayCerts is Config.GatewayCerts.
	gatewayCerts gateway.CertSource

	rootKey *kms.RootKey
	log     *slog.Logger
	// accessLog holds the gateway's access log lines (Config.AccessLog).
	accessLog *logging.Buffer
	clock     clock.Clock
	// Config.WorkflowRetry, ShutdownTimeout and WriteTimeout.
	retry, shutdownTimeout, writeTimeout time.Duration
}

// Components lists every service's migrations, in the order they apply.
func Components() []storage.Component {
	return []storage.Component{audit.Migrations(), tenants.Migrations(), authn.Migrations(), identity.Migrations(), signing.Migrations(), provider.Migrations(), authz.Migrations(), kms.Migrations(), compute.Migrations(), connect.Migrations(), data.Migrations(), usage.Migrations(), gateway.Migrations(), domains.Migrations(), certs.Migrations(), outbox.Migrations(), partners.Migrations(), posture.Migrations(), console.Migrations()}
}

// Open prepares the data directory, opens and migrates the database, opens
// the root key against it (kms.OpenRootKey), checks the public URL against
// the one it records, and wires the services. The caller adds workflow
// steps, then calls Run to serve, and Close at the end.
func Open(ctx context.Context, c Config) (*App, error) {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = clock.System{}
	}
	if c.Notices == nil {
		c.Notices = os.Stderr
	}
	if c.WorkflowRetry <= 0 {
		c.WorkflowRetry = 10 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	switch {
	case c.WriteTimeout == 0:
		c.WriteTimeout = 60 * time.Second
	case c.WriteTimeout < 0:
		c.WriteTimeout = 0 // http.Server: none
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	dsn := c.Database
	if dsn == "" {
		dsn = filepath.Join(c.DataDir, "bulkhead.db")
	}
	db, err := storage.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if err := prepare(ctx, db, c.MigrationDatabase); err != nil {
		db.Close()
		return nil, err
	}
	// The root key is checked against the database before anything uses
	// it: a node whose key is not the database's, or that has none, stops
	// here; a key is made only for a database that knows none.
	rk, opened, err := kms.OpenRootKey(ctx, db, kms.RootKeyOptions{Dir: c.DataDir, Env: c.RootKey, Replace: c.NewRootKey,
		Samples: []kms.WrappedSample{signing.WrappedSample}, Clock: c.Clock})
	if err != nil {
		db.Close()
		return nil, err
	}
	if opened.Created {
		fmt.Fprintf(c.Notices, "\n*** DEV MODE: created a root key in %s.\n"+
			"*** Anyone who can read that file can decrypt this deployment's keys.\n"+
			"*** In production supply BULKHEAD_ROOT_KEY (or a KMS) and keep the key out of backups.\n\n",
			filepath.Join(c.DataDir, kms.RootKeyFile))
	}
	if c.NewRootKey && !opened.Replaced {
		fmt.Fprintf(c.Notices, "bulkhead: the root key in %s already is this database's; nothing was replaced\n", rk.Origin())
	}
	fail := func(err error, db *storage.DB) (*App, error) {
		if db != nil {
			db.Close()
		}
		rk.Zero()
		return nil, err
	}
	tiers := tenants.DefaultTiers()
	if c.TiersFile != "" {
		if tiers, err = tenants.LoadTiers(c.TiersFile); err != nil {
			return fail(err, db)
		}
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	batches := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "bulkhead_audit_batch_events", Help: "Events per audit group commit.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	})
	metrics.MustRegister(batches)

	a := &App{DB: db, Metrics: metrics, rootKey: rk, log: c.Logger, clock: c.Clock, retry: c.WorkflowRetry, shutdownTimeout: c.ShutdownTimeout,
		writeTimeout: c.WriteTimeout}
	// The outbox sees every audit event in its change's transaction and
	// keeps the lifecycle events among them (package outbox).
	outboxWriter := outbox.NewWriter()
	a.Audit = audit.New(db, audit.Options{Clock: c.Clock, Logger: c.Logger, BatchHook: func(n int) { batches.Observe(float64(n)) },
		Outbox: outboxWriter.Record})
	a.Tenants = tenants.NewRegistry(db, a.Audit, tenants.Options{Tiers: tiers, Clock: c.Clock, Logger: c.Logger})
	a.Directory = identity.NewDirectory(db, a.Audit, identity.Options{Clock: c.Clock, Argon2: c.Argon2, Wrapper: rk,
		HashCommand: c.HashCommand, Logger: c.Logger,
		AllowPrivateIssuers: c.AllowPrivateUpstreams,
		ReadCache:           statecache.Config{TTL: time.Second, Changes: a.Audit.Changes, Now: c.Clock.Now}})
	a.Tenants.AddOnboardingStep(a.Directory.OnboardingStep())
	a.Tenants.AddOffboardingStep(a.Directory.OffboardingStep())
	a.Authz = authz.New(db, a.Audit, authz.Options{Clock: c.Clock, Logger: c.Logger, CacheSize: c.AuthzCacheSize})
	a.Tenants.AddOnboardingStep(a.Authz.OnboardingStep())
	a.Tenants.AddOffboardingStep(a.Authz.OffboardingStep())
	a.Partners = partners.New(db, a.Audit, partners.Options{Clock: c.Clock, CheckPolicy: a.Authz.CheckBound,
		ReadCache: statecache.Config{TTL: time.Second, Changes: a.Audit.Changes, Now: c.Clock.Now}})
	a.Tenants.AddOffboardingStep(a.Partners.OffboardingStep())
	a.KMS = kms.New(db, a.Audit, rk, kms.Options{Clock: c.Clock, Logger: c.Logger})
	a.Tenants.AddOnboardingStep(a.KMS.OnboardingStep())
	a.Tenants.AddOffboardingStep(a.KMS.OffboardingStep())
	// The tenant's application data: placed after its keys exist, and
	// its access revoked first when it leaves (offboarding runs the steps
	// in reverse).
	a.Data = data.New(db, a.Audit, rk, data.Options{Clock: c.Clock, Logger: c.Logger, Retention: c.DataRetention,
		Provisioned: c.DataProvisioned, MoveHook: c.DataMoveHook})
	a.Tenants.AddOnboardingStep(a.Data.OnboardingStep())
	a.Tenants.AddOffboardingStep(a.Data.OffboardingStep())
	for _, step := range a.Data.MigrationSteps() {
		a.Tenants.AddMigrationStep(step)
	}
	accessLog := c.Logger
	if c.AccessLog != nil {
		a.accessLog = logging.NewBuffer(c.AccessLog)
		accessLog = logging.New(a.accessLog, c.LogLevel)
	}
	a.Usage = usage.New(usage.Config{DB: db, Audit: a.Audit, Tiers: tiers, Clock: c.Clock, Logger: c.Logger,
		AccessLog: accessLog, Nodes: c.GatewayNodes, Registerer: metrics})
	a.Tenants.AddOffboardingStep(a.Usage.OffboardingStep())
	codeKey, err := rk.Derive("compiled-code")
	if err != nil {
		a.Audit.Close()
		return fail(err, db)
	}
	engine, err := compute.New(compute.Options{Dir: filepath.Join(c.DataDir, "functions"), Logger: c.Logger, CacheKey: codeKey})
	clear(codeKey[:])
	if err != nil {
		a.Audit.Close()
		return fail(err, db)
	}
	a.Functions = compute.NewRegistry(db, a.Audit, engine)
	if a.Signing, err = signing.NewStore(db, rk, signing.Options{Clock: c.Clock, Logger: c.Logger}); err != nil {
		a.Audit.Close()
		return fail(err, db)
	}
	a.Tenants.AddOffboardingStep(tenants.Step{Name: "signing-keys", Run: func(ctx context.Context, tx *storage.Tx, _ tenants.Tenant) error {
		return a.Signing.DeleteIssuer(ctx, tx)
	}})
	checkURL := c.PublicURL != "" // bulkhead init without --public-url leaves it to the first serve
	if c.PublicURL == "" {
		c.PublicURL = "http://127.0.0.1:8080"
	}
	clientIPs, err := clientip.New(c.TrustedProxies)
	if err != nil {
		a.Audit.Close()
		return fail(err, db)
	}
	connectKey, err := rk.Derive("connect")
	if err != nil {
		a.Audit.Close()
		return fail(err, db)
	}
	a.Connect = connect.New(db, a.Audit, a.KMS, a.Tenants, connect.Options{Clock: c.Clock, Logger: c.Logger, ClientIP: clientIPs,
		HashKey: connectKey, AllowPrivateUpstreams: c.AllowPrivateUpstreams, UpstreamTimeout: c.ProxyUpstreamTimeout, BodyTimeout: c.ProxyBodyTimeout, Anomaly: c.Anomaly,
		CacheTTL: c.ConnectCacheTTL})
	clear(connectKey[:])
	a.Tenants.AddOffboardingStep(a.Connect.OffboardingStep())
	a.Proxy = a.Connect
	dial := c.DomainsDial
	if dial == nil {
		d := netguard.Dialer(10*time.Second, c.AllowPrivateUpstreams)
		if c.DomainsDNSResolver != "" {
			d.Resolver = domains.Resolver(c.DomainsDNSResolver)
		}
		dial = d.DialContext
	}
	a.Domains = domains.New(domains.Config{DB: db, Audit: a.Audit, Clock: c.Clock, Dial: dial, DNSResolver: c.DomainsDNSResolver})
	a.Tenants.AddOffboardingStep(a.Domains.OffboardingStep())
	if len(c.ACMECAs) > 0 {
		certsKey, err := rk.Derive("certs")
		if err != nil {
			a.Audit.Close()
			return fail(err, db)
		}
		store, err := certs.NewStorage(certs.StorageConfig{DB: db, Key: certsKey[:], Clock: c.Clock})
		clear(certsKey[:])
		if err == nil {
			a.Certs, err = certs.NewManager(certs.ManagerConfig{Storage: store, Domains: a.Domains, CAs: c.ACMECAs, Email: c.ACMEEmail, Audit: a.Audit})
		}
		if err != nil {
			a.Audit.Close()
			return fail(err, db)
		}
	}
	if c.SMTP != nil {
		mc := *c.SMTP
		mc.Logger = c.Logger
		if a.Mail, err = mail.New(mc); err != nil {
			a.Audit.Close()
			return fail(err, db)
		}
	}
	cryptoKey, err := rk.Derive("oidc-provider")
	if err != nil {
		a.Audit.Close()
		return fail(err, db)
	}
	a.Provider, err = provider.New(provider.Config{BaseURL: c.PublicURL, CryptoKey: cryptoKey, DB: db, Directory: a.Directory,
		Tenants: a.Tenants, Signing: a.Signing, Audit: a.Audit, Clock: c.Clock, Logger: c.Logger, TokenRatePerIP: c.TokenRatePerIP,
		LoginDomain: c.LoginDomain, TenantPicker: c.TenantPicker, ClientIP: clientIPs,
		AllowPrivateUpstreams: c.AllowPrivateUpstreams, UpstreamTimeout: c.FederationTimeout, Partners: a.Partners, Mail: a.Mail,
		ReadCache: statecache.Config{TTL: time.Second, Changes: a.Audit.Changes, Now: c.Clock.Now}})
	if err != nil {
		a.Audit.Close()
		return fail(err, db)
	}
	a.Tenants.AddOffboardingStep(a.Provider.OffboardingStep())
	if checkURL {
		from, err := a.Provider.CheckPublicURL(ctx, c.ChangePublicURL)
		if err != nil {
			a.Audit.Close()
			return fail(err, db)
		}
		if from != "" {
			fmt.Fprintf(c.Notices, "bulkhead: the public URL is now %s (was %s); tokens issued under the old URL are refused\n", c.PublicURL, from)
		}
	}
	if opened.Replaced {
		if err := a.rootKeyReplaced(ctx, c.Notices, opened.Unreadable); err != nil {
			a.Audit.Close()
			return fail(err, db)
		}
	}
	a.Admin = authn.NewAdminTokens(db, c.Clock)
	// The API checks its own tokens against the signing-key store in
	// memory: no fetch of its own JWKS, so no fetch budget for a flood of
	// made-up issuers to spend.
	validator, err := auth.NewValidator(auth.Config{Issuer: c.PublicURL, Audience: a.Provider.APIAudience(),
		Keys: a.Signing.Published(), Logger: c.Logger})
	if err != nil {
		a.Audit.Close()
		return fail(err, db)
	}
	// A token's state is re-read at most a second after it was last read
	// (at once after any change on this node); see README, Identity.
	tenantTokens := authn.NewTenantTokens(validator, tokenState{a}, authn.StateCache{TTL: time.Second, Changes: a.Audit.Changes}, c.Logger)
	a.Gateway = gateway.New(gateway.Config{Tenants: a.Tenants, Domains: a.Domains, Admitter: a.Usage,
		Verifiers: append([]authn.Verifier{tenantTokens}, c.Verifiers...), AppDomain: c.GatewayAppDomain,
		Asserter: gateway.NewAsserter(a.Signing, c.PublicURL, c.GatewayAudience, c.Clock),
		// As for tokens: a change made on another node (a suspension) is
		// seen within a second, one made here at once.
		Cache:      gateway.StateCache{TTL: time.Second, Changes: a.Audit.Changes},
		Placements: gateway.DataPlacements{Data: a.Data}, AllowPrivateUpstreams: c.AllowPrivateUpstreams, BodyTimeout: c.GatewayBodyTimeout, Clock: c.Clock, Logger: c.Logger})
	for _, r := range c.GatewayRoutes {
		if err := a.Gateway.ValidateRoute(r); err != nil {
			a.Audit.Close()
			return fail(fmt.Errorf("gateway route %s: %w", r.ID, err), db)
		}
	}
	a.Routes = gateway.NewStore(db, a.Audit, a.Gateway, c.GatewayRoutes, c.Clock, c.Logger)
	if err := a.Routes.Load(ctx); err != nil {
		a.Audit.Close()
		return fail(err, db)
	}
	// The gateway's TLS certificates: the ones the ACME CAs issue for
	// verified custom domains when CAs are configured, else the one of
	// --gateway-tls-cert.
	a.gatewayCerts = c.GatewayCerts
	if a.Certs != nil {
		a.gatewayCerts = a.Certs
	}
	if c.NATSListen != "" || c.NATSURL != "" {
		// The callout verifies tokens exactly as the API does.
		if a.Events, err = startEvents(ctx, c, events.Config{Listen: c.NATSListen, URL: c.NATSURL, Tokens: tenantTokens,
			StoreDir: filepath.Join(c.DataDir, "nats"), Tiers: a.Tenants.Tiers(), Logger: c.Logger, Operators: a.Admin,
			RecheckInterval: c.NATSRecheck}); err != nil {
			a.Audit.Close()
			return fail(err, db)
		}
		a.Tenants.AddOffboardingStep(a.Events.OffboardingStep())
	}
	oc := outbox.Config{DB: db, Writer: outboxWriter, Audit: a.Audit, Sealer: rk, Clock: c.Clock, Logger: c.Logger,
		AllowPrivate: c.AllowPrivateUpstreams}
	if a.Events != nil {
		oc.Stream = a.Events
	}
	a.Outbox = outbox.New(oc)
	liveTenants := func(ctx context.Context) ([]tenant.ID, error) {
		return a.Tenants.ListTenantIDsIn(ctx, tenants.Active, tenants.Suspended)
	}
	silo := func(ctx context.Context, id tenant.ID) (bool, error) {
		t, err := a.Tenants.Get(ctx, id)
		if errs.Is(err, "tenant_not_found") {
			return false, nil
		}
		return t.Isolation == tenants.Silo, err
	}
	var checks []posture.Check
	for _, cs := range [][]posture.Check{a.Directory.PostureChecks(), a.Authz.PostureChecks(), a.KMS.PostureChecks(), a.Partners.PostureChecks(),
		a.Connect.PostureChecks(), a.Signing.PostureChecks(silo),
		{posture.AuditChainCheck(a.Audit, a.Tenants.ListAllTenantIDs), posture.ServingRoleCheck(db)}} {
		checks = append(checks, cs...)
	}
	a.Posture = posture.New(posture.Config{DB: db, Audit: a.Audit, Clock: c.Clock, Logger: c.Logger, Checks: checks, Tenants: liveTenants})
	a.postureInterval = c.PostureInterval
	if a.postureInterval == 0 {
		a.postureInterval = DefaultPostureInterval
	}
	a.API = httpapi.New(httpapi.Config{
		DB: db, Tenants: a.Tenants, Directory: a.Directory, Authz: a.Authz, KMS: a.KMS, Functions: a.Functions, Connect: a.Connect, Data: a.Data, Usage: a.Usage, Domains: a.Domains, Certs: a.Certs, Audit: a.Audit, Events: a.Events,
		GatewayRoutes: a.Routes,
		Outbox:        a.Outbox,
		Partners:      a.Partners,
		Posture:       a.Posture,
		Sessions:      a.Provider,
		// Only the API takes operator accounts' tokens (the console's).
		Verifiers: append([]authn.Verifier{a.Admin, tenantTokens.WithOperators(operatorState{a}, provider.ConsoleClientID, provider.OperatorScope)},
			c.Verifiers...),
		Logger: c.Logger, Metrics: metrics, Version: c.Version, ClientIP: clientIPs, OnboardingWait: c.OnboardingWait,
	})
	mux := http.NewServeMux()
	for _, path := range a.Provider.Paths() {
		mux.Handle(path, a.Provider)
	}
	mux.Handle("/", a.API)
	// The console is a client of the API and the provider on this very
	// handler, in process.
	if a.Console, err = console.New(console.Config{PublicURL: c.PublicURL, Backend: mux, DB: db, Sealer: rk, Clock: c.Clock,
		Logger: c.Logger, ClientIP: clientIPs}); err != nil {
		a.Audit.Close()
		return fail(err, db)
	}
	mux.Handle(a.Console.Path(), a.Console)
	a.Tenants.AddOffboardingStep(a.Console.OffboardingStep())
	a.Handler = mux
	return a, nil
}

// startEvents starts the events service of ec, with the credentials of
// c.NATSCredentials when it joins an external NATS server.
func startEvents(ctx context.Context, c Config, ec events.Config) (*events.Server, error) {
	if c.NATSURL != "" {
		creds, err := events.ReadCredentials(c.NATSCredentials)
		if err != nil {
			return nil, err
		}
		ec.Credentials = creds
	}
	s, err := events.New(ec)
	if err != nil {
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// prepare readies db to serve (storage.DB.PrepareToServe), migrating it
// through a connection to migrationDSN, the owner role's, if not empty.
func prepare(ctx context.Context, db *storage.DB, migrationDSN string) error {
	var owner *storage.DB
	if migrationDSN != "" {
		if !storage.IsPostgres(migrationDSN) {
			return errors.New("the migration database must be a postgres:// URL (the owner role's connection to the served database)")
		}
		var err error
		if owner, err = storage.Open(ctx, migrationDSN); err != nil {
			return fmt.Errorf("migration database: %w", err)
		}
		defer owner.Close()
	}
	return db.PrepareToServe(ctx, owner, Components()...)
}

// rootKeyReplaced finishes a root key replacement: the issuers' signing
// keys, which no longer unwrap, are retired (each issuer makes a new one on
// its next token), the replacement is audited, and the operator is told
// what became unreadable.
func (a *App) rootKeyReplaced(ctx context.Context, notices io.Writer, unreadable int) error {
	retired, err := a.Signing.RetireAll(ctx)
	if err != nil {
		return err
	}
	if err := a.Audit.Append(ctx, audit.Event{Principal: "system:init", Action: "kms.root_key_replaced", Target: "root-key",
		Detail: map[string]string{"unreadable_key_versions": strconv.Itoa(unreadable), "retired_signing_keys": strconv.Itoa(retired)}}); err != nil {
		return err
	}
	fmt.Fprintf(notices, "\n*** ROOT KEY REPLACED: this database's root key is now the one from %s.\n"+
		"*** %d tenant key version(s) were wrapped under the old root key and are unreadable now, and so is\n"+
		"*** everything encrypted under them (tenant data, connections' token shares); so are TOTP secrets and\n"+
		"*** federation client secrets and the application clusters' DSNs (register them again). %d signing key(s) were retired: each issuer makes a new one. Sessions,\n"+
		"*** refresh tokens and connection grants from before no longer work. Give every node this root key.\n\n",
		a.rootKey.Origin(), unreadable, retired)
	return nil
}

// tokenState answers authn.TenantTokens from the node's records.
type tokenState struct{ a *App }

func (s tokenState) Tenant(ctx context.Context, id tenant.ID) (tenants.Tenant, error) {
	return s.a.Tenants.Get(ctx, id)
}
func (s tokenState) IssuerOf(t tenants.Tenant) string      { return s.a.Provider.IssuerOf(t) }
func (s tokenState) PriorIssuerOf(t tenants.Tenant) string { return s.a.Provider.PriorIssuerOf(t) }
func (s tokenState) Revoked(ctx context.Context, id string) bool {
	return s.a.Provider.Revoked(ctx, id)
}
func (s tokenState) ClientActive(ctx context.Context, tid tenant.ID, clientID string) error {
	if clientID == provider.ConsoleClientID {
		return nil // built in: never deleted
	}
	c, err := s.a.Directory.ClientByIDAllTenants(ctx, clientID)
	if err != nil {
		return err
	}
	if c.TenantID != "" && c.TenantID != tid {
		// A tenant's client issues tokens of its own tenant only.
		return fmt.Errorf("client %s belongs to another tenant", clientID)
	}
	return nil
}
func (s tokenState) UserGroups(ctx context.Context, tid tenant.ID, userID string) ([]string, error) {
	u, err := s.a.Directory.GetUser(ctx, tid, userID)
	if err != nil {
		return nil, err
	}
	if u.Status != identity.UserActive {
		return nil, fmt.Errorf("user %s is %s", userID, u.Status)
	}
	return u.Groups, nil
}

func (s tokenState) PartnerSession(ctx context.Context, tid tenant.ID, trustID, partnerID string, issuedAt, notBefore time.Time) (tenant.PartnerSession, error) {
	ses, err := s.a.Partners.TrustActive(ctx, tid, trustID, partnerID, issuedAt, notBefore)
	if err != nil {
		return tenant.PartnerSession{}, err
	}
	return tenant.PartnerSession{Networks: ses.Networks, Policy: ses.Policy, Scopes: ses.Scopes}, nil
}

// operatorState answers authn's questions about operator accounts.
type operatorState struct{ a *App }

func (s operatorState) OperatorActive(ctx context.Context, id string) (time.Time, error) {
	o, err := s.a.Directory.GetOperator(ctx, id)
	if err != nil {
		return time.Time{}, err
	}
	if o.Status != identity.UserActive {
		return time.Time{}, fmt.Errorf("operator %s is %s", id, o.Status)
	}
	return o.PasswordChangedAt, nil
}

// DefaultPostureInterval is how often a node scans the deployment's
// posture (one node at a time).
const DefaultPostureInterval = 6 * time.Hour

// Listeners are where Run serves.
type Listeners struct {
	API   net.Listener // the API and the OpenID provider (Handler)
	Proxy net.Listener // the connections proxy (Proxy); nil turns it off
	// Gateway serves the edge gateway over HTTP, GatewayTLS over TLS
	// (HTTP/2 and HTTP/1.1, certificates from Config.GatewayCerts); nil
	// turns each off.
	Gateway, GatewayTLS net.Listener
	// Debug serves Go's profiles (/debug/pprof/); nil turns it off. It
	// has no authentication: the operator keeps it on loopback.
	Debug net.Listener
}

// purgeInterval is how often the OpenID provider deletes expired sign-ins
// and tokens.
const purgeInterval = 10 * time.Minute

// Run serves the node on l and runs its background work until ctx ends or
// one of them fails, then stops them in order (see the package doc) and
// returns: nil after a stop that ctx asked for (an incomplete shutdown is
// logged), the first failure otherwise. It closes the listeners. Call
// Close after it.
func (a *App) Run(ctx context.Context, l Listeners) error {
	if l.GatewayTLS != nil && a.gatewayCerts == nil {
		for _, ln := range []net.Listener{l.API, l.Proxy, l.Gateway, l.GatewayTLS, l.Debug} {
			if ln != nil {
				ln.Close()
			}
		}
		return errors.New("the gateway's TLS listener needs a certificate source")
	}
	g, failed := errgroup.WithContext(context.WithoutCancel(ctx))
	// The workers stop after the listeners, whatever stops the node.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	for _, run := range []func(context.Context) error{
		func(ctx context.Context) error { return a.Tenants.Run(ctx, a.retry) },
		func(ctx context.Context) error { return a.Provider.Run(ctx, purgeInterval) },
		func(ctx context.Context) error {
			if a.accessLog == nil {
				return nil
			}
			return a.accessLog.Run(ctx, a.clock)
		},
		a.Directory.Run, a.Authz.Run, a.KMS.Run, a.Signing.Run, a.Functions.Run, a.Connect.Run, a.Data.Run, a.Usage.Run, a.Routes.Run,
		a.Outbox.Run, a.Console.Run,
		func(ctx context.Context) error {
			if a.Mail == nil {
				return nil
			}
			return a.Mail.Run(ctx)
		},
		func(ctx context.Context) error { return a.Posture.Run(ctx, a.postureInterval) },
		func(ctx context.Context) error {
			if a.Certs == nil {
				return nil
			}
			return a.Certs.Run(ctx)
		},
		func(ctx context.Context) error {
			if a.Events == nil {
				return nil
			}
			return a.Events.Run(ctx)
		},
	} {
		g.Go(func() error { return run(work) })
	}
	// inflight counts the requests being handled: after a shutdown that
	// timed out, net/http no longer waits for them, Run does.
	var inflight sync.WaitGroup
	servers := a.servers(l, &inflight)
	for ln, srv := range servers {
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve %s: %w", ln.Addr(), err)
			}
			return nil
		})
	}
	g.Go(func() error {
		select {
		case <-ctx.Done():
		case <-failed.Done():
		}
		a.shutdown(servers)
		stopWork()
		return nil
	})
	err := g.Wait()
	inflight.Wait()
	return err
}

// servers returns the HTTP servers of l's listeners, counting their
// requests in inflight.
func (a *App) servers(l Listeners, inflight *sync.WaitGroup) map[net.Listener]*http.Server {
	count := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inflight.Add(1)
			defer inflight.Done()
			h.ServeHTTP(w, r)
		})
	}
	errorLog := slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)
	servers := map[net.Listener]*http.Server{l.API: {
		Handler:           count(a.Handler),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      a.writeTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog,
	}}
	if l.Proxy != nil {
		// The proxy streams answers of any length: no write timeout; its
		// header limit is generous, and the proxy answers 431 itself past
		// connect.MaxRequestHeaderBytes.
		servers[l.Proxy] = &http.Server{
			Handler:           count(a.Proxy),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    1 << 20,
			ErrorLog:          errorLog,
		}
	}
	if l.Gateway != nil {
		servers[gateway.NewListener(l.Gateway, gateway.MaxHeaderBytes)] = gateway.NewServer(count(a.gatewayHTTP()), errorLog)
	}
	if l.Debug != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		// Not /debug/pprof/cmdline: a --database DSN may hold a password.
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		// Profiles run for as long as asked (?seconds=): no write timeout.
		servers[l.Debug] = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, ErrorLog: errorLog}
	}
	if l.GatewayTLS != nil {
		srv := gateway.NewServer(count(a.Gateway), errorLog)
		srv.TLSConfig = a.Gateway.TLSConfig(a.gatewayCerts)
		servers[gateway.NewTLSListener(l.GatewayTLS, srv.TLSConfig, gateway.MaxHeaderBytes, gateway.ReadHeaderTimeout)] = srv
	}
	return servers
}

// shutdown stops the servers, letting in-flight requests finish while the
// workflows reach their next checkpoint, within the shutdown timeout; past
// it, it closes the servers' connections.
func (a *App) shutdown(servers map[net.Listener]*http.Server) {
	a.log.Info("shutting down: finishing in-flight requests and workflow steps")
	ctx, cancel := context.WithTimeout(context.Background(), a.shutdownTimeout)
	defer cancel()
	var mu sync.Mutex
	var err error
	var wg sync.WaitGroup
	stop := func(f func(context.Context) error) {
		wg.Go(func() {
			e := f(ctx)
			mu.Lock()
			err = errors.Join(err, e)
			mu.Unlock()
		})
	}
	for _, srv := range servers {
		stop(srv.Shutdown)
	}
	stop(a.Tenants.Shutdown)
	wg.Wait()
	if err != nil {
		a.log.Warn("shutdown incomplete", "err", err)
		for _, srv := range servers {
			srv.Close()
		}
	}
}

// Close stops the compute engine and the proxy's upstream connections, has
// the audit log write what is queued and stop its writer, closes the
// database and zeroes the root key. Call it after Run has returned (or
// without Run, after Open).
func (a *App) Close() {
	if a.accessLog != nil {
		a.accessLog.Flush() // lines of requests that outlived Run
	}
	a.Functions.Engine().Close(context.Background())
	a.Connect.Close()
	a.Gateway.Close()
	if a.Events != nil {
		a.Events.Close()
	}
	a.Audit.Close()
	a.DB.Close()
	a.rootKey.Zero()
}

// gatewayHTTP is the gateway's plain-HTTP handler: the custom domains'
// verification tokens (domains.WellKnownPrefix) and, with ACME CAs, their
// HTTP-01 challenges, then the gateway itself.
func (a *App) gatewayHTTP() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(domains.WellKnownPrefix, a.Domains.ChallengeHandler())
	mux.Handle("/", a.Gateway)
	var h http.Handler = mux
	if a.Certs != nil {
		h = a.Certs.HTTPChallengeHandler(h)
	}
	return h
}
