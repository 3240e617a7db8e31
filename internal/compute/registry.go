package compute

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

//go:embed migrations
var migrations embed.FS

// Migrations is the function registry's schema.
func Migrations() storage.Component {
	c := storage.Embedded("compute", migrations)
	c.RowSecurity = map[string]storage.Rows{ // functions are the operator's
		"functions":        storage.PlatformRows(),
		"function_modules": storage.PlatformRows(),
	}
	return c
}

// Config is a function's settings as the API takes them (the config part
// of POST /v1/functions).
type Config struct {
	Name             string            `json:"name"`
	TenancyMode      TenancyMode       `json:"tenancy_mode"`
	MemoryMiB        int               `json:"memory_mib,omitempty"`
	Timeout          string            `json:"timeout,omitempty"` // a Go duration, default 10s
	Env              map[string]string `json:"env,omitempty"`
	MaxEnvsPerTenant int               `json:"max_environments_per_tenant,omitempty"`
	IdleTTL          string            `json:"idle_ttl,omitempty"` // a Go duration, default 10m
	TmpMiB           int               `json:"tmp_mib,omitempty"`  // the /tmp quota, default 16
}

// function turns the settings into a Function.
func (c Config) function() (Function, error) {
	fn := Function{Name: c.Name, TenancyMode: c.TenancyMode, MemoryMiB: c.MemoryMiB, Env: c.Env, MaxEnvsPerTenant: c.MaxEnvsPerTenant,
		TmpMiB: c.TmpMiB}
	for _, d := range []struct {
		field, v string
		dst      *time.Duration
	}{{"timeout", c.Timeout, &fn.Timeout}, {"idle_ttl", c.IdleTTL, &fn.IdleTTL}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil || v <= 0 {
			return fn, errs.Field(d.field, "invalid_duration", "%s is a Go duration such as 10s", d.field)
		}
		*d.dst = v
	}
	if len(c.Env) > 64 {
		return fn, errs.Field("env", "invalid_env", "at most 64 environment variables")
	}
	if fn.MaxEnvsPerTenant < 0 || fn.MaxEnvsPerTenant > 1000 {
		return fn, errs.Field("max_environments_per_tenant", "invalid_limit", "max_environments_per_tenant is 1 to 1000")
	}
	return fn, nil
}

// Info is a registered function as the API shows it.
type Info struct {
	Config
	Version   int       `json:"version"`
	Digest    string    `json:"digest"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Registry keeps functions in the database (so every node, and a
// restarted one, can load them) and deploys them on this node's engine.
type Registry struct {
	db     *storage.DB
	audit  *audit.Log
	engine *Engine
	loads  singleflight.Group // concurrent first invocations load a function once
	inval  *inval.Channel     // other nodes' publications and deletions
}

// NewRegistry returns the registry of engine's functions.
func NewRegistry(db *storage.DB, log *audit.Log, engine *Engine) *Registry {
	r := &Registry{db: db, audit: log, engine: engine}
	// A node that stopped listening, or listens again, may have missed a
	// publication: it drops every deployment and loads each function anew.
	forgetAll := func(context.Context) { engine.forgetAll() }
	r.inval = inval.New(db, notifyChannel, log, engine.opts.Logger, inval.Hooks{
		Evict: r.forgetStale, Purge: forgetAll, Enable: forgetAll, Disable: forgetAll})
	return r
}

// forgetStale drops this node's deployment of function name unless it is
// the version the registry holds now. A change notice reaches every node,
// the publishing one too, and that one deployed the new version before it
// stored it: dropping it would make the next invocation a cold start (or,
// for a per-tenant function, a new environment where the caller expects its
// own). When the registry cannot be read, the deployment is dropped: the
// next invocation loads what is current.
func (r *Registry) forgetStale(ctx context.Context, name string) {
	if v, ok := r.engine.deployed(name); ok {
		if cur, err := r.get(ctx, name); err == nil && cur.Version == v.Version && cur.Digest == v.Digest {
			return
		}
	}
	r.engine.forget(ctx, name)
}

// Engine is the registry's engine.
func (r *Registry) Engine() *Engine { return r.engine }

// Publish creates a function, or a new version of it, from module.
func (r *Registry) Publish(ctx context.Context, c Config, module []byte, actor tenant.Actor) (Info, error) {
	fn, err := c.function()
	if err != nil {
		return Info{}, err
	}
	fn.Version = 1
	if old, err := r.get(ctx, c.Name); err == nil {
		if old.TenancyMode != c.TenancyMode {
			return Info{}, errs.Field("tenancy_mode", "tenancy_mode_immutable", "function %s was created %s; its tenancy mode cannot change", c.Name, old.TenancyMode)
		}
		fn.Version = old.Version + 1
	}
	fn, err = r.engine.Deploy(ctx, fn, module)
	if err != nil {
		return Info{}, err
	}
	cfg, _ := json.Marshal(c)
	now := time.Now().UTC().Truncate(time.Microsecond)
	var out Info
	err = r.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO function_modules (digest, module, created_at) VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING`,
			fn.Digest, module, now.UnixMicro()); err != nil {
			return fmt.Errorf("compute: store module: %w", err)
		}
		var version int
		err := tx.QueryRow(ctx, `SELECT version FROM functions WHERE name = ?`, c.Name).Scan(&version)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			version = 1
			_, err = tx.Exec(ctx, `INSERT INTO functions (name, version, digest, config, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
				c.Name, version, fn.Digest, string(cfg), now.UnixMicro(), now.UnixMicro())
		case err == nil:
			version++
			_, err = tx.Exec(ctx, `UPDATE functions SET version = ?, digest = ?, config = ?, updated_at = ? WHERE name = ?`,
				version, fn.Digest, string(cfg), now.UnixMicro(), c.Name)
		}
		if err != nil {
			return fmt.Errorf("compute: store function: %w", err)
		}
		out = Info{Config: c, Version: version, Digest: fn.Digest, UpdatedAt: now}
		if err := r.audit.AppendTx(ctx, tx, audit.Event{Principal: actor.Principal, Action: "function.published", Target: c.Name,
			RequestID: actor.RequestID, SourceIP: actor.SourceIP, Detail: map[string]string{"version": fmt.Sprint(version), "digest": fn.Digest}}); err != nil {
			return err
		}
		return tx.Notify(ctx, notifyChannel, c.Name)
	})
	if err != nil {
		r.engine.Delete(ctx, c.Name) // not registered: not served either
		return Info{}, err
	}
	stored, err := r.get(ctx, c.Name)
	if err == nil {
		out.CreatedAt = stored.CreatedAt
	}
	return out, nil
}

func (r *Registry) get(ctx context.Context, name string) (Info, error) {
	var out Info
	err := r.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		var cfg string
		var created, updated int64
		err := tx.QueryRow(ctx, `SELECT version, digest, config, created_at, updated_at FROM functions WHERE name = ?`, name).
			Scan(&out.Version, &out.Digest, &cfg, &created, &updated)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound(name)
		}
		if err != nil {
			return fmt.Errorf("compute: read function: %w", err)
		}
		out.CreatedAt, out.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
		return json.Unmarshal([]byte(cfg), &out.Config)
	})
	return out, err
}

// List returns every registered function.
func (r *Registry) List(ctx context.Context) ([]Info, error) {
	out := []Info{}
	err := r.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT name FROM functions ORDER BY name`)
		if err != nil {
			return fmt.Errorf("compute: list functions: %w", err)
		}
		defer rows.Close()
		var names []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				return err
			}
			names = append(names, n)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		for _, n := range names {
			i, err := r.get(ctx, n)
			if err != nil {
				return err
			}
			out = append(out, i)
		}
		return nil
	})
	return out, err
}

