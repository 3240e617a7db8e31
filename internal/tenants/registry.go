package tenants

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/page"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// Registry is the tenant registry and the engine of its lifecycle workflows.
type Registry struct {
	db    *storage.DB
	tiers Tiers
	clock clock.Clock
	log   *slog.Logger
	audit *audit.Log

	mu       sync.Mutex
	started  bool
	onboard  []Step
	offboard []Step
	migrate  []Step
	inflight map[string]chan struct{} // workflows running on this node; closed when the run ends
	// running bounds the workflows whose steps run at once on this node
	// (maxRunningWorkflows; see runWorkflow).
	running  chan struct{}
	wg       sync.WaitGroup
	stopping chan struct{}
	// halted ends when Run returns: workflow steps still running then are
	// cancelled (their transactions roll back; the next start runs them).
	halted context.Context
	halt   context.CancelFunc
}

// Options configure a Registry.
type Options struct {
	Tiers  Tiers // default DefaultTiers()
	Clock  clock.Clock
	Logger *slog.Logger
}

// NewRegistry returns a registry over db that records lifecycle acts in log.
func NewRegistry(db *storage.DB, log *audit.Log, opts Options) *Registry {
	if opts.Tiers == nil {
		opts.Tiers = DefaultTiers()
	}
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Registry{
		db: db, tiers: opts.Tiers, clock: opts.Clock, log: opts.Logger, audit: log,
		inflight: map[string]chan struct{}{}, stopping: make(chan struct{}), running: make(chan struct{}, maxRunningWorkflows),
	}
	r.halted, r.halt = context.WithCancel(context.Background())
	return r
}

// Tiers returns the configured tiers.
func (r *Registry) Tiers() Tiers { return r.tiers }

// CreateRequest is what an operator supplies to create a tenant.
type CreateRequest struct {
	ID      string          `json:"id"`
	Name    string          `json:"name"`
	Tier    string          `json:"tier,omitempty"`
	Domains []string        `json:"domains,omitempty"`
	Config  json.RawMessage `json:"config,omitempty"`

	// Input goes to the onboarding steps (StepInput); not part of the
	// request's identity for Idempotency-Key purposes.
	Input Input `json:"-"`
}

// ParseID is tenant.ParseID with the API's error: invalid_tenant_id on the
// field "id", for an id that a client sent.
func ParseID(s string) (tenant.ID, error) {
	id, err := tenant.ParseID(s)
	if err != nil {
		return "", &errs.Error{Kind: errs.Invalid, Code: "invalid_tenant_id", Field: "id", Detail: err.Error(), Err: err}
	}
	return id, nil
}

func (r *Registry) validateCreate(req CreateRequest) (Tenant, error) {
	id, err := ParseID(req.ID)
	if err != nil {
		return Tenant{}, err
	}
	if req.Name == "" {
		req.Name = req.ID
	}
	if err := validName(req.Name); err != nil {
		return Tenant{}, err
	}
	if req.Tier == "" {
		req.Tier = DefaultTier
	}
	tier, ok := r.tiers[req.Tier]
	if !ok {
		return Tenant{}, errs.Field("tier", "unknown_tier", "tier %q is not configured; known tiers: %s", errs.Clip(req.Tier, 40), r.tierNames())
	}
	domains, err := normalizeDomains(req.Domains)
	if err != nil {
		return Tenant{}, err
	}
	cfg, err := normalizeConfig(req.Config)
	if err != nil {
		return Tenant{}, err
	}
	return Tenant{ID: id, Name: req.Name, Tier: tier.Name, Isolation: tier.Isolation, Status: Provisioning,
		Domains: domains, Config: cfg}, nil
}

