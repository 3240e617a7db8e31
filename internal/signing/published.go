package signing

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/ratelimit"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// notifyChannel carries the tenant id ("" for the platform) of an issuer
// whose keys changed on another node.
const notifyChannel = "bulkhead_signing"

// Published holds every issuer's published public keys in memory, so that
// the node checks its own tokens without fetching its own JWKS over HTTP
// (where a flood of tokens naming made-up issuers once spent the fetch
// budget and locked genuine tenants out). It is loaded at start, changed
// at once by this node's rotations and deletions, by other nodes'
// through LISTEN/NOTIFY, and reloaded every second while no notification
// connection listens.
//
// It implements sdk/auth.KeySource.
type Published struct {
	db    *storage.DB
	now   func() time.Time
	log   *slog.Logger
	ver   atomic.Uint64
	stale atomic.Bool // not listening: reload on the next tick
	// misses bounds the database reads for keys a token names that memory
	// lacks (another node's brand-new key, before its notification): a
	// flood of made-up issuers gets a few reads a second, all told.
	misses *ratelimit.Limiter
	inval  *inval.Channel // other nodes' key changes

	mu   sync.RWMutex
	sets map[tenant.ID][]publishedKey
}

type publishedKey struct {
	jwk   jose.JSONWebKey
	until int64 // published until (Unix µs), 0 while active
}

func newPublished(db *storage.DB, now func() time.Time, log *slog.Logger) *Published {
	p := &Published{db: db, now: now, log: log, sets: map[tenant.ID][]publishedKey{}, misses: ratelimit.New(20, 20, 1)}
	p.stale.Store(db.Dialect() == storage.Postgres) // until a connection listens
	p.inval = inval.New(db, notifyChannel, nil, log, inval.Hooks{
		Evict: func(ctx context.Context, t string) {
			if err := p.reload(ctx, tenant.ID(t)); err != nil {
				p.stale.Store(true)
			}
		},
		Purge: func(context.Context) { p.stale.Store(true) }, // the next tick reloads everything
		Enable: func(ctx context.Context) {
			if err := p.loadAllIssuers(ctx); err != nil {
				p.stale.Store(true)
				return
			}
			p.stale.Store(false)
		},
		Disable: func(context.Context) { p.stale.Store(true) },
	})
	return p
}

// Version implements auth.KeySource.
func (p *Published) Version() uint64 { return p.ver.Load() }

// IssuerKeys implements auth.KeySource: the keys of tenant's issuer (""
// for the platform's) still published now. When kid is not among them,
// and the database is shared with other nodes, the issuer is read again
// (within the misses budget).
func (p *Published) IssuerKeys(t string, kid string) ([]jose.JSONWebKey, bool) {
	keys, ok := p.current(tenant.ID(t))
	if ok && (kid == "" || hasKID(keys, kid)) || p.db.Dialect() != storage.Postgres {
		return keys, ok
	}
	if allowed, _ := p.misses.Allow("", p.now()); !allowed {
		return keys, ok
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.reload(ctx, tenant.ID(t)); err != nil {
		p.log.Warn("signing: reading an issuer's keys", "tenant_id", t, "err", err)
		return keys, ok
	}
	return p.current(tenant.ID(t))
}

func hasKID(keys []jose.JSONWebKey, kid string) bool {
	for _, k := range keys {
		if k.KeyID == kid {
			return true
		}
	}
	return false
}

func (p *Published) current(t tenant.ID) ([]jose.JSONWebKey, bool) {
	now := p.now().UnixMicro()
	p.mu.RLock()
	set, ok := p.sets[t]
	p.mu.RUnlock()
	if !ok {
		return nil, false
	}
	out := make([]jose.JSONWebKey, 0, len(set))
	for _, k := range set {
		if k.until == 0 || k.until > now {
			out = append(out, k.jwk)
		}
	}
	return out, len(out) > 0
}

// loadAllIssuers reads every issuer's published keys; the query crosses tenants.
func (p *Published) loadAllIssuers(ctx context.Context) error {
	sets, err := p.read(ctx, storage.PlatformScope(), `SELECT tenant_id, public_jwk, published_until FROM signing_keys
		WHERE retired_at = 0 OR published_until > ?`, p.now().UnixMicro())
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.sets = sets
	p.mu.Unlock()
	p.ver.Add(1)
	return nil
}

// reload reads one issuer's published keys.
func (p *Published) reload(ctx context.Context, t tenant.ID) error {
	scope := storage.PlatformScope()
	if t != "" {
		scope = storage.TenantScope(t)
	}
	sets, err := p.read(ctx, scope, `SELECT tenant_id, public_jwk, published_until FROM signing_keys
		WHERE tenant_id = ? AND (retired_at = 0 OR published_until > ?)`, string(t), p.now().UnixMicro())
	if err != nil {
		return err
	}
	p.mu.Lock()
	if set, ok := sets[t]; ok {
		p.sets[t] = set
	} else {
		delete(p.sets, t)
	}
	p.mu.Unlock()
	p.ver.Add(1)
	return nil
}

func (p *Published) read(ctx context.Context, scope storage.Scope, query string, args ...any) (map[tenant.ID][]publishedKey, error) {
	sets := map[tenant.ID][]publishedKey{}
	err := p.db.View(ctx, scope, func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var t, raw string
			var until int64
			if err := rows.Scan(&t, &raw, &until); err != nil {
				return err
			}
			var k jose.JSONWebKey
			if err := k.UnmarshalJSON([]byte(raw)); err != nil || !k.IsPublic() {
				return fmt.Errorf("stored public key %s is unreadable or not public", k.KeyID)
			}
			sets[tenant.ID(t)] = append(sets[tenant.ID(t)], publishedKey{jwk: k, until: until})
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("signing: published keys: %w", err)
	}
	return sets, nil
}

// changed is called in a transaction that changed issuer t's keys: other
// nodes hear of it at commit, this one reads them again after.
func (p *Published) changed(ctx context.Context, tx *storage.Tx, t tenant.ID) error {
	tx.AfterCommit(func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := p.reload(rctx, t); err != nil {
			p.stale.Store(true) // the next tick reloads everything
			p.log.Warn("signing: reading changed keys", "tenant_id", string(t), "err", err)
		}
	})
	return tx.Notify(ctx, notifyChannel, string(t))
}

// run keeps the keys current until ctx ends: notifications from other
// nodes, and a full reload every second while not listening. It returns
// once its listener has stopped too.
func (p *Published) run(ctx context.Context) error {
	return p.inval.RunEvery(ctx, time.Second, func(ctx context.Context) {
		// On PostgreSQL only a listening connection clears stale (up);
		// on SQLite a successful reload does.
		if p.stale.Load() {
			if err := p.loadAllIssuers(ctx); err == nil && p.db.Dialect() != storage.Postgres {
				p.stale.Store(false)
			}
		}
	})
}
