package migrate

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Databases hands out connections to a cluster's databases as its admin
// role (the role that owns the shared database and made the schemas,
// silo databases and roles). The placements service implements it with the
// pools it keeps; AdminConns is one made from the admin DSN.
//
// A connection comes back through release once Run is done with it. Run
// gives it back outside any transaction and without the advisory lock
// (or closed, if it could not make sure of that), so that a pool may hand
// it to anyone; it may have run the application's session-level SETs
// other than the role's and the search_path's.
//
// Run holds one connection to the shared database for its whole length
// (the lock) and up to Options.Workers more at a time, one per worker: a
// pool for the shared database needs room for Workers+1.
type Databases interface {
	Conn(ctx context.Context, database string) (conn *pgx.Conn, release func(), err error)
}

// AdminConns is Databases over one admin DSN: a pool for the shared
// database, which every bridge schema is in and which holds the lock, and
// a connection of its own, closed after use, for each silo database (there
// may be thousands; a pool for each would hold their connections open).
type AdminConns struct {
	config *pgxpool.Config
	shared string

	mu    sync.Mutex
	pool  *pgxpool.Pool
	close bool
}

// NewAdminConns returns AdminConns for the cluster whose admin DSN is dsn
// (whose database is the shared one), with room for workers connections
// to the shared database beside the one that holds Run's lock. It connects
// lazily. The DSN is not kept in any error it returns.
func NewAdminConns(dsn string, workers int) (*AdminConns, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors can quote the DSN, password included.
		return nil, errors.New("migrate: the cluster's admin DSN does not parse")
	}
	if workers <= 0 {
		workers = DefaultWorkers
	}
	cfg.MaxConns = int32(workers) + 1
	return &AdminConns{config: cfg, shared: cfg.ConnConfig.Database}, nil
}

// SharedDatabase is the database of the DSN.
func (a *AdminConns) SharedDatabase() string { return a.shared }

// Conn returns a connection to database.
func (a *AdminConns) Conn(ctx context.Context, database string) (*pgx.Conn, func(), error) {
	if database == a.shared {
		p, err := a.sharedPool()
		if err != nil {
			return nil, nil, err
		}
		c, err := p.Acquire(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("migrate: connect to %s: %w", database, err)
		}
		return c.Conn(), c.Release, nil
	}
	cfg := a.config.ConnConfig.Copy()
	cfg.Database = database
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("migrate: connect to %s: %w", database, err)
	}
	return c, func() { c.Close(context.Background()) }, nil
}

func (a *AdminConns) sharedPool() (*pgxpool.Pool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.close {
		return nil, errors.New("migrate: connections closed")
	}
	if a.pool == nil {
		p, err := pgxpool.NewWithConfig(context.Background(), a.config)
		if err != nil {
			return nil, fmt.Errorf("migrate: connect to %s: %w", a.shared, err)
		}
		a.pool = p
	}
	return a.pool, nil
}

// Close closes the shared database's pool (after every connection from it
// is released).
func (a *AdminConns) Close() {
	a.mu.Lock()
	p := a.pool
	a.pool, a.close = nil, true
	a.mu.Unlock()
	if p != nil {
		p.Close()
	}
}
