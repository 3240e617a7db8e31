// Package data places each tenant's data in the SaaS application's own
// PostgreSQL: the operator registers the application's clusters, and the
// onboarding of a tenant gives it a placement on the default one, by the
// isolation of its tier:
//
//   - pool: the cluster's shared database (schema public); the
//     application's tables carry tenant_id, with row-level security forced
//     and a policy bulkhead_tenant comparing it to the setting
//     app.tenant_id. Nothing is made for the tenant.
//   - bridge: a schema <name> in the shared database and a role <name>
//     (LOGIN, a random password sealed and never returned) that owns
//     nothing, with USAGE on its schema and DML on its tables.
//   - silo: a database <name> of its own, with the same role scheme, and
//     CONNECT revoked from PUBLIC.
//
// <name> is Name(prefix, tenant id). The application's serving role is a
// member of every bridge and silo role, and NOINHERIT, so it reaches a
// tenant's schema or database only by SET ROLE in a transaction scoped to
// that tenant (sdk/tenantdb does it): a connection that forgot to scope
// itself reads nothing.
//
// Offboarding revokes the serving role's membership at once and retains
// the data for the retention period; Run's sweeper then drops it. Every
// placement change is NOTIFYd on the cluster's shared database (channel
// bulkhead_placement, payload the tenant id) for the SDKs' caches, and
// across Bulkhead's own nodes through inval.
//
// The application's migrations (internal/data/migrate) are registered
// per cluster by the operator and converged by Run on every node, one node
// at a time; a new bridge schema or silo database gets them before its
// placement is ready.
//
// A cluster's DSNs are sealed under the root key and never returned,
// logged or audited: errors about a cluster name it and which DSN, never
// the DSN.
package data

import (
	"context"
	"embed"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/lru"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

//go:embed migrations
var migrations embed.FS

// Migrations is the data service's schema.
func Migrations() storage.Component {
	c := storage.Embedded("data", migrations)
	c.RowSecurity = map[string]storage.Rows{
		"data_clusters":   storage.PlatformRows(),
		"data_placements": storage.TenantRows("tenant_id"),
		"data_moves":      storage.TenantRows("tenant_id"),
		// The application's migrations, per cluster: the operator's.
		"data_app_migrations": storage.PlatformRows(),
	}
	// A registered migration is written once: never changed, deleted
	// only with its cluster.
	c.Privileges = map[string]string{"data_app_migrations": "SELECT, INSERT, DELETE"}
	return c
}

// notifyChannel carries placement and cluster changes to Bulkhead's other
// nodes (payload: the tenant id, or inval.All); they drop what they cache.
const notifyChannel = "bulkhead_data"

// PlacementChannel is the channel NOTIFYd on a cluster's shared database,
// with the tenant id as payload, whenever a tenant's placement changes:
// the SDKs LISTENing there drop their cached placement.
const PlacementChannel = "bulkhead_placement"

// The placement models, as tenants.Isolation names them.
const (
	Pool   = "pool"
	Bridge = "bridge"
	Silo   = "silo"
)

// The states of a placement.
const (
	Provisioning = "provisioning"
	Ready        = "ready"
	Retained     = "retained" // offboarded: the application no longer reaches it; dropped after drop_after
	Dropping     = "dropping" // the sweeper is dropping it (a crash resumes the drop)
)

// DefaultRetention is how long an offboarded tenant's data is kept.
const DefaultRetention = 720 * time.Hour

// DefaultSweepInterval is how often Run looks for retained placements due
// to be dropped.
const DefaultSweepInterval = time.Minute

// Provisioned is called once a bridge or silo placement's schema or
// database and role exist and the cluster's registered migrations are
// applied there, with a connection as the cluster's admin role to the
// placement's database, before the placement is recorded ready. It must
// be idempotent: a step that fails after it runs again. It is not called
// for pool placements, which share the migrated database.
type Provisioned func(ctx context.Context, p api.DataPlacement, admin *pgx.Conn) error

// MoveHook is called at each checkpoint of a tier migration's data move,
// named by point: "provisioned" (the target made, not yet recorded),
// "copied" (the rows copied, the step not yet recorded) and "fenced" (the
// source fenced, verified and marked moved, the placement not yet
// switched). An error fails the step there. The crash tests block in it
// to kill the process at that point.
type MoveHook func(ctx context.Context, point string) error

// Options configure a Service.
type Options struct {
	Clock  clock.Clock
	Logger *slog.Logger
	// Retention is how long an offboarded tenant's data is kept before
	// it is dropped (default DefaultRetention).
	Retention time.Duration
	// SweepInterval is how often Run drops what retention released
	// (default DefaultSweepInterval).
	SweepInterval time.Duration
	// Provisioned, if set, runs after a placement is made (see Provisioned).
	Provisioned Provisioned
	// MoveHook, if set, is called at each checkpoint of a move (see MoveHook).
	MoveHook MoveHook
	// CacheSize bounds the placements kept in memory (default 10,000).
	CacheSize int
}

// Service is the registry of clusters and placements.
type Service struct {
	db     *storage.DB
	audit  *audit.Log
	sealer kms.Sealer
	clock  clock.Clock
	log    *slog.Logger
	opts   Options
	cache  *lru.Cache[tenant.ID, api.DataPlacement]
	inval  *inval.Channel
	wake   chan struct{} // asks Run's migration runner for a pass

	mu     sync.Mutex
	runs   map[string]runState // by cluster: this node's last migration run
	moving map[string]*moveRun // by workflow: the moves whose steps run on this node
}

// New returns the service. sealer (the root key) seals the clusters' DSNs
// and the tenants' role passwords. Call Run: it sweeps retained
// placements, and on PostgreSQL, until this node listens for other nodes'
// changes, it caches no placement.
func New(db *storage.DB, log *audit.Log, sealer kms.Sealer, opts Options) *Service {
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 10000
	}
	s := &Service{db: db, audit: log, sealer: sealer, clock: opts.Clock, log: opts.Logger, opts: opts,
		wake: make(chan struct{}, 1), runs: map[string]runState{}}
	s.cache = lru.New[tenant.ID, api.DataPlacement](lru.Options[api.DataPlacement]{Size: opts.CacheSize,
		Off: db.Dialect() == storage.Postgres})
	s.inval = inval.New(db, notifyChannel, log, opts.Logger, inval.Hooks{
		Evict: func(_ context.Context, key string) {
			if strings.HasPrefix(key, migrationsKey) {
				s.wakeRunner()
				return
			}
			s.cache.Evict(tenant.ID(key))
		},
		Purge: func(context.Context) { s.cache.Purge() },
		Enable: func(context.Context) {
			s.cache.Enable()
			s.wakeRunner() // a registration may have been missed while not listening
		},
		Disable: func(context.Context) { s.cache.Disable() },
	})
	return s
}

// Run listens for other nodes' changes, runs the application's
// registered migrations on every cluster whenever it is woken (a
// registration on any node, a placement made ready on this one, and every
// SweepInterval of the service's clock), and every SweepInterval drops the
// retained placements whose time has come, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.inval.Run(ctx) })
	wg.Go(func() { s.runMigrations(ctx) })
	t, tick := s.clock.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.ErrorContext(ctx, "sweep retained placements", "err", err)
			}
			s.wakeRunner()
		}
	}
}

func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }
