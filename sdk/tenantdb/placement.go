package tenantdb

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// Placement models and the status of a usable placement, as Bulkhead
// answers them (api.DataPlacement).
const (
	ModelPool   = "pool"
	ModelBridge = "bridge"
	ModelSilo   = "silo"
	StatusReady = "ready"
)

// A Resolver answers where a tenant's data lives. ClientResolver asks
// Bulkhead; a test or a deployment with a fixed layout can answer itself.
type Resolver interface {
	Placement(ctx context.Context, tenantID string) (api.DataPlacement, error)
}

// ClientResolver is the Resolver that asks Bulkhead's API,
// GET /v1/tenants/{tenant}/placement, with the application's service
// credential (Client.Token).
type ClientResolver struct {
	Client *client.Client
}

// Placement implements Resolver.
func (r ClientResolver) Placement(ctx context.Context, tenantID string) (api.DataPlacement, error) {
	return r.Client.GetPlacement(ctx, tenantID)
}

// cachedPlacement is a placement and when it was read.
type cachedPlacement struct {
	p  api.DataPlacement
	at time.Time
}

// placement returns tenant tid's placement, from the cache if it holds a
// fresh one, else from the resolver. It never returns a placement that is
// not ready or not tid's.
func (db *DB) placement(ctx context.Context, tid string) (api.DataPlacement, error) {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return api.DataPlacement{}, ErrClosed
	}
	if c, ok := db.placements.get(tid); ok {
		if db.now().Sub(c.at) < db.cfg.PlacementTTL {
			db.mu.Unlock()
			return c.p, nil
		}
		db.placements.remove(tid)
	}
	gen := db.gen
	db.mu.Unlock()

	p, err := db.cfg.Resolver.Placement(ctx, tid)
	if err != nil {
		return api.DataPlacement{}, fmt.Errorf("tenantdb: placement of tenant %q: %w", tid, err)
	}
	if err := db.checkPlacement(tid, p); err != nil {
		return api.DataPlacement{}, err
	}
	db.mu.Lock()
	// An invalidation since gen was read may be about this very answer:
	// use it for this transaction only.
	if gen == db.gen && db.deaf == 0 && !db.closed {
		db.placements.put(tid, cachedPlacement{p: p, at: db.now()})
	}
	db.mu.Unlock()
	return p, nil
}

// checkPlacement refuses a placement that is not tenant tid's, not ready,
// or names what this DB cannot reach.
func (db *DB) checkPlacement(tid string, p api.DataPlacement) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w for tenant %q: %s", ErrBadPlacement, tid, fmt.Sprintf(format, a...))
	}
	if p.TenantID != tid {
		return bad("the resolver answered tenant %q's placement", p.TenantID)
	}
	if p.Status != StatusReady {
		return fmt.Errorf("%w: tenant %q's placement is %q", ErrPlacementNotReady, tid, p.Status)
	}
	c, ok := db.clusters[p.Cluster]
	if !ok {
		return bad("cluster %q is not configured", p.Cluster)
	}
	switch p.Model {
	case ModelPool, ModelBridge:
		if p.Database != "" && p.Database != c.database {
			return bad("database %q is not cluster %q's shared database", p.Database, p.Cluster)
		}
	case ModelSilo:
		if !validIdent(p.Database) {
			return bad("database %q", p.Database)
		}
	default:
		return bad("model %q", p.Model)
	}
	if p.Model != ModelPool && !validRole(p.Role) {
		return bad("role %q", p.Role)
	}
	if (p.Model == ModelBridge || p.Schema != "") && !validIdent(p.Schema) {
		return bad("schema %q", p.Schema)
	}
	return nil
}

// validIdent reports whether s can name a tenant's schema or database: a
// PostgreSQL identifier (1 to 63 bytes, no NUL) outside the pg_ names the
// system reserves (pg_catalog, pg_temp).
func validIdent(s string) bool {
	return s != "" && len(s) <= 63 && !strings.ContainsRune(s, 0) && !strings.HasPrefix(s, "pg_")
}

// validRole reports whether s can name a tenant's role: an identifier
// that set_config('role', …) reads as that role and no other ("none" is
// the session's own role, and the others are not roles of their own).
func validRole(s string) bool {
	switch strings.ToLower(s) {
	case "none", "public", "current_user", "current_role", "session_user":
		return false
	}
	return validIdent(s)
}

// Invalidate drops what is cached of tenant tid's placement, so that its
// next transaction asks the resolver. Run calls it for every notification
// on bulkhead_placement; call it yourself to act on a change you learned
// of otherwise.
//
// A silo placement's pool is closed too (once its transactions end): the
// change may be a move, after which the database the tenant left is
// dropped, which waits for this DB's connections to it to close. If the
// silo is still the placement, the next transaction opens the pool again.
func (db *DB) Invalidate(tid string) {
	db.mu.Lock()
	db.gen++
	c, ok := db.placements.get(tid)
	db.placements.remove(tid)
	db.mu.Unlock()
	if ok && c.p.Model == ModelSilo {
		db.silos.evict(siloKey{cluster: c.p.Cluster, database: c.p.Database})
	}
}

// purgeLocked drops every cached placement; db.mu is held.
func (db *DB) purgeLocked() {
	db.gen++
	db.placements.clear()
}
