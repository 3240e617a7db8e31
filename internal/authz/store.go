package authz

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/singleflight"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

//go:embed migrations
var migrations embed.FS

// Migrations is the authz service's schema.
func Migrations() storage.Component {
	c := storage.Embedded("authz", migrations)
	c.RowSecurity = map[string]storage.Rows{
		"authz_stores":    storage.TenantRows("tenant_id"),
		"authz_templates": storage.TenantRows("tenant_id"),
		// Global policies (tenant_id empty) are written and read in the
		// platform scope only.
		"authz_policies": storage.TenantOrPlatformRows("tenant_id"),
	}
	return c
}

// notifyChannel is the PostgreSQL channel on which writes invalidate caches.
const notifyChannel = "bulkhead_authz"

// Default entity types of a token's user and groups (see Store).
const (
	DefaultPrincipalType = "User"
	DefaultGroupType     = "Group"
)

// Bounds of one store: policies (static and linked) plus templates, and
// the characters of their statements.
const (
	MaxPoliciesPerStore = 10000
	MaxStoreChars       = 4 << 20
)

// Options configure a Service.
type Options struct {
	Clock     clock.Clock
	Logger    *slog.Logger
	CacheSize int // compiled policy sets kept; default 1000
}

// Service is the authorization service.
type Service struct {
	db    *storage.DB
	audit *audit.Log
	clock clock.Clock
	log   *slog.Logger
	cache *cache
	inval *inval.Channel     // audited writes that drop policy sets cached here and on other nodes
	loads singleflight.Group // cache misses, by tenant
}

// New returns the service. On PostgreSQL, call Run: until this node
// listens for other nodes' writes, it caches no compiled policy sets.
func New(db *storage.DB, log *audit.Log, opts Options) *Service {
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 1000
	}
	// On SQLite one process owns the database and invalidates its own cache;
	// on PostgreSQL the cache waits for Run to listen to the other nodes.
	on := db.Dialect() != storage.Postgres
	s := &Service{db: db, audit: log, clock: opts.Clock, log: opts.Logger, cache: newCache(opts.CacheSize, on)}
	s.inval = inval.New(db, notifyChannel, log, opts.Logger, inval.Hooks{
		Evict:   func(_ context.Context, tid string) { s.cache.evict(tenant.ID(tid)) },
		Purge:   func(context.Context) { s.cache.purge() }, // a global policy changed: every tenant's set
		Enable:  func(context.Context) { s.cache.enable() },
		Disable: func(context.Context) { s.cache.disable() },
	})
	return s
}

// Run applies other nodes' invalidations to this node's cache until ctx
// ends, and returns then. On PostgreSQL the cache is used only while this
// node listens for them.
func (s *Service) Run(ctx context.Context) error {
	return s.inval.Run(ctx)
}

// CachedSets is the number of tenants' compiled policy sets in memory.
func (s *Service) CachedSets() int { return s.cache.sets.Len() }

// Store is a tenant's policy store settings.
type Store struct {
	TenantID tenant.ID `json:"tenant_id"`
	// HasSchema says whether policies are validated against a schema.
	HasSchema bool `json:"has_schema"`
	// LogAllows audits allow decisions too (denies always are).
	LogAllows bool `json:"log_allows"`
	// PrincipalType and GroupType are the entity types of the caller's user
	// and groups when authorize defaults the principal to the token's user.
	PrincipalType string    `json:"principal_type"`
	GroupType     string    `json:"group_type"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// StoreUpdate changes a store's settings; nil fields are left alone.
type StoreUpdate = api.PatchPolicyStore

// Policy is a static or template-linked policy.
type Policy struct {
	ID string `json:"id"`
	// Type is "static" or "linked".
	Type string `json:"type"`
	// Statement is the Cedar text; for a linked policy, the template with
	// its slots filled, as it is evaluated now.
	Statement   string     `json:"statement"`
	Description string     `json:"description"`
	TemplateID  string     `json:"template_id,omitempty"`
	Principal   *EntityRef `json:"principal,omitempty"`
	Resource    *EntityRef `json:"resource,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

// Policy types.
const (
	Static = "static"
	Linked = "linked"
)

// PolicyInput creates or replaces a policy: a statement (static), or a
// template id with slot values (linked).
type PolicyInput struct {
	Statement   string     `json:"statement,omitempty"`
	Description string     `json:"description,omitempty"`
	TemplateID  string     `json:"template_id,omitempty"`
	Principal   *EntityRef `json:"principal,omitempty"`
	Resource    *EntityRef `json:"resource,omitempty"`
}

// Template is a policy template with ?principal and/or ?resource slots.
type Template struct {
	ID          string    `json:"id"`
	Statement   string    `json:"statement"`
	Description string    `json:"description"`
	Slots       []Slot    `json:"slots"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// TemplateInput creates or replaces a template.
type TemplateInput = api.PolicyTemplateInput

// ListOptions page through policies or templates, ordered by id.
type ListOptions struct {
	Limit  int
	Cursor string
}

// PolicyPage is a page of policies.
type PolicyPage struct {
	Items      []Policy `json:"items"`
	NextCursor string   `json:"next_cursor"`
}

// TemplatePage is a page of templates.
type TemplatePage struct {
	Items      []Template `json:"items"`
	NextCursor string     `json:"next_cursor"`
}

// OnboardingStep creates the tenant's empty policy store.
func (s *Service) OnboardingStep() tenants.Step {
	return tenants.Step{Name: "authz", Run: func(ctx context.Context, tx *storage.Tx, _ tenants.Tenant) error {
		now := s.clock.Now().UnixMicro()
		if _, err := tx.Exec(ctx, `INSERT INTO authz_stores (tenant_id, schema_text, schema_format, schema_at, log_allows, principal_type, group_type, created_at, updated_at)
			VALUES (?, '', '', 0, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id) DO NOTHING`,
			tx.TenantID(), false, DefaultPrincipalType, DefaultGroupType, now, now); err != nil {
			return fmt.Errorf("authz: create store: %w", err)
		}
		return nil
	}}
}

// OffboardingStep deletes the tenant's policy store.
func (s *Service) OffboardingStep() tenants.Step {
	return tenants.Step{Name: "authz", Run: func(ctx context.Context, tx *storage.Tx, _ tenants.Tenant) error {
		for _, table := range []string{"authz_policies", "authz_templates", "authz_stores"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = ?`, tx.TenantID()); err != nil {
				return fmt.Errorf("authz: remove %s: %w", table, err)
			}
		}
		return s.inval.Changed(ctx, tx, tx.TenantID())
	}}
}

