package identity

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/page"
	"github.com/bulkhead-dev/bulkhead/internal/statecache"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Directory stores the users and groups of every tenant.
type Directory struct {
	db     *storage.DB
	audit  *audit.Log
	clock  clock.Clock
	argon2 Argon2Params

	dummyOnce sync.Once
	dummy     string  // a hash to verify against when the email is unknown
	wrapper   Wrapper // seals TOTP secrets
	// hasher bounds password hashing and checks node-wide (see hasher).
	hasher *hasher
	// allowPrivateIssuers lets tenants connect providers on loopback,
	// private and link-local addresses (--allow-private-upstreams).
	allowPrivateIssuers bool
	// clients keeps the OpenID provider's reads of clients by id
	// (Options.ReadCache).
	clients *statecache.Reads[string, clientRead]
	// scopeUse is when NoteScopeUse last wrote each scope, by client.
	scopeUseMu sync.Mutex
	scopeUse   map[string]map[string]time.Time
}

// Options configure a Directory.
type Options struct {
	Clock   clock.Clock
	Argon2  Argon2Params // default DefaultArgon2
	Wrapper Wrapper      // seals TOTP secrets (the root key)
	// HashWorkers and HashQueue bound password hashing: that many at a
	// time (default half the cores, at least one; one tenant half of those), that many waiting (default 16 per
	// worker), then 503 password_hashing_busy.
	HashWorkers, HashQueue int
	// HashCommand, if set, runs the hashing in child processes at a low
	// CPU priority, one per worker, started with this command (path and
	// arguments; the server's binary runs them with `hash-worker`) by Run.
	// Empty: in the server.
	HashCommand []string
	Logger      *slog.Logger // default: discard

	// AllowPrivateIssuers accepts tenants' OpenID providers on loopback,
	// private and link-local addresses, and over http on loopback (the
	// operator's --allow-private-upstreams).
	AllowPrivateIssuers bool

	// ReadCache keeps the clients the OpenID provider reads by id
	// (ClientByIDAllTenants, AuthenticateClientAllTenants) under the rule
	// of package statecache; zero: none. A deleted client stops at once
	// on this node and within the TTL on others, as its tokens do.
	ReadCache statecache.Config
}

// NewDirectory returns the directory over db, auditing changes in log.
func NewDirectory(db *storage.DB, log *audit.Log, opts Options) *Directory {
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Argon2 == (Argon2Params{}) {
		opts.Argon2 = DefaultArgon2
	}
	return &Directory{db: db, audit: log, clock: opts.Clock, argon2: opts.Argon2, wrapper: opts.Wrapper,
		hasher: newHasher(opts.Argon2, opts.HashWorkers, opts.HashQueue, opts.HashCommand, opts.Clock, opts.Logger), allowPrivateIssuers: opts.AllowPrivateIssuers,
		clients: statecache.New[string, clientRead](opts.ReadCache), scopeUse: map[string]map[string]time.Time{}}
}

// Run runs the password hashing processes (Options.HashCommand) until ctx
// ends; without them it returns at once.
func (d *Directory) Run(ctx context.Context) error {
	if d.hasher.procs == nil {
		return nil
	}
	return d.hasher.procs.Run(ctx)
}

