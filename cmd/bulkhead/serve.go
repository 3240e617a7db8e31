package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/app"
	"github.com/bulkhead-dev/bulkhead/internal/data"
	"github.com/bulkhead-dev/bulkhead/internal/gateway"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/certs"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/identity/provider"
	"github.com/bulkhead-dev/bulkhead/internal/logging"
	"github.com/bulkhead-dev/bulkhead/internal/mail"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
)

// config is the server's configuration. Every flag also reads a BULKHEAD_*
// environment variable; a flag given on the command line wins.
type config struct {
	dataDir                   string
	database                  string
	migrationDB               string
	listen                    string
	publicURL                 string
	tokenRate                 float64
	loginDomain               string
	smtpAddr, smtpFrom        string
	smtpUsername              string
	tenantPicker              bool
	trustedProxies            string
	tiersFile                 string
	logLevel                  string
	shutdownTimeout           time.Duration
	workflowRetry             time.Duration
	proxyListen               string
	allowPrivate              bool
	upstreamTimeout           time.Duration
	bodyTimeout               time.Duration
	dataRetention             time.Duration
	gatewayNodes              int
	gatewayBody               time.Duration
	natsListen, gatewayListen string
	natsURL, natsCredentials  string
	gatewayTLS                string
	gatewayDomain             string
	gatewayAudience           string
	gatewayRoutes             string
	gatewayCert               string
	gatewayKey                string
	dnsResolver               string
	debugListen               string
	debugRemote               bool
	acmeCAs                   stringList
	acmeRoots                 stringList
	acmeEmail                 string

	// bulkhead init only: deliberate changes to what the database records.
	newRootKey   bool
	newPublicURL bool
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, ok := os.LookupEnv(name); ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return def
}

func envInt(name string, def int) int {
	if v, ok := os.LookupEnv(name); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// storageFlags registers the flags that say where Bulkhead keeps its state.
func storageFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.dataDir, "data-dir", envOr("BULKHEAD_DATA_DIR", "bulkhead-data"),
		"directory for the root key and the embedded SQLite database, created 0700 (env BULKHEAD_DATA_DIR)")
	fs.StringVar(&c.database, "database", envOr("BULKHEAD_DATABASE", ""),
		"database: a postgres:// URL for PostgreSQL, or an SQLite file path; default <data-dir>/bulkhead.db (env BULKHEAD_DATABASE)")
	fs.StringVar(&c.migrationDB, "migration-database", envOr("BULKHEAD_MIGRATION_DATABASE", ""),
		"PostgreSQL: a postgres:// URL of the same database as the role that owns Bulkhead's tables; migrate with it and grant "+
			"--database's role its privileges before serving (as bulkhead migrate does). Without it the database must be migrated "+
			"already. --database's role must own nothing either way (env BULKHEAD_MIGRATION_DATABASE)")
}

// defaultNATSListen is the embedded NATS server's address by default:
// loopback, and not NATS's own 4222, which a NATS server of the machine's
// often holds.
const defaultNATSListen = "127.0.0.1:4223"

func parseServeFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	storageFlags(fs, &c)
	fs.StringVar(&c.listen, "listen", envOr("BULKHEAD_LISTEN", "127.0.0.1:8080"), "address of the API and OpenID provider listener (env BULKHEAD_LISTEN)")
	fs.StringVar(&c.publicURL, "public-url", envOr("BULKHEAD_PUBLIC_URL", ""),
		"URL clients reach this node at: the OpenID provider's issuer; https, or http on loopback (default http://<listen address>) (env BULKHEAD_PUBLIC_URL)")
	fs.StringVar(&c.smtpAddr, "smtp-addr", envOr("BULKHEAD_SMTP_ADDR", ""),
		"host:port of the SMTP server that sends password reset links (STARTTLS, required unless on loopback); empty: no reset by email (env BULKHEAD_SMTP_ADDR)")
	fs.StringVar(&c.smtpFrom, "smtp-from", envOr("BULKHEAD_SMTP_FROM", ""), "the sender address of Bulkhead's emails (env BULKHEAD_SMTP_FROM)")
	fs.StringVar(&c.smtpUsername, "smtp-username", envOr("BULKHEAD_SMTP_USERNAME", ""),
		"the SMTP account, if the server asks for one; its password comes from BULKHEAD_SMTP_PASSWORD only (env BULKHEAD_SMTP_USERNAME)")
	fs.StringVar(&c.loginDomain, "login-domain", envOr("BULKHEAD_LOGIN_DOMAIN", ""),
		"route sign-ins by subdomain: the login page at {tenant}.{login-domain} signs in that tenant's users (env BULKHEAD_LOGIN_DOMAIN)")
	fs.StringVar(&c.trustedProxies, "trusted-proxies", envOr("BULKHEAD_TRUSTED_PROXIES", ""),
		"comma-separated CIDRs or addresses of reverse proxies whose X-Forwarded-For names the client (env BULKHEAD_TRUSTED_PROXIES)")
	fs.BoolVar(&c.tenantPicker, "tenant-picker", os.Getenv("BULKHEAD_TENANT_PICKER") == "true",
		"show a list of tenants on the login page; it reveals which tenants exist (env BULKHEAD_TENANT_PICKER=true)")
	fs.Float64Var(&c.tokenRate, "token-rate-per-ip", envFloat("BULKHEAD_TOKEN_RATE_PER_IP", 1000),
		"requests per second one address may send to the token, introspection and revocation endpoints (env BULKHEAD_TOKEN_RATE_PER_IP)")
	fs.StringVar(&c.tiersFile, "tiers", envOr("BULKHEAD_TIERS", ""),
		`tiers file, JSON {"tiers":[{"name":…,"isolation":"pool|bridge|silo",…}]}; default: basic→pool, standard→bridge, premium→silo (env BULKHEAD_TIERS)`)
	fs.StringVar(&c.proxyListen, "proxy-listen", envOr("BULKHEAD_PROXY_LISTEN", "127.0.0.1:8090"),
		`address of the connections proxy ({proxy}/c/{connection}/…); "off" turns it off (env BULKHEAD_PROXY_LISTEN)`)
	fs.BoolVar(&c.allowPrivate, "allow-private-upstreams", os.Getenv("BULKHEAD_ALLOW_PRIVATE_UPSTREAMS") == "true",
		"let connections, alert webhooks, federation (tenants' own OpenID providers) and gateway upstreams reach loopback, private and link-local addresses (env BULKHEAD_ALLOW_PRIVATE_UPSTREAMS=true)")
	fs.DurationVar(&c.upstreamTimeout, "proxy-upstream-timeout", envDuration("BULKHEAD_PROXY_UPSTREAM_TIMEOUT", 30*time.Second),
		"how long the connections proxy waits for an upstream's response headers (env BULKHEAD_PROXY_UPSTREAM_TIMEOUT)")
	fs.DurationVar(&c.bodyTimeout, "proxy-body-timeout", envDuration("BULKHEAD_PROXY_BODY_TIMEOUT", 30*time.Second),
		"how long a client may take to send a proxied request, body included (env BULKHEAD_PROXY_BODY_TIMEOUT)")
	fs.DurationVar(&c.dataRetention, "data-retention", envDuration("BULKHEAD_DATA_RETENTION", data.DefaultRetention),
		"how long an offboarded tenant's application data (its schema, database or pool rows) is kept before it is dropped (env BULKHEAD_DATA_RETENTION)")
	fs.IntVar(&c.gatewayNodes, "gateway-nodes", envInt("BULKHEAD_GATEWAY_NODES", 1),
		"how many gateway nodes share each usage plan's rate: each node allows rate/N requests per second (env BULKHEAD_GATEWAY_NODES)")
	fs.DurationVar(&c.gatewayBody, "gateway-body-timeout", envDuration("BULKHEAD_GATEWAY_BODY_TIMEOUT", gateway.DefaultBodyTimeout),
		"how long a client may take to send the gateway a request body (env BULKHEAD_GATEWAY_BODY_TIMEOUT)")
	fs.StringVar(&c.natsListen, "nats-listen", envOr("BULKHEAD_NATS_LISTEN", defaultNATSListen),
		`address of the embedded NATS server for tenants' event streams (clients connect with a Bulkhead token); "off" turns it off; not with --nats-url (env BULKHEAD_NATS_LISTEN)`)
	fs.StringVar(&c.natsURL, "nats-url", envOr("BULKHEAD_NATS_URL", ""),
		"instead of --nats-listen: an external NATS server or cluster (nats-server ≥ 2.10, configured by bulkhead nats-config) for tenants' event streams, nats://host:port[,…] without credentials; needs --nats-credentials (env BULKHEAD_NATS_URL)")
	fs.StringVar(&c.natsCredentials, "nats-credentials", envOr("BULKHEAD_NATS_CREDENTIALS", ""),
		"with --nats-url: the file of Bulkhead's credentials on the NATS server (written by bulkhead nats-config; mode 0600) (env BULKHEAD_NATS_CREDENTIALS)")
	fs.StringVar(&c.gatewayListen, "gateway-listen", envOr("BULKHEAD_GATEWAY_LISTEN", ""),
		"address of the edge gateway's HTTP listener; off by default (env BULKHEAD_GATEWAY_LISTEN)")
	fs.StringVar(&c.gatewayTLS, "gateway-tls-listen", envOr("BULKHEAD_GATEWAY_TLS_LISTEN", ""),
		"address of the edge gateway's HTTPS listener (HTTP/2 and HTTP/1.1); off by default; needs --gateway-tls-cert and --gateway-tls-key (env BULKHEAD_GATEWAY_TLS_LISTEN)")
	fs.StringVar(&c.gatewayCert, "gateway-tls-cert", envOr("BULKHEAD_GATEWAY_TLS_CERT", ""),
		"PEM certificate chain the gateway's HTTPS listener presents for every host it serves (env BULKHEAD_GATEWAY_TLS_CERT)")
	fs.StringVar(&c.gatewayKey, "gateway-tls-key", envOr("BULKHEAD_GATEWAY_TLS_KEY", ""),
		"PEM private key of --gateway-tls-cert (env BULKHEAD_GATEWAY_TLS_KEY)")
	fs.StringVar(&c.gatewayDomain, "gateway-app-domain", envOr("BULKHEAD_GATEWAY_APP_DOMAIN", ""),
		"the application's domain: the gateway serves tenant t at t.{domain} (env BULKHEAD_GATEWAY_APP_DOMAIN)")
	fs.StringVar(&c.gatewayAudience, "gateway-audience", envOr("BULKHEAD_GATEWAY_AUDIENCE", gateway.DefaultAudience),
		"aud of the tenant assertions the gateway sends the application (env BULKHEAD_GATEWAY_AUDIENCE)")
	fs.StringVar(&c.debugListen, "debug-listen", envOr("BULKHEAD_DEBUG_LISTEN", ""),
		"address of the profiling listener (Go's /debug/pprof/: CPU, heap, goroutines, execution traces); off by default, loopback only unless --debug-listen-remote (env BULKHEAD_DEBUG_LISTEN)")
	fs.BoolVar(&c.debugRemote, "debug-listen-remote", false,
		"let --debug-listen take an address other than loopback (profiles show the node's internals: keep it off the internet)")
	fs.StringVar(&c.gatewayRoutes, "gateway-routes", envOr("BULKHEAD_GATEWAY_ROUTES", ""),
		`gateway routes file, JSON {"routes":[{"id":…,"host":…,"path_prefix":"/","upstream":…,"silo":{tenant:url},"timeout":"30s"}]} (env BULKHEAD_GATEWAY_ROUTES)`)
	fs.StringVar(&c.dnsResolver, "domains-dns-resolver", envOr("BULKHEAD_DOMAINS_DNS_RESOLVER", ""),
		"host:port of the DNS server asked for custom domains' _bulkhead TXT records and the addresses their HTTP checks reach; default the system's resolver (env BULKHEAD_DOMAINS_DNS_RESOLVER)")
	fs.Var(&c.acmeCAs, "acme-ca",
		"ACME directory URL of a CA that certificates for verified custom domains are ordered from; repeat it for fallbacks, in order (none: no certificates)")
	fs.Var(&c.acmeRoots, "acme-ca-root",
		"PEM file of roots that the ACME CAs' own TLS certificates chain to, for test CAs (repeatable)")
	fs.StringVar(&c.acmeEmail, "acme-email", envOr("BULKHEAD_ACME_EMAIL", ""), "contact of the ACME account (env BULKHEAD_ACME_EMAIL)")
	fs.StringVar(&c.logLevel, "log-level", envOr("BULKHEAD_LOG_LEVEL", "info"), "debug, info, warn or error (env BULKHEAD_LOG_LEVEL)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", envDuration("BULKHEAD_SHUTDOWN_TIMEOUT", 30*time.Second),
		"how long SIGTERM/SIGINT waits for in-flight requests and workflow steps (env BULKHEAD_SHUTDOWN_TIMEOUT)")
	fs.DurationVar(&c.workflowRetry, "workflow-retry", envDuration("BULKHEAD_WORKFLOW_RETRY", 10*time.Second),
		"how often stalled lifecycle workflows are retried (env BULKHEAD_WORKFLOW_RETRY)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: bulkhead serve [flags]

Runs Bulkhead. With no flags it keeps an SQLite database and its root key in
./bulkhead-data (created on first start) and serves the API on 127.0.0.1:8080.
On first start it prints an admin token once; set BULKHEAD_ADMIN_TOKEN (at
least 24 characters) before the first start to choose it instead.

On PostgreSQL, --database connects as an ordinary role that owns nothing;
the role that owns the tables migrates them first (bulkhead migrate), or
here with --migration-database.

Environment only:
  BULKHEAD_ADMIN_TOKEN  the admin token to store at first start
  BULKHEAD_ROOT_KEY     the root key (32 bytes, base64) instead of <data-dir>/root.key

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stderr); err != nil {
		return c, err
	}
	if c.dataRetention <= 0 {
		return c, fmt.Errorf("%w: --data-retention must be a positive duration", errUsage)
	}
	if c.gatewayBody <= 0 {
		return c, fmt.Errorf("%w: --gateway-body-timeout must be a positive duration", errUsage)
	}
	if c.gatewayNodes < 1 || c.gatewayNodes > 10000 {
		return c, fmt.Errorf("%w: --gateway-nodes must be between 1 and 10000", errUsage)
	}
	// The embedded server is on by default; --nats-url alone replaces it.
	listenGiven := os.Getenv("BULKHEAD_NATS_LISTEN") != ""
	fs.Visit(func(f *flag.Flag) { listenGiven = listenGiven || f.Name == "nats-listen" })
	if c.natsListen == "off" || (c.natsURL != "" && !listenGiven) {
		c.natsListen = ""
	}
	// The URL is not quoted: a password in it would be.
	switch {
	case c.natsListen != "" && c.natsURL != "":
		return c, fmt.Errorf("%w: --nats-listen runs an embedded NATS server and --nats-url joins an external one: give one, not both", errUsage)
	case c.natsURL != "" && c.natsCredentials == "":
		return c, fmt.Errorf("%w: --nats-url needs --nats-credentials, the file bulkhead nats-config wrote for Bulkhead", errUsage)
	case c.natsURL == "" && c.natsCredentials != "":
		return c, fmt.Errorf("%w: --nats-credentials is for --nats-url (an external NATS server)", errUsage)
	}
	return c, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

