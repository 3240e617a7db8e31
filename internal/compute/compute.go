// Package compute runs tenants' functions in WebAssembly sandboxes
// (wazero) whose execution environments are reused only for one tenant
// when a function asks for it — Lambda's tenant isolation mode, in-process.
//
// # ABI
//
// A function is a WASI (wasip1) reactor module. It exports
//
//	bulkhead_alloc(size i32) i32
//	bulkhead_handle(ctx_ptr i32, ctx_len i32, event_ptr i32, event_len i32) i64
//
// and imports nothing but wasi_snapshot_preview1. For each invocation the
// host asks bulkhead_alloc for two buffers, copies into them the context
// (JSON {"tenant_id":…,"request_id":…}) and the event, and calls
// bulkhead_handle, which returns the response's address in the high 32
// bits and its length in the low 32. Go functions use
// examples/functions/guest and are built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared
//
// # Environments
//
// An environment is one instance of a function version: its own linear
// memory, globals, and a private in-memory file system mounted at /tmp
// (internal/memfs: files and directories only, no links, nothing of the
// host behind it, a byte quota per environment and one for the node; a
// write past either answers ENOSPC). It serves one
// invocation at a time; more concurrent invocations make more
// environments, up to the function's per-tenant limit and the node's. A
// per_tenant function's environment is made for one tenant and only ever
// serves that tenant; a shared one's may serve anyone. State kept in
// globals and /tmp survives between invocations of one environment (the
// warm start) and dies with it: environments idle past the function's TTL
// are evicted (and the least recently used, when the node's cap is
// reached), and a trap or timeout destroys the environment it happened in.
// Destroying an environment drops its /tmp.
//
// Guests get no network (WASI preview 1 has no sockets and the host offers
// none), no filesystem but their /tmp, a memory limit in pages, a
// wall-clock timeout per invocation (the context closes the instance), and
// a cap on the response size. Compiled modules are cached by content
// digest in memory and on disk, so a module is compiled once per node;
// the disk cache holds native code, so every file in it is checked against
// an HMAC manifest before wazero may load it (see codeCache).
package compute

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/fairshare"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/memfs"
	sdkapi "github.com/bulkhead-dev/bulkhead/sdk/api"
)

// TenancyMode says whether a function's environments may serve several tenants.
type TenancyMode string

// Tenancy modes.
const (
	Shared    TenancyMode = "shared"
	PerTenant TenancyMode = "per_tenant"
)

// Limits on functions.
const (
	MaxModuleBytes   = 50 << 20
	MaxOutputBytes   = 6 << 20
	DefaultMemory    = 128 // MiB
	DefaultTimeout   = 10 * time.Second
	DefaultIdleTTL   = 10 * time.Minute
	DefaultPerTenant = 10
	DefaultTmpMiB    = 16        // a /tmp quota per environment
	MaxTmpMiB        = 1024      // the largest a function may ask for
	DefaultTmpBytes  = 512 << 20 // all environments' /tmp on one node
)

