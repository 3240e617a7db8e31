package identity_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// fastArgon keeps the tests quick; the parameters travel with each hash.
var fastArgon = identity.Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

var op = tenant.Actor{Principal: "operator:test", RequestID: "req-dir-test-1", SourceIP: "192.0.2.7"}

// Passwords that satisfy the default policy.
const (
	goodPassword  = "correct horse battery staple"
	goodPassword2 = "tr0ub4dor & three more words"
)

var (
	tenantA tenant.ID = "tenant-a"
	tenantB tenant.ID = "tenant-b"
)

type env struct {
	db    *storage.DB
	log   *audit.Log
	reg   *tenants.Registry
	dir   *identity.Directory
	clock *clock.Fake
}

// newEnv opens a database with the tenant registry and the directory (its
// onboarding and offboarding steps registered) and creates the tenants,
// which are active when it returns.
func newEnv(t *testing.T, dsn string, tenantIDs ...tenant.ID) *env {
	t.Helper()
	db := storagetest.Open(t, dsn, audit.Migrations(), tenants.Migrations(), identity.Migrations())
	l := audit.New(db, audit.Options{})
	t.Cleanup(func() { l.Close() })
	reg := tenants.NewRegistry(db, l, tenants.Options{})
	fc := clock.NewFake(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	dir := identity.NewDirectory(db, l, identity.Options{Clock: fc, Argon2: fastArgon})
	reg.AddOnboardingStep(dir.OnboardingStep())
	reg.AddOffboardingStep(dir.OffboardingStep())
	runtest.Go(t, func(ctx context.Context) error { return reg.Run(ctx, 50*time.Millisecond) })
	e := &env{db: db, log: l, reg: reg, dir: dir, clock: fc}
	for _, id := range tenantIDs {
		tn, _, err := reg.Create(context.Background(), tenants.CreateRequest{ID: string(id)}, "", op)
		if err != nil {
			t.Fatalf("create tenant %s: %v", id, err)
		}
		if tn.Status != tenants.Active {
			e.waitStatus(t, id, tenants.Active)
		}
	}
	return e
}

func (e *env) waitStatus(t *testing.T, id tenant.ID, want tenants.Status) {
	t.Helper()
	runtest.Eventually(t, fmt.Sprintf("tenant %s %s", id, want), func() bool {
		tn, err := e.reg.Get(context.Background(), id)
		return err == nil && tn.Status == want
	})
}

func (e *env) createUser(t *testing.T, tid tenant.ID, req identity.CreateUserRequest) identity.CreatedUser {
	t.Helper()
	u, err := e.dir.CreateUser(context.Background(), tid, req, op)
	if err != nil {
		t.Fatalf("create user %q in %s: %v", req.Email, tid, err)
	}
	return u
}

func (e *env) getUser(t *testing.T, tid tenant.ID, id string) identity.User {
	t.Helper()
	u, err := e.dir.GetUser(context.Background(), tid, id)
	if err != nil {
		t.Fatalf("get user %s of %s: %v", id, tid, err)
	}
	return u
}

// allUsers walks every page of tid's users.
func (e *env) allUsers(t *testing.T, tid tenant.ID, limit int) []identity.User {
	t.Helper()
	var out []identity.User
	cursor := ""
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("user listing does not end")
		}
		p, err := e.dir.ListUsers(context.Background(), tid, identity.ListOptions{Limit: limit, Cursor: cursor})
		if err != nil {
			t.Fatalf("list users of %s: %v", tid, err)
		}
		if p.Items == nil {
			t.Fatalf("list users of %s: nil items (encodes as null)", tid)
		}
		if limit > 0 && len(p.Items) > limit {
			t.Fatalf("page of %d users over limit %d", len(p.Items), limit)
		}
		out = append(out, p.Items...)
		if p.NextCursor == "" {
			return out
		}
		cursor = p.NextCursor
	}
}

func (e *env) groups(t *testing.T, tid tenant.ID) map[string]identity.Group {
	t.Helper()
	gs, err := e.dir.ListGroups(context.Background(), tid)
	if err != nil {
		t.Fatalf("list groups of %s: %v", tid, err)
	}
	out := map[string]identity.Group{}
	for _, g := range gs {
		if g.TenantID != tid {
			t.Errorf("group %+v listed for %s", g, tid)
		}
		out[g.Name] = g
	}
	return out
}

