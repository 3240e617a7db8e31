package tenantdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config configures a DB.
type Config struct {
	// Clusters maps the name of each cluster registered with Bulkhead (a
	// placement's Cluster) to the application's serving DSN on it: its
	// role (which owns nothing, NOINHERIT, neither superuser nor
	// BYPASSRLS) and the cluster's shared database. pgxpool's settings in
	// the DSN (pool_max_conns, …) configure the shared database's pool.
	Clusters map[string]string
	// Resolver answers placements; typically ClientResolver.
	Resolver Resolver
	// PlacementTTL bounds how long a placement is used from the cache
	// without asking the resolver again: the fallback in case a change's
	// notification is missed (default 1 minute).
	PlacementTTL time.Duration
	// MaxPlacements bounds the placements cached (default 10,000).
	MaxPlacements int
	// MaxSiloPools bounds the silo databases' pools kept open (default 64);
	// SiloIdle closes a silo pool unused for that long (default 5
	// minutes; Run sweeps); SiloMaxConns bounds each one's connections
	// (default 4).
	MaxSiloPools int
	SiloIdle     time.Duration
	SiloMaxConns int32
	// Logger reports lost notification connections and connections
	// closed for carrying another transaction's settings (default: none).
	Logger *slog.Logger
}

// DB hands out transactions scoped to the tenant of a context. It is safe
// for concurrent use.
type DB struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	clusters map[string]*cluster
	silos    *silos

	mu         sync.Mutex
	placements *lru[string, cachedPlacement]
	gen        uint64 // bumped by every invalidation
	deaf       int    // Run's listeners that do not listen: no caching while > 0
	running    bool
	closed     bool
}

// cluster is one application cluster: its shared database's pool and the
// serving configuration its silo pools copy.
type cluster struct {
	name     string
	database string
	config   *pgxpool.Config
	pool     *pgxpool.Pool
}

// Open returns a DB for cfg. It does not connect: pools connect on first
// use, and a serving role found unsafe then (ErrUnsafeRole) fails every
// transaction on that cluster.
func Open(cfg Config) (*DB, error) {
	if cfg.Resolver == nil {
		return nil, errors.New("tenantdb: Config.Resolver is required")
	}
	if len(cfg.Clusters) == 0 {
		return nil, errors.New("tenantdb: Config.Clusters is empty")
	}
	setDefault(&cfg.PlacementTTL, time.Minute)
	setDefault(&cfg.MaxPlacements, 10000)
	setDefault(&cfg.MaxSiloPools, 64)
	setDefault(&cfg.SiloIdle, 5*time.Minute)
	setDefault(&cfg.SiloMaxConns, 4)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	db := &DB{cfg: cfg, log: cfg.Logger, now: time.Now, clusters: map[string]*cluster{},
		placements: newLRU[string, cachedPlacement](cfg.MaxPlacements)}
	db.silos = &silos{max: cfg.MaxSiloPools, idle: cfg.SiloIdle, now: func() time.Time { return db.now() },
		open: db.openSilo, pools: newLRU[siloKey, *siloPool](cfg.MaxSiloPools)}
	for name, dsn := range cfg.Clusters {
		pc, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			db.Close()
			// The parse error quotes the DSN (its password redacted);
			// say only which cluster's it is, and keep what went wrong.
			var pe *pgconn.ParseConfigError
			if errors.As(err, &pe) && pe.Unwrap() != nil {
				return nil, fmt.Errorf("tenantdb: cluster %q: the serving DSN does not parse: %w", name, pe.Unwrap())
			}
			return nil, fmt.Errorf("tenantdb: cluster %q: the serving DSN does not parse", name)
		}
		pc.AfterConnect = checkServingRole
		pc.AfterRelease = db.afterRelease
		pool, err := pgxpool.NewWithConfig(context.Background(), pc)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("tenantdb: cluster %q: %w", name, err)
		}
		db.clusters[name] = &cluster{name: name, database: pc.ConnConfig.Database, config: pc, pool: pool}
	}
	return db, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// checkServingRole refuses a connection whose role row-level security or
// a tenant's role would not bind (see ErrUnsafeRole). It runs once per
// new connection.
func checkServingRole(ctx context.Context, c *pgx.Conn) error {
	var unsafe bool
	err := c.QueryRow(ctx, `SELECT rolsuper OR rolbypassrls OR rolinherit FROM pg_roles WHERE rolname = current_user`).Scan(&unsafe)
	if err != nil {
		return fmt.Errorf("tenantdb: check the serving role: %w", err)
	}
	if unsafe {
		return fmt.Errorf("%w: %q", ErrUnsafeRole, c.Config().User)
	}
	if !clean(ctx, c) {
		return errors.New("tenantdb: a new connection comes with a role or app.tenant_id set (does the DSN set them?)")
	}
	return nil
}

// afterRelease keeps a given-back connection in its pool only if its last
// transaction left nothing on the session (cleanSQL); pgxpool runs it
// after Release has returned.
func (db *DB) afterRelease(c *pgx.Conn) bool {
	if clean(context.Background(), c) {
		return true
	}
	db.log.Warn("tenantdb: closed a connection left with session-level tenant settings, temporary tables, held cursors or LISTEN")
	return false
}

// openSilo opens the pool of a silo database: the cluster's serving
// configuration on another database.
func (db *DB) openSilo(k siloKey) (*pgxpool.Pool, error) {
	pc := db.clusters[k.cluster].config.Copy()
	pc.ConnConfig.Database = k.database
	pc.MaxConns = db.cfg.SiloMaxConns
	pc.MinConns, pc.MinIdleConns = 0, 0
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("tenantdb: open silo database %q: %w", k.database, err)
	}
	return pool, nil
}

// Close closes every pool. It waits for the transactions in progress on
// the shared databases' pools; a silo pool in use is closed when its last
// transaction ends. Stop Run (end its context) before: Close does not.
func (db *DB) Close() {
	db.mu.Lock()
	db.closed = true
	db.placements.clear()
	db.mu.Unlock()
	db.silos.close()
	for _, c := range db.clusters {
		c.pool.Close()
	}
}
