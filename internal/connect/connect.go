// Package connect is Bulkhead's split-token vault and the SaaS-to-SaaS
// proxy in front of it.
//
// A connection is a tenant's link to a third-party API: an upstream base
// URL, how the upstream token is presented (a bearer token, a named header
// or a query parameter) and which methods and paths an integration may use.
// The token itself is never stored. Each integration gets a grant: on its
// creation Bulkhead draws a random pad as long as the token, hands the
// integration Part A (the grant's id and the pad, see PartA) and stores
// Part B = token XOR pad, encrypted under the tenant's key with the
// tenant, connection and grant in the encryption context. Each part alone
// is a one-time pad: it says nothing about the token. Part A is
// authenticated by a keyed hash (HMAC-SHA256 under a key derived from the
// root key) compared in constant time, before Part B is read.
//
// The integration calls {proxy}/c/{connection}/{path} with Part A as its
// bearer token; the proxy checks the grant, the method and the path,
// decrypts Part B, recombines the token for that one request, forwards it
// to the connection's fixed upstream (never another host: no redirects are
// followed, the URL is the connection's), streams the answer back and
// clears the buffers. Every request is audited in the tenant's chain and
// fed to the grant's anomaly baseline (see detector).
//
// Since Bulkhead never holds the whole token, it cannot mint a new Part A
// alone: adding a grant, rotating one and replacing the token take the
// token (checked against the connection's keyed fingerprint) or a current
// Part A of the connection, from which the token is recombined in memory.
package connect

import (
	"context"
	"embed"
	"fmt"
	"log/slog"
	"net/http/httputil"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clientip"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/lru"
	"github.com/bulkhead-dev/bulkhead/internal/ratelimit"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

//go:embed migrations
var migrations embed.FS

// Migrations is the connection service's schema.
func Migrations() storage.Component {
	c := storage.Embedded("connect", migrations)
	c.RowSecurity = map[string]storage.Rows{
		"connect_connections": storage.TenantRows("tenant_id"),
		"connect_grants":      storage.TenantRows("tenant_id"),
		"connect_networks":    storage.TenantRows("tenant_id"),
		"connect_alerts":      storage.TenantRows("tenant_id"),
	}
	return c
}

// notifyChannel carries connection and grant changes to other nodes
// (payload: the tenant id); they drop that tenant's cached grants.
const notifyChannel = "bulkhead_connect"

const (
	connectionPrefix = "con"
	alertPrefix      = "alr"
)

// Grant states.
const (
	GrantActive    = "active"
	GrantSuspended = "suspended"
)

// Placement types: how the token is presented upstream.
const (
	PlaceBearer = "bearer" // Authorization: Bearer <token>
	PlaceHeader = "header" // <name>: <token>
	PlaceQuery  = "query"  // ?<name>=<token>
)

// DefaultSensitivity is how many deviations from a grant's baseline make
// an alert, when a connection does not say.
const DefaultSensitivity = 4.0

// Placement says how the token is presented to the upstream.
type Placement struct {
	Type string `json:"type"`
	Name string `json:"name,omitempty"` // the header or query parameter (header, query)
}

// Alerts are a connection's anomaly settings.
type Alerts = api.ConnectionAlerts

// Connection is a tenant's connection to a third-party API. It never holds
// the token.
type Connection struct {
	ID             string    `json:"id"`
	TenantID       tenant.ID `json:"tenant_id"`
	Name           string    `json:"name"`
	UpstreamURL    string    `json:"upstream_url"`
	Placement      Placement `json:"placement"`
	AllowedMethods []string  `json:"allowed_methods"` // empty: every method
	AllowedPaths   []string  `json:"allowed_paths"`   // path prefixes under the base; empty: every path
	Alerts         Alerts    `json:"alerts"`
	TokenVersion   int       `json:"token_version"` // counts token replacements
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Grant is one integration's access to a connection.
type Grant = api.Grant

// IssuedGrant is a grant with its Part A, shown once.
type IssuedGrant = api.IssuedGrant

// Options configure a Service.
type Options struct {
	Clock    clock.Clock
	Logger   *slog.Logger
	ClientIP *clientip.Resolver // finds a proxied request's source (nil: the peer)
	// HashKey keys the hashes of Part As and tokens (derive it from the root key).
	HashKey [32]byte
	// AllowPrivateUpstreams lets connections and webhooks reach loopback,
	// private and link-local addresses (tests, on-premises upstreams).
	AllowPrivateUpstreams bool
	// UpstreamTimeout bounds the wait for an upstream's response headers
	// (default 30s); RequestTimeout a whole proxied exchange (default 5m).
	UpstreamTimeout time.Duration
	RequestTimeout  time.Duration
	// BodyTimeout bounds the time a client takes to send its request,
	// body included (default 30s): a body trickled in a byte at a time
	// cannot hold a connection, a goroutine and an upstream open.
	BodyTimeout time.Duration
	// Anomaly tunes the per-grant baselines.
	Anomaly AnomalyOptions
	// CacheSize bounds the grants kept in memory (default 10,000), each for
	// at most CacheTTL (default 1s: a tenant's suspension reaches the
	// proxy within it; grant changes reach it at once).
	CacheSize int
	CacheTTL  time.Duration
}

// Tenants tells the service a tenant's state.
type Tenants interface {
	Get(ctx context.Context, id tenant.ID) (tenants.Tenant, error)
}

// Service is the connection service and its proxy.
type Service struct {
	db       *storage.DB
	audit    *audit.Log
	kms      *kms.Service
	tenants  Tenants
	clock    clock.Clock
	log      *slog.Logger
	opts     Options
	grants   *lru.Cache[grantKey, *grantState]
	inval    *inval.Channel // audited writes that drop grants cached here and on other nodes
	loads    singleflight.Group
	detector *detector
	upstream *upstreams
	forward  *httputil.ReverseProxy
	refusals *ratelimit.Limiter // audit of unauthenticated proxy requests, per source IP
	webhooks chan webhook       // alerts raised, for Run to deliver to their connections' webhooks
}

// New returns the service. Call Run: it delivers alerts' webhooks, and on
// PostgreSQL, until this node
// listens for other nodes' changes it caches no grant.
func New(db *storage.DB, log *audit.Log, keys *kms.Service, tenants Tenants, opts Options) *Service {
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = 30 * time.Second
	}
	if opts.UpstreamTimeout <= 0 {
		opts.UpstreamTimeout = 30 * time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 5 * time.Minute
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 10000
	}
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = time.Second
	}
	s := &Service{db: db, audit: log, kms: keys, tenants: tenants, clock: opts.Clock, log: opts.Logger, opts: opts,
		detector: newDetector(opts.Anomaly), refusals: ratelimit.New(1.0/6, 20, 10000), webhooks: make(chan webhook, webhookQueue)}
	s.grants = lru.New[grantKey, *grantState](lru.Options[*grantState]{Size: opts.CacheSize, MaxAge: opts.CacheTTL,
		Now: opts.Clock.Now, Off: db.Dialect() == storage.Postgres})
	s.inval = inval.New(db, notifyChannel, log, opts.Logger, inval.Hooks{
		Evict:   func(_ context.Context, tid string) { s.forget(tenant.ID(tid)) },
		Purge:   func(context.Context) { s.grants.Purge() },
		Enable:  func(context.Context) { s.grants.Enable() },
		Disable: func(context.Context) { s.grants.Disable() },
	})
	s.upstream = newUpstreams(opts)
	s.forward = s.newForwarder()
	return s
}

// Run listens for other nodes' changes and delivers alerts' webhooks until
// ctx ends. It returns once the deliveries under way have stopped too:
// they end with ctx (delivery is best effort).
func (s *Service) Run(ctx context.Context) error {
	var deliveries sync.WaitGroup
	defer deliveries.Wait()
	deliveries.Go(func() { s.deliverWebhooks(ctx) })
	return s.inval.Run(ctx)
}

// CachedGrants is the number of grants this node holds in memory.
func (s *Service) CachedGrants() int { return s.grants.Len() }

// Close drops idle upstream connections.
func (s *Service) Close() { s.upstream.close() }

// forget drops tenant tid's cached grants.
func (s *Service) forget(tid tenant.ID) {
	s.grants.EvictFunc(func(k grantKey) bool { return k.tenant == tid })
}

func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

func notFound(id string) error {
	return errs.E(errs.NotFound, "connection_not_found", "connection %q not found", errs.Clip(id, 80))
}

func connectionExists(name string) error {
	return &errs.Error{Kind: errs.Conflict, Code: "connection_exists", Field: "name",
		Detail: fmt.Sprintf("the tenant has a connection named %q", name)}
}

func grantNotFound(id string) error {
	return errs.E(errs.NotFound, "grant_not_found", "grant %q not found", errs.Clip(id, 80))
}

// Activity returns connection connID's proxied requests, newest first.
func (s *Service) Activity(ctx context.Context, tid tenant.ID, connID string, limit int, cursor string) (audit.Page, error) {
	if _, err := s.readConn(ctx, tid, connID); err != nil {
		return audit.Page{}, err
	}
	return s.audit.ListTenant(ctx, storage.TenantScope(tid), audit.Filter{Action: requestAction, Target: connID, Limit: limit, Cursor: cursor})
}

// requestAction is the audit action of a proxied request.
const requestAction = "connection.request"

// OffboardingStep removes the tenant's connections, grants (so their Part
// Bs), networks and alerts.
func (s *Service) OffboardingStep() tenants.Step {
	return tenants.Step{Name: "connections", Run: func(ctx context.Context, tx *storage.Tx, _ tenants.Tenant) error {
		for _, t := range []string{"connect_grants", "connect_networks", "connect_alerts", "connect_connections"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+t+` WHERE tenant_id = ?`, tx.TenantID()); err != nil {
				return fmt.Errorf("connect: offboarding: %w", err)
			}
		}
		return s.inval.Changed(ctx, tx, tx.TenantID())
	}}
}