// Authenticate checks a user's email and password in tenant tid and returns
// the user. An unknown email, a wrong password and a disabled user give the
// same error (invalid_credentials), and an unknown email costs a password
// verification too, so the answer's timing does not tell which it was.
func (d *Directory) Authenticate(ctx context.Context, tid tenant.ID, email, password string) (User, error) {
	bad := errs.E(errs.Unauthenticated, "invalid_credentials", "the email or password is wrong")
	var u User
	var hash string
	err := sql.ErrNoRows
	if utf8.ValidString(email) && !strings.ContainsRune(email, 0) && len(email) <= 254 {
		err = d.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
			err := tx.QueryRow(ctx, `SELECT id, password_hash FROM users WHERE tenant_id = ? AND email_key = ?`,
				tx.TenantID(), strings.ToLower(email)).Scan(&u.ID, &hash)
			if err != nil {
				return err
			}
			u, err = getUser(ctx, tx, u.ID)
			return err
		})
	}
	if errors.Is(err, sql.ErrNoRows) || (err == nil && hash == "") {
		d.dummyOnce.Do(func() { d.dummy = HashPassword("no such user", d.argon2) })
		if _, err := d.hasher.verify(ctx, tid, d.dummy, password); err != nil {
			return User{}, err
		}
		return User{}, bad
	}
	if err != nil {
		return User{}, err
	}
	ok, err := d.hasher.verify(ctx, tid, hash, password)
	if err != nil {
		return User{}, err
	}
	if !ok || u.Status != UserActive {
		return User{}, bad
	}
	return u, nil
}

// UserTenantAllTenants returns the tenant of a user id. It crosses tenants:
// a token's subject arrives before its tenant is known.
func (d *Directory) UserTenantAllTenants(ctx context.Context, userID string) (tenant.ID, error) {
	var tid string
	err := d.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT tenant_id FROM users WHERE id = ?`, userID).Scan(&tid)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return "", userNotFound(userID)
	}
	return tenant.ID(tid), err
}

// OnboardingStep returns the step that gives a new tenant its identity
// configuration (default password policy) and its admins group.
func (d *Directory) OnboardingStep() tenants.Step {
	return tenants.Step{Name: "identity", Run: func(ctx context.Context, tx *storage.Tx, t tenants.Tenant) error {
		now := d.clock.Now().UnixMicro()
		if _, err := tx.Exec(ctx, `INSERT INTO identity_configs (tenant_id, password_min_length, created_at, updated_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id) DO NOTHING`, tx.TenantID(), DefaultPasswordPolicy.MinLength, now, now); err != nil {
			return fmt.Errorf("identity: create config: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO user_groups (id, tenant_id, name, description, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, name) DO NOTHING`,
			ids.New("grp"), tx.TenantID(), AdminsGroup, "administrators of the tenant", now); err != nil {
			return fmt.Errorf("identity: create admins group: %w", err)
		}
		raw, ok := tenants.StepInput(ctx, InitialAdminInput)
		if !ok {
			return nil
		}
		var admin initialAdmin
		if err := json.Unmarshal(raw, &admin); err != nil {
			return fmt.Errorf("identity: initial admin input: %w", err)
		}
		return d.createInitialAdmin(ctx, tx, admin, now)
	}}
}

// InitialAdminInput is the onboarding input that makes the tenant's first admin.
const InitialAdminInput = "identity.admin"

type initialAdmin struct {
	Email        string `json:"email"`
	PasswordHash string `json:"password_hash"`
}

// PrepareInitialAdmin validates email and returns the onboarding input that
// makes it the tenant's first admin (a member of admins) with a temporary
// password, and that password, to be shown once. The input holds only the
// password's hash.
func (d *Directory) PrepareInitialAdmin(ctx context.Context, email string) (tenants.Input, string, error) {
	email, _, err := normalizeEmail(email)
	if err != nil {
		err.(*errs.Error).Field = "admin_email"
		return nil, "", err
	}
	password := NewTemporaryPassword()
	hash, err := d.hasher.hash(ctx, "", password)
	if err != nil {
		return nil, "", err
	}
	raw, _ := json.Marshal(initialAdmin{Email: email, PasswordHash: hash})
	return tenants.Input{InitialAdminInput: raw}, password, nil
}

// passwordHash checks password against tenant tid's policy (for the user
// with email) and hashes it, outside any write transaction.
func (d *Directory) passwordHash(ctx context.Context, tid tenant.ID, password, email string) (string, error) {
	var pp PasswordPolicy
	err := d.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		var err error
		pp, err = d.policy(ctx, tx)
		return err
	})
	if err != nil {
		return "", err
	}
	if err := pp.Check(password, email); err != nil {
		return "", err
	}
	return d.hasher.hash(ctx, tid, password)
}