// storeRow is a store as stored.
type storeRow struct {
	Store
	schemaText, schemaFormat string
	schemaAt                 time.Time
}

func notFound(tid tenant.ID) error {
	return errs.E(errs.NotFound, "tenant_not_found", "tenant %q not found", tid)
}

// readStore reads the store of tx's tenant; with lock (in a write), it
// holds the store's row until the commit, so that writes to one store are
// serial (a schema and a policy, a template's deletion and a new link).
func readStore(ctx context.Context, tx *storage.Tx, lock bool) (storeRow, error) {
	var st storeRow
	var created, updated, schemaAt int64
	q := `SELECT schema_text, schema_format, schema_at, log_allows, principal_type, group_type, created_at, updated_at
		FROM authz_stores WHERE tenant_id = ?`
	if lock && tx.Dialect() == storage.Postgres {
		q += ` FOR UPDATE` // SQLite has one writer at a time already
	}
	err := tx.QueryRow(ctx, q, tx.TenantID()).
		Scan(&st.schemaText, &st.schemaFormat, &schemaAt, &st.LogAllows, &st.PrincipalType, &st.GroupType, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return st, notFound(tenant.ID(tx.TenantID()))
	}
	if err != nil {
		return st, fmt.Errorf("authz: read store: %w", err)
	}
	st.TenantID, st.HasSchema = tenant.ID(tx.TenantID()), st.schemaText != ""
	st.CreatedAt, st.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	st.schemaAt = time.UnixMicro(schemaAt).UTC()
	return st, nil
}

// update runs a change to tenant tid's store as an audited write (see
// inval.Channel.Write), or with tid "" a change to the global policies,
// which are part of every tenant's policy set: its write purges every
// node's cache. The tenant must be active and have a store, whose row is
// held until the commit; global writes take a lock instead. fn returns
// the audit event's action and target.
func (s *Service) update(ctx context.Context, tid tenant.ID, actor tenant.Actor, fn func(tx *storage.Tx, st storeRow) (inval.Change, error)) error {
	return s.inval.Write(ctx, tid, actor, func(tx *storage.Tx) (inval.Change, error) {
		var st storeRow
		if tid != "" {
			if err := tenants.RequireActiveTx(ctx, tx); err != nil {
				return inval.Change{}, err
			}
			var err error
			if st, err = readStore(ctx, tx, true); err != nil {
				return inval.Change{}, err
			}
		} else if err := tx.Lock(ctx, "authz-global-policies"); err != nil {
			return inval.Change{}, err
		}
		return fn(tx, st)
	})
}

// view reads tenant tid's store (tid "" for the global policies), 404 when it has none.
func (s *Service) view(ctx context.Context, tid tenant.ID, fn func(tx *storage.Tx, st storeRow) error) error {
	if tid == "" {
		return s.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error { return fn(tx, storeRow{}) })
	}
	return s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		st, err := readStore(ctx, tx, false)
		if err != nil {
			return err
		}
		return fn(tx, st)
	})
}