// passwordHash reads the stored hash of a user, in the user's tenant scope.
func (e *env) passwordHash(t *testing.T, tid tenant.ID, id string) string {
	t.Helper()
	var h string
	err := e.db.View(context.Background(), storage.TenantScope(tid), func(tx *storage.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT password_hash FROM users WHERE tenant_id = ? AND id = ?`, string(tid), id).Scan(&h)
	})
	if err != nil {
		t.Fatalf("read hash of %s: %v", id, err)
	}
	return h
}

// tenantEvents returns tid's audit chain, oldest first.
func (e *env) tenantEvents(t *testing.T, tid tenant.ID) []audit.Event {
	t.Helper()
	p, err := e.log.ListTenant(context.Background(), storage.TenantScope(tid), audit.Filter{Limit: 1000})
	if err != nil {
		t.Fatalf("list audit of %s: %v", tid, err)
	}
	out := slices.Clone(p.Items)
	slices.Reverse(out)
	return out
}

// wantErr checks err is an *errs.Error with code and field.
func wantErr(t *testing.T, what string, err error, code, field string) {
	t.Helper()
	e, ok := errs.As(err)
	if !ok {
		t.Errorf("%s: error %v; want code %s field %q", what, err, code, field)
		return
	}
	if e.Code != code || e.Field != field {
		t.Errorf("%s: code %s field %q (%v); want code %s field %q", what, e.Code, e.Field, err, code, field)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCreateGetListUpdateDeleteUser(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, tenantA)
		ctx := context.Background()
		created := e.clock.Now()

		u := e.createUser(t, tenantA, identity.CreateUserRequest{Email: "Ann@Example.com", Password: goodPassword,
			Attributes: json.RawMessage(`{"dept":"eng","level":3}`), Groups: []string{"admins"}})
		if !strings.HasPrefix(u.ID, "usr_") || u.TenantID != tenantA || u.Email != "Ann@Example.com" || u.Status != identity.UserActive ||
			!u.PasswordSet || u.PasswordChangeRequired || u.TemporaryPassword != "" || !slices.Equal(u.Groups, []string{"admins"}) ||
			!u.CreatedAt.Equal(created) || !u.UpdatedAt.Equal(created) {
			t.Fatalf("created %+v", u)
		}
		var attrs map[string]any
		if err := json.Unmarshal(u.Attributes, &attrs); err != nil || attrs["dept"] != "eng" {
			t.Errorf("attributes %s", u.Attributes)
		}
		if h := e.passwordHash(t, tenantA, u.ID); !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") ||
			!identity.VerifyPassword(h, goodPassword) || strings.Contains(h, goodPassword) {
			t.Errorf("stored hash %q does not verify the password (or holds it)", h)
		}

		got := e.getUser(t, tenantA, u.ID)
		if jsonOf(t, got) != jsonOf(t, u.User) {
			t.Errorf("get:\n got %s\nwant %s", jsonOf(t, got), jsonOf(t, u.User))
		}
		if _, err := e.dir.GetUser(ctx, tenantA, "usr_nope"); !errs.Is(err, "user_not_found") {
			t.Errorf("get unknown: %v", err)
		}
		if _, err := e.dir.GetUser(ctx, tenantA, ""); !errs.Is(err, "user_not_found") {
			t.Errorf("get empty id: %v", err)
		}

		// A user without attributes has {} and no groups, not null.
		plain := e.createUser(t, tenantA, identity.CreateUserRequest{Email: "plain@example.com", Password: goodPassword})
		if string(plain.Attributes) != `{}` || plain.Groups == nil || len(plain.Groups) != 0 {
			t.Errorf("plain user: attributes %s groups %#v", plain.Attributes, plain.Groups)
		}
		if g := e.getUser(t, tenantA, plain.ID); string(g.Attributes) != `{}` || g.Groups == nil {
			t.Errorf("plain user read back: attributes %s groups %#v", g.Attributes, g.Groups)
		}

		// Listing: pages of every size show every user once, in id order.
		for i := 0; i < 3; i++ {
			e.createUser(t, tenantA, identity.CreateUserRequest{Email: fmt.Sprintf("u%d@example.com", i), Password: goodPassword})
		}
		all := e.allUsers(t, tenantA, 0)
		if len(all) != 5 {
			t.Fatalf("listed %d users; want 5", len(all))
		}
		if !slices.IsSortedFunc(all, func(a, b identity.User) int { return strings.Compare(a.ID, b.ID) }) {
			t.Error("users are not in id order")
		}
		for _, lim := range []int{1, 2, 4, 5, 1000} {
			page := e.allUsers(t, tenantA, lim)
			if jsonOf(t, page) != jsonOf(t, all) {
				t.Errorf("limit %d: pages differ from one listing", lim)
			}
		}
		for _, l := range all {
			if l.ID == u.ID && !slices.Equal(l.Groups, []string{"admins"}) {
				t.Errorf("listing shows groups %v for ann", l.Groups)
			}
		}
		// The email filter is exact and case-insensitive.
		for _, q := range []string{"ann@example.com", "ANN@EXAMPLE.COM", "Ann@Example.com"} {
			p, err := e.dir.ListUsers(ctx, tenantA, identity.ListOptions{Email: q})
			if err != nil || len(p.Items) != 1 || p.Items[0].ID != u.ID {
				t.Errorf("email filter %q: %+v %v", q, p.Items, err)
			}
		}
		for _, q := range []string{"ann@example.co", "nn@example.com", "%@example.com"} {
			p, err := e.dir.ListUsers(ctx, tenantA, identity.ListOptions{Email: q})
			if err != nil || p.Items == nil || len(p.Items) != 0 || p.NextCursor != "" {
				t.Errorf("email filter %q: %+v %v", q, p, err)
			}
		}
		// Bad limits and cursors.
		for _, lim := range []int{-1, 1001, 1 << 30} {
			_, err := e.dir.ListUsers(ctx, tenantA, identity.ListOptions{Limit: lim})
			wantErr(t, fmt.Sprintf("limit %d", lim), err, "invalid_limit", "limit")
		}
		for _, c := range []string{"!!!", "a b", "====", base64.RawURLEncoding.EncodeToString([]byte("x\x00y")),
			base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("u", 65))),
			base64.RawURLEncoding.EncodeToString([]byte{0xff, 0xfe}), strings.Repeat("A", 10000)} {
			_, err := e.dir.ListUsers(ctx, tenantA, identity.ListOptions{Cursor: c})
			wantErr(t, fmt.Sprintf("cursor %.20q", c), err, "invalid_cursor", "cursor")
		}

		// Update: every field, each in turn and together.
		e.clock.Advance(time.Minute)
		email, disabled := "ann.new@example.com", identity.UserDisabled
		up, err := e.dir.UpdateUser(ctx, tenantA, u.ID, identity.UserPatch{Email: &email, Status: &disabled,
			Attributes: json.RawMessage(`{"dept":"ops"}`)}, op)
		if err != nil {
			t.Fatal(err)
		}
		if up.Email != email || up.Status != identity.UserDisabled || string(up.Attributes) != `{"dept":"ops"}` ||
			!up.CreatedAt.Equal(created) || !up.UpdatedAt.Equal(created.Add(time.Minute)) || !slices.Equal(up.Groups, []string{"admins"}) {
			t.Errorf("updated %+v", up)
		}
		if got := e.getUser(t, tenantA, u.ID); jsonOf(t, got) != jsonOf(t, up) {
			t.Errorf("read after update:\n got %s\nwant %s", jsonOf(t, got), jsonOf(t, up))
		}
		if p, _ := e.dir.ListUsers(ctx, tenantA, identity.ListOptions{Email: "ann@example.com"}); len(p.Items) != 0 {
			t.Errorf("the old email still finds the user: %+v", p.Items)
		}
		// The old address is free again.
		e.createUser(t, tenantA, identity.CreateUserRequest{Email: "ann@example.com", Password: goodPassword})
		active := identity.UserActive
		if up, err := e.dir.UpdateUser(ctx, tenantA, u.ID, identity.UserPatch{Status: &active}, op); err != nil || up.Status != identity.UserActive {
			t.Errorf("re-activate: %+v %v", up, err)
		}
		// Attributes {} clear them and leave the other fields alone.
		if up, err := e.dir.UpdateUser(ctx, tenantA, u.ID, identity.UserPatch{Attributes: json.RawMessage(`{}`)}, op); err != nil || string(up.Attributes) != `{}` || up.Email != email {
			t.Errorf("clear attributes: %+v %v", up, err)
		}

		// Refused updates change nothing.
		before := jsonOf(t, e.getUser(t, tenantA, u.ID))
		for _, c := range []struct {
			name, code, field string
			p                 identity.UserPatch
		}{
			{"bad status", "invalid_status", "status", identity.UserPatch{Status: ptr(identity.UserStatus("locked"))}},
			{"empty status", "invalid_status", "status", identity.UserPatch{Status: ptr(identity.UserStatus(""))}},
			{"bad email", "invalid_email", "email", identity.UserPatch{Email: ptr("not-an-email")}},
			{"bad email with a good status", "invalid_email", "email", identity.UserPatch{Email: ptr("x"), Status: &disabled}},
			{"bad attributes with a good email", "invalid_attributes", "attributes",
				identity.UserPatch{Email: ptr("changed@example.com"), Attributes: json.RawMessage(`[1]`)}},
			{"taken email", "user_exists", "email", identity.UserPatch{Email: ptr("PLAIN@example.com"), Status: &disabled}},
		} {
			_, err := e.dir.UpdateUser(ctx, tenantA, u.ID, c.p, op)
			wantErr(t, c.name, err, c.code, c.field)
			if after := jsonOf(t, e.getUser(t, tenantA, u.ID)); after != before {
				t.Errorf("%s: refused update changed the user:\nbefore %s\nafter  %s", c.name, before, after)
			}
		}
		if _, err := e.dir.UpdateUser(ctx, tenantA, "usr_nope", identity.UserPatch{Status: &disabled}, op); !errs.Is(err, "user_not_found") {
			t.Errorf("update unknown: %v", err)
		}

		// Delete: the user and their memberships go; a second delete is not found.
		if g := e.groups(t, tenantA)["admins"]; g.Members != 1 {
			t.Errorf("admins has %d members before the delete; want 1", g.Members)
		}
		if err := e.dir.DeleteUser(ctx, tenantA, u.ID, op); err != nil {
			t.Fatal(err)
		}
		if _, err := e.dir.GetUser(ctx, tenantA, u.ID); !errs.Is(err, "user_not_found") {
			t.Errorf("get deleted: %v", err)
		}
		if err := e.dir.DeleteUser(ctx, tenantA, u.ID, op); !errs.Is(err, "user_not_found") {
			t.Errorf("delete twice: %v", err)
		}
		if _, err := e.dir.UpdateUser(ctx, tenantA, u.ID, identity.UserPatch{Status: &active}, op); !errs.Is(err, "user_not_found") {
			t.Errorf("update deleted: %v", err)
		}
		if g := e.groups(t, tenantA)["admins"]; g.Members != 0 {
			t.Errorf("admins has %d members after its member was deleted", g.Members)
		}
		if n := len(e.allUsers(t, tenantA, 2)); n != 5 {
			t.Errorf("%d users after the delete; want 5", n)
		}
		// The deleted user's email can be used again.
		e.createUser(t, tenantA, identity.CreateUserRequest{Email: email})
	})
}

func ptr[T any](v T) *T { return &v }

func TestCreateUserValidation(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, tenantA)
		ctx := context.Background()
		eventsBefore := len(e.tenantEvents(t, tenantA))
		cases := []struct {
			name, code, field string
			req               identity.CreateUserRequest
		}{
			{"empty email", "invalid_email", "email", identity.CreateUserRequest{}},
			{"no at", "invalid_email", "email", identity.CreateUserRequest{Email: "ann"}},
			{"no domain", "invalid_email", "email", identity.CreateUserRequest{Email: "ann@"}},
			{"no local part", "invalid_email", "email", identity.CreateUserRequest{Email: "@example.com"}},
			{"two ats", "invalid_email", "email", identity.CreateUserRequest{Email: "ann@@example.com"}},
			{"display name", "invalid_email", "email", identity.CreateUserRequest{Email: "Ann <ann@example.com>"}},
			{"angle brackets", "invalid_email", "email", identity.CreateUserRequest{Email: "<ann@example.com>"}},
			{"leading space", "invalid_email", "email", identity.CreateUserRequest{Email: " ann@example.com"}},
			{"trailing space", "invalid_email", "email", identity.CreateUserRequest{Email: "ann@example.com "}},
			{"newline", "invalid_email", "email", identity.CreateUserRequest{Email: "ann@example.com\n"}},
			{"NUL", "invalid_email", "email", identity.CreateUserRequest{Email: "ann\x00@example.com"}},
			{"invalid UTF-8", "invalid_email", "email", identity.CreateUserRequest{Email: "ann\xff@example.com"}},
			{"two addresses", "invalid_email", "email", identity.CreateUserRequest{Email: "a@example.com, b@example.com"}},
			{"too long", "invalid_email", "email", identity.CreateUserRequest{Email: strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + ".com"}},
			{"attributes array", "invalid_attributes", "attributes", identity.CreateUserRequest{Email: "a@example.com", Attributes: json.RawMessage(`[]`)}},
			{"attributes string", "invalid_attributes", "attributes", identity.CreateUserRequest{Email: "a@example.com", Attributes: json.RawMessage(`"x"`)}},
			{"attributes number", "invalid_attributes", "attributes", identity.CreateUserRequest{Email: "a@example.com", Attributes: json.RawMessage(`1`)}},
			{"attributes truncated", "invalid_attributes", "attributes", identity.CreateUserRequest{Email: "a@example.com", Attributes: json.RawMessage(`{"a":`)}},
			{"attributes invalid UTF-8", "invalid_attributes", "attributes", identity.CreateUserRequest{Email: "a@example.com", Attributes: json.RawMessage("{\"a\":\"\xff\"}")}},
			{"attributes too large", "attributes_too_large", "attributes", identity.CreateUserRequest{Email: "a@example.com",
				Attributes: json.RawMessage(`{"k":"` + strings.Repeat("x", identity.MaxAttributesSize) + `"}`)}},
			{"unknown group", "unknown_group", "groups[1]", identity.CreateUserRequest{Email: "a@example.com", Groups: []string{"admins", "nope"}}},
			{"bad group name", "invalid_group_name", "groups[0]", identity.CreateUserRequest{Email: "a@example.com", Groups: []string{"Admins"}}},
			{"empty group name", "invalid_group_name", "groups[2]", identity.CreateUserRequest{Email: "a@example.com", Groups: []string{"admins", "admins", ""}}},
			{"weak password", "weak_password", "password", identity.CreateUserRequest{Email: "a@example.com", Password: "short"}},
		}
		for _, c := range cases {
			u, err := e.dir.CreateUser(ctx, tenantA, c.req, op)
			wantErr(t, c.name, err, c.code, c.field)
			if u.ID != "" || u.TemporaryPassword != "" {
				t.Errorf("%s: a refused create returned %+v", c.name, u)
			}
			if ee, ok := errs.As(err); ok && c.req.Password != "" && strings.Contains(ee.Error(), c.req.Password) {
				t.Errorf("%s: the error holds the password: %v", c.name, err)
			}
		}
		if n := len(e.allUsers(t, tenantA, 0)); n != 0 {
			t.Errorf("refused creates left %d users", n)
		}
		if after := e.tenantEvents(t, tenantA); len(after) != eventsBefore {
			t.Errorf("refused creates were audited in the tenant chain as done: %+v", after[eventsBefore:])
		}
		// Attributes of exactly the limit are accepted; the email may be 254 bytes.
		pad := identity.MaxAttributesSize - len(`{"k":""}`)
		e.createUser(t, tenantA, identity.CreateUserRequest{Email: "limit@example.com", Password: goodPassword,
			Attributes: json.RawMessage(`{"k":"` + strings.Repeat("x", pad) + `"}`)})
		long := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 57) + ".com"
		if len(long) != 254 {
			t.Fatalf("long email is %d bytes", len(long))
		}
		e.createUser(t, tenantA, identity.CreateUserRequest{Email: long, Password: goodPassword})
		// Plus addressing and subdomains are plain addresses.
		e.createUser(t, tenantA, identity.CreateUserRequest{Email: "ann+tag@mail.example.co.uk", Password: goodPassword})
		// Unknown tenants are not found.
		if _, err := e.dir.CreateUser(ctx, "no-such-tenant", identity.CreateUserRequest{Email: "a@example.com", Password: goodPassword}, op); !errs.Is(err, "tenant_not_found") {
			t.Errorf("create in an unknown tenant: %v", err)
		}
	})
}

func TestTemporaryPassword(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, tenantA)
		ctx := context.Background()
		u := e.createUser(t, tenantA, identity.CreateUserRequest{Email: "temp@example.com"})
		tmp := u.TemporaryPassword
		if len(tmp) != 24 || !u.PasswordSet || !u.PasswordChangeRequired {
			t.Fatalf("created without a password: %+v", u)
		}
		if err := identity.DefaultPasswordPolicy.Check(tmp, u.Email); err != nil {
			t.Errorf("the temporary password fails the policy: %v", err)
		}
		if b, _ := json.Marshal(u); !strings.Contains(string(b), `"temporary_password":"`+tmp+`"`) {
			t.Errorf("the create's answer does not carry the temporary password: %s", b)
		}
		h := e.passwordHash(t, tenantA, u.ID)
		if !identity.VerifyPassword(h, tmp) || strings.Contains(h, tmp) {
			t.Errorf("stored hash %q does not verify the temporary password", h)
		}
		// Never shown again: not by GetUser, not by ListUsers.
		got := e.getUser(t, tenantA, u.ID)
		if !got.PasswordChangeRequired || !got.PasswordSet {
			t.Errorf("read back: %+v", got)
		}
		page, err := e.dir.ListUsers(ctx, tenantA, identity.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for what, v := range map[string]any{"get": got, "list": page} {
			b, _ := json.Marshal(v)
			if strings.Contains(string(b), tmp) || strings.Contains(string(b), "temporary_password") || strings.Contains(string(b), "$argon2") {
				t.Errorf("%s shows the temporary password or its hash: %s", what, b)
			}
		}
		// Each user gets their own.
		u2 := e.createUser(t, tenantA, identity.CreateUserRequest{Email: "temp2@example.com", Password: ""})
		if u2.TemporaryPassword == "" || u2.TemporaryPassword == tmp {
			t.Errorf("second temporary password %q (first %q)", u2.TemporaryPassword, tmp)
		}
		// A user created with a password has none and need not change it.
		u3 := e.createUser(t, tenantA, identity.CreateUserRequest{Email: "set@example.com", Password: goodPassword})
		if u3.TemporaryPassword != "" || u3.PasswordChangeRequired {
			t.Errorf("created with a password: %+v", u3)
		}
		// Setting a password clears the change requirement and replaces the hash.
		e.clock.Advance(time.Second)
		up, err := e.dir.UpdateUser(ctx, tenantA, u.ID, identity.UserPatch{Password: ptr(goodPassword2)}, op)
		if err != nil || up.PasswordChangeRequired || !up.PasswordSet {
			t.Fatalf("set password: %+v %v", up, err)
		}
		if got := e.getUser(t, tenantA, u.ID); got.PasswordChangeRequired || !got.UpdatedAt.Equal(up.UpdatedAt) {
			t.Errorf("read back after the password change: %+v", got)
		}
		h2 := e.passwordHash(t, tenantA, u.ID)
		if !identity.VerifyPassword(h2, goodPassword2) || identity.VerifyPassword(h2, tmp) {
			t.Error("the new password does not verify, or the temporary one still does")
		}
	})
}

func TestPasswordPolicyEnforced(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, tenantA)
		ctx := context.Background()
		const email = "longname@example.com"
		weak := map[string]string{
			"11 spaces":         "           ",
			"11 characters":     "abcdefghij1",
			"common":            "password1234",
			"common any case":   "PassWord1234",
			"common digits":     "123456789012",
			"the email":         email,
			"the email, upper":  strings.ToUpper(email),
			"257 characters":    strings.Repeat("x", 257),
			"invalid UTF-8":     "abcdefghijk\xff\xfe",
			"11 runes, 22 byte": strings.Repeat("é", 11),
		}
		for name, pw := range weak {
			_, err := e.dir.CreateUser(ctx, tenantA, identity.CreateUserRequest{Email: email, Password: pw}, op)
			wantErr(t, "create, "+name, err, "weak_password", "password")
			if err != nil && len(pw) >= 4 && strings.Contains(err.Error(), pw) {
				t.Errorf("create, %s: the error holds the password: %v", name, err)
			}
		}
		if n := len(e.allUsers(t, tenantA, 0)); n != 0 {
			t.Fatalf("weak passwords left %d users", n)
		}
		// Length counts characters, not bytes; 256 is the most.
		for _, pw := range []string{strings.Repeat("é", 12), strings.Repeat("x", 256), "abcdefghij12"} {
			u, err := e.dir.CreateUser(ctx, tenantA, identity.CreateUserRequest{Email: fmt.Sprintf("ok%d@example.com", len(pw)), Password: pw}, op)
			if err != nil {
				t.Errorf("password of %d bytes refused: %v", len(pw), err)
				continue
			}
			if !identity.VerifyPassword(e.passwordHash(t, tenantA, u.ID), pw) {
				t.Errorf("password of %d bytes does not verify", len(pw))
			}
		}

		// On update: refused, and the stored hash and the user stay as they were.
		u := e.createUser(t, tenantA, identity.CreateUserRequest{Email: email, Password: goodPassword})
		hash := e.passwordHash(t, tenantA, u.ID)
		before := jsonOf(t, e.getUser(t, tenantA, u.ID))
		for name, pw := range weak {
			_, err := e.dir.UpdateUser(ctx, tenantA, u.ID, identity.UserPatch{Password: ptr(pw)}, op)
			wantErr(t, "update, "+name, err, "weak_password", "password")
		}
		// A password equal to the new email, in the same patch: refused, and
		// the email change does not happen either.
		newEmail := "new.address@example.com"
		_, err := e.dir.UpdateUser(ctx, tenantA, u.ID, identity.UserPatch{Email: &newEmail, Password: ptr("NEW.ADDRESS@example.com")}, op)
		wantErr(t, "update, password = new email", err, "weak_password", "password")
		// A weak password in a patch with good fields refuses the whole patch.
		disabled := identity.UserDisabled
		_, err = e.dir.UpdateUser(ctx, tenantA, u.ID, identity.UserPatch{Email: &newEmail, Status: &disabled,
			Attributes: json.RawMessage(`{"x":1}`), Password: ptr("short")}, op)
		wantErr(t, "update, weak password with other fields", err, "weak_password", "password")
		if after := jsonOf(t, e.getUser(t, tenantA, u.ID)); after != before {
			t.Errorf("refused updates changed the user:\nbefore %s\nafter  %s", before, after)
		}
		if h := e.passwordHash(t, tenantA, u.ID); h != hash {
			t.Error("a refused password change replaced the hash")
		}
		if p, _ := e.dir.ListUsers(ctx, tenantA, identity.ListOptions{Email: newEmail}); len(p.Items) != 0 {
			t.Errorf("a refused patch changed the email: %+v", p.Items)
		}
	})
}

func TestEmailUniquePerTenant(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, tenantA, tenantB)
		ctx := context.Background()
		a := e.createUser(t, tenantA, identity.CreateUserRequest{Email: "Ann@Example.com", Password: goodPassword})
		for _, dup := range []string{"Ann@Example.com", "ann@example.com", "ANN@EXAMPLE.COM", "aNn@eXaMpLe.CoM"} {
			_, err := e.dir.CreateUser(ctx, tenantA, identity.CreateUserRequest{Email: dup, Password: goodPassword}, op)
			wantErr(t, "duplicate "+dup, err, "user_exists", "email")
			if ee, ok := errs.As(err); ok && ee.Kind != errs.Conflict {
				t.Errorf("duplicate %s: kind %v; want Conflict", dup, ee.Kind)
			}
		}
		// Another tenant may have the same address, in any case.
		b := e.createUser(t, tenantB, identity.CreateUserRequest{Email: "ann@example.com", Password: goodPassword})
		if b.ID == a.ID || b.TenantID != tenantB {
			t.Fatalf("B's ann: %+v", b)
		}
		// Renaming onto a taken address (any case) is refused; onto B's address in A is not possible either.
		bob := e.createUser(t, tenantA, identity.CreateUserRequest{Email: "bob@example.com", Password: goodPassword})
		_, err := e.dir.UpdateUser(ctx, tenantA, bob.ID, identity.UserPatch{Email: ptr("ANN@example.com")}, op)
		wantErr(t, "rename onto a taken address", err, "user_exists", "email")
		// A user may change the case of their own address.
		if up, err := e.dir.UpdateUser(ctx, tenantA, bob.ID, identity.UserPatch{Email: ptr("Bob@Example.com")}, op); err != nil || up.Email != "Bob@Example.com" {
			t.Errorf("change own case: %+v %v", up, err)
		}
		// B renames its ann to something A has: fine, they are different tenants.
		if _, err := e.dir.UpdateUser(ctx, tenantB, b.ID, identity.UserPatch{Email: ptr("bob@example.com")}, op); err != nil {
			t.Errorf("B takes an address A uses: %v", err)
		}
		for tid, want := range map[tenant.ID]int{tenantA: 2, tenantB: 1} {
			if n := len(e.allUsers(t, tid, 0)); n != want {
				t.Errorf("%s has %d users; want %d", tid, n, want)
			}
		}
		p, err := e.dir.ListUsers(ctx, tenantA, identity.ListOptions{Email: "ann@EXAMPLE.com"})
		if err != nil || len(p.Items) != 1 || p.Items[0].ID != a.ID {
			t.Errorf("A's filter on ann: %+v %v", p.Items, err)
		}

		// Concurrent creates of one address (in different cases): one wins,
		// the others get user_exists, never an internal error.
		var wg sync.WaitGroup
		results := make([]error, 6)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				addr := "race@example.com"
				if i%2 == 1 {
					addr = "RACE@example.com"
				}
				_, results[i] = e.dir.CreateUser(ctx, tenantA, identity.CreateUserRequest{Email: addr, Password: goodPassword}, op)
			}()
		}
		wg.Wait()
		ok := 0
		for i, err := range results {
			switch {
			case err == nil:
				ok++
			case !errs.Is(err, "user_exists"):
				t.Errorf("concurrent create %d: %v", i, err)
			}
		}
		if ok != 1 {
			t.Errorf("%d concurrent creates of one address succeeded; want 1", ok)
		}
	})
}

func TestGroupsAndMembership(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, tenantA, tenantB)
		ctx := context.Background()
		// Onboarding made the admins group, empty.
		gs := e.groups(t, tenantA)
		if len(gs) != 1 || gs["admins"].Members != 0 || !strings.HasPrefix(gs["admins"].ID, "grp_") {
			t.Fatalf("groups after onboarding: %+v", gs)
		}

		g, err := e.dir.CreateGroup(ctx, tenantA, identity.CreateGroupRequest{Name: "eng", Description: "Engineering"}, op)
		if err != nil || g.Name != "eng" || g.Description != "Engineering" || g.TenantID != tenantA || !strings.HasPrefix(g.ID, "grp_") ||
			g.Members != 0 || !g.CreatedAt.Equal(e.clock.Now()) {
			t.Fatalf("create group: %+v %v", g, err)
		}
		_, err = e.dir.CreateGroup(ctx, tenantA, identity.CreateGroupRequest{Name: "eng"}, op)
		wantErr(t, "duplicate group", err, "group_exists", "name")
		_, err = e.dir.CreateGroup(ctx, tenantA, identity.CreateGroupRequest{Name: "admins"}, op)
		wantErr(t, "duplicate admins", err, "group_exists", "name")
		for _, bad := range []string{"", "Eng", "-eng", "_eng", "e g", "eng!", "é", strings.Repeat("a", 64), "eng\n", "a/b"} {
			_, err := e.dir.CreateGroup(ctx, tenantA, identity.CreateGroupRequest{Name: bad}, op)
			wantErr(t, fmt.Sprintf("group name %q", bad), err, "invalid_group_name", "name")
		}
		for _, bad := range []string{strings.Repeat("d", 501), "a\x00b", "bad \xff"} {
			_, err := e.dir.CreateGroup(ctx, tenantA, identity.CreateGroupRequest{Name: "described", Description: bad}, op)
			wantErr(t, fmt.Sprintf("description %.20q", bad), err, "invalid_description", "description")
		}
		for _, ok := range []string{"a", "0", "a_b-c", strings.Repeat("z", 63)} {
			if _, err := e.dir.CreateGroup(ctx, tenantA, identity.CreateGroupRequest{Name: ok, Description: strings.Repeat("é", 250)}, op); err != nil {
				t.Errorf("group %q: %v", ok, err)
			}
		}
		// Group names are per tenant.
		if _, err := e.dir.CreateGroup(ctx, tenantB, identity.CreateGroupRequest{Name: "eng"}, op); err != nil {
			t.Errorf("B's eng: %v", err)
		}

		u1 := e.createUser(t, tenantA, identity.CreateUserRequest{Email: "u1@example.com", Password: goodPassword})
		u2 := e.createUser(t, tenantA, identity.CreateUserRequest{Email: "u2@example.com", Password: goodPassword, Groups: []string{"eng", "admins", "eng"}})
		if !slices.Equal(u2.Groups, []string{"admins", "eng"}) {
			t.Errorf("u2 created with groups %v; want [admins eng]", u2.Groups)
		}
		counts := func(want map[string]int) {
			t.Helper()
			gs := e.groups(t, tenantA)
			for n, c := range want {
				if gs[n].Members != c {
					t.Errorf("group %s has %d members; want %d", n, gs[n].Members, c)
				}
			}
		}
		counts(map[string]int{"admins": 1, "eng": 1, "a": 0})

		// Adding twice is a no-op.
		for i := 0; i < 2; i++ {
			if err := e.dir.SetMember(ctx, tenantA, "eng", u1.ID, true, op); err != nil {
				t.Fatalf("add u1 to eng (%d): %v", i, err)
			}
		}
		counts(map[string]int{"admins": 1, "eng": 2})
		if err := e.dir.SetMember(ctx, tenantA, "a", u1.ID, true, op); err != nil {
			t.Fatal(err)
		}
		if got := e.getUser(t, tenantA, u1.ID); !slices.Equal(got.Groups, []string{"a", "eng"}) {
			t.Errorf("u1's groups %v; want [a eng]", got.Groups)
		}
		for _, l := range e.allUsers(t, tenantA, 1) {
			want := map[string][]string{u1.ID: {"a", "eng"}, u2.ID: {"admins", "eng"}}[l.ID]
			if !slices.Equal(l.Groups, want) {
				t.Errorf("listing shows groups %v for %s; want %v", l.Groups, l.Email, want)
			}
		}
		// Removing twice, and removing a non-member, are no-ops.
		for i := 0; i < 2; i++ {
			if err := e.dir.SetMember(ctx, tenantA, "eng", u1.ID, false, op); err != nil {
				t.Fatalf("remove u1 from eng (%d): %v", i, err)
			}
		}
		if err := e.dir.SetMember(ctx, tenantA, "admins", u1.ID, false, op); err != nil {
			t.Errorf("remove a non-member: %v", err)
		}
		counts(map[string]int{"admins": 1, "eng": 1, "a": 1})
		if got := e.getUser(t, tenantA, u1.ID); !slices.Equal(got.Groups, []string{"a"}) {
			t.Errorf("u1's groups %v; want [a]", got.Groups)
		}
		// Unknown group, unknown user.
		for _, add := range []bool{true, false} {
			wantErr(t, "unknown group", e.dir.SetMember(ctx, tenantA, "nope", u1.ID, add, op), "group_not_found", "")
			wantErr(t, "unknown user", e.dir.SetMember(ctx, tenantA, "eng", "usr_nope", add, op), "user_not_found", "")
			wantErr(t, "bad group name", e.dir.SetMember(ctx, tenantA, "Not A Group", u1.ID, add, op), "group_not_found", "")
		}
		// B's eng is untouched by all this.
		if n := e.groups(t, tenantB)["eng"].Members; n != 0 {
			t.Errorf("B's eng has %d members", n)
		}
	})
}

func TestReservedAttributes(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, tenantA)
		ctx := context.Background()
		u := e.createUser(t, tenantA, identity.CreateUserRequest{Email: "attrs@example.com", Password: goodPassword,
			Attributes: json.RawMessage(`{"dept":"eng"}`)})
		reserved := []string{"tenant_id", "tier", "groups", "sub", "iss", "aud", "exp", "iat", "nbf", "azp", "scope"}
		for _, k := range reserved {
			for _, raw := range []string{
				`{"` + k + `":"x"}`,
				`{"dept":"eng","` + k + `":null}`,
				`{"` + k + `":{"nested":true},"other":1}`,
			} {
				_, err := e.dir.CreateUser(ctx, tenantA, identity.CreateUserRequest{Email: "r-" + k + "@example.com", Password: goodPassword,
					Attributes: json.RawMessage(raw)}, op)
				wantErr(t, "create with "+raw, err, "reserved_attribute", "attributes."+k)
				_, err = e.dir.UpdateUser(ctx, tenantA, u.ID, identity.UserPatch{Attributes: json.RawMessage(raw)}, op)
				wantErr(t, "update with "+raw, err, "reserved_attribute", "attributes."+k)
			}
		}
		// A JSON escape does not hide a reserved name.
		_, err := e.dir.CreateUser(ctx, tenantA, identity.CreateUserRequest{Email: "esc@example.com", Password: goodPassword,
			Attributes: json.RawMessage(`{"tenant\u005fid":"tenant-b"}`)}, op)
		wantErr(t, "escaped tenant_id", err, "reserved_attribute", "attributes.tenant_id")
		if n := len(e.allUsers(t, tenantA, 0)); n != 1 {
			t.Errorf("refused creates left %d users", n)
		}
		if got := e.getUser(t, tenantA, u.ID); string(got.Attributes) != `{"dept":"eng"}` {
			t.Errorf("refused updates changed the attributes: %s", got.Attributes)
		}
		// Attributes on update are checked like on create.
		for raw, code := range map[string]string{`[]`: "invalid_attributes", `"s"`: "invalid_attributes", `{`: "invalid_attributes",
			`{"k":"` + strings.Repeat("x", identity.MaxAttributesSize) + `"}`: "attributes_too_large"} {
			_, err := e.dir.UpdateUser(ctx, tenantA, u.ID, identity.UserPatch{Attributes: json.RawMessage(raw)}, op)
			wantErr(t, fmt.Sprintf("update attributes %.20s", raw), err, code, "attributes")
		}
		// Names that are not claims are fine, nested ones included.
		ok := `{"tenant":"x","Tenant_ID":"y","profile":{"tenant_id":"z"},"roles":["a"]}`
		if up, err := e.dir.UpdateUser(ctx, tenantA, u.ID, identity.UserPatch{Attributes: json.RawMessage(ok)}, op); err != nil || string(up.Attributes) != ok {
			t.Errorf("non-claim attributes: %s %v", up.Attributes, err)
		}
	})
}

// TestChangesNeedAnActiveTenant suspends a tenant: its directory can be
// read but not changed; once resumed it can be changed again.
func TestChangesNeedAnActiveTenant(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, tenantA)
		ctx := context.Background()
		u := e.createUser(t, tenantA, identity.CreateUserRequest{Email: "s@example.com", Password: goodPassword, Groups: []string{"admins"}})
		if _, err := e.reg.Suspend(ctx, tenantA, op); err != nil {
			t.Fatal(err)
		}
		before := jsonOf(t, e.getUser(t, tenantA, u.ID))
		eventsBefore := len(e.tenantEvents(t, tenantA))
		disabled := identity.UserDisabled
		changes := map[string]func() error{
			"create user": func() error {
				_, err := e.dir.CreateUser(ctx, tenantA, identity.CreateUserRequest{Email: "new@example.com", Password: goodPassword}, op)
				return err
			},
			"create user without password": func() error {
				_, err := e.dir.CreateUser(ctx, tenantA, identity.CreateUserRequest{Email: "new@example.com"}, op)
				return err
			},
			"update user": func() error {
				_, err := e.dir.UpdateUser(ctx, tenantA, u.ID, identity.UserPatch{Status: &disabled}, op)
				return err
			},
			"set password": func() error {
				_, err := e.dir.UpdateUser(ctx, tenantA, u.ID, identity.UserPatch{Password: ptr(goodPassword2)}, op)
				return err
			},
			"create group": func() error {
				_, err := e.dir.CreateGroup(ctx, tenantA, identity.CreateGroupRequest{Name: "eng"}, op)
				return err
			},
			"remove member": func() error { return e.dir.SetMember(ctx, tenantA, "admins", u.ID, false, op) },
			"add member":    func() error { return e.dir.SetMember(ctx, tenantA, "admins", u.ID, true, op) },
		}
		for name, fn := range changes {
			err := fn()
			wantErr(t, name+" in a suspended tenant", err, "tenant_not_active", "")
			if ee, ok := errs.As(err); ok && ee.Kind != errs.Conflict {
				t.Errorf("%s: kind %v; want Conflict", name, ee.Kind)
			}
		}
		// Reads still work.
		if after := jsonOf(t, e.getUser(t, tenantA, u.ID)); after != before {
			t.Errorf("the user changed while suspended:\nbefore %s\nafter  %s", before, after)
		}
		if n := len(e.allUsers(t, tenantA, 0)); n != 1 {
			t.Errorf("%d users; want 1", n)
		}
		if gs := e.groups(t, tenantA); len(gs) != 1 || gs["admins"].Members != 1 {
			t.Errorf("groups changed while suspended: %+v", gs)
		}
		if after := e.tenantEvents(t, tenantA); len(after) != eventsBefore {
			t.Errorf("refused changes were audited as done: %+v", after[eventsBefore:])
		}
		// Resumed: changes work again.
		if _, err := e.reg.Resume(ctx, tenantA, op); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"update user", "create group", "remove member", "add member", "create user"} {
			if err := changes[name](); err != nil {
				t.Errorf("%s after resume: %v", name, err)
			}
		}
	})
}

// TestDeleteUserNeedsAnActiveTenant: deleting a user is a change like the
// others and must be refused while the tenant is suspended.
func TestDeleteUserNeedsAnActiveTenant(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, tenantA)
		ctx := context.Background()
		u := e.createUser(t, tenantA, identity.CreateUserRequest{Email: "s@example.com", Password: goodPassword})
		if _, err := e.reg.Suspend(ctx, tenantA, op); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "delete user of no tenant", e.dir.DeleteUser(ctx, "no-such-tenant", u.ID, op), "tenant_not_found", "")
		wantErr(t, "delete user in a suspended tenant", e.dir.DeleteUser(ctx, tenantA, u.ID, op), "tenant_not_active", "")
		e.getUser(t, tenantA, u.ID)
		if _, err := e.reg.Resume(ctx, tenantA, op); err != nil {
			t.Fatal(err)
		}
		if err := e.dir.DeleteUser(ctx, tenantA, u.ID, op); err != nil {
			t.Errorf("delete after resume: %v", err)
		}
	})
}

// countRows counts a tenant's rows in a table, in the platform scope (which
// sees every tenant's rows).
func countRows(t *testing.T, db *storage.DB, table string, tid tenant.ID) int {
	t.Helper()
	var n int
	err := db.View(context.Background(), storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT COUNT(*) FROM `+table+` WHERE tenant_id = ?`, string(tid)).Scan(&n)
	})
	if err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

var directoryTables = []string{"users", "user_groups", "group_members", "identity_configs"}

func TestOffboardingRemovesDirectory(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, tenantA, tenantB)
		ctx := context.Background()
		for _, tid := range []tenant.ID{tenantA, tenantB} {
			if _, err := e.dir.CreateGroup(ctx, tid, identity.CreateGroupRequest{Name: "eng"}, op); err != nil {
				t.Fatal(err)
			}
			e.createUser(t, tid, identity.CreateUserRequest{Email: "one@example.com", Password: goodPassword, Groups: []string{"admins", "eng"}})
			e.createUser(t, tid, identity.CreateUserRequest{Email: "two@example.com", Password: goodPassword, Groups: []string{"eng"}})
		}
		for _, table := range directoryTables {
			if countRows(t, e.db, table, tenantA) == 0 {
				t.Fatalf("tenant-a has no rows in %s before offboarding", table)
			}
		}
		bUsers, bGroups := jsonOf(t, e.allUsers(t, tenantB, 0)), jsonOf(t, e.groups(t, tenantB))

		if _, err := e.reg.Delete(ctx, tenantA, op); err != nil {
			t.Fatal(err)
		}
		e.waitStatus(t, tenantA, tenants.Deleted)
		for _, table := range directoryTables {
			if n := countRows(t, e.db, table, tenantA); n != 0 {
				t.Errorf("tenant-a keeps %d rows in %s after offboarding", n, table)
			}
		}
		if n := len(e.allUsers(t, tenantA, 0)); n != 0 {
			t.Errorf("tenant-a lists %d users after offboarding", n)
		}
		if gs := e.groups(t, tenantA); len(gs) != 0 {
			t.Errorf("tenant-a lists groups after offboarding: %+v", gs)
		}
		_, err := e.dir.CreateUser(ctx, tenantA, identity.CreateUserRequest{Email: "late@example.com", Password: goodPassword}, op)
		wantErr(t, "create in a deleted tenant", err, "tenant_not_active", "")
		_, err = e.dir.CreateGroup(ctx, tenantA, identity.CreateGroupRequest{Name: "late"}, op)
		wantErr(t, "create group in a deleted tenant", err, "tenant_not_active", "")
		// B keeps everything.
		if got := jsonOf(t, e.allUsers(t, tenantB, 0)); got != bUsers {
			t.Errorf("tenant-b's users changed:\nbefore %s\nafter  %s", bUsers, got)
		}
		if got := jsonOf(t, e.groups(t, tenantB)); got != bGroups {
			t.Errorf("tenant-b's groups changed:\nbefore %s\nafter  %s", bGroups, got)
		}
		for _, table := range directoryTables {
			if countRows(t, e.db, table, tenantB) == 0 {
				t.Errorf("tenant-b lost its rows in %s", table)
			}
		}
		if rep, err := e.log.VerifyAllTenants(ctx); err != nil || !rep.OK {
			t.Errorf("audit verify: %+v %v", rep, err)
		}
	})
}

// TestTenantIsolation: the ids of tenant A's users and groups mean nothing
// in tenant B's scope.
func TestTenantIsolation(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, tenantA, tenantB)
		ctx := context.Background()
		if _, err := e.dir.CreateGroup(ctx, tenantA, identity.CreateGroupRequest{Name: "only-in-a"}, op); err != nil {
			t.Fatal(err)
		}
		ua := e.createUser(t, tenantA, identity.CreateUserRequest{Email: "alice@a.example", Password: goodPassword,
			Attributes: json.RawMessage(`{"secret":"a-only"}`), Groups: []string{"admins", "only-in-a"}})
		ub := e.createUser(t, tenantB, identity.CreateUserRequest{Email: "bob@b.example", Password: goodPassword})
		aBefore, aGroups := jsonOf(t, e.getUser(t, tenantA, ua.ID)), jsonOf(t, e.groups(t, tenantA))
		aHash := e.passwordHash(t, tenantA, ua.ID)
		aEvents, bEvents := len(e.tenantEvents(t, tenantA)), len(e.tenantEvents(t, tenantB))

		disabled := identity.UserDisabled
		_, err := e.dir.GetUser(ctx, tenantB, ua.ID)
		wantErr(t, "B gets A's user", err, "user_not_found", "")
		if err != nil && (strings.Contains(err.Error(), "alice") || strings.Contains(err.Error(), "a-only") || strings.Contains(err.Error(), string(tenantA))) {
			t.Errorf("B's error reveals A's user: %v", err)
		}
		_, err = e.dir.UpdateUser(ctx, tenantB, ua.ID, identity.UserPatch{Status: &disabled, Email: ptr("pwned@b.example"),
			Attributes: json.RawMessage(`{}`), Password: ptr(goodPassword2)}, op)
		wantErr(t, "B updates A's user", err, "user_not_found", "")
		wantErr(t, "B deletes A's user", e.dir.DeleteUser(ctx, tenantB, ua.ID, op), "user_not_found", "")
		wantErr(t, "B adds A's user to its admins", e.dir.SetMember(ctx, tenantB, "admins", ua.ID, true, op), "user_not_found", "")
		wantErr(t, "B removes A's user from its admins", e.dir.SetMember(ctx, tenantB, "admins", ua.ID, false, op), "user_not_found", "")
		wantErr(t, "B uses A's group", e.dir.SetMember(ctx, tenantB, "only-in-a", ub.ID, true, op), "group_not_found", "")
		wantErr(t, "B removes A's user from A's group", e.dir.SetMember(ctx, tenantB, "only-in-a", ua.ID, false, op), "group_not_found", "")
		// And the other way round, A's scope with B's user.
		_, err = e.dir.GetUser(ctx, tenantA, ub.ID)
		wantErr(t, "A gets B's user", err, "user_not_found", "")
		wantErr(t, "A adds B's user to its admins", e.dir.SetMember(ctx, tenantA, "admins", ub.ID, true, op), "user_not_found", "")
		wantErr(t, "A deletes B's user", e.dir.DeleteUser(ctx, tenantA, ub.ID, op), "user_not_found", "")

		// B's listing never shows A's users, filtered or paged.
		for _, opts := range []identity.ListOptions{{}, {Limit: 1}, {Email: "alice@a.example"}, {Email: "ALICE@A.EXAMPLE"},
			{Cursor: base64.RawURLEncoding.EncodeToString([]byte("usr_"))}, {Cursor: base64.RawURLEncoding.EncodeToString([]byte("zzz"))}} {
			p, err := e.dir.ListUsers(ctx, tenantB, opts)
			if err != nil {
				t.Fatalf("list B %+v: %v", opts, err)
			}
			for _, u := range p.Items {
				if u.ID != ub.ID || u.TenantID != tenantB {
					t.Errorf("B's listing %+v shows %+v", opts, u)
				}
			}
			if b, _ := json.Marshal(p); strings.Contains(string(b), "alice") || strings.Contains(string(b), ua.ID) {
				t.Errorf("B's listing %+v reveals A's user: %s", opts, b)
			}
		}
		// A cursor naming A's user id pages within B only.
		p, err := e.dir.ListUsers(ctx, tenantB, identity.ListOptions{Cursor: base64.RawURLEncoding.EncodeToString([]byte(ua.ID))})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range p.Items {
			if u.TenantID != tenantB {
				t.Errorf("B's listing after A's id shows %+v", u)
			}
		}
		gb := e.groups(t, tenantB)
		if _, ok := gb["only-in-a"]; ok || gb["admins"].Members != 0 {
			t.Errorf("B's groups: %+v", gb)
		}

		// Nothing of A changed, and no event of the refused attempts landed in either chain.
		if got := jsonOf(t, e.getUser(t, tenantA, ua.ID)); got != aBefore {
			t.Errorf("A's user changed:\nbefore %s\nafter  %s", aBefore, got)
		}
		if got := jsonOf(t, e.groups(t, tenantA)); got != aGroups {
			t.Errorf("A's groups changed:\nbefore %s\nafter  %s", aGroups, got)
		}
		if e.passwordHash(t, tenantA, ua.ID) != aHash {
			t.Error("A's user's password hash changed")
		}
		if n := len(e.tenantEvents(t, tenantA)); n != aEvents {
			t.Errorf("A's chain grew from %d to %d events", aEvents, n)
		}
		if n := len(e.tenantEvents(t, tenantB)); n != bEvents {
			t.Errorf("B's chain grew from %d to %d events", bEvents, n)
		}

		// On PostgreSQL the database itself enforces it: B's scope sees none of
		// A's rows even without a tenant_id condition (row-level security).
		if e.db.Dialect() == storage.Postgres {
			for _, table := range directoryTables {
				var n int
				err := e.db.View(ctx, storage.TenantScope(tenantB), func(tx *storage.Tx) error {
					return tx.QueryRow(ctx, `SELECT COUNT(*) FROM `+table+` WHERE tenant_id <> ?`, string(tenantB)).Scan(&n)
				})
				if err != nil || n != 0 {
					t.Errorf("B's scope sees %d foreign rows of %s (%v)", n, table, err)
				}
			}
		}
	})
}