func (d *Directory) createInitialAdmin(ctx context.Context, tx *storage.Tx, admin initialAdmin, now int64) error {
	email, key, err := normalizeEmail(admin.Email)
	if err != nil {
		return err
	}
	id := ids.New("usr")
	if _, err := tx.Exec(ctx, `INSERT INTO users (id, tenant_id, email, email_key, status, attributes, password_hash,
		password_change_required, password_changed_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, '{}', ?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, email_key) DO NOTHING`, id, tx.TenantID(), email, key, string(UserActive), admin.PasswordHash, true, now, now, now); err != nil {
		return fmt.Errorf("identity: create initial admin: %w", err)
	}
	if err := tx.QueryRow(ctx, `SELECT id FROM users WHERE tenant_id = ? AND email_key = ?`, tx.TenantID(), key).Scan(&id); err != nil {
		return fmt.Errorf("identity: read initial admin: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO group_members (tenant_id, group_id, user_id, added_at)
		SELECT tenant_id, id, ?, ? FROM user_groups WHERE tenant_id = ? AND name = ? ON CONFLICT (group_id, user_id) DO NOTHING`,
		id, now, tx.TenantID(), AdminsGroup); err != nil {
		return fmt.Errorf("identity: make initial admin an admin: %w", err)
	}
	return d.audit.AppendTx(ctx, tx, audit.Event{TenantID: tx.TenantID(), Principal: "system", Action: "user.created", Target: id,
		Detail: map[string]string{"role": "initial admin"}})
}

// OffboardingStep returns the step that removes a tenant's OAuth clients,
// users, groups and identity configuration.
func (d *Directory) OffboardingStep() tenants.Step {
	return tenants.Step{Name: "identity", Run: func(ctx context.Context, tx *storage.Tx, _ tenants.Tenant) error {
		for _, table := range []string{"tenant_branding", "oauth_clients", "oauth_client_scope_use", "tenant_idps", "federated_identities", "user_totp", "group_members", "users", "user_groups", "identity_configs"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = ?`, tx.TenantID()); err != nil {
				return fmt.Errorf("identity: remove %s: %w", table, err)
			}
		}
		return nil
	}}
}

func (d *Directory) policy(ctx context.Context, tx *storage.Tx) (PasswordPolicy, error) {
	c, err := readConfig(ctx, tx)
	return PasswordPolicy{MinLength: c.PasswordMinLength}, err
}

// CreateUserRequest is what an admin supplies to create a user.
type CreateUserRequest = api.CreateUser

// CreatedUser is a new user and, when the request had no password, the
// temporary password, which is not stored in clear and not shown again.
type CreatedUser struct {
	User
	TemporaryPassword string `json:"temporary_password,omitempty"`
}

func (d *Directory) event(tx *storage.Tx, actor tenant.Actor, action, target string) audit.Event {
	return audit.Event{TenantID: tx.TenantID(), Principal: actor.Principal, Action: action, Target: target,
		RequestID: actor.RequestID, SourceIP: actor.SourceIP}
}

