package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/httpapi"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// The nodes of these tests hash with the default argon2id cost (64 MiB), so
// each test creates only a few users with a password.

// Credentials of the user-management tests: an admin of tenant-a, a plain
// user of tenant-a, an admin of tenant-b.
const (
	tokAdmA = "adm-a"
	tokUsrA = "usr-a"
	tokAdmB = "adm-b"
)

func adminTokens() map[string]tenant.Context {
	return map[string]tenant.Context{
		tokAdmA: {TenantID: "tenant-a", Principal: "user:adm-a", Groups: []string{"admins"}},
		tokUsrA: {TenantID: "tenant-a", Principal: "user:plain-a"},
		tokAdmB: {TenantID: "tenant-b", Principal: "user:adm-b", Groups: []string{"admins"}},
	}
}

// Passwords that satisfy the default policy.
const (
	userPassword  = "correct horse battery staple"
	userPassword2 = "tr0ub4dor & three more words"
)

// apiUser is a user as the API shows it.
type apiUser struct {
	ID                     string          `json:"id"`
	TenantID               string          `json:"tenant_id"`
	Email                  string          `json:"email"`
	Status                 string          `json:"status"`
	Attributes             json.RawMessage `json:"attributes"`
	Groups                 []string        `json:"groups"`
	PasswordSet            bool            `json:"password_set"`
	PasswordChangeRequired bool            `json:"password_change_required"`
	TemporaryPassword      string          `json:"temporary_password"`
	CreatedAt              time.Time       `json:"created_at"`
	UpdatedAt              time.Time       `json:"updated_at"`
}

type apiUserPage struct {
	Items      []apiUser `json:"items"`
	NextCursor string    `json:"next_cursor"`
}

type apiGroup struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Members     int       `json:"members"`
	CreatedAt   time.Time `json:"created_at"`
}

// usersNode starts a node with the admin credentials and tenants tenant-a and tenant-b.
func usersNode(t *testing.T, dsn string) *apitest.Env {
	t.Helper()
	env := apitest.New(t, dsn, apitest.Options{TenantTokens: adminTokens()})
	createTenant(t, env, client.CreateTenant{ID: "tenant-a"})
	createTenant(t, env, client.CreateTenant{ID: "tenant-b"})
	return env
}

func usersPath(tenantID string) string  { return "/v1/tenants/" + tenantID + "/users" }
func groupsPath(tenantID string) string { return "/v1/tenants/" + tenantID + "/groups" }
func memberPath(tenantID, group, user string) string {
	return groupsPath(tenantID) + "/" + group + "/members/" + user
}

// noSecret fails if secret appears anywhere in r.
func noSecret(t testing.TB, what string, r response, secret string) {
	t.Helper()
	if secret == "" {
		return
	}
	if bytes.Contains(r.Body, []byte(secret)) {
		t.Errorf("%s: the response body holds the secret %q: %s", what, secret, r.Body)
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(v, secret) {
				t.Errorf("%s: response header %s holds the secret", what, k)
			}
		}
	}
}

// createUserAPI creates a user over HTTP and checks the answer's headers.
func createUserAPI(t *testing.T, env *apitest.Env, token, tenantID string, body any) (apiUser, response) {
	t.Helper()
	b := mustJSON(t, body)
	r := send(t, env.URL, call{method: "POST", path: usersPath(tenantID), token: token, body: b})
	var u apiUser
	wantJSON(t, "create user in "+tenantID, r, http.StatusCreated, &u)
	if loc := r.Header.Get("Location"); loc != usersPath(tenantID)+"/"+u.ID {
		t.Errorf("create user: Location = %q", loc)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("create user: Cache-Control = %q, want no-store", cc)
	}
	return u, r
}

func getUserAPI(t *testing.T, env *apitest.Env, token, tenantID, id string) (apiUser, response) {
	t.Helper()
	r := send(t, env.URL, call{method: "GET", path: usersPath(tenantID) + "/" + id, token: token})
	var u apiUser
	wantJSON(t, "get user "+id, r, http.StatusOK, &u)
	return u, r
}

// listUsersAPI walks every page of a tenant's users.
func listUsersAPI(t *testing.T, env *apitest.Env, token, tenantID string, limit int) []apiUser {
	t.Helper()
	var out []apiUser
	cursor := ""
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatal("user listing does not end")
		}
		q := url.Values{}
		if limit > 0 {
			q.Set("limit", fmt.Sprint(limit))
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		path := usersPath(tenantID) + "?" + q.Encode()
		r := send(t, env.URL, call{method: "GET", path: path, token: token})
		var p apiUserPage
		wantJSON(t, "GET "+path, r, http.StatusOK, &p)
		if !bytes.Contains(r.Body, []byte(`"items":[`)) {
			t.Errorf("GET %s: items is not an array: %s", path, r.Body)
		}
		out = append(out, p.Items...)
		if p.NextCursor == "" {
			return out
		}
		cursor = p.NextCursor
	}
}

func listGroupsAPI(t *testing.T, env *apitest.Env, token, tenantID string) map[string]apiGroup {
	t.Helper()
	r := send(t, env.URL, call{method: "GET", path: groupsPath(tenantID), token: token})
	var p struct {
		Items []apiGroup `json:"items"`
	}
	wantJSON(t, "list groups of "+tenantID, r, http.StatusOK, &p)
	out := map[string]apiGroup{}
	for _, g := range p.Items {
		if g.TenantID != tenantID {
			t.Errorf("groups of %s list %+v", tenantID, g)
		}
		out[g.Name] = g
	}
	return out
}

func wantStatus(t *testing.T, what string, r response, status int) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: status %d, want %d: %s", what, r.Status, status, r.Body)
	}
}

