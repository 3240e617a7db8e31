package gateway

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

//go:embed migrations
var migrations embed.FS

// Migrations returns the gateway's migrations.
func Migrations() storage.Component {
	c := storage.Embedded("gateway", migrations)
	c.RowSecurity = map[string]storage.Rows{"gateway_routes": storage.PlatformRows()}
	return c
}

// notifyChannel carries route changes between nodes.
const notifyChannel = "bulkhead_gateway"

// Route sources.
const (
	SourceFile = "file" // the routes file: read-only through the API
	SourceAPI  = "api"
)

// StoredRoute is a route with where it comes from.
type StoredRoute struct {
	Route
	Source string
}

// MaxRoutes bounds the routes set through the API.
const MaxRoutes = 1000

var validRouteID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Store keeps the routes of the API in the database and the gateway's
// table current on every node: the routes file's and the stored ones.
// A change made on one node reaches the others by notification; a node
// that lost its listening connection keeps serving the routes it has and
// reloads them all once it listens again (routing on stale routes for a
// moment is better than routing on none).
type Store struct {
	db    *storage.DB
	gw    *Gateway
	file  []Route
	clock clock.Clock
	log   *slog.Logger
	inval *inval.Channel

	mu     sync.Mutex // serialises reloads
	routes []StoredRoute
}

// NewStore returns the route store of gw. file are the routes file's
// routes, which must have been validated.
func NewStore(db *storage.DB, log *audit.Log, gw *Gateway, file []Route, clk clock.Clock, logger *slog.Logger) *Store {
	if clk == nil {
		clk = clock.System{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{db: db, gw: gw, file: file, clock: clk, log: logger}
	reload := func(ctx context.Context) {
		if err := s.Load(ctx); err != nil && ctx.Err() == nil {
			logger.ErrorContext(ctx, "gateway: reload routes", "err", err)
		}
	}
	s.inval = inval.New(db, notifyChannel, log, logger, inval.Hooks{
		Evict: func(ctx context.Context, _ string) { reload(ctx) }, Purge: reload, Enable: reload,
		Disable: func(context.Context) {},
	})
	return s
}

// Run hears other nodes' route changes until ctx ends.
func (s *Store) Run(ctx context.Context) error { return s.inval.Run(ctx) }

// Load reads the stored routes and gives the gateway its table.
func (s *Store) Load(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var stored []Route
	err := s.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT route FROM gateway_routes ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var b string
			if err := rows.Scan(&b); err != nil {
				return err
			}
			var r Route
			if err := json.Unmarshal([]byte(b), &r); err != nil {
				return fmt.Errorf("decode route: %w", err)
			}
			stored = append(stored, r)
		}
		return rows.Err()
	})
	if err != nil {
		return fmt.Errorf("gateway: load routes: %w", err)
	}
	all := make([]StoredRoute, 0, len(s.file)+len(stored))
	table := make([]Route, 0, len(s.file)+len(stored))
	for _, r := range s.file {
		all = append(all, StoredRoute{r, SourceFile})
		table = append(table, r)
	}
	for _, r := range stored {
		if slices.ContainsFunc(s.file, func(f Route) bool { return f.ID == r.ID }) {
			continue // the file's route wins
		}
		all = append(all, StoredRoute{r, SourceAPI})
		table = append(table, r)
	}
	slices.SortFunc(all, func(a, b StoredRoute) int { return strings.Compare(a.ID, b.ID) })
	s.routes = all
	s.gw.SetRoutes(NewTable(table))
	return nil
}

// List returns every route, the file's and the API's, by id.
func (s *Store) List() []StoredRoute {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.routes)
}

// Get returns one route.
func (s *Store) Get(id string) (StoredRoute, error) {
	for _, r := range s.List() {
		if r.ID == id {
			return r, nil
		}
	}
	return StoredRoute{}, errs.E(errs.NotFound, "route_not_found", "no route %q", id)
}

// Put creates or replaces the route r.ID. It reports whether it created it.
func (s *Store) Put(ctx context.Context, r Route, actor tenant.Actor) (created bool, err error) {
	if !validRouteID.MatchString(r.ID) {
		return false, errs.Field("id", "invalid_route", "a route id is 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit")
	}
	if slices.ContainsFunc(s.file, func(f Route) bool { return f.ID == r.ID }) {
		return false, errs.E(errs.Conflict, "route_in_file", "route %q comes from the routes file; change it there", r.ID)
	}
	if err := s.gw.ValidateRoute(r); err != nil {
		return false, err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	now := s.clock.Now().UnixMicro()
	err = s.inval.Write(ctx, "", actor, func(tx *storage.Tx) (inval.Change, error) {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM gateway_routes WHERE id = ?`, r.ID).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			created = true
			var n int
			if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM gateway_routes`).Scan(&n); err != nil {
				return inval.Change{}, fmt.Errorf("gateway: count routes: %w", err)
			}
			if n >= MaxRoutes {
				return inval.Change{}, errs.E(errs.Conflict, "quota_exceeded", "the gateway has at most %d routes; delete some first", MaxRoutes)
			}
			_, err = tx.Exec(ctx, `INSERT INTO gateway_routes (id, host, path_prefix, route, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
				r.ID, r.Host, r.PathPrefix, string(b), now, now)
		case err == nil:
			_, err = tx.Exec(ctx, `UPDATE gateway_routes SET host = ?, path_prefix = ?, route = ?, updated_at = ? WHERE id = ?`,
				r.Host, r.PathPrefix, string(b), now, r.ID)
		}
		if err != nil {
			return inval.Change{}, fmt.Errorf("gateway: store route: %w", err)
		}
		return inval.Change{Action: "gateway.route_put", Target: r.ID, Detail: map[string]string{"host": r.Host, "path_prefix": r.PathPrefix}}, nil
	})
	return created, err
}

// Delete removes the route id.
func (s *Store) Delete(ctx context.Context, id string, actor tenant.Actor) error {
	if slices.ContainsFunc(s.file, func(f Route) bool { return f.ID == id }) {
		return errs.E(errs.Conflict, "route_in_file", "route %q comes from the routes file; change it there", id)
	}
	return s.inval.Write(ctx, "", actor, func(tx *storage.Tx) (inval.Change, error) {
		res, err := tx.Exec(ctx, `DELETE FROM gateway_routes WHERE id = ?`, id)
		if err != nil {
			return inval.Change{}, fmt.Errorf("gateway: delete route: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return inval.Change{}, errs.E(errs.NotFound, "route_not_found", "no route %q", id)
		}
		return inval.Change{Action: "gateway.route_deleted", Target: id}, nil
	})
}