func (r *Registry) tierNames() string {
	names := make([]string, 0, len(r.tiers))
	for n := range r.tiers {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Create registers a tenant in the provisioning state and runs its onboarding
// workflow, returning the tenant as the workflow left it (active, unless a
// step failed; failed steps are retried in the background).
//
// With a non-empty idempotencyKey, a retry of the same request returns the
// same tenant with created=false, as it is now (still provisioning if its
// onboarding has not finished: see AwaitOnboarding); the same key with a
// different request is refused (idempotency_key_reused).
func (r *Registry) Create(ctx context.Context, req CreateRequest, idempotencyKey string, actor tenant.Actor) (t Tenant, created bool, err error) {
	t, err = r.validateCreate(req)
	if err != nil {
		return Tenant{}, false, err
	}
	reqHash := hashRequest(t)
	now := r.clock.Now()
	t.CreatedAt, t.UpdatedAt = now.Truncate(time.Microsecond), now.Truncate(time.Microsecond)
	wfID := newWorkflowID()
	var existing tenant.ID
	err = r.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		if idempotencyKey != "" {
			var id, h string
			err := tx.QueryRow(ctx, `SELECT tenant_id, request_hash FROM tenant_idempotency WHERE key = ?`, idempotencyKey).Scan(&id, &h)
			switch {
			case err == nil:
				if h != reqHash {
					return errs.E(errs.Conflict, "idempotency_key_reused", "this Idempotency-Key was used with a different request")
				}
				existing = tenant.ID(id)
				return nil
			case !errors.Is(err, sql.ErrNoRows):
				return fmt.Errorf("tenant: read idempotency key: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO tenants (id, name, tier, isolation, status, config, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			string(t.ID), t.Name, t.Tier, string(t.Isolation), string(t.Status), string(t.Config),
			t.CreatedAt.UnixMicro(), t.UpdatedAt.UnixMicro()); err != nil {
			if storage.IsUniqueViolation(err) {
				return errs.E(errs.Conflict, "tenant_exists", "tenant %q already exists (ids are never reused)", t.ID)
			}
			return fmt.Errorf("tenant: insert: %w", err)
		}
		if err := insertDomains(ctx, tx, t.ID, t.Domains); err != nil {
			return err
		}
		if idempotencyKey != "" {
			if _, err := tx.Exec(ctx, `INSERT INTO tenant_idempotency (key, tenant_id, request_hash, created_at) VALUES (?, ?, ?, ?)`,
				idempotencyKey, string(t.ID), reqHash, now.UnixMicro()); err != nil {
				return fmt.Errorf("tenant: record idempotency key: %w", err)
			}
		}
		if err := r.insertWorkflow(ctx, tx, wfID, t.ID, KindOnboarding, req.Input, now); err != nil {
			return err
		}
		return r.audit.AppendTx(ctx, tx, audit.Event{TenantID: string(t.ID), Principal: actor.Principal,
			Action: "tenant.onboarding.started", Target: string(t.ID), RequestID: actor.RequestID, SourceIP: actor.SourceIP,
			Detail: map[string]string{"workflow_id": wfID, "tier": t.Tier}})
	})
	if errs.Is(err, "tenant_exists") && idempotencyKey != "" {
		// A concurrent request with the same key may have won the insert.
		if id, ok, lerr := r.lookupIdempotent(ctx, idempotencyKey, reqHash); lerr == nil && ok {
			existing, err = id, nil
		}
	}
	if err != nil {
		return Tenant{}, false, err
	}
	if existing != "" {
		t, err := r.Get(ctx, existing)
		return t, false, err
	}
	r.runWorkflow(context.WithoutCancel(ctx), wfID, &claim{tenant: t.ID, kind: KindOnboarding, input: req.Input})
	t, err = r.Get(ctx, t.ID)
	return t, true, err
}

// onboardingPoll is how often AwaitOnboarding reads the tenant: the
// onboarding may run on another node, so a read is how it is seen to end.
const onboardingPoll = 50 * time.Millisecond

// AwaitOnboarding waits until tenant id is no longer provisioning (its
// onboarding finished, on this node or another, or an offboarding
// cancelled it) and returns the tenant then. It returns the tenant still
// provisioning when ctx ends first, or when the registry shuts down (a
// workflow paused for the shutdown resumes only at the next start).
//
// A create's answer waits with it: after a crash, the retry of a create
// (the same Idempotency-Key) finds the tenant provisioning while a
// restarted node resumes its onboarding, and should answer, as the first
// answer would have, once the tenant is active.
func (r *Registry) AwaitOnboarding(ctx context.Context, id tenant.ID) (Tenant, error) {
	poll := time.NewTicker(onboardingPoll)
	defer poll.Stop()
	var last Tenant
	for {
		t, err := r.Get(ctx, id)
		switch {
		case err != nil && last.ID != "" && ctx.Err() != nil:
			return last, nil
		case err != nil || t.Status != Provisioning:
			return t, err
		}
		last = t
		select {
		case <-ctx.Done():
			return last, nil
		case <-r.stopping:
			return last, nil
		case <-poll.C:
		}
	}
}

// lookupIdempotent returns the tenant an earlier request with key created, if
// its request hash matches.
func (r *Registry) lookupIdempotent(ctx context.Context, key, reqHash string) (tenant.ID, bool, error) {
	var id, h string
	err := r.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT tenant_id, request_hash FROM tenant_idempotency WHERE key = ?`, key).Scan(&id, &h)
	})
	if err != nil || h != reqHash {
		return "", false, err
	}
	return tenant.ID(id), true, nil
}

func hashRequest(t Tenant) string {
	b, _ := json.Marshal(struct {
		ID      tenant.ID
		Name    string
		Tier    string
		Domains []string
		Config  json.RawMessage
	}{t.ID, t.Name, t.Tier, t.Domains, t.Config})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func insertDomains(ctx context.Context, tx *storage.Tx, id tenant.ID, domains []string) error {
	for _, d := range domains {
		if _, err := tx.Exec(ctx, `INSERT INTO tenant_domains (domain, tenant_id) VALUES (?, ?)`, d, string(id)); err != nil {
			if storage.IsUniqueViolation(err) {
				return &errs.Error{Kind: errs.Conflict, Code: "domain_taken", Field: "domains",
					Detail: fmt.Sprintf("domain %q already belongs to a tenant", d)}
			}
			return fmt.Errorf("tenant: insert domain: %w", err)
		}
	}
	return nil
}

const tenantColumns = `id, name, tier, isolation, status, config, created_at, updated_at, prior_isolation, isolation_changed_at`

func scanTenant(row interface{ Scan(...any) error }) (Tenant, error) {
	var t Tenant
	var id, iso, status, cfg, prior string
	var created, updated, changed int64
	if err := row.Scan(&id, &t.Name, &t.Tier, &iso, &status, &cfg, &created, &updated, &prior, &changed); err != nil {
		return Tenant{}, err
	}
	t.ID, t.Isolation, t.Status, t.Config = tenant.ID(id), Isolation(iso), Status(status), json.RawMessage(cfg)
	t.CreatedAt, t.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	if prior != "" {
		t.PriorIsolation, t.IsolationChangedAt = Isolation(prior), time.UnixMicro(changed).UTC()
	}
	t.Domains = []string{}
	return t, nil
}

func notFound(id tenant.ID) error {
	return errs.E(errs.NotFound, "tenant_not_found", "tenant %q not found", id)
}

// getTx reads one tenant in tx, whose scope must be the platform or the tenant.
func getTx(ctx context.Context, tx *storage.Tx, id tenant.ID) (Tenant, error) {
	return readTenant(ctx, tx, id, "")
}

// lockTenant reads the tenant of tx's scope in order to change it. On
// PostgreSQL it locks the row (FOR UPDATE), so that changes and workflow
// steps of one tenant serialize and each sees the state the last one left;
// SQLite's single writer serializes them already.
func lockTenant(ctx context.Context, tx *storage.Tx) (Tenant, error) {
	return readTenant(ctx, tx, tenant.ID(tx.TenantID()), forUpdate(tx))
}

// forUpdate is the row-lock clause of tx's dialect (SQLite's single writer
// needs none).
func forUpdate(tx *storage.Tx) string {
	if tx.Dialect() == storage.Postgres {
		return " FOR UPDATE"
	}
	return ""
}

func readTenant(ctx context.Context, tx *storage.Tx, id tenant.ID, lock string) (Tenant, error) {
	t, err := scanTenant(tx.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = ?`+lock, string(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return Tenant{}, notFound(id)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant: get: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT domain FROM tenant_domains WHERE tenant_id = ? ORDER BY domain`, string(id))
	if err != nil {
		return Tenant{}, fmt.Errorf("tenant: get domains: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return Tenant{}, fmt.Errorf("tenant: get domains: %w", err)
		}
		t.Domains = append(t.Domains, d)
	}
	return t, rows.Err()
}

// Get returns one tenant. It reads in the tenant's own scope.
func (r *Registry) Get(ctx context.Context, id tenant.ID) (Tenant, error) {
	var t Tenant
	err := r.db.View(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
		var err error
		t, err = getTx(ctx, tx, tenant.ID(tx.TenantID()))
		return err
	})
	return t, err
}

// TenantForDomainAllTenants returns the tenant that claims domain (its
// users' email domain or a custom domain). It crosses tenants: it is how a
// sign-in finds the tenant of an email address.
func (r *Registry) TenantForDomainAllTenants(ctx context.Context, domain string) (tenant.ID, error) {
	var id string
	err := r.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT tenant_id FROM tenant_domains WHERE domain = ?`, strings.ToLower(domain)).Scan(&id)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return "", errs.E(errs.NotFound, "tenant_not_found", "no tenant claims the domain")
	}
	if err != nil {
		return "", fmt.Errorf("tenant: find by domain: %w", err)
	}
	return tenant.ID(id), nil
}

// RequireActiveTx checks, in tx, that the tenant of tx's scope exists and is
// active: other services call it before changing a tenant's data. On
// PostgreSQL it locks the tenant row against a concurrent offboarding.
func RequireActiveTx(ctx context.Context, tx *storage.Tx) error {
	var status string
	err := tx.QueryRow(ctx, `SELECT status FROM tenants WHERE id = ?`+forUpdate(tx), tx.TenantID()).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound(tenant.ID(tx.TenantID()))
	}
	if err != nil {
		return fmt.Errorf("tenant: read status: %w", err)
	}
	if Status(status) != Active {
		return errs.E(errs.Conflict, "tenant_not_active", "tenant %q is %s; its data cannot change", tx.TenantID(), status)
	}
	return nil
}