// CreateUser adds a user to tenant tid.
func (d *Directory) CreateUser(ctx context.Context, tid tenant.ID, req CreateUserRequest, actor tenant.Actor) (CreatedUser, error) {
	email, key, err := normalizeEmail(req.Email)
	if err != nil {
		return CreatedUser{}, err
	}
	attrs, err := normalizeAttributes(req.Attributes)
	if err != nil {
		return CreatedUser{}, err
	}
	password, temporary, hash := req.Password, false, ""
	if password == "" {
		password, temporary = NewTemporaryPassword(), true
		hash, err = d.hasher.hash(ctx, tid, password)
	} else {
		hash, err = d.passwordHash(ctx, tid, password, email)
	}
	if err != nil {
		return CreatedUser{}, err
	}
	var out CreatedUser
	err = d.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return err
		}
		if err := tx.WithinQuota(ctx, "users", MaxUsersPerTenant, "users"); err != nil {
			return err
		}
		groups, err := groupIDs(ctx, tx, req.Groups)
		if err != nil {
			return err
		}
		now := d.clock.Now().Truncate(time.Microsecond)
		u := User{ID: ids.New("usr"), TenantID: tenant.ID(tx.TenantID()), Email: email, Status: UserActive, Attributes: attrs,
			Groups: names(req.Groups), PasswordSet: true, PasswordChangeRequired: temporary, CreatedAt: now, UpdatedAt: now}
		if _, err := tx.Exec(ctx, `INSERT INTO users (id, tenant_id, email, email_key, status, attributes, password_hash,
			password_change_required, password_changed_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.ID, tx.TenantID(), email, key, string(u.Status), string(attrs), hash,
			temporary, now.UnixMicro(), now.UnixMicro(), now.UnixMicro()); err != nil {
			if storage.IsUniqueViolation(err) {
				return &errs.Error{Kind: errs.Conflict, Code: "user_exists", Field: "email", Detail: "a user with this email already exists in the tenant"}
			}
			return fmt.Errorf("identity: insert user: %w", err)
		}
		for _, g := range groups {
			if err := addMember(ctx, tx, g, u.ID, now); err != nil {
				return err
			}
		}
		out = CreatedUser{User: u}
		if temporary {
			out.TemporaryPassword = password
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, actor, "user.created", u.ID))
	})
	return out, err
}

func names(gs []string) []string {
	out := append([]string{}, gs...)
	slicesSortCompact(&out)
	return out
}

// groupIDs resolves group names of the scope's tenant to ids.
func groupIDs(ctx context.Context, tx *storage.Tx, groupNames []string) (map[string]string, error) {
	out := map[string]string{}
	for i, n := range groupNames {
		if err := validGroupName(n); err != nil {
			err.(*errs.Error).Field = fmt.Sprintf("groups[%d]", i)
			return nil, err
		}
		var id string
		err := tx.QueryRow(ctx, `SELECT id FROM user_groups WHERE tenant_id = ? AND name = ?`, tx.TenantID(), n).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, errs.Field(fmt.Sprintf("groups[%d]", i), "unknown_group", "group %q does not exist in this tenant", n)
		}
		if err != nil {
			return nil, fmt.Errorf("identity: read group: %w", err)
		}
		out[n] = id
	}
	return out, nil
}

func addMember(ctx context.Context, tx *storage.Tx, groupID, userID string, at time.Time) error {
	if _, err := tx.Exec(ctx, `INSERT INTO group_members (tenant_id, group_id, user_id, added_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (group_id, user_id) DO NOTHING`, tx.TenantID(), groupID, userID, at.UnixMicro()); err != nil {
		return fmt.Errorf("identity: add member: %w", err)
	}
	return nil
}

// userColumns are a user's columns in a query FROM users (not aliased):
// whether a confirmed authenticator app exists is a column too, read by
// the primary key of user_totp.
const userColumns = `id, email, status, attributes, password_hash, password_change_required, password_changed_at, created_at, updated_at,
	EXISTS (SELECT 1 FROM user_totp t WHERE t.tenant_id = users.tenant_id AND t.user_id = users.id AND t.confirmed)`

func scanUser(tid string, row interface{ Scan(...any) error }) (User, error) {
	u := User{TenantID: tenant.ID(tid), Groups: []string{}}
	var status, attrs, hash string
	var created, updated, changed int64
	if err := row.Scan(&u.ID, &u.Email, &status, &attrs, &hash, &u.PasswordChangeRequired, &changed, &created, &updated, &u.TOTPConfirmed); err != nil {
		return User{}, err
	}
	u.PasswordChangedAt = time.UnixMicro(changed).UTC()
	u.Status, u.Attributes, u.PasswordSet = UserStatus(status), json.RawMessage(attrs), hash != ""
	u.CreatedAt, u.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return u, nil
}

func userNotFound(id string) error {
	return errs.E(errs.NotFound, "user_not_found", "user %q not found", errs.Clip(id, 64))
}

func getUser(ctx context.Context, tx *storage.Tx, id string) (User, error) {
	if !ids.Valid(id, "usr") {
		return User{}, userNotFound(id)
	}
	u, err := scanUser(tx.TenantID(), tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE tenant_id = ? AND id = ?`, tx.TenantID(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, userNotFound(id)
	}
	if err != nil {
		return User{}, fmt.Errorf("identity: get user: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT g.name FROM group_members m JOIN user_groups g ON g.id = m.group_id
		WHERE m.tenant_id = ? AND m.user_id = ? ORDER BY g.name`, tx.TenantID(), id)
	if err != nil {
		return User{}, fmt.Errorf("identity: user groups: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return User{}, err
		}
		u.Groups = append(u.Groups, n)
	}
	return u, rows.Err()
}

// GetUser returns one user of tenant tid.
func (d *Directory) GetUser(ctx context.Context, tid tenant.ID, id string) (User, error) {
	var u User
	err := d.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		var err error
		u, err = getUser(ctx, tx, id)
		return err
	})
	return u, err
}

// ListOptions page through users or groups.
type ListOptions struct {
	Limit  int    // 1..1000, default 100
	Cursor string // from a previous page
	Email  string // users only: exact (case-insensitive) match
}

// UserPage is a page of users ordered by id.
type UserPage struct {
	Items      []User `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// ListUsers returns a page of tenant tid's users.
func (d *Directory) ListUsers(ctx context.Context, tid tenant.ID, opts ListOptions) (UserPage, error) {
	limit, after, err := page.Bounds(opts.Limit, opts.Cursor)
	if err != nil {
		return UserPage{}, err
	}
	out := UserPage{Items: []User{}}
	err = d.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		q := `SELECT ` + userColumns + ` FROM users WHERE tenant_id = ? AND id > ?`
		args := []any{tx.TenantID(), after}
		if opts.Email != "" {
			if !utf8.ValidString(opts.Email) || strings.ContainsRune(opts.Email, 0) {
				return errs.Field("email", "invalid_email", "email must be UTF-8 text")
			}
			q += ` AND email_key = ?`
			args = append(args, strings.ToLower(opts.Email))
		}
		rows, err := tx.Query(ctx, q+` ORDER BY id LIMIT ?`, append(args, limit+1)...)
		if err != nil {
			return fmt.Errorf("identity: list users: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			u, err := scanUser(tx.TenantID(), rows)
			if err != nil {
				return fmt.Errorf("identity: list users: %w", err)
			}
			out.Items = append(out.Items, u)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		out.Items, out.NextCursor = page.Trim(out.Items, limit, func(u User) string { return u.ID })
		return d.loadGroups(ctx, tx, out.Items)
	})
	return out, err
}

func (d *Directory) loadGroups(ctx context.Context, tx *storage.Tx, us []User) error {
	if len(us) == 0 {
		return nil
	}
	idx := map[string]int{}
	args := []any{tx.TenantID()}
	for i, u := range us {
		idx[u.ID] = i
		args = append(args, u.ID)
	}
	rows, err := tx.Query(ctx, `SELECT m.user_id, g.name FROM group_members m JOIN user_groups g ON g.id = m.group_id
		WHERE m.tenant_id = ? AND m.user_id IN (?`+strings.Repeat(", ?", len(us)-1)+`) ORDER BY g.name`, args...)
	if err != nil {
		return fmt.Errorf("identity: list groups of users: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var uid, n string
		if err := rows.Scan(&uid, &n); err != nil {
			return err
		}
		us[idx[uid]].Groups = append(us[idx[uid]].Groups, n)
	}
	return rows.Err()
}

// UserPatch is a partial update of a user; nil fields are left alone.
type UserPatch struct {
	Email      *string         `json:"email,omitempty"`
	Status     *UserStatus     `json:"status,omitempty"`
	Attributes json.RawMessage `json:"attributes,omitempty"`
	Password   *string         `json:"password,omitempty"`
}

// UpdateUser applies p to a user of tenant tid. A password set by an admin
// must satisfy the tenant's policy.
func (d *Directory) UpdateUser(ctx context.Context, tid tenant.ID, id string, p UserPatch, actor tenant.Actor) (User, error) {
	var u User
	hash := ""
	if p.Password != nil {
		email := ""
		if p.Email != nil {
			email = *p.Email
		} else if cur, err := d.GetUser(ctx, tid, id); err == nil {
			email = cur.Email
		} else {
			return u, err
		}
		var err error
		if hash, err = d.passwordHash(ctx, tid, *p.Password, email); err != nil {
			return u, err
		}
	}
	err := d.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return err
		}
		var err error
		if u, err = getUser(ctx, tx, id); err != nil {
			return err
		}
		key := strings.ToLower(u.Email)
		var changed []string
		if p.Email != nil {
			if u.Email, key, err = normalizeEmail(*p.Email); err != nil {
				return err
			}
			changed = append(changed, "email")
		}
		if p.Status != nil {
			if *p.Status != UserActive && *p.Status != UserDisabled {
				return errs.Field("status", "invalid_status", "status must be active or disabled")
			}
			u.Status = *p.Status
			changed = append(changed, "status")
		}
		if p.Attributes != nil {
			if u.Attributes, err = normalizeAttributes(p.Attributes); err != nil {
				return err
			}
			changed = append(changed, "attributes")
		}
		u.UpdatedAt = d.clock.Now().Truncate(time.Microsecond)
		if _, err := tx.Exec(ctx, `UPDATE users SET email = ?, email_key = ?, status = ?, attributes = ?, updated_at = ?
			WHERE tenant_id = ? AND id = ?`, u.Email, key, string(u.Status), string(u.Attributes), u.UpdatedAt.UnixMicro(),
			tx.TenantID(), u.ID); err != nil {
			if storage.IsUniqueViolation(err) {
				return &errs.Error{Kind: errs.Conflict, Code: "user_exists", Field: "email", Detail: "a user with this email already exists in the tenant"}
			}
			return fmt.Errorf("identity: update user: %w", err)
		}
		if p.Password != nil {
			if _, err := tx.Exec(ctx, `UPDATE users SET password_hash = ?, password_change_required = ?, password_changed_at = ? WHERE tenant_id = ? AND id = ?`,
				hash, false, u.UpdatedAt.UnixMicro(), tx.TenantID(), u.ID); err != nil {
				return fmt.Errorf("identity: set password: %w", err)
			}
			u.PasswordSet, u.PasswordChangeRequired, u.PasswordChangedAt = true, false, u.UpdatedAt
			changed = append(changed, "password")
		}
		ev := d.event(tx, actor, "user.updated", u.ID)
		ev.Detail = map[string]string{"fields": strings.Join(changed, ",")}
		return d.audit.AppendTx(ctx, tx, ev)
	})
	return u, err
}

// DeleteUser removes a user of tenant tid and their group memberships.
func (d *Directory) DeleteUser(ctx context.Context, tid tenant.ID, id string, actor tenant.Actor) error {
	return d.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return err
		}
		if _, err := getUser(ctx, tx, id); err != nil {
			return err
		}
		for _, table := range []string{"group_members", "user_totp", "federated_identities"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = ? AND user_id = ?`, tx.TenantID(), id); err != nil {
				return fmt.Errorf("identity: delete user's %s: %w", table, err)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM users WHERE tenant_id = ? AND id = ?`, tx.TenantID(), id); err != nil {
			return fmt.Errorf("identity: delete user: %w", err)
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, actor, "user.deleted", id))
	})
}