// TestUsersAPI walks the happy paths of every user and group route.
func TestUsersAPI(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := usersNode(t, dsn)
		start := time.Now().Add(-time.Minute)

		// An admin of tenant-a creates a user with a password: it is not echoed.
		u, r := createUserAPI(t, env, tokAdmA, "tenant-a", map[string]any{"email": "Ann@Example.com", "password": userPassword,
			"attributes": map[string]any{"dept": "eng"}, "groups": []string{"admins"}})
		noSecret(t, "create with a password", r, userPassword)
		if bytes.Contains(r.Body, []byte("temporary_password")) || bytes.Contains(r.Body, []byte("argon2")) {
			t.Errorf("create with a password: %s", r.Body)
		}
		if !strings.HasPrefix(u.ID, "usr_") || u.TenantID != "tenant-a" || u.Email != "Ann@Example.com" || u.Status != "active" ||
			!u.PasswordSet || u.PasswordChangeRequired || !slices.Equal(u.Groups, []string{"admins"}) ||
			u.CreatedAt.Before(start) || !u.UpdatedAt.Equal(u.CreatedAt) {
			t.Errorf("created %s", r.Body)
		}
		var attrs map[string]string
		if json.Unmarshal(u.Attributes, &attrs) != nil || attrs["dept"] != "eng" {
			t.Errorf("attributes %s", u.Attributes)
		}

		// The operator creates one without a password: a temporary one, once.
		tu, r := createUserAPI(t, env, apitest.AdminToken, "tenant-a", map[string]any{"email": "temp@example.com"})
		tmp := tu.TemporaryPassword
		if len(tmp) != 24 || !tu.PasswordChangeRequired || !tu.PasswordSet || len(tu.Groups) != 0 || string(tu.Attributes) != `{}` {
			t.Errorf("created without a password: %s", r.Body)
		}
		got, r := getUserAPI(t, env, tokAdmA, "tenant-a", tu.ID)
		noSecret(t, "get the temporary user", r, tmp)
		if bytes.Contains(r.Body, []byte("temporary_password")) || !got.PasswordChangeRequired || got.Email != "temp@example.com" {
			t.Errorf("get the temporary user: %s", r.Body)
		}
		got, _ = getUserAPI(t, env, apitest.AdminToken, "tenant-a", u.ID)
		if !jsonEqual(got, u) {
			t.Errorf("get:\n got %+v\nwant %+v", got, u)
		}

		// Listing, in pages, and by email.
		for _, lim := range []int{0, 1, 2, 1000} {
			all := listUsersAPI(t, env, tokAdmA, "tenant-a", lim)
			ids := []string{}
			for _, x := range all {
				ids = append(ids, x.ID)
				if x.TemporaryPassword != "" {
					t.Errorf("listing shows a temporary password")
				}
			}
			want := []string{u.ID, tu.ID}
			sort.Strings(want)
			if !slices.Equal(ids, want) {
				t.Errorf("limit %d: listed %v, want %v", lim, ids, want)
			}
		}
		for _, q := range []string{"ann@example.com", "ANN%40EXAMPLE.COM", url.QueryEscape("Ann@Example.com")} {
			path := usersPath("tenant-a") + "?email=" + q
			r := send(t, env.URL, call{method: "GET", path: path, token: tokAdmA})
			var p apiUserPage
			wantJSON(t, path, r, 200, &p)
			if len(p.Items) != 1 || p.Items[0].ID != u.ID || !slices.Equal(p.Items[0].Groups, []string{"admins"}) {
				t.Errorf("%s: %s", path, r.Body)
			}
			noSecret(t, path, r, tmp)
		}
		r = send(t, env.URL, call{method: "GET", path: usersPath("tenant-a") + "?email=nobody%40example.com", token: tokAdmA})
		if wantJSON(t, "filter on an unknown email", r, 200, nil); !bytes.Contains(r.Body, []byte(`"items":[]`)) {
			t.Errorf("filter on an unknown email: %s", r.Body)
		}

		// Updates.
		r = send(t, env.URL, call{method: "PATCH", path: usersPath("tenant-a") + "/" + u.ID, token: tokAdmA,
			body: []byte(`{"status":"disabled","attributes":{"dept":"ops"},"email":"ann@example.org"}`)})
		var up apiUser
		wantJSON(t, "patch", r, 200, &up)
		if up.Status != "disabled" || string(up.Attributes) != `{"dept":"ops"}` || up.Email != "ann@example.org" ||
			!up.CreatedAt.Equal(u.CreatedAt) || up.UpdatedAt.Before(u.UpdatedAt) || !slices.Equal(up.Groups, []string{"admins"}) {
			t.Errorf("patched: %s", r.Body)
		}
		r = send(t, env.URL, call{method: "PATCH", path: usersPath("tenant-a") + "/" + tu.ID, token: apitest.AdminToken,
			body: mustJSON(t, map[string]string{"password": userPassword2})})
		wantJSON(t, "set password", r, 200, &up)
		noSecret(t, "set password", r, userPassword2)
		if up.PasswordChangeRequired || !up.PasswordSet || bytes.Contains(r.Body, []byte("argon2")) {
			t.Errorf("set password: %s", r.Body)
		}
		if got, _ := getUserAPI(t, env, tokAdmA, "tenant-a", tu.ID); got.PasswordChangeRequired {
			t.Error("the password change requirement stays after a new password")
		}

		// Groups and membership.
		r = send(t, env.URL, call{method: "POST", path: groupsPath("tenant-a"), token: tokAdmA,
			body: []byte(`{"name":"eng","description":"Engineering"}`)})
		var g apiGroup
		wantJSON(t, "create group", r, http.StatusCreated, &g)
		if g.Name != "eng" || g.Description != "Engineering" || g.TenantID != "tenant-a" || !strings.HasPrefix(g.ID, "grp_") || g.Members != 0 {
			t.Errorf("created group: %s", r.Body)
		}
		gs := listGroupsAPI(t, env, tokAdmA, "tenant-a")
		if len(gs) != 2 || gs["admins"].Members != 1 || gs["eng"].Members != 0 {
			t.Errorf("groups: %+v", gs)
		}
		for i := 0; i < 2; i++ {
			r := send(t, env.URL, call{method: "PUT", path: memberPath("tenant-a", "eng", tu.ID), token: tokAdmA})
			wantStatus(t, fmt.Sprintf("add member (%d)", i), r, http.StatusNoContent)
			if len(r.Body) != 0 {
				t.Errorf("add member: body %s", r.Body)
			}
		}
		if gs := listGroupsAPI(t, env, tokAdmA, "tenant-a"); gs["eng"].Members != 1 {
			t.Errorf("eng has %d members; want 1", gs["eng"].Members)
		}
		if got, _ := getUserAPI(t, env, tokAdmA, "tenant-a", tu.ID); !slices.Equal(got.Groups, []string{"eng"}) {
			t.Errorf("member's groups %v", got.Groups)
		}
		wantStatus(t, "add to admins", send(t, env.URL, call{method: "PUT", path: memberPath("tenant-a", "admins", tu.ID), token: apitest.AdminToken}), 204)
		if got, _ := getUserAPI(t, env, tokAdmA, "tenant-a", tu.ID); !slices.Equal(got.Groups, []string{"admins", "eng"}) {
			t.Errorf("member's groups %v; want [admins eng]", got.Groups)
		}
		for i := 0; i < 2; i++ {
			wantStatus(t, fmt.Sprintf("remove member (%d)", i),
				send(t, env.URL, call{method: "DELETE", path: memberPath("tenant-a", "eng", tu.ID), token: tokAdmA}), http.StatusNoContent)
		}
		if gs := listGroupsAPI(t, env, tokAdmA, "tenant-a"); gs["eng"].Members != 0 || gs["admins"].Members != 2 {
			t.Errorf("groups after removal: %+v", gs)
		}

		// Delete.
		wantStatus(t, "delete user", send(t, env.URL, call{method: "DELETE", path: usersPath("tenant-a") + "/" + tu.ID, token: tokAdmA}), http.StatusNoContent)
		r = send(t, env.URL, call{method: "GET", path: usersPath("tenant-a") + "/" + tu.ID, token: tokAdmA})
		wantProblem(t, "get a deleted user", r, 404, "user_not_found", "")
		r = send(t, env.URL, call{method: "DELETE", path: usersPath("tenant-a") + "/" + tu.ID, token: tokAdmA})
		wantProblem(t, "delete twice", r, 404, "user_not_found", "")
		if gs := listGroupsAPI(t, env, tokAdmA, "tenant-a"); gs["admins"].Members != 1 {
			t.Errorf("admins has %d members after the delete", gs["admins"].Members)
		}

		// The changes are in tenant-a's audit chain, by who made them, with no secret.
		var actions []string
		principals := map[string]bool{}
		for _, e := range auditEvents(t, env, client.AuditQuery{Tenant: "tenant-a"}) {
			b := mustJSON(t, e)
			for _, s := range []string{userPassword, userPassword2, tmp, "$argon2id"} {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("audit event holds %q: %s", s, b)
				}
			}
			if strings.HasPrefix(e.Action, "user.") || strings.HasPrefix(e.Action, "group.") {
				actions = append(actions, e.Action)
				principals[e.Principal] = true
				if e.Outcome != "success" || e.TenantID != "tenant-a" {
					t.Errorf("event %+v", e)
				}
			}
		}
		slices.Reverse(actions)
		want := "user.created user.created user.updated user.updated group.created group.member_added group.member_added " +
			"group.member_added group.member_removed group.member_removed user.deleted"
		if got := strings.Join(actions, " "); got != want {
			t.Errorf("audit actions:\n got %s\nwant %s", got, want)
		}
		if !principals["user:adm-a"] || len(principals) != 2 {
			t.Errorf("audit principals %v", principals)
		}
		// The whole trail (platform chain included) holds no password either.
		for _, e := range auditEvents(t, env, client.AuditQuery{}) {
			b := mustJSON(t, e)
			for _, s := range []string{userPassword, userPassword2, tmp, "$argon2id"} {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("audit event holds %q: %s", s, b)
				}
			}
		}
	})
}