// Delete removes a function and destroys its environments.
func (r *Registry) Delete(ctx context.Context, name string, actor tenant.Actor) error {
	err := r.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM functions WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("compute: delete function: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound(name)
		}
		if err := r.audit.AppendTx(ctx, tx, audit.Event{Principal: actor.Principal, Action: "function.deleted", Target: name,
			RequestID: actor.RequestID, SourceIP: actor.SourceIP}); err != nil {
			return err
		}
		return tx.Notify(ctx, notifyChannel, name)
	})
	if err != nil {
		return err
	}
	if err := r.engine.Delete(ctx, name); err != nil && !errs.Is(err, "function_not_found") {
		return err
	}
	return nil
}

// Invoke runs a function, loading it from the database first when this
// node has not deployed its current version (a restart, another node's publish).
func (r *Registry) Invoke(ctx context.Context, name string, caller Caller, requestID string, event []byte) (Result, error) {
	res, err := r.engine.Invoke(ctx, name, caller, requestID, event)
	if !errs.Is(err, "function_not_found") {
		return res, err
	}
	if _, err, _ := r.loads.Do(name, func() (any, error) {
		if _, ok := r.engine.current(name); ok {
			return nil, nil // another caller loaded it meanwhile
		}
		return nil, r.load(ctx, name)
	}); err != nil {
		return Result{}, err
	}
	return r.engine.Invoke(ctx, name, caller, requestID, event)
}

// load deploys the stored function name on this node.
func (r *Registry) load(ctx context.Context, name string) error {
	i, err := r.get(ctx, name)
	if err != nil {
		return err
	}
	var module []byte
	err = r.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT module FROM function_modules WHERE digest = ?`, i.Digest).Scan(&module)
	})
	if err != nil {
		return fmt.Errorf("compute: read module of %s: %w", name, err)
	}
	fn, err := i.Config.function()
	if err != nil {
		return err
	}
	fn.Version = i.Version
	_, err = r.engine.Deploy(ctx, fn, module)
	return err
}

// notifyChannel tells other nodes a function was published or deleted
// (payload: its name); they drop their deployment and load the current
// version on its next invocation.
const notifyChannel = "bulkhead_functions"

// Run follows other nodes' publications and deletions (PostgreSQL) and
// evicts idle environments every ten seconds, until ctx ends. It returns
// once its listener has stopped too.
func (r *Registry) Run(ctx context.Context) error {
	return r.inval.RunEvery(ctx, 10*time.Second, func(ctx context.Context) { r.engine.EvictIdle(ctx) })
}