// Function is a function's configuration.
type Function struct {
	Name             string            `json:"name"`
	Version          int               `json:"version"`
	Digest           string            `json:"digest"` // SHA-256 of the module
	TenancyMode      TenancyMode       `json:"tenancy_mode"`
	MemoryMiB        int               `json:"memory_mib"`
	Timeout          time.Duration     `json:"-"`
	Env              map[string]string `json:"env,omitempty"`
	MaxEnvsPerTenant int               `json:"max_environments_per_tenant"`
	IdleTTL          time.Duration     `json:"-"`
	TmpMiB           int               `json:"tmp_mib"`
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// Options configure an Engine.
type Options struct {
	Dir             string // where compiled code lives (modules are the registry's, in the database)
	CacheDir        string // compiled code, shared by engines (default Dir/compiled)
	MaxEnvironments int    // node-wide cap on live environments (default 1000)
	TmpBytes        int64  // node-wide bound on every environment's /tmp (default DefaultTmpBytes)
	// MemoryBudget bounds the memory the node's environments reserve
	// (default a third of the machine's); TenantMemoryShare is the part
	// of it one tenant's may (default DefaultTenantMemoryShare).
	MemoryBudget      int64
	TenantMemoryShare float64
	// CPUSlots is how many guests run at once (default GOMAXPROCS),
	// TenantCPUSlots how many of them for one tenant (default half, at
	// least one); MaxQueueWait how long an invocation waits for a slot.
	CPUSlots, TenantCPUSlots int
	MaxQueueWait             time.Duration
	// CacheKey authenticates the compiled code kept on disk (derive it from
	// the root key). Without one, compiled code is kept in memory only.
	CacheKey [32]byte
	Logger   *slog.Logger
	Now      func() time.Time
}

// Engine runs functions.
type Engine struct {
	opts   Options
	cache  wazero.CompilationCache
	code   *codeCache // nil when compiled code is kept in memory only
	budget *memfs.Budget

	evictions atomic.Uint64 // environments destroyed idle (TTL or node cap)

	slots *fairshare.Slots

	mu       sync.Mutex
	versions map[string]*version // current version by function name
	live     int                 // environments alive, node-wide
	idle     []*environment      // idle environments, least recently used first
	reserved int64               // memory the live environments reserve
	usage    map[string]*usage   // by tenant, for per-tenant functions' environments
}

// version is one deployed module of a function.
type version struct {
	fn       Function
	runtime  wazero.Runtime
	compiled wazero.CompiledModule
	pools    map[string]*pool // by tenant ("" for a shared function)
	retired  bool
}

type pool struct {
	idle []*environment
	busy int
}

// environment is one instance of a version.
type environment struct {
	id       string
	v        *version
	key      string // the tenant it serves ("" when shared)
	mod      api.Module
	alloc    api.Function
	handle   api.Function
	fs       *memfs.FS
	reserved int64 // what it holds of the memory budget: its limit while busy, its size while idle
	lastUsed time.Time
	log      *guestLog
}

// New returns an engine keeping its files under opts.Dir.
func New(opts Options) (*Engine, error) {
	if opts.MaxEnvironments <= 0 {
		opts.MaxEnvironments = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TmpBytes <= 0 {
		opts.TmpBytes = DefaultTmpBytes
	}
	if opts.MemoryBudget <= 0 {
		opts.MemoryBudget = defaultMemoryBudget()
	}
	if opts.TenantMemoryShare <= 0 || opts.TenantMemoryShare > 1 {
		opts.TenantMemoryShare = DefaultTenantMemoryShare
	}
	if opts.MaxQueueWait <= 0 {
		opts.MaxQueueWait = DefaultMaxQueueWait
	}
	if opts.CacheDir == "" {
		opts.CacheDir = filepath.Join(opts.Dir, "compiled")
	}
	e := &Engine{opts: opts, budget: memfs.NewBudget(opts.TmpBytes), versions: map[string]*version{},
		slots: newCPUSlots(opts.CPUSlots, opts.TenantCPUSlots), usage: map[string]*usage{}}
	if opts.CacheKey == ([32]byte{}) {
		e.cache = wazero.NewCompilationCache()
		return e, nil
	}
	code, err := newCodeCache(opts.CacheDir, opts.CacheKey)
	if err != nil {
		return nil, err
	}
	if e.cache, err = wazero.NewCompilationCacheWithDir(opts.CacheDir); err != nil {
		return nil, fmt.Errorf("compute: compilation cache: %w", err)
	}
	e.code = code
	return e, nil
}

// Close destroys every environment and releases the runtimes.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, v := range e.versions {
		e.retire(ctx, v)
	}
	e.versions = map[string]*version{}
	return e.cache.Close(ctx)
}