// TestUsersAPIBadInput sends bad bodies, queries and paths to every user
// and group route: a clear problem, no secret echoed, nothing written.
func TestUsersAPIBadInput(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := usersNode(t, dsn)
		u, _ := createUserAPI(t, env, apitest.AdminToken, "tenant-a", map[string]any{"email": "taken@example.com", "password": userPassword})
		userPath := usersPath("tenant-a") + "/" + u.ID
		userBefore, _ := getUserAPI(t, env, apitest.AdminToken, "tenant-a", u.ID)

		huge := `"` + strings.Repeat("x", httpapi.MaxBodySize) + `"`
		attrs17k := `{"k":"` + strings.Repeat("x", identity.MaxAttributesSize+1024) + `"}`
		type bc struct {
			name        string
			body        string
			ctype       string
			status      int
			code, field string
			secret      string // must not be echoed
		}
		generic := func(valid string) []bc {
			return []bc{
				{name: "empty", body: "", status: 400, code: "invalid_json"},
				{name: "not json", body: "not json", status: 400, code: "invalid_json"},
				{name: "array", body: "[" + valid + "]", status: 400, code: "invalid_json"},
				{name: "two objects", body: valid + valid, status: 400, code: "invalid_json"},
				{name: "truncated", body: valid[:len(valid)-1], status: 400, code: "invalid_json"},
				{name: "text/plain", body: valid, ctype: "text/plain", status: 400, code: "unsupported_media_type"},
				{name: "unknown field", body: `{"tenant_id":"tenant-b",` + valid[1:], status: 400, code: "unknown_field", field: "tenant_id"},
				{name: "oversized", body: `{"padding":` + huge + `}`, status: 400, code: "body_too_large"},
				{name: "oversized after the object", body: valid + strings.Repeat(" ", httpapi.MaxBodySize+1), status: 400, code: "body_too_large"},
			}
		}
		createCases := append(generic(`{"email":"new@example.com","password":"`+userPassword+`"}`),
			bc{name: "bad email", body: `{"email":"not-an-email","password":"` + userPassword + `"}`, status: 400, code: "invalid_email", field: "email"},
			bc{name: "display-name email", body: `{"email":"Ann <ann@example.com>"}`, status: 400, code: "invalid_email", field: "email"},
			bc{name: "no email", body: `{"password":"` + userPassword + `"}`, status: 400, code: "invalid_email", field: "email"},
			bc{name: "email number", body: `{"email":5}`, status: 400, code: "invalid_field_type", field: "email"},
			bc{name: "groups string", body: `{"email":"new@example.com","groups":"admins"}`, status: 400, code: "invalid_field_type", field: "groups"},
			bc{name: "short password", body: `{"email":"new@example.com","password":"Sh0rt!pw"}`, status: 400, code: "weak_password", field: "password", secret: "Sh0rt!pw"},
			bc{name: "common password", body: `{"email":"new@example.com","password":"Password1234"}`, status: 400, code: "weak_password", field: "password", secret: "Password1234"},
			bc{name: "password = email", body: `{"email":"new.person@example.com","password":"New.Person@example.com"}`, status: 400, code: "weak_password", field: "password", secret: "New.Person@example.com"},
			bc{name: "reserved attribute", body: `{"email":"new@example.com","attributes":{"tenant_id":"tenant-b"}}`, status: 400, code: "reserved_attribute", field: "attributes.tenant_id"},
			bc{name: "reserved attribute groups", body: `{"email":"new@example.com","attributes":{"groups":["admins"]}}`, status: 400, code: "reserved_attribute", field: "attributes.groups"},
			bc{name: "attributes array", body: `{"email":"new@example.com","attributes":[1]}`, status: 400, code: "invalid_attributes", field: "attributes"},
			bc{name: "attributes too large", body: `{"email":"new@example.com","attributes":` + attrs17k + `}`, status: 400, code: "attributes_too_large", field: "attributes"},
			bc{name: "unknown group", body: `{"email":"new@example.com","groups":["admins","ghosts"]}`, status: 400, code: "unknown_group", field: "groups[1]"},
			bc{name: "bad group name", body: `{"email":"new@example.com","groups":["Admins"]}`, status: 400, code: "invalid_group_name", field: "groups[0]"},
			bc{name: "taken email", body: `{"email":"TAKEN@example.com","password":"` + userPassword2 + `"}`, status: 409, code: "user_exists", field: "email", secret: userPassword2},
		)
		patchCases := append(generic(`{"status":"disabled"}`),
			bc{name: "groups are not patched", body: `{"groups":["admins"]}`, status: 400, code: "unknown_field", field: "groups"},
			bc{name: "id is not patched", body: `{"id":"usr_other"}`, status: 400, code: "unknown_field", field: "id"},
			bc{name: "password_change_required is not patched", body: `{"password_change_required":false}`, status: 400, code: "unknown_field", field: "password_change_required"},
			bc{name: "status number", body: `{"status":1}`, status: 400, code: "invalid_field_type", field: "status"},
			bc{name: "bad status", body: `{"status":"locked"}`, status: 400, code: "invalid_status", field: "status"},
			bc{name: "bad email", body: `{"email":"nope","status":"disabled"}`, status: 400, code: "invalid_email", field: "email"},
			bc{name: "short password", body: `{"password":"Sh0rt!pw"}`, status: 400, code: "weak_password", field: "password", secret: "Sh0rt!pw"},
			bc{name: "password = email", body: `{"password":"taken@EXAMPLE.com"}`, status: 400, code: "weak_password", field: "password", secret: "taken@EXAMPLE.com"},
			bc{name: "weak password with good fields", body: `{"status":"disabled","attributes":{"a":1},"password":"qwertyqwerty"}`, status: 400, code: "weak_password", field: "password", secret: "qwertyqwerty"},
			bc{name: "reserved attribute", body: `{"attributes":{"sub":"usr_admin"}}`, status: 400, code: "reserved_attribute", field: "attributes.sub"},
			bc{name: "attributes string", body: `{"attributes":"x"}`, status: 400, code: "invalid_attributes", field: "attributes"},
			bc{name: "attributes too large", body: `{"attributes":` + attrs17k + `}`, status: 400, code: "attributes_too_large", field: "attributes"},
		)
		groupCases := append(generic(`{"name":"eng"}`),
			bc{name: "no name", body: `{}`, status: 400, code: "invalid_group_name", field: "name"},
			bc{name: "bad name", body: `{"name":"Eng Team"}`, status: 400, code: "invalid_group_name", field: "name"},
			bc{name: "long name", body: `{"name":"` + strings.Repeat("g", 64) + `"}`, status: 400, code: "invalid_group_name", field: "name"},
			bc{name: "name number", body: `{"name":5}`, status: 400, code: "invalid_field_type", field: "name"},
			bc{name: "members are not set here", body: `{"name":"eng","members":["usr_x"]}`, status: 400, code: "unknown_field", field: "members"},
			bc{name: "long description", body: `{"name":"eng","description":"` + strings.Repeat("d", 501) + `"}`, status: 400, code: "invalid_description", field: "description"},
			bc{name: "existing group", body: `{"name":"admins"}`, status: 409, code: "group_exists", field: "name"},
		)
		for _, set := range []struct {
			method, path string
			cases        []bc
		}{
			{"POST", usersPath("tenant-a"), createCases},
			{"PATCH", userPath, patchCases},
			{"POST", groupsPath("tenant-a"), groupCases},
		} {
			for _, c := range set.cases {
				for _, tok := range []string{apitest.AdminToken, tokAdmA} {
					cl := call{method: set.method, path: set.path, token: tok, body: []byte(c.body), ctype: c.ctype}
					what := fmt.Sprintf("%s %q (token %s)", cl, c.name, tok)
					r := send(t, env.URL, cl)
					wantProblem(t, what, r, c.status, c.code, c.field)
					noSecret(t, what, r, c.secret)
					noEcho(t, what, r, tok)
				}
			}
		}

		// Bad queries of the user listing.
		for _, q := range []struct{ query, code, field string }{
			{"limit=0", "invalid_limit", "limit"},
			{"limit=-1", "invalid_limit", "limit"},
			{"limit=1001", "invalid_limit", "limit"},
			{"limit=abc", "invalid_limit", "limit"},
			{"limit=1.5", "invalid_limit", "limit"},
			{"limit=99999999999999999999", "invalid_limit", "limit"},
			{"cursor=!!!", "invalid_cursor", "cursor"},
			{"cursor=%00", "invalid_cursor", "cursor"},
			{"cursor=" + base64.RawURLEncoding.EncodeToString([]byte("usr_\x00")), "invalid_cursor", "cursor"},
			{"cursor=" + base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("u", 65))), "invalid_cursor", "cursor"},
			{"cursor=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("usr_abc"))+"=="), "invalid_cursor", "cursor"},
		} {
			for _, tok := range []string{apitest.AdminToken, tokAdmA} {
				c := call{method: "GET", path: usersPath("tenant-a") + "?" + q.query, token: tok}
				wantProblem(t, c.String(), send(t, env.URL, c), 400, q.code, q.field)
			}
		}

		// Unknown users and groups in paths.
		for _, c := range []struct {
			method, path, code string
			body               []byte
		}{
			{"GET", usersPath("tenant-a") + "/usr_nope", "user_not_found", nil},
			{"PATCH", usersPath("tenant-a") + "/usr_nope", "user_not_found", []byte(`{"status":"disabled"}`)},
			{"DELETE", usersPath("tenant-a") + "/usr_nope", "user_not_found", nil},
			{"GET", usersPath("tenant-a") + "/" + url.PathEscape(strings.Repeat("é", 300)), "user_not_found", nil},
			{"PUT", memberPath("tenant-a", "ghosts", u.ID), "group_not_found", nil},
			{"DELETE", memberPath("tenant-a", "ghosts", u.ID), "group_not_found", nil},
			{"PUT", memberPath("tenant-a", "admins", "usr_nope"), "user_not_found", nil},
			{"DELETE", memberPath("tenant-a", "admins", "usr_nope"), "user_not_found", nil},
			{"PUT", memberPath("tenant-a", url.PathEscape(strings.Repeat("g", 500)), u.ID), "group_not_found", nil},
		} {
			cl := call{method: c.method, path: c.path, token: tokAdmA, body: c.body}
			r := send(t, env.URL, cl)
			p := wantProblem(t, cl.String(), r, 404, c.code, "")
			if len(p.Detail) > 200 {
				t.Errorf("%s: detail of %d bytes", cl, len(p.Detail))
			}
		}

		// Malformed tenant ids in the path of every user and group route.
		routes := userRoutes(t, env)
		for _, rt := range routes {
			for _, id := range []string{"ab", "Tenant-A", "-abc", "tenant_a", "tenant-a%0A", strings.Repeat("a", 64)} {
				for _, tok := range []string{apitest.AdminToken, tokAdmA} {
					c := call{method: rt.Method, path: fillUserPath(rt.Path, id, u.ID, "admins"), token: tok, body: userRouteBody(rt)}
					r := send(t, env.URL, c)
					wantProblem(t, c.String()+" (token "+tok+")", r, 400, "invalid_tenant_id", "id")
				}
			}
		}
		// A well-formed id of no tenant: 404 tenant_not_found for the operator.
		// (DELETE of a user is left to TestUsersAPIDeleteNeedsActiveTenant: a known bug.)
		for _, rt := range routes {
			if rt.Method == "DELETE" && strings.HasSuffix(rt.Path, "/users/{user}") {
				continue
			}
			c := call{method: rt.Method, path: fillUserPath(rt.Path, "no-such-tenant", u.ID, "admins"), token: apitest.AdminToken, body: userRouteBody(rt)}
			wantProblem(t, c.String()+" (operator, no such tenant)", send(t, env.URL, c), 404, "tenant_not_found", "")
		}

		// Nothing was written.
		if got, _ := getUserAPI(t, env, apitest.AdminToken, "tenant-a", u.ID); !jsonEqual(got, userBefore) {
			t.Errorf("refused requests changed the user:\nbefore %+v\nafter  %+v", userBefore, got)
		}
		for _, id := range []string{"tenant-a", "tenant-b"} {
			n := len(listUsersAPI(t, env, apitest.AdminToken, id, 0))
			if want := map[string]int{"tenant-a": 1, "tenant-b": 0}[id]; n != want {
				t.Errorf("%s has %d users after the refused requests; want %d", id, n, want)
			}
			if gs := listGroupsAPI(t, env, apitest.AdminToken, id); len(gs) != 1 {
				t.Errorf("%s has groups %+v after the refused requests", id, gs)
			}
		}
		wantNoTenant(t, env, "no-such-tenant")
		// The refused attempts are audited as failures, without the passwords.
		failures := 0
		for _, e := range auditEvents(t, env, client.AuditQuery{}) {
			b := mustJSON(t, e)
			for _, s := range []string{"Sh0rt!pw", "Password1234", "qwertyqwerty", userPassword, userPassword2} {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("audit event holds %q: %s", s, b)
				}
			}
			if e.Action == "user.create" && e.Outcome == "failure" && e.Detail["code"] == "weak_password" {
				failures++
			}
		}
		if failures == 0 {
			t.Error("refused user creates are not audited")
		}
	})
}