// ListOptions page through tenants.
type ListOptions struct {
	Limit  int    // 1..1000, default 100
	Cursor string // from a previous Page
	Status Status // optional filter
	Tier   string // optional filter
	// Query, if set, keeps tenants whose id starts with it or whose name
	// contains it, ignoring case (at most 100 characters). It is matched
	// as text: % and _ are not wildcards.
	Query string
}

// likeEscape makes s a literal part of a LIKE pattern (escape character \).
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// Page is one page of tenants ordered by id.
type Page struct {
	Items      []Tenant `json:"items"`
	NextCursor string   `json:"next_cursor"`
}

// ListAllTenants returns tenants of every id, ordered by id. It crosses
// tenants and is for the operator only.
func (r *Registry) ListAllTenants(ctx context.Context, opts ListOptions) (Page, error) {
	limit, after, err := page.Bounds(opts.Limit, opts.Cursor)
	if err != nil {
		return Page{}, err
	}
	switch opts.Status {
	case "", Provisioning, Active, Suspended, Offboarding, Deleted:
	default:
		return Page{}, errs.Field("status", "invalid_status", "status must be one of provisioning, active, suspended, offboarding, deleted")
	}
	if opts.Tier != "" {
		if _, ok := r.tiers[opts.Tier]; !ok {
			return Page{}, errs.Field("tier", "invalid_tier", "tier must be one of the deployment's tiers (GET /v1/tiers)")
		}
	}
	if len(opts.Query) > 100 || !utf8.ValidString(opts.Query) || strings.ContainsRune(opts.Query, 0) {
		return Page{}, errs.Field("q", "invalid_query", "q must be valid text of at most 100 characters")
	}
	var out Page
	err = r.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		q := `SELECT ` + tenantColumns + ` FROM tenants WHERE id > ?`
		args := []any{after}
		if opts.Status != "" {
			q += ` AND status = ?`
			args = append(args, string(opts.Status))
		}
		if opts.Tier != "" {
			q += ` AND tier = ?`
			args = append(args, opts.Tier)
		}
		if opts.Query != "" {
			// Walking the id index, the scan stops at the page's last match.
			lit := likeEscape(strings.ToLower(opts.Query))
			q += ` AND (id LIKE ? ESCAPE '\' OR LOWER(name) LIKE ? ESCAPE '\')`
			args = append(args, lit+"%", "%"+lit+"%")
		}
		q += ` ORDER BY id LIMIT ?`
		args = append(args, limit+1)
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("tenant: list: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanTenant(rows)
			if err != nil {
				return fmt.Errorf("tenant: list: %w", err)
			}
			out.Items = append(out.Items, t)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("tenant: list: %w", err)
		}
		rows.Close()
		out.Items, out.NextCursor = page.Trim(out.Items, limit, func(t Tenant) string { return string(t.ID) })
		return loadDomains(ctx, tx, out.Items)
	})
	if out.Items == nil {
		out.Items = []Tenant{}
	}
	return out, err
}

