package identity

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/storage"
)

// scopeUseResolution is how stale a scope's recorded last use may grow:
// NoteScopeUse writes a client's scope at most once per this on each node.
const scopeUseResolution = 24 * time.Hour

// maxScopeUseClients bounds the clients NoteScopeUse remembers; past it,
// it starts over (a client forgotten costs one more write).
const maxScopeUseClients = 10000

// NoteScopeUse records that client id was just granted scopes in a token,
// for the posture check client_scope_unused. It writes a scope at most
// once a day per client on each node (when each was last written is kept
// in memory), so issuing a token costs no write of its own; only the
// scopes the client is registered with are recorded, and only a tenant's
// clients.
func (d *Directory) NoteScopeUse(ctx context.Context, id string, scopes []string) error {
	now := d.clock.Now()
	d.scopeUseMu.Lock()
	seen := d.scopeUse[id]
	var fresh []string
	for _, s := range scopes {
		if at, ok := seen[s]; (!ok || now.Sub(at) >= scopeUseResolution) && !slices.Contains(fresh, s) {
			fresh = append(fresh, s)
		}
	}
	var prev map[string]time.Time // what seen held of fresh
	if len(fresh) > 0 {
		prev = map[string]time.Time{}
		if seen == nil {
			if len(d.scopeUse) >= maxScopeUseClients {
				clear(d.scopeUse)
			}
			seen = map[string]time.Time{}
			d.scopeUse[id] = seen
		}
		for _, s := range fresh {
			if at, ok := seen[s]; ok {
				prev[s] = at
			}
			seen[s] = now
		}
	}
	d.scopeUseMu.Unlock()
	if len(fresh) == 0 {
		return nil
	}
	err := d.recordScopeUse(ctx, id, slices.Clone(fresh), now)
	if err != nil {
		// Put back what was known: the next token tries again.
		d.scopeUseMu.Lock()
		for _, s := range fresh {
			if at, ok := prev[s]; ok {
				seen[s] = at
			} else {
				delete(seen, s)
			}
		}
		d.scopeUseMu.Unlock()
	}
	return err
}

func (d *Directory) recordScopeUse(ctx context.Context, id string, scopes []string, now time.Time) error {
	r, err := d.clientByID(ctx, id)
	if err != nil || r.c.TenantID == "" {
		return err
	}
	scopes = slices.DeleteFunc(scopes, func(s string) bool { return !slices.Contains(r.c.Scopes, s) })
	if len(scopes) == 0 {
		return nil
	}
	err = d.db.Update(ctx, storage.TenantScope(r.c.TenantID), func(tx *storage.Tx) error {
		for _, s := range scopes {
			if _, err := tx.Exec(ctx, `INSERT INTO oauth_client_scope_use (tenant_id, client_id, scope, used_at) VALUES (?, ?, ?, ?)
				ON CONFLICT (tenant_id, client_id, scope) DO UPDATE SET used_at = excluded.used_at
				WHERE oauth_client_scope_use.used_at < excluded.used_at`, tx.TenantID(), id, s, now.UnixMicro()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("identity: record the use of client %s's scopes: %w", id, err)
	}
	return nil
}