// userRoutes returns the registered routes of users and groups.
func userRoutes(t *testing.T, env *apitest.Env) []httpapi.Route {
	t.Helper()
	var out []httpapi.Route
	for _, rt := range env.API.Routes() {
		if strings.HasPrefix(rt.Path, "/v1/tenants/{tenant}/users") || strings.HasPrefix(rt.Path, "/v1/tenants/{tenant}/groups") {
			out = append(out, rt)
		}
	}
	if len(out) < 9 {
		t.Fatalf("only %d user and group routes; want 9 or more: %+v", len(out), out)
	}
	return out
}

func fillUserPath(pattern, tenantID, user, group string) string {
	return strings.NewReplacer("{tenant}", tenantID, "{user}", user, "{group}", group).Replace(pattern)
}

// userRouteBody returns a well-formed body for a user or group route, or nil.
func userRouteBody(rt httpapi.Route) []byte {
	switch rt.Method + " " + rt.Path {
	case "POST /v1/tenants/{tenant}/users":
		return []byte(`{"email":"intruder@example.com","password":"intruder passphrase 1"}`)
	case "PATCH /v1/tenants/{tenant}/users/{user}":
		return []byte(`{"status":"disabled","email":"intruder@example.com"}`)
	case "POST /v1/tenants/{tenant}/groups":
		return []byte(`{"name":"intruders"}`)
	case "POST /v1/tenants/{tenant}/users/{user}/totp/confirm":
		return []byte(`{"code":"123456"}`)
	case "PATCH /v1/tenants/{tenant}/identity-config":
		return []byte(`{"password_min_length":20}`)
	case "PUT /v1/tenants/{tenant}/idp":
		return []byte(`{"issuer":"https://idp.example.com","client_id":"x","client_secret":"y"}`)
	}
	return nil
}