// Deploy validates and compiles a module and makes it the function's
// current version (fn.Version, the registry's, or the next one when 0); environments of the previous version are destroyed once
// idle (they never serve the new one).
func (e *Engine) Deploy(ctx context.Context, fn Function, module []byte) (Function, error) {
	if !namePattern.MatchString(fn.Name) {
		return fn, errs.Field("name", "invalid_name", "a function name is 1 to 63 of a-z, 0-9 and -, starting with a letter")
	}
	switch fn.TenancyMode {
	case Shared, PerTenant:
	default:
		return fn, errs.Field("tenancy_mode", "invalid_tenancy_mode", "tenancy_mode is shared or per_tenant")
	}
	if fn.MemoryMiB == 0 {
		fn.MemoryMiB = DefaultMemory
	}
	if fn.MemoryMiB < 16 || fn.MemoryMiB > 4096 {
		return fn, errs.Field("memory_mib", "invalid_memory", "memory_mib is 16 to 4096")
	}
	if fn.Timeout == 0 {
		fn.Timeout = DefaultTimeout
	}
	if fn.Timeout < 10*time.Millisecond || fn.Timeout > 15*time.Minute {
		return fn, errs.Field("timeout", "invalid_timeout", "the timeout is 10ms to 15m")
	}
	if fn.MaxEnvsPerTenant == 0 {
		fn.MaxEnvsPerTenant = DefaultPerTenant
	}
	if fn.IdleTTL == 0 {
		fn.IdleTTL = DefaultIdleTTL
	}
	if fn.TmpMiB == 0 {
		fn.TmpMiB = DefaultTmpMiB
	}
	if fn.TmpMiB < 1 || fn.TmpMiB > MaxTmpMiB {
		return fn, errs.Field("tmp_mib", "invalid_tmp_quota", "tmp_mib is 1 to %d", MaxTmpMiB)
	}
	if len(module) == 0 || len(module) > MaxModuleBytes {
		return fn, &errs.Error{Kind: errs.TooLarge, Code: "invalid_module_size", Field: "module",
			Detail: fmt.Sprintf("a module is 1 byte to %d MiB", MaxModuleBytes>>20)}
	}
	sum := sha256.Sum256(module)
	fn.Digest = hex.EncodeToString(sum[:])
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCompilationCache(e.cache).
		WithMemoryLimitPages(uint32(fn.MemoryMiB)*16). // 64 KiB pages
		WithCloseOnContextDone(true))
	fail := func(err error) (Function, error) {
		rt.Close(ctx)
		return fn, err
	}
	if e.code != nil {
		if err := e.code.verify(); err != nil {
			return fail(err)
		}
	}
	compiled, err := rt.CompileModule(ctx, module)
	if err != nil {
		return fail(errs.Field("module", "invalid_module", "the module is not valid WebAssembly: %s", errs.Clip(err.Error(), 200)))
	}
	if e.code != nil {
		if err := e.code.record(); err != nil {
			return fail(err)
		}
	}
	if err := checkABI(compiled); err != nil {
		return fail(err)
	}
	if err := instantiateWASI(ctx, rt); err != nil {
		return fail(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if old, ok := e.versions[fn.Name]; ok {
		if old.fn.TenancyMode != fn.TenancyMode {
			return fail(errs.Field("tenancy_mode", "tenancy_mode_immutable", "function %s was created %s; its tenancy mode cannot change", fn.Name, old.fn.TenancyMode))
		}
		if fn.Version == 0 {
			fn.Version = old.fn.Version + 1
		}
		e.retire(ctx, old)
	} else if fn.Version == 0 {
		fn.Version = 1
	}
	e.versions[fn.Name] = &version{fn: fn, runtime: rt, compiled: compiled, pools: map[string]*pool{}}
	return fn, nil
}

// checkABI refuses modules that import anything but WASI or lack the exports.
func checkABI(m wazero.CompiledModule) error {
	for _, f := range m.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod != wasi_snapshot_preview1.ModuleName {
			return errs.Field("module", "unsupported_import", "the module imports %s.%s; functions may import only %s",
				errs.Clip(mod, 60), errs.Clip(name, 60), wasi_snapshot_preview1.ModuleName)
		}
	}
	exports := m.ExportedFunctions()
	for _, name := range []string{"bulkhead_alloc", "bulkhead_handle"} {
		if _, ok := exports[name]; !ok {
			return errs.Field("module", "missing_export", "the module does not export %s (see the function ABI)", name)
		}
	}
	return nil
}

// Delete removes a function; its environments are destroyed.
func (e *Engine) Delete(ctx context.Context, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.versions[name]
	if !ok {
		return notFound(name)
	}
	delete(e.versions, name)
	e.retire(ctx, v)
	return nil
}

// current returns the deployed version of function name, if any.
func (e *Engine) current(name string) (Function, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.versions[name]
	if !ok {
		return Function{}, false
	}
	return v.fn, true
}