// CreateGroupRequest is what an admin supplies to create a group.
type CreateGroupRequest = api.CreateGroup

// CreateGroup adds a group to tenant tid.
func (d *Directory) CreateGroup(ctx context.Context, tid tenant.ID, req CreateGroupRequest, actor tenant.Actor) (Group, error) {
	if err := validGroupName(req.Name); err != nil {
		return Group{}, err
	}
	if utf8.RuneCountInString(req.Description) > 500 || !utf8.ValidString(req.Description) || strings.ContainsRune(req.Description, 0) {
		return Group{}, errs.Field("description", "invalid_description", "description must be at most 500 characters of text")
	}
	var g Group
	err := d.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return err
		}
		if err := tx.WithinQuota(ctx, "user_groups", MaxGroupsPerTenant, "groups"); err != nil {
			return err
		}
		now := d.clock.Now().Truncate(time.Microsecond)
		g = Group{ID: ids.New("grp"), TenantID: tenant.ID(tx.TenantID()), Name: req.Name, Description: req.Description, CreatedAt: now}
		if _, err := tx.Exec(ctx, `INSERT INTO user_groups (id, tenant_id, name, description, created_at) VALUES (?, ?, ?, ?, ?)`,
			g.ID, tx.TenantID(), g.Name, g.Description, now.UnixMicro()); err != nil {
			if storage.IsUniqueViolation(err) {
				return &errs.Error{Kind: errs.Conflict, Code: "group_exists", Field: "name", Detail: fmt.Sprintf("group %q already exists in the tenant", g.Name)}
			}
			return fmt.Errorf("identity: insert group: %w", err)
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, actor, "group.created", g.Name))
	})
	return g, err
}