func TestAuditEventsWithoutSecrets(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, tenantA)
		ctx := context.Background()
		const pw1, pw2 = "first secret p4ssphrase", "second secret p4ssphrase"
		u := e.createUser(t, tenantA, identity.CreateUserRequest{Email: "audited@example.com", Password: pw1, Groups: []string{"admins"}})
		tmp := e.createUser(t, tenantA, identity.CreateUserRequest{Email: "temp@example.com"})
		if _, err := e.dir.UpdateUser(ctx, tenantA, u.ID, identity.UserPatch{Email: ptr("audited2@example.com"), Password: ptr(pw2)}, op); err != nil {
			t.Fatal(err)
		}
		// Refused changes: not audited as done.
		if _, err := e.dir.UpdateUser(ctx, tenantA, u.ID, identity.UserPatch{Password: ptr("weak")}, op); err == nil {
			t.Fatal("weak password accepted")
		}
		if _, err := e.dir.CreateUser(ctx, tenantA, identity.CreateUserRequest{Email: "x@example.com", Password: "password1234"}, op); err == nil {
			t.Fatal("common password accepted")
		}
		if _, err := e.dir.CreateGroup(ctx, tenantA, identity.CreateGroupRequest{Name: "eng"}, op); err != nil {
			t.Fatal(err)
		}
		if err := e.dir.SetMember(ctx, tenantA, "eng", tmp.ID, true, op); err != nil {
			t.Fatal(err)
		}
		if err := e.dir.SetMember(ctx, tenantA, "eng", tmp.ID, false, op); err != nil {
			t.Fatal(err)
		}
		if err := e.dir.DeleteUser(ctx, tenantA, tmp.ID, op); err != nil {
			t.Fatal(err)
		}

		type want struct{ action, target, detailKey, detailVal string }
		wants := []want{
			{"user.created", u.ID, "", ""},
			{"user.created", tmp.ID, "", ""},
			{"user.updated", u.ID, "fields", "email,password"},
			{"group.created", "eng", "", ""},
			{"group.member_added", "eng", "user_id", tmp.ID},
			{"group.member_removed", "eng", "user_id", tmp.ID},
			{"user.deleted", tmp.ID, "", ""},
		}
		var got []audit.Event
		for _, ev := range e.tenantEvents(t, tenantA) {
			if strings.HasPrefix(ev.Action, "user.") || strings.HasPrefix(ev.Action, "group.") {
				got = append(got, ev)
			}
		}
		if len(got) != len(wants) {
			t.Fatalf("directory events %s; want %d", jsonOf(t, got), len(wants))
		}
		for i, w := range wants {
			ev := got[i]
			if ev.Action != w.action || ev.Target != w.target || ev.TenantID != string(tenantA) || ev.Outcome != audit.Success ||
				ev.Principal != op.Principal || ev.RequestID != op.RequestID || ev.SourceIP != op.SourceIP {
				t.Errorf("event %d: %+v; want %+v", i, ev, w)
			}
			if w.detailKey != "" && ev.Detail[w.detailKey] != w.detailVal {
				t.Errorf("event %d (%s): detail %v; want %s=%s", i, ev.Action, ev.Detail, w.detailKey, w.detailVal)
			}
		}
		// No event anywhere holds a password, the temporary one, or a hash.
		secrets := []string{pw1, pw2, tmp.TemporaryPassword, "$argon2id", "password1234",
			e.passwordHash(t, tenantA, u.ID)}
		all, err := e.log.ListAllTenants(ctx, audit.Filter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(all.Items) < len(wants) {
			t.Fatalf("only %d events in the whole log", len(all.Items))
		}
		for _, ev := range all.Items {
			b := jsonOf(t, ev)
			for _, s := range secrets {
				if strings.Contains(b, s) {
					t.Errorf("event holds %q: %s", s, b)
				}
			}
		}
		if rep, err := e.log.VerifyAllTenants(ctx); err != nil || !rep.OK {
			t.Errorf("audit verify: %+v %v", rep, err)
		}
	})
}