// forget drops this node's deployment of a function (another node
// published or deleted it); the next invocation loads the current version.
func (e *Engine) forget(ctx context.Context, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v, ok := e.versions[name]; ok {
		delete(e.versions, name)
		e.retire(ctx, v)
	}
}

// deployed returns the function of name's deployed version, if any.
func (e *Engine) deployed(name string) (Function, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v, ok := e.versions[name]; ok {
		return v.fn, true
	}
	return Function{}, false
}

// forgetAll drops every deployment (changes may have been missed).
func (e *Engine) forgetAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for name, v := range e.versions {
		delete(e.versions, name)
		e.retire(context.Background(), v)
	}
}

func notFound(name string) error {
	return errs.E(errs.NotFound, "function_not_found", "function %q not found", errs.Clip(name, 64))
}

// retire marks v gone and destroys its idle environments; busy ones are
// destroyed when their invocation ends. Called with e.mu held.
func (e *Engine) retire(ctx context.Context, v *version) {
	v.retired = true
	for _, p := range v.pools {
		for _, env := range p.idle {
			e.removeIdle(env)
			e.destroy(ctx, env)
		}
		p.idle = nil
	}
	if e.busyIn(v) == 0 {
		v.runtime.Close(ctx)
	}
}

func (e *Engine) busyIn(v *version) int {
	n := 0
	for _, p := range v.pools {
		n += p.busy
	}
	return n
}

// Result is an invocation's outcome.
type Result struct {
	Body          []byte
	Function      string
	Version       int
	EnvironmentID string
	Cold          bool
	Duration      time.Duration
}

// Invoke runs function name for caller (its tenant is required for
// per_tenant functions) with event.
func (e *Engine) Invoke(ctx context.Context, name string, caller Caller, requestID string, event []byte) (Result, error) {
	start := e.opts.Now()
	tid := caller.Tenant
	if err := e.slots.Acquire(ctx, tid, e.opts.MaxQueueWait); err != nil {
		if errors.Is(err, fairshare.ErrBusy) {
			err = &errs.Error{Kind: errs.Busy, Code: "functions_busy", RetryAfter: time.Second,
				Detail: "this node's function slots are taken (a tenant may use at most half of them); retry shortly"}
		}
		return Result{}, err
	}
	defer e.slots.Release(tid)
	env, cold, err := e.acquire(ctx, name, caller)
	if err != nil {
		return Result{}, err
	}
	v := env.v
	e.opts.Logger.InfoContext(ctx, "function start", "function", name, "version", v.fn.Version, "tenant_id", tid,
		"environment", env.id, "cold", cold, "request_id", requestID)
	res := Result{Function: name, Version: v.fn.Version, EnvironmentID: env.id, Cold: cold}
	body, err := e.run(ctx, env, tid, requestID, event)
	res.Body, res.Duration = body, e.opts.Now().Sub(start)
	var memBytes uint32
	if m := env.mod.Memory(); m != nil {
		memBytes = m.Size()
	}
	e.release(ctx, env, err != nil)
	e.opts.Logger.InfoContext(ctx, "function report", "function", name, "version", v.fn.Version, "tenant_id", tid,
		"environment", env.id, "cold", cold, "request_id", requestID, "duration", res.Duration,
		"memory_bytes", memBytes, "failed", err != nil)
	return res, err
}