// ListGroups returns every group of tenant tid with its member count.
func (d *Directory) ListGroups(ctx context.Context, tid tenant.ID) ([]Group, error) {
	out := []Group{}
	err := d.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT g.id, g.name, g.description, g.created_at,
			(SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id AND m.tenant_id = g.tenant_id)
			FROM user_groups g WHERE g.tenant_id = ? ORDER BY g.name`, tx.TenantID())
		if err != nil {
			return fmt.Errorf("identity: list groups: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			g := Group{TenantID: tenant.ID(tx.TenantID())}
			var created int64
			if err := rows.Scan(&g.ID, &g.Name, &g.Description, &created, &g.Members); err != nil {
				return fmt.Errorf("identity: list groups: %w", err)
			}
			g.CreatedAt = time.UnixMicro(created).UTC()
			out = append(out, g)
		}
		return rows.Err()
	})
	return out, err
}

// SetMember adds (member true) or removes a user of tenant tid to or from
// the named group. Adding a member twice or removing a non-member is a no-op.
func (d *Directory) SetMember(ctx context.Context, tid tenant.ID, group, userID string, member bool, actor tenant.Actor) error {
	return d.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return err
		}
		var gid string
		err := sql.ErrNoRows
		if validGroupName(group) == nil {
			err = tx.QueryRow(ctx, `SELECT id FROM user_groups WHERE tenant_id = ? AND name = ?`, tx.TenantID(), group).Scan(&gid)
		}
		if errors.Is(err, sql.ErrNoRows) {
			return errs.E(errs.NotFound, "group_not_found", "group %q not found", errs.Clip(group, 64))
		}
		if err != nil {
			return fmt.Errorf("identity: read group: %w", err)
		}
		if _, err := getUser(ctx, tx, userID); err != nil {
			return err
		}
		action := "group.member_added"
		if member {
			err = addMember(ctx, tx, gid, userID, d.clock.Now())
		} else {
			action = "group.member_removed"
			_, err = tx.Exec(ctx, `DELETE FROM group_members WHERE tenant_id = ? AND group_id = ? AND user_id = ?`, tx.TenantID(), gid, userID)
		}
		if err != nil {
			return fmt.Errorf("identity: membership: %w", err)
		}
		ev := d.event(tx, actor, action, group)
		ev.Detail = map[string]string{"user_id": userID}
		return d.audit.AppendTx(ctx, tx, ev)
	})
}