// GetStore returns tenant tid's store settings.
func (s *Service) GetStore(ctx context.Context, tid tenant.ID) (Store, error) {
	var out Store
	err := s.view(ctx, tid, func(_ *storage.Tx, st storeRow) error { out = st.Store; return nil })
	return out, err
}

// UpdateStore changes tenant tid's store settings.
func (s *Service) UpdateStore(ctx context.Context, tid tenant.ID, u StoreUpdate, actor tenant.Actor) (Store, error) {
	for field, v := range map[string]*string{"principal_type": u.PrincipalType, "group_type": u.GroupType} {
		if v != nil {
			if err := (&EntityRef{Type: *v}).check(field, false); err != nil {
				return Store{}, errs.Field(field, "invalid_entity_type", "%s is a Cedar entity type such as User or App::User", field)
			}
		}
	}
	var out Store
	err := s.update(ctx, tid, actor, func(tx *storage.Tx, st storeRow) (inval.Change, error) {
		if u.LogAllows != nil {
			st.LogAllows = *u.LogAllows
		}
		if u.PrincipalType != nil {
			st.PrincipalType = *u.PrincipalType
		}
		if u.GroupType != nil {
			st.GroupType = *u.GroupType
		}
		st.UpdatedAt = s.now()
		if _, err := tx.Exec(ctx, `UPDATE authz_stores SET log_allows = ?, principal_type = ?, group_type = ?, updated_at = ? WHERE tenant_id = ?`,
			st.LogAllows, st.PrincipalType, st.GroupType, st.UpdatedAt.UnixMicro(), tx.TenantID()); err != nil {
			return inval.Change{}, fmt.Errorf("authz: update store: %w", err)
		}
		out = st.Store
		return inval.Change{Action: "authz.store_updated", Target: string(tid)}, nil
	})
	return out, err
}

func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

// checkDescription bounds a description.
func checkDescription(d string) error {
	if len(d) > 1000 || !utf8.ValidString(d) || strings.ContainsRune(d, 0) {
		return errs.Field("description", "invalid_description", "a description is at most 1000 bytes of UTF-8 text")
	}
	return nil
}

// Id prefixes of policies and templates.
const (
	policyPrefix   = "pol"
	templatePrefix = "tpl"
)

func policyNotFound(id string) error {
	return errs.E(errs.NotFound, "policy_not_found", "policy %q not found", errs.Clip(id, 64))
}

func templateNotFound(id string) error {
	return errs.E(errs.NotFound, "template_not_found", "policy template %q not found", errs.Clip(id, 64))
}

// countObjects counts a store's policies and templates, for the quota.
func countObjects(ctx context.Context, tx *storage.Tx) (int, error) {
	var n, m int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM authz_policies WHERE tenant_id = ?`, tx.TenantID()).Scan(&n); err != nil {
		return 0, fmt.Errorf("authz: count policies: %w", err)
	}
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM authz_templates WHERE tenant_id = ?`, tx.TenantID()).Scan(&m); err != nil {
		return 0, fmt.Errorf("authz: count templates: %w", err)
	}
	return n + m, nil
}

// checkQuota refuses to add objects (policies or templates) holding
// chars characters of statements to a store that would then be over its
// bounds. A replacement adds no object and counts its new statement in full.
func checkQuota(ctx context.Context, tx *storage.Tx, objects, chars int) error {
	n, err := countObjects(ctx, tx)
	if err != nil {
		return err
	}
	if n+objects > MaxPoliciesPerStore {
		return errs.E(errs.Conflict, "store_full", "a policy store holds at most %d policies and templates", MaxPoliciesPerStore)
	}
	var stored int64
	if err := tx.QueryRow(ctx, `SELECT COALESCE((SELECT SUM(LENGTH(statement)) FROM authz_policies WHERE tenant_id = ?), 0)
		+ COALESCE((SELECT SUM(LENGTH(statement)) FROM authz_templates WHERE tenant_id = ?), 0)`,
		tx.TenantID(), tx.TenantID()).Scan(&stored); err != nil {
		return fmt.Errorf("authz: measure store: %w", err)
	}
	if stored+int64(chars) > MaxStoreChars {
		return errs.E(errs.Conflict, "store_full", "the statements of a policy store hold at most %d characters", MaxStoreChars)
	}
	return nil
}

// refColumns is the column pair for an optional entity reference.
func refColumns(e *EntityRef) (string, string) {
	if e == nil {
		return "", ""
	}
	return e.Type, e.ID
}

func refFromColumns(typ, id string) *EntityRef {
	if typ == "" {
		return nil
	}
	return &EntityRef{Type: typ, ID: id}
}

// jsonString reports whether raw is a JSON string and returns it.
func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}