// acquire takes an idle environment of the function for the tenant, or
// makes one, within the memory and environment bounds.
func (e *Engine) acquire(ctx context.Context, name string, caller Caller) (*environment, bool, error) {
	tid := caller.Tenant
	e.mu.Lock()
	v, ok := e.versions[name]
	if !ok {
		e.mu.Unlock()
		return nil, false, notFound(name)
	}
	key := ""
	if v.fn.TenancyMode == PerTenant {
		if tid == "" {
			e.mu.Unlock()
			return nil, false, errs.E(errs.Invalid, "tenant_id_required", "function %s uses per-tenant isolation; add a tenant id and try again", name)
		}
		key = tid
	}
	p := v.pools[key]
	if p == nil {
		p = &pool{}
		v.pools[key] = p
	}
	limit := int64(v.fn.MemoryMiB) << 20
	if n := len(p.idle); n > 0 {
		env := p.idle[n-1]
		p.idle = p.idle[:n-1]
		e.removeIdle(env)
		// Busy, it may grow to its limit: reserve that, making room.
		if err := e.makeRoom(ctx, limit-env.reserved, key, caller); err != nil {
			p.idle = append(p.idle, env)
			e.idle = append(e.idle, env)
			e.mu.Unlock()
			return nil, false, err
		}
		e.reserve(env, limit)
		p.busy++
		e.mu.Unlock()
		return env, false, nil
	}
	if p.busy >= v.fn.MaxEnvsPerTenant {
		e.mu.Unlock()
		return nil, false, &errs.Error{Kind: errs.Busy, Code: "too_many_environments", RetryAfter: time.Second,
			Detail: fmt.Sprintf("function %s already runs %d environments for this tenant; retry shortly", name, p.busy)}
	}
	if key != "" && caller.MaxEnvironments > 0 {
		// The tier's bound on the tenant's environments: its own idle ones
		// go first.
		for e.usageOf(key).envs >= caller.MaxEnvironments {
			if !e.evictOne(ctx, func(x *environment) bool { return x.key == key }) {
				e.mu.Unlock()
				return nil, false, &errs.Error{Kind: errs.Busy, Code: "tenant_environment_limit", RetryAfter: time.Second,
					Detail: fmt.Sprintf("this tenant's tier allows %d function environments on this node and all are busy; retry shortly", caller.MaxEnvironments)}
			}
		}
	}
	if e.live >= e.opts.MaxEnvironments && !e.evictOne(ctx, func(*environment) bool { return true }) {
		e.mu.Unlock()
		return nil, false, &errs.Error{Kind: errs.Busy, Code: "node_busy", RetryAfter: time.Second,
			Detail: fmt.Sprintf("this node runs its maximum of %d environments; retry shortly", e.opts.MaxEnvironments)}
	}
	if err := e.makeRoom(ctx, limit, key, caller); err != nil {
		e.mu.Unlock()
		return nil, false, err
	}
	e.live++
	p.busy++
	pending := &environment{v: v, key: key}
	e.reserve(pending, limit)
	if key != "" {
		e.usageOf(key).envs++
	}
	e.mu.Unlock()
	env, err := e.create(ctx, v, key)
	if err != nil {
		e.mu.Lock()
		e.live--
		p.busy--
		e.reserve(pending, 0)
		if key != "" {
			e.dropUsage(key, func(u *usage) { u.envs-- })
		}
		e.mu.Unlock()
		return nil, false, err
	}
	env.reserved = pending.reserved
	return env, true, nil
}

// usageOf returns tenant key's usage. Called with e.mu held.
func (e *Engine) usageOf(key string) *usage {
	u := e.usage[key]
	if u == nil {
		u = &usage{}
		e.usage[key] = u
	}
	return u
}

// dropUsage changes key's usage and forgets it when nothing is left.
// Called with e.mu held.
func (e *Engine) dropUsage(key string, change func(*usage)) {
	u := e.usageOf(key)
	change(u)
	if u.envs == 0 && u.reserved == 0 {
		delete(e.usage, key)
	}
}

// reserve sets env's reservation to n bytes. Called with e.mu held.
func (e *Engine) reserve(env *environment, n int64) {
	delta := n - env.reserved
	env.reserved = n
	e.reserved += delta
	if env.key != "" {
		e.dropUsage(env.key, func(u *usage) { u.reserved += delta })
	}
}

// makeRoom evicts idle environments until need more bytes fit the node's
// budget and, for a tenant's environment, the tenant's share. Called with
// e.mu held.
func (e *Engine) makeRoom(ctx context.Context, need int64, key string, caller Caller) error {
	if need <= 0 {
		return nil
	}
	if key != "" {
		share := int64(float64(e.opts.MemoryBudget) * e.opts.TenantMemoryShare)
		for e.usageOf(key).reserved+need > share {
			if !e.evictOne(ctx, func(x *environment) bool { return x.key == key }) {
				return &errs.Error{Kind: errs.Busy, Code: "tenant_memory_limit", RetryAfter: time.Second,
					Detail: fmt.Sprintf("this tenant's function environments reserve their share of this node's memory (%d MiB); retry shortly", share>>20)}
			}
		}
	}
	for e.reserved+need > e.opts.MemoryBudget {
		if !e.evictOne(ctx, func(*environment) bool { return true }) {
			return &errs.Error{Kind: errs.Busy, Code: "node_busy", RetryAfter: time.Second,
				Detail: "this node's function environments reserve all of its memory budget; retry shortly"}
		}
	}
	return nil
}