// userCalls returns a request to every user and group route of tenantID,
// naming user and group, with a body where the route takes one, and bad
// variants that must not be looked at before the tenant is refused.
func userCalls(t *testing.T, env *apitest.Env, tenantID, user, group, token string) []call {
	t.Helper()
	var out []call
	for _, rt := range userRoutes(t, env) {
		path := fillUserPath(rt.Path, tenantID, user, group)
		out = append(out, call{method: rt.Method, path: path, token: token, body: userRouteBody(rt)})
		switch rt.Method {
		case "GET":
			out = append(out, call{method: "GET", path: path + "?limit=abc&cursor=!!!&email=bob%40b.example", token: token})
		case "POST", "PATCH":
			out = append(out,
				call{method: rt.Method, path: path, token: token, body: []byte(`{`)},
				call{method: rt.Method, path: path, token: token, body: []byte(`{"unknown":1}`)},
				call{method: rt.Method, path: path, token: token, body: []byte(`{"password":"short"}`)})
		}
	}
	return out
}

// headerKeys lists a response's header names but those that differ per request.
func headerKeys(r response) string {
	var ks []string
	for k := range r.Header {
		switch k {
		case "Date", "X-Request-Id", "Content-Length":
			continue
		}
		ks = append(ks, k+"="+strings.Join(r.Header[k], ","))
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}

// TestUsersCrossTenant checks invariant 1 on the user and group routes.
func TestUsersCrossTenant(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := usersNode(t, dsn)
		const pwB = "tenant b's own passphrase"

		// tenant-b's admin sets up B: a user in a group.
		ub, r := createUserAPI(t, env, tokAdmB, "tenant-b", map[string]any{"email": "bob@b.example", "password": pwB,
			"attributes": map[string]string{"secret": "b-only"}})
		noSecret(t, "B creates its user", r, pwB)
		wantStatus(t, "B creates a group", send(t, env.URL, call{method: "POST", path: groupsPath("tenant-b"), token: tokAdmB,
			body: []byte(`{"name":"eng-b"}`)}), http.StatusCreated)
		wantStatus(t, "B adds its user", send(t, env.URL, call{method: "PUT", path: memberPath("tenant-b", "eng-b", ub.ID), token: tokAdmB}), 204)
		// tenant-a's admin creates A's user.
		ua, _ := createUserAPI(t, env, tokAdmA, "tenant-a", map[string]any{"email": "alice@a.example"})

		bUsers := listUsersAPI(t, env, apitest.AdminToken, "tenant-b", 0)
		bGroups := listGroupsAPI(t, env, apitest.AdminToken, "tenant-b")
		bHash := userHash(t, env.App.DB, "tenant-b", ub.ID)
		bEvents := len(auditEvents(t, env, client.AuditQuery{Tenant: "tenant-b"}))
		if len(bUsers) != 1 || bGroups["eng-b"].Members != 1 || !identity.VerifyPassword(bHash, pwB) {
			t.Fatalf("B's setup: %+v %+v", bUsers, bGroups)
		}

		// 1. A's admin on every route of B, naming B's real user and group,
		// or ones that do not exist: 404 tenant_not_found, the very same
		// answer as for a tenant that does not exist.
		leaks := []string{ub.ID, "bob@b.example", "b-only", "eng-b", "user:adm-b"}
		withB := userCalls(t, env, "tenant-b", ub.ID, "eng-b", tokAdmA)
		fake := userCalls(t, env, "tenant-b", "usr_doesnotexist0000000000000", "nope", tokAdmA)
		none := userCalls(t, env, "tenant-zzz", ub.ID, "eng-b", tokAdmA)
		for i, c := range withB {
			what := c.String() + " (A's admin, B's user)"
			r := send(t, env.URL, c)
			wantProblem(t, what, r, http.StatusNotFound, "tenant_not_found", "")
			for _, s := range leaks {
				if bytes.Contains(r.Body, []byte(s)) {
					t.Errorf("%s: the answer reveals %q: %s", what, s, r.Body)
				}
			}
			noEcho(t, what, r, tokAdmA)
			got := stripProblem(t, what, r, "tenant-b")
			rf := send(t, env.URL, fake[i])
			if want := stripProblem(t, fake[i].String(), rf, "tenant-b"); got != want {
				t.Errorf("%s: answer differs from one naming a user that does not exist:\nreal %s\nfake %s", what, got, want)
			}
			rn := send(t, env.URL, none[i])
			if want := stripProblem(t, none[i].String(), rn, "tenant-zzz"); got != want {
				t.Errorf("%s: answer differs from one about a tenant that does not exist:\nB    %s\nnone %s", what, got, want)
			}
			if hk, hn := headerKeys(r), headerKeys(rn); hk != hn {
				t.Errorf("%s: headers differ from those about a tenant that does not exist:\nB    %s\nnone %s", what, hk, hn)
			}
		}

		// 2. A's admin on A's own routes naming B's user: user_not_found, as
		// for a user that does not exist.
		for _, c := range []struct{ method, path, other string }{
			{"GET", usersPath("tenant-a") + "/" + ub.ID, usersPath("tenant-a") + "/usr_doesnotexist0000000000000"},
			{"PATCH", usersPath("tenant-a") + "/" + ub.ID, usersPath("tenant-a") + "/usr_doesnotexist0000000000000"},
			{"DELETE", usersPath("tenant-a") + "/" + ub.ID, usersPath("tenant-a") + "/usr_doesnotexist0000000000000"},
			{"PUT", memberPath("tenant-a", "admins", ub.ID), memberPath("tenant-a", "admins", "usr_doesnotexist0000000000000")},
			{"DELETE", memberPath("tenant-a", "admins", ub.ID), memberPath("tenant-a", "admins", "usr_doesnotexist0000000000000")},
		} {
			var body []byte
			if c.method == "PATCH" {
				body = []byte(`{"status":"disabled","password":"` + userPassword2 + `"}`)
			}
			cl := call{method: c.method, path: c.path, token: tokAdmA, body: body}
			what := cl.String() + " (A's path, B's user)"
			r := send(t, env.URL, cl)
			wantProblem(t, what, r, http.StatusNotFound, "user_not_found", "")
			for _, s := range leaks[1:] {
				if bytes.Contains(r.Body, []byte(s)) {
					t.Errorf("%s: the answer reveals %q: %s", what, s, r.Body)
				}
			}
			got := stripProblem(t, what, r, ub.ID)
			ro := send(t, env.URL, call{method: c.method, path: c.other, token: tokAdmA, body: body})
			if want := stripProblem(t, c.other, ro, "usr_doesnotexist0000000000000"); got != want {
				t.Errorf("%s: answer differs from one about a user that does not exist:\nB's  %s\nnone %s", what, got, want)
			}
		}
		// B's group name means nothing in A.
		r = send(t, env.URL, call{method: "PUT", path: memberPath("tenant-a", "eng-b", ua.ID), token: tokAdmA})
		wantProblem(t, "A adds its user to B's group name", r, 404, "group_not_found", "")
		// A's listing never shows B's user, whatever the filter.
		for _, q := range []string{"", "?email=bob%40b.example", "?limit=1", "?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("usr_"))} {
			r := send(t, env.URL, call{method: "GET", path: usersPath("tenant-a") + q, token: tokAdmA})
			wantJSON(t, "A lists"+q, r, 200, nil)
			for _, s := range leaks {
				if bytes.Contains(r.Body, []byte(s)) {
					t.Errorf("A's listing %q reveals %q: %s", q, s, r.Body)
				}
			}
		}

		// 3. A plain user of tenant-a: 403 tenant_admin_required on every user
		// and group route of its own tenant; 404 on B's.
		for _, c := range userCalls(t, env, "tenant-a", ua.ID, "admins", tokUsrA) {
			r := send(t, env.URL, c)
			wantProblem(t, c.String()+" (A's plain user)", r, http.StatusForbidden, "tenant_admin_required", "")
			noSecret(t, c.String(), r, "alice@a.example")
		}
		for _, c := range userCalls(t, env, "tenant-b", ub.ID, "eng-b", tokUsrA) {
			wantProblem(t, c.String()+" (A's plain user on B)", send(t, env.URL, c), http.StatusNotFound, "tenant_not_found", "")
		}
		// B's admin cannot reach A either.
		for _, c := range userCalls(t, env, "tenant-a", ua.ID, "admins", tokAdmB) {
			wantProblem(t, c.String()+" (B's admin on A)", send(t, env.URL, c), http.StatusNotFound, "tenant_not_found", "")
		}

		// 4. A's admin manages A.
		r = send(t, env.URL, call{method: "PATCH", path: usersPath("tenant-a") + "/" + ua.ID, token: tokAdmA, body: []byte(`{"status":"disabled"}`)})
		var up apiUser
		if wantJSON(t, "A patches its user", r, 200, &up); up.Status != "disabled" {
			t.Errorf("A patches its user: %s", r.Body)
		}
		wantStatus(t, "A creates a group", send(t, env.URL, call{method: "POST", path: groupsPath("tenant-a"), token: tokAdmA,
			body: []byte(`{"name":"eng-a"}`)}), http.StatusCreated)
		wantStatus(t, "A adds its user", send(t, env.URL, call{method: "PUT", path: memberPath("tenant-a", "eng-a", ua.ID), token: tokAdmA}), 204)
		if gs := listGroupsAPI(t, env, tokAdmA, "tenant-a"); len(gs) != 2 || gs["eng-a"].Members != 1 {
			t.Errorf("A's groups: %+v", gs)
		}
		if us := listUsersAPI(t, env, tokAdmA, "tenant-a", 0); len(us) != 1 || us[0].ID != ua.ID || !slices.Equal(us[0].Groups, []string{"eng-a"}) {
			t.Errorf("A's users: %+v", us)
		}
		wantStatus(t, "A removes its user", send(t, env.URL, call{method: "DELETE", path: memberPath("tenant-a", "eng-a", ua.ID), token: tokAdmA}), 204)
		// And B's admin still manages B.
		if u, _ := getUserAPI(t, env, tokAdmB, "tenant-b", ub.ID); u.ID != ub.ID {
			t.Errorf("B reads its user: %+v", u)
		}

		// 5. Nothing of tenant-b changed.
		if got := listUsersAPI(t, env, apitest.AdminToken, "tenant-b", 0); !jsonEqual(got, bUsers) {
			t.Errorf("B's users changed:\nbefore %+v\nafter  %+v", bUsers, got)
		}
		if got := listGroupsAPI(t, env, apitest.AdminToken, "tenant-b"); !jsonEqual(got, bGroups) {
			t.Errorf("B's groups changed:\nbefore %+v\nafter  %+v", bGroups, got)
		}
		if h := userHash(t, env.App.DB, "tenant-b", ub.ID); h != bHash {
			t.Error("B's user's password hash changed")
		}
		bTrail := auditEvents(t, env, client.AuditQuery{Tenant: "tenant-b"})
		if len(bTrail) != bEvents {
			t.Errorf("B's chain grew from %d to %d events", bEvents, len(bTrail))
		}
		for _, e := range bTrail {
			if e.Principal == "user:adm-a" || e.Principal == "user:plain-a" {
				t.Errorf("B's chain holds A's event %+v", e)
			}
		}
		// The refused attempts are in the platform chain, denied, under A's principal.
		denied := 0
		for _, e := range auditEvents(t, env, client.AuditQuery{Tenant: "-"}) {
			if e.Principal == "user:adm-a" && e.Outcome == "denied" && e.Target == "tenant-b" && e.Detail["code"] == "tenant_not_found" {
				denied++
			}
		}
		if denied == 0 {
			t.Error("A's refused attempts on tenant-b are not audited")
		}
	})
}