func (c config) open(ctx context.Context, log *slog.Logger, stderr io.Writer) (*app.App, error) {
	rootKey := os.Getenv("BULKHEAD_ROOT_KEY")
	os.Unsetenv("BULKHEAD_ROOT_KEY") // not inherited by children, not in /proc/self/environ
	cfg := app.Config{
		DataDir: c.dataDir, Database: c.database, MigrationDatabase: c.migrationDB, RootKey: rootKey, PublicURL: c.publicURL, TokenRatePerIP: c.tokenRate,
		LoginDomain: c.loginDomain, TenantPicker: c.tenantPicker, TrustedProxies: strings.Split(c.trustedProxies, ","),
		TiersFile: c.tiersFile, Version: version, Logger: log, Notices: stderr,
		AllowPrivateUpstreams: c.allowPrivate, ProxyUpstreamTimeout: c.upstreamTimeout, ProxyBodyTimeout: c.bodyTimeout,
		NewRootKey: c.newRootKey, ChangePublicURL: c.newPublicURL, WorkflowRetry: c.workflowRetry, ShutdownTimeout: c.shutdownTimeout,
		NATSListen: c.natsListen, NATSURL: c.natsURL, NATSCredentials: c.natsCredentials, DataRetention: c.dataRetention, GatewayNodes: c.gatewayNodes, GatewayBodyTimeout: c.gatewayBody, GatewayAppDomain: c.gatewayDomain, GatewayAudience: c.gatewayAudience,
		DomainsDNSResolver: c.dnsResolver,
		AccessLog:          stderr,
		// The running binary, even after an upgrade replaced its file.
		HashCommand: []string{"/proc/self/exe", "hash-worker"},
	}
	if c.smtpAddr != "" {
		cfg.SMTP = &mail.Config{Addr: c.smtpAddr, From: c.smtpFrom, Username: c.smtpUsername, Password: os.Getenv("BULKHEAD_SMTP_PASSWORD")}
		os.Unsetenv("BULKHEAD_SMTP_PASSWORD")
	}
	if c.gatewayRoutes != "" {
		b, err := os.ReadFile(c.gatewayRoutes)
		if err != nil {
			return nil, fmt.Errorf("--gateway-routes: %w", err)
		}
		if cfg.GatewayRoutes, err = gateway.ParseRoutes(b); err != nil {
			return nil, fmt.Errorf("--gateway-routes: %w", err)
		}
	}
	if c.gatewayCert != "" || c.gatewayKey != "" {
		cert, err := tls.LoadX509KeyPair(c.gatewayCert, c.gatewayKey)
		if err != nil {
			return nil, fmt.Errorf("--gateway-tls-cert, --gateway-tls-key: %w", err)
		}
		cfg.GatewayCerts = gateway.StaticCert{Cert: &cert}
	}
	cas, err := c.acme()
	if err != nil {
		return nil, err
	}
	cfg.ACMECAs, cfg.ACMEEmail = cas, c.acmeEmail
	if c.logLevel != "" { // init and migrate have no --log-level
		if cfg.LogLevel, err = parseLevel(c.logLevel); err != nil {
			return nil, fmt.Errorf("%w: --log-level: %v", errUsage, err)
		}
	}
	testConfig(&cfg)
	return app.Open(ctx, cfg)
}