// evictOne destroys the least recently used idle environment that match
// accepts, and reports whether there was one. Called with e.mu held.
func (e *Engine) evictOne(ctx context.Context, match func(*environment) bool) bool {
	for _, env := range e.idle {
		if match(env) {
			e.evictLocked(ctx, env)
			return true
		}
	}
	return false
}

// create instantiates a new environment of v for key.
func (e *Engine) create(ctx context.Context, v *version, key string) (*environment, error) {
	id := ids.New("env")
	tmp := memfs.New(int64(v.fn.TmpMiB)<<20, e.budget, func() int64 { return e.opts.Now().UnixNano() })
	gl := &guestLog{log: e.opts.Logger, function: v.fn.Name, env: id}
	cfg := wazero.NewModuleConfig().WithName(id).
		WithFSConfig(wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(tmp, "/tmp")).
		WithStartFunctions("_initialize").
		WithStdout(gl).WithStderr(gl).
		WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader)
	for k, val := range v.fn.Env {
		cfg = cfg.WithEnv(k, val)
	}
	ictx, cancel := context.WithTimeout(withFS(ctx, tmp), v.fn.Timeout)
	defer cancel()
	mod, err := v.runtime.InstantiateModule(ictx, v.compiled, cfg)
	if err != nil {
		tmp.Close()
		return nil, errs.E(errs.Invalid, "function_start_failed", "function %s did not start: %s", v.fn.Name, errs.Clip(err.Error(), 200))
	}
	return &environment{id: id, v: v, key: key, mod: mod, alloc: mod.ExportedFunction("bulkhead_alloc"),
		handle: mod.ExportedFunction("bulkhead_handle"), fs: tmp, log: gl}, nil
}

// run performs one invocation in env.
func (e *Engine) run(ctx context.Context, env *environment, tid, requestID string, event []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(withFS(ctx, env.fs), env.v.fn.Timeout)
	defer cancel()
	env.log.setTenant(tid)
	meta, _ := json.Marshal(map[string]string{"tenant_id": tid, "request_id": requestID})
	ctxPtr, err := env.write(ctx, meta)
	if err != nil {
		return nil, e.guestError(ctx, env, err)
	}
	evPtr, err := env.write(ctx, event)
	if err != nil {
		return nil, e.guestError(ctx, env, err)
	}
	out, err := env.handle.Call(ctx, uint64(ctxPtr), uint64(len(meta)), uint64(evPtr), uint64(len(event)))
	if err != nil {
		return nil, e.guestError(ctx, env, err)
	}
	ptr, n := uint32(out[0]>>32), uint32(out[0])
	if n > MaxOutputBytes {
		return nil, errs.E(errs.Invalid, "function_output_too_large", "function %s answered %d bytes; the limit is %d", env.v.fn.Name, n, MaxOutputBytes)
	}
	b, ok := env.mod.Memory().Read(ptr, n)
	if !ok {
		return nil, errs.E(errs.Invalid, "function_failed", "function %s answered outside its memory", env.v.fn.Name)
	}
	return append([]byte(nil), b...), nil
}

// write copies b into memory the guest allocated and returns its address.
func (env *environment) write(ctx context.Context, b []byte) (uint32, error) {
	r, err := env.alloc.Call(ctx, uint64(len(b)))
	if err != nil {
		return 0, err
	}
	ptr := uint32(r[0])
	if len(b) > 0 && !env.mod.Memory().Write(ptr, b) {
		return 0, errors.New("bulkhead_alloc returned memory outside the module")
	}
	return ptr, nil
}