// userHash reads a user's stored password hash directly from the database.
func userHash(t *testing.T, db *storage.DB, tenantID, id string) string {
	t.Helper()
	var h string
	err := db.View(context.Background(), storage.TenantScope(tenant.ID(tenantID)), func(tx *storage.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT password_hash FROM users WHERE tenant_id = ? AND id = ?`, tenantID, id).Scan(&h)
	})
	if err != nil {
		t.Fatalf("read the hash of %s: %v", id, err)
	}
	return h
}

// TestUsersAPIOddIDsNever500: user ids, group names and email filters of
// any bytes are looked up, never passed to the database in a way it refuses.
func TestUsersAPIOddIDsNever500(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := usersNode(t, dsn)
		for _, c := range []struct {
			method, path, code string
			body               []byte
		}{
			{"GET", usersPath("tenant-a") + "/%00", "user_not_found", nil},
			{"GET", usersPath("tenant-a") + "/%FF", "user_not_found", nil},
			{"GET", usersPath("tenant-a") + "/usr_%C3%28", "user_not_found", nil},
			{"PATCH", usersPath("tenant-a") + "/%00", "user_not_found", []byte(`{"status":"disabled"}`)},
			{"DELETE", usersPath("tenant-a") + "/%00", "user_not_found", nil},
			{"DELETE", usersPath("tenant-a") + "/%FF", "user_not_found", nil},
			{"PUT", memberPath("tenant-a", "%00", "usr_x"), "group_not_found", nil},
			{"PUT", memberPath("tenant-a", "%FF", "usr_x"), "group_not_found", nil},
			{"PUT", memberPath("tenant-a", "admins", "%00"), "user_not_found", nil},
			{"DELETE", memberPath("tenant-a", "admins", "%FF"), "user_not_found", nil},
		} {
			cl := call{method: c.method, path: c.path, token: apitest.AdminToken, body: c.body}
			wantProblem(t, cl.String(), send(t, env.URL, cl), 404, c.code, "")
		}
		for _, q := range []string{"%00", "%FF", "ann%00%40example.com"} {
			path := usersPath("tenant-a") + "?email=" + q
			r := send(t, env.URL, call{method: "GET", path: path, token: apitest.AdminToken})
			if r.Status == 400 {
				wantProblem(t, path, r, 400, "invalid_email", "email")
			} else if wantJSON(t, path, r, 200, nil); !bytes.Contains(r.Body, []byte(`"items":[]`)) {
				t.Errorf("%s: %s", path, r.Body)
			}
		}
	})
}

// TestUsersAPIDeleteNeedsActiveTenant: deleting a user is a change like the
// others: refused in a suspended tenant, tenant_not_found for no tenant.
func TestUsersAPIDeleteNeedsActiveTenant(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := usersNode(t, dsn)
		u, _ := createUserAPI(t, env, tokAdmA, "tenant-a", map[string]any{"email": "kept@example.com", "password": userPassword})
		r := send(t, env.URL, call{method: "DELETE", path: usersPath("no-such-tenant") + "/" + u.ID, token: apitest.AdminToken})
		wantProblem(t, "delete a user of no tenant", r, 404, "tenant_not_found", "")
		if _, err := env.Admin.SuspendTenant(context.Background(), "tenant-a"); err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{apitest.AdminToken, tokAdmA} {
			r := send(t, env.URL, call{method: "DELETE", path: usersPath("tenant-a") + "/" + u.ID, token: tok})
			wantProblem(t, "delete a user of a suspended tenant", r, 409, "tenant_not_active", "")
		}
		getUserAPI(t, env, apitest.AdminToken, "tenant-a", u.ID)
	})
}