// bootstrapAdmin makes sure an admin token exists and shows a new one once.
func bootstrapAdmin(ctx context.Context, a *app.App, stderr io.Writer) error {
	preset := os.Getenv("BULKHEAD_ADMIN_TOKEN")
	os.Unsetenv("BULKHEAD_ADMIN_TOKEN")
	token, err := a.Admin.Bootstrap(ctx, preset)
	if err != nil {
		return err
	}
	switch {
	case token != "" && preset == "":
		fmt.Fprintf(stderr, "\nAdmin token (shown once; it is stored only as a hash):\n\n    %s\n\n"+
			"Use it as BULKHEAD_TOKEN for the CLI or as a bearer token for the API.\n\n", token)
	case token != "":
		fmt.Fprintln(stderr, "bulkhead: stored BULKHEAD_ADMIN_TOKEN as the admin token")
	case preset != "":
		if _, err := a.Admin.Verify(ctx, preset); err != nil {
			fmt.Fprintln(stderr, "bulkhead: warning: BULKHEAD_ADMIN_TOKEN is set but is not this deployment's admin token "+
				"(only the first start stores it); clients sending it will get 401")
		}
	}
	return nil
}

// serve runs bulkhead serve: the server, until ctx is done.
func serve(ctx context.Context, s stdio, args []string) error {
	c, err := parseServeFlags(args, s.err)
	if err != nil {
		return err
	}
	level, err := parseLevel(c.logLevel)
	if err != nil {
		return fmt.Errorf("%w: --log-level: %v", errUsage, err)
	}
	log := logging.New(s.err, level)
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close() // Run closes it; this is for the returns before Run
	defaultURL := c.publicURL == ""
	if defaultURL {
		c.publicURL = "http://" + ln.Addr().String()
	}
	var proxyLn net.Listener
	if c.proxyListen != "off" && c.proxyListen != "" {
		if proxyLn, err = net.Listen("tcp", c.proxyListen); err != nil {
			return fmt.Errorf("listen (proxy): %w", err)
		}
		defer proxyLn.Close()
	}
	if c.gatewayTLS != "" && c.gatewayCert == "" {
		return fmt.Errorf("%w: --gateway-tls-listen needs --gateway-tls-cert and --gateway-tls-key", errUsage)
	}
	var gwLn, gwTLSLn net.Listener
	for _, l := range []struct {
		addr string
		ln   *net.Listener
	}{{c.gatewayListen, &gwLn}, {c.gatewayTLS, &gwTLSLn}} {
		if l.addr == "" || l.addr == "off" {
			continue
		}
		if *l.ln, err = net.Listen("tcp", l.addr); err != nil {
			return fmt.Errorf("listen (gateway): %w", err)
		}
		defer (*l.ln).Close()
	}
	debugLn, err := c.listenDebug()
	if err != nil {
		return err
	}
	if debugLn != nil {
		defer debugLn.Close()
	}
	n, err := c.open(ctx, log, s.err)
	if errors.Is(err, provider.ErrPublicURLMismatch) && defaultURL {
		err = fmt.Errorf("%w (this node was given no --public-url: its default is http:// and its --listen address)", err)
	}
	if err != nil {
		return err
	}
	defer n.Close()
	if err := bootstrapAdmin(ctx, n, s.err); err != nil {
		return err
	}
	addTestHooks(n)
	backend := "sqlite"
	if storage.IsPostgres(c.database) {
		backend = "postgres"
	}
	log.Info("bulkhead started", "version", version, "api", "http://"+ln.Addr().String(), "database", backend, "data_dir", c.dataDir)
	fmt.Fprintf(s.err, "bulkhead: API listening on http://%s\n", ln.Addr())
	if proxyLn != nil {
		fmt.Fprintf(s.err, "bulkhead: connections proxy listening on http://%s\n", proxyLn.Addr())
	}
	if gwLn != nil {
		fmt.Fprintf(s.err, "bulkhead: gateway listening on http://%s\n", gwLn.Addr())
	}
	if gwTLSLn != nil {
		fmt.Fprintf(s.err, "bulkhead: gateway listening on https://%s\n", gwTLSLn.Addr())
	}
	if debugLn != nil {
		fmt.Fprintf(s.err, "bulkhead: profiling listening on http://%s/debug/pprof/\n", debugLn.Addr())
	}
	if err := n.Run(ctx, app.Listeners{API: ln, Proxy: proxyLn, Gateway: gwLn, GatewayTLS: gwTLSLn, Debug: debugLn}); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

// initData runs bulkhead init: what the first serve would create, or a
// check of an existing deployment, or one of two deliberate changes.
func initData(ctx context.Context, s stdio, args []string) error {
	var c config
	var newURL string
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	storageFlags(fs, &c)
	fs.StringVar(&c.publicURL, "public-url", envOr("BULKHEAD_PUBLIC_URL", ""),
		"record this public URL now rather than at the first serve (env BULKHEAD_PUBLIC_URL)")
	fs.StringVar(&newURL, "new-public-url", "",
		"change the public URL the database records (every node must then serve with it; tokens issued under the old one are refused)")
	fs.BoolVar(&c.newRootKey, "new-root-key", false,
		"make this node's root key (BULKHEAD_ROOT_KEY or <data-dir>/root.key, made if missing) the database's although it records another: "+
			"EVERYTHING WRAPPED UNDER THE OLD KEY BECOMES UNREADABLE; only for a root key lost for good")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: bulkhead init [flags]

Creates the data directory, root key, database and admin token, as the
first serve would; on an existing deployment it checks the root key (and
--public-url) against what the database records. Two deliberate changes,
with every node stopped:

  --new-public-url URL  the URL every node serves under (the issuer of
                        every token) becomes URL
  --new-root-key        the node's root key replaces the one the database
                        records; what the old one wrapped is lost

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, s.err); err != nil {
		return err
	}
	if newURL != "" {
		both := false
		fs.Visit(func(f *flag.Flag) { both = both || f.Name == "public-url" })
		if both && c.publicURL != newURL {
			return fmt.Errorf("%w: --public-url and --new-public-url differ; give --new-public-url alone", errUsage)
		}
		c.publicURL, c.newPublicURL = newURL, true
	}
	n, err := c.open(ctx, slog.New(slog.DiscardHandler), s.err)
	if err != nil {
		return err
	}
	defer n.Close()
	if err := bootstrapAdmin(ctx, n, s.err); err != nil {
		return err
	}
	where := filepath.Join(c.dataDir, "bulkhead.db")
	if c.database != "" {
		where = redactDSN(c.database)
	}
	fmt.Fprintf(s.out, "initialized: data directory %s, database %s\n", c.dataDir, where)
	return nil
}