// guestError turns a trap or timeout into a service error.
func (e *Engine) guestError(ctx context.Context, env *environment, err error) error {
	if ctx.Err() != nil {
		return errs.E(errs.Unavailable, "function_timeout", "function %s ran past its %s timeout; its environment was destroyed", env.v.fn.Name, env.v.fn.Timeout)
	}
	return errs.E(errs.Invalid, "function_failed", "function %s failed: %s; its environment was destroyed", env.v.fn.Name, errs.Clip(err.Error(), 300))
}

// release returns env to its pool, or destroys it after a failure or when
// its version is gone.
func (e *Engine) release(ctx context.Context, env *environment, failed bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := env.v
	p := v.pools[env.key]
	p.busy--
	if failed || v.retired {
		e.destroy(ctx, env)
		if v.retired && e.busyIn(v) == 0 {
			v.runtime.Close(ctx)
		}
		return
	}
	env.lastUsed = e.opts.Now()
	// Idle, it holds what it has grown to (and its /tmp is counted apart).
	size := int64(0)
	if m := env.mod.Memory(); m != nil {
		size = int64(m.Size())
	}
	e.reserve(env, size)
	p.idle = append(p.idle, env)
	e.idle = append(e.idle, env)
}

// destroy closes env's instance, drops its /tmp and gives back what it
// reserved. Called with e.mu held.
func (e *Engine) destroy(ctx context.Context, env *environment) {
	env.mod.Close(ctx)
	env.fs.Close()
	e.live--
	e.reserve(env, 0)
	if env.key != "" {
		e.dropUsage(env.key, func(u *usage) { u.envs-- })
	}
}

// Reserved reports the memory the node's environments reserve.
func (e *Engine) Reserved() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reserved
}

// TmpBytes reports the bytes every environment's /tmp holds on this node.
func (e *Engine) TmpBytes() int64 { return e.budget.Used() }

func (e *Engine) removeIdle(env *environment) {
	for i, x := range e.idle {
		if x == env {
			e.idle = append(e.idle[:i], e.idle[i+1:]...)
			return
		}
	}
}

// Evictions counts the idle environments destroyed (TTL or node cap).
func (e *Engine) Evictions() uint64 { return e.evictions.Load() }

// evictLocked destroys an idle environment. Called with e.mu held.
func (e *Engine) evictLocked(ctx context.Context, env *environment) {
	e.evictions.Add(1)
	e.removeIdle(env)
	p := env.v.pools[env.key]
	for i, x := range p.idle {
		if x == env {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			break
		}
	}
	e.destroy(ctx, env)
}

// EvictIdle destroys environments idle past their function's TTL and
// returns how many.
func (e *Engine) EvictIdle(ctx context.Context) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.opts.Now()
	var due []*environment
	for _, env := range e.idle {
		if now.Sub(env.lastUsed) >= env.v.fn.IdleTTL {
			due = append(due, env)
		}
	}
	for _, env := range due {
		e.evictLocked(ctx, env)
	}
	return len(due)
}

// EnvironmentInfo describes a live environment.
type EnvironmentInfo = sdkapi.FunctionEnvironment

// Environments lists the idle environments of function name and counts the busy ones.
func (e *Engine) Environments(name string) ([]EnvironmentInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.versions[name]
	if !ok {
		return nil, notFound(name)
	}
	out := []EnvironmentInfo{}
	for key, p := range v.pools {
		for _, env := range p.idle {
			out = append(out, EnvironmentInfo{ID: env.id, TenantID: key, Version: v.fn.Version, LastUsed: env.lastUsed})
		}
		for range p.busy {
			out = append(out, EnvironmentInfo{TenantID: key, Version: v.fn.Version, Busy: true})
		}
	}
	return out, nil
}

// guestLog turns a guest's stdout and stderr into JSON log lines carrying
// the tenant of the invocation being served.
type guestLog struct {
	log      *slog.Logger
	function string
	env      string
	mu       sync.Mutex
	tenant   string
}

func (g *guestLog) setTenant(t string) {
	g.mu.Lock()
	g.tenant = t
	g.mu.Unlock()
}

func (g *guestLog) Write(p []byte) (int, error) {
	g.mu.Lock()
	t := g.tenant
	g.mu.Unlock()
	g.log.Info("function log", "function", g.function, "environment", g.env, "tenant_id", t, "line", errs.Clip(string(p), 4096))
	return len(p), nil
}

var _ io.Writer = (*guestLog)(nil)