// ListAllTenantIDs returns the id of every tenant, deleted ones included.
// It crosses tenants and is for the operator only.
func (r *Registry) ListAllTenantIDs(ctx context.Context) ([]tenant.ID, error) {
	var out []tenant.ID
	err := r.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM tenants ORDER BY id`)
		if err != nil {
			return fmt.Errorf("tenant: list ids: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return fmt.Errorf("tenant: list ids: %w", err)
			}
			out = append(out, tenant.ID(id))
		}
		return rows.Err()
	})
	return out, err
}

// ListTenantIDsIn returns the ids of the tenants in one of statuses,
// ordered. It crosses tenants and is for the platform's own work.
func (r *Registry) ListTenantIDsIn(ctx context.Context, statuses ...Status) ([]tenant.ID, error) {
	var out []tenant.ID
	err := r.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, status FROM tenants ORDER BY id`)
		if err != nil {
			return fmt.Errorf("tenant: list ids: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, status string
			if err := rows.Scan(&id, &status); err != nil {
				return fmt.Errorf("tenant: list ids: %w", err)
			}
			if slices.Contains(statuses, Status(status)) {
				out = append(out, tenant.ID(id))
			}
		}
		return rows.Err()
	})
	return out, err
}

func loadDomains(ctx context.Context, tx *storage.Tx, ts []Tenant) error {
	if len(ts) == 0 {
		return nil
	}
	idx := make(map[tenant.ID]int, len(ts))
	args := make([]any, len(ts))
	for i, t := range ts {
		idx[t.ID] = i
		args[i] = string(t.ID)
	}
	rows, err := tx.Query(ctx, `SELECT tenant_id, domain FROM tenant_domains WHERE tenant_id IN (?`+
		strings.Repeat(", ?", len(ts)-1)+`) ORDER BY domain`, args...)
	if err != nil {
		return fmt.Errorf("tenant: list domains: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, d string
		if err := rows.Scan(&id, &d); err != nil {
			return fmt.Errorf("tenant: list domains: %w", err)
		}
		if i, ok := idx[tenant.ID(id)]; ok {
			ts[i].Domains = append(ts[i].Domains, d)
		}
	}
	return rows.Err()
}

// Patch is a partial update of a tenant; nil fields are left alone.
type Patch struct {
	Name    *string         `json:"name,omitempty"`
	Tier    *string         `json:"tier,omitempty"`
	Domains *[]string       `json:"domains,omitempty"`
	Config  json.RawMessage `json:"config,omitempty"`
}

// Update applies p to the tenant. Changing the tier within one isolation model
// is immediate; a change of isolation model is a tier migration, which this
// version refuses (tier_migration_unsupported).
func (r *Registry) Update(ctx context.Context, id tenant.ID, p Patch, actor tenant.Actor) (Tenant, error) {
	var t Tenant
	err := r.db.Update(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
		var err error
		if t, err = lockTenant(ctx, tx); err != nil {
			return err
		}
		if t.Status == Offboarding || t.Status == Deleted {
			return errs.E(errs.Conflict, "tenant_offboarded", "tenant %q is %s and can no longer change", t.ID, t.Status)
		}
		changed := []string{}
		if p.Name != nil {
			if err := validName(*p.Name); err != nil {
				return err
			}
			t.Name = *p.Name
			changed = append(changed, "name")
		}
		if p.Tier != nil {
			tier, ok := r.tiers[*p.Tier]
			if !ok {
				return errs.Field("tier", "unknown_tier", "tier %q is not configured; known tiers: %s", errs.Clip(*p.Tier, 40), r.tierNames())
			}
			if tier.Isolation != t.Isolation {
				return &errs.Error{Kind: errs.Conflict, Code: "tier_migration_unsupported", Field: "tier",
					Detail: fmt.Sprintf("moving from %s to %s isolation moves the tenant's data and issuer: start a tier migration (POST /v1/tenants/%s/migrations)", t.Isolation, tier.Isolation, t.ID)}
			}
			if err := noMigrationRunning(ctx, tx); err != nil {
				return err
			}
			t.Tier = tier.Name
			changed = append(changed, "tier")
		}
		if p.Config != nil {
			cfg, err := normalizeConfig(p.Config)
			if err != nil {
				return err
			}
			t.Config = cfg
			changed = append(changed, "config")
		}
		if p.Domains != nil {
			ds, err := normalizeDomains(*p.Domains)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM tenant_domains WHERE tenant_id = ?`, tx.TenantID()); err != nil {
				return fmt.Errorf("tenant: replace domains: %w", err)
			}
			if err := insertDomains(ctx, tx, t.ID, ds); err != nil {
				return err
			}
			t.Domains = ds
			changed = append(changed, "domains")
		}
		t.UpdatedAt = r.clock.Now().Truncate(time.Microsecond)
		if _, err := tx.Exec(ctx, `UPDATE tenants SET name = ?, tier = ?, config = ?, updated_at = ? WHERE id = ?`,
			t.Name, t.Tier, string(t.Config), t.UpdatedAt.UnixMicro(), tx.TenantID()); err != nil {
			return fmt.Errorf("tenant: update: %w", err)
		}
		return r.audit.AppendTx(ctx, tx, audit.Event{TenantID: tx.TenantID(), Principal: actor.Principal,
			Action: "tenant.updated", Target: tx.TenantID(), RequestID: actor.RequestID, SourceIP: actor.SourceIP,
			Detail: map[string]string{"fields": strings.Join(changed, ",")}})
	})
	return t, err
}

// Suspend moves an active tenant to suspended. Suspending a suspended tenant is a no-op.
func (r *Registry) Suspend(ctx context.Context, id tenant.ID, actor tenant.Actor) (Tenant, error) {
	return r.transition(ctx, id, Suspended, actor, "tenant.suspended", Active)
}

// Resume moves a suspended tenant back to active. Resuming an active tenant is a no-op.
func (r *Registry) Resume(ctx context.Context, id tenant.ID, actor tenant.Actor) (Tenant, error) {
	return r.transition(ctx, id, Active, actor, "tenant.resumed", Suspended)
}

func (r *Registry) transition(ctx context.Context, id tenant.ID, to Status, actor tenant.Actor, action string, from Status) (Tenant, error) {
	var t Tenant
	err := r.db.Update(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
		var err error
		if t, err = lockTenant(ctx, tx); err != nil {
			return err
		}
		if t.Status == to {
			return nil
		}
		if t.Status != from {
			return errs.E(errs.Conflict, "invalid_tenant_state", "tenant %q is %s; only a %s tenant can become %s", t.ID, t.Status, from, to)
		}
		t.Status, t.UpdatedAt = to, r.clock.Now().Truncate(time.Microsecond)
		if err := setStatus(ctx, tx, to, t.UpdatedAt); err != nil {
			return err
		}
		return r.audit.AppendTx(ctx, tx, audit.Event{TenantID: tx.TenantID(), Principal: actor.Principal,
			Action: action, Target: tx.TenantID(), RequestID: actor.RequestID, SourceIP: actor.SourceIP})
	})
	return t, err
}

func setStatus(ctx context.Context, tx *storage.Tx, s Status, at time.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE tenants SET status = ?, updated_at = ? WHERE id = ?`,
		string(s), at.UnixMicro(), tx.TenantID()); err != nil {
		return fmt.Errorf("tenant: set status: %w", err)
	}
	return nil
}

// Delete starts offboarding: the tenant becomes offboarding at once (no new
// work is accepted for it), every teardown step runs, and the tenant ends
// deleted with its id reserved. It returns the tenant as offboarding began.
// Deleting a tenant already offboarding or deleted returns it unchanged.
func (r *Registry) Delete(ctx context.Context, id tenant.ID, actor tenant.Actor) (Tenant, error) {
	var t Tenant
	wfID := newWorkflowID()
	started := false
	err := r.db.Update(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
		var err error
		if t, err = lockTenant(ctx, tx); err != nil {
			return err
		}
		if t.Status == Offboarding || t.Status == Deleted {
			return nil
		}
		now := r.clock.Now()
		t.Status, t.UpdatedAt = Offboarding, now.Truncate(time.Microsecond)
		if err := setStatus(ctx, tx, Offboarding, t.UpdatedAt); err != nil {
			return err
		}
		// An onboarding or tier migration still running stops before its
		// next step (a migration's teardown is the offboarding steps').
		if _, err := tx.Exec(ctx, `UPDATE workflows SET status = ?, updated_at = ? WHERE tenant_id = ? AND kind IN (?, ?) AND status = ?`,
			string(WorkflowCancelled), now.UnixMicro(), tx.TenantID(), string(KindOnboarding), string(KindMigration), string(WorkflowRunning)); err != nil {
			return fmt.Errorf("tenant: cancel onboarding: %w", err)
		}
		if err := r.insertWorkflow(ctx, tx, wfID, t.ID, KindOffboarding, nil, now); err != nil {
			return err
		}
		started = true
		return r.audit.AppendTx(ctx, tx, audit.Event{TenantID: tx.TenantID(), Principal: actor.Principal,
			Action: "tenant.offboarding.started", Target: tx.TenantID(), RequestID: actor.RequestID, SourceIP: actor.SourceIP,
			Detail: map[string]string{"workflow_id": wfID}})
	})
	if err != nil || !started {
		return t, err
	}
	r.goRun(ctx, wfID, &claim{tenant: id, kind: KindOffboarding})
	return t, nil
}