// redactDSN is a database's name fit to print: a postgres:// URL without
// its password (url.URL.Redacted); an SQLite path, which holds none, as it
// is.
func redactDSN(dsn string) string {
	if !storage.IsPostgres(dsn) {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		// Not the error: it quotes the URL, password and all.
		scheme, _, _ := strings.Cut(dsn, "://")
		return scheme + "://(a URL that does not parse)"
	}
	return u.Redacted()
}

// acme returns the ACME CAs of --acme-ca, each trusting the roots of every
// --acme-ca-root (the system's roots if none is given).
func (c config) acme() ([]certs.CA, error) {
	var roots *x509.CertPool
	if len(c.acmeRoots) > 0 {
		var err error
		if roots, err = certs.LoadRoots(c.acmeRoots...); err != nil {
			return nil, err
		}
	}
	var cas []certs.CA
	for _, u := range c.acmeCAs {
		if p, err := url.Parse(u); err != nil || p.Scheme != "https" || p.Host == "" {
			return nil, fmt.Errorf("--acme-ca %q: not an https URL", u)
		}
		cas = append(cas, certs.CA{URL: u, Roots: roots})
	}
	return cas, nil
}

// listenDebug opens the profiling listener of --debug-listen, if any: on
// a loopback address unless --debug-listen-remote.
func (c config) listenDebug() (net.Listener, error) {
	if c.debugListen == "" || c.debugListen == "off" {
		return nil, nil
	}
	host, _, err := net.SplitHostPort(c.debugListen)
	if err != nil {
		return nil, fmt.Errorf("%w: --debug-listen: %v", errUsage, err)
	}
	if ip := net.ParseIP(host); !c.debugRemote && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%w: --debug-listen %s is not a loopback address; profiles show the node's internals (add --debug-listen-remote to mean it)", errUsage, c.debugListen)
	}
	ln, err := net.Listen("tcp", c.debugListen)
	if err != nil {
		return nil, fmt.Errorf("listen (debug): %w", err)
	}
	return ln, nil
}

// hashWorker is a password hashing child of serve (identity.ServeHashing):
// it reads requests on stdin and answers on stdout until stdin ends.
func hashWorker(_ context.Context, s stdio, args []string) error {
	if err := parseFlags(flag.NewFlagSet("hash-worker", flag.ContinueOnError), args, s.err); err != nil {
		return err
	}
	return identity.ServeHashing(s.in, s.out)
}
