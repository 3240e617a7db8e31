package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// workflow is a lifecycle workflow as GET /v1/tenants/{tenant}/workflows shows it.
type workflow struct {
	ID        string `json:"id"`
	TenantID  string `json:"tenant_id"`
	Kind      string `json:"kind"`
	Status    string `json:"status"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error"`
	Steps     []struct {
		Name        string    `json:"name"`
		CompletedAt time.Time `json:"completed_at"`
	} `json:"steps"`
}

func workflows(t testing.TB, env *apitest.Env, id string) []workflow {
	t.Helper()
	var out struct {
		Items []workflow `json:"items"`
	}
	r := send(t, env.URL, call{method: "GET", path: "/v1/tenants/" + id + "/workflows", token: apitest.AdminToken})
	wantJSON(t, "GET workflows of "+id, r, 200, &out)
	return out.Items
}

// count returns how many of xs satisfy keep.
func count[T any](xs []T, keep func(T) bool) int {
	n := 0
	for _, x := range xs {
		if keep(x) {
			n++
		}
	}
	return n
}

func countKind(wfs []workflow, kind string) int {
	return count(wfs, func(w workflow) bool { return w.Kind == kind })
}
func TestCreateAndGetTenant(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{})
		body := []byte(`{"id":"acme-corp","name":"Acme Corp","domains":["Shop.Acme.example.","api.acme.example","shop.acme.example"],` +
			`"config":{"theme":"dark","limits":{"users":10}}}`)
		start := time.Now().Add(-time.Minute)
		r := send(t, env.URL, call{method: "POST", path: "/v1/tenants", token: apitest.AdminToken, body: body})
		var created client.Tenant
		wantJSON(t, "create", r, http.StatusCreated, &created)
		if loc := r.Header.Get("Location"); loc != "/v1/tenants/acme-corp" {
			t.Errorf("Location = %q", loc)
		}
		want := client.Tenant{ID: "acme-corp", Name: "Acme Corp", Tier: "basic", Isolation: "pool", Status: "active",
			Domains: []string{"api.acme.example", "shop.acme.example"}}
		check := func(what string, got client.Tenant) {
			t.Helper()
			if got.ID != want.ID || got.Name != want.Name || got.Tier != want.Tier || got.Isolation != want.Isolation ||
				got.Status != want.Status || !slices.Equal(got.Domains, want.Domains) {
				t.Errorf("%s: got %+v, want %+v", what, got, want)
			}
			var cfg map[string]any
			if err := json.Unmarshal(got.Config, &cfg); err != nil || cfg["theme"] != "dark" {
				t.Errorf("%s: config = %s", what, got.Config)
			}
			if got.CreatedAt.Before(start) || got.UpdatedAt.Before(got.CreatedAt) {
				t.Errorf("%s: created_at %v updated_at %v", what, got.CreatedAt, got.UpdatedAt)
			}
		}
		check("create answer", created)
		check("get", getTenant(t, env, "acme-corp"))

		// Defaults: the name is the id, the tier is basic, config is {}.
		min := createTenant(t, env, client.CreateTenant{ID: "min"})
		if min.Name != "min" || min.Tier != "basic" || string(min.Config) != "{}" || min.Domains == nil || len(min.Domains) != 0 {
			t.Errorf("defaults: %+v config=%s", min, min.Config)
		}
		// Every tier can be chosen at creation.
		for _, tier := range []string{"basic", "standard", "premium"} {
			tn := createTenant(t, env, client.CreateTenant{ID: "tier-" + tier, Tier: tier})
			if tn.Tier != tier || tn.Status != "active" {
				t.Errorf("tier %s: %+v", tier, tn)
			}
		}
		// Onboarding ran exactly once and finished.
		wfs := workflows(t, env, "acme-corp")
		if len(wfs) != 1 || wfs[0].Kind != "onboarding" || wfs[0].Status != "done" || len(wfs[0].Steps) == 0 {
			t.Errorf("workflows: %+v", wfs)
		}
		// The tier listing names the built-in tiers.
		var tiers struct {
			Items []struct {
				Name      string `json:"name"`
				Isolation string `json:"isolation"`
			} `json:"items"`
		}
		wantJSON(t, "tiers", send(t, env.URL, call{method: "GET", path: "/v1/tiers", token: apitest.AdminToken}), 200, &tiers)
		if len(tiers.Items) != 3 || tiers.Items[0].Name != "basic" || tiers.Items[2].Name != "standard" {
			t.Errorf("tiers: %+v", tiers)
		}
	})
}

func TestListTenantsPagination(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{})
		ctx := context.Background()
		var ids []string
		// Created out of order; listed by id.
		for _, n := range []int{5, 2, 7, 1, 6, 3, 4} {
			id := fmt.Sprintf("page-%02d", n)
			ids = append(ids, id)
			createTenant(t, env, client.CreateTenant{ID: id, Domains: []string{id + ".example.com"}})
		}
		slices.Sort(ids)

		var seen []string
		var sizes []int
		cursor := ""
		for page := 0; ; page++ {
			if page > 10 {
				t.Fatal("pagination does not end")
			}
			p, err := env.Admin.ListTenants(ctx, 3, cursor)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(p.Items))
			for _, tn := range p.Items {
				seen = append(seen, tn.ID)
				if len(tn.Domains) != 1 || tn.Domains[0] != tn.ID+".example.com" {
					t.Errorf("listed tenant %s has domains %v", tn.ID, tn.Domains)
				}
			}
			if p.NextCursor == "" {
				break
			}
			cursor = p.NextCursor
		}
		if !slices.Equal(seen, ids) {
			t.Errorf("pages walked %v, want %v (each once, in order)", seen, ids)
		}
		if !slices.Equal(sizes, []int{3, 3, 1}) {
			t.Errorf("page sizes %v, want [3 3 1]", sizes)
		}

		// An exact multiple of the page size ends without an empty page or with one empty page, never a duplicate.
		p, err := env.Admin.ListTenants(ctx, 7, "")
		if err != nil || len(p.Items) != 7 {
			t.Fatalf("limit 7: %v %d", err, len(p.Items))
		}
		if p.NextCursor != "" {
			p2, err := env.Admin.ListTenants(ctx, 7, p.NextCursor)
			if err != nil || len(p2.Items) != 0 || p2.NextCursor != "" {
				t.Errorf("after the last full page: %v %+v", err, p2)
			}
		}
		// Default limit returns all 7.
		var all client.TenantPage
		wantJSON(t, "list default", send(t, env.URL, call{method: "GET", path: "/v1/tenants", token: apitest.AdminToken}), 200, &all)
		if len(all.Items) != 7 || all.NextCursor != "" {
			t.Errorf("default listing: %d items, cursor %q", len(all.Items), all.NextCursor)
		}

		// The status filter pages too.
		for _, id := range []string{"page-02", "page-05", "page-07"} {
			if _, err := env.Admin.SuspendTenant(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		walk := func(status string, limit int) []string {
			var got []string
			cursor := ""
			for i := 0; i < 10; i++ {
				path := fmt.Sprintf("/v1/tenants?status=%s&limit=%d", status, limit)
				if cursor != "" {
					path += "&cursor=" + cursor
				}
				var p client.TenantPage
				wantJSON(t, path, send(t, env.URL, call{method: "GET", path: path, token: apitest.AdminToken}), 200, &p)
				for _, tn := range p.Items {
					if tn.Status != status {
						t.Errorf("%s: tenant %s is %s", path, tn.ID, tn.Status)
					}
					got = append(got, tn.ID)
				}
				if p.NextCursor == "" {
					return got
				}
				cursor = p.NextCursor
			}
			t.Fatal("status pagination does not end")
			return nil
		}
		if got := walk("suspended", 2); !slices.Equal(got, []string{"page-02", "page-05", "page-07"}) {
			t.Errorf("suspended: %v", got)
		}
		if got := walk("active", 3); !slices.Equal(got, []string{"page-01", "page-03", "page-04", "page-06"}) {
			t.Errorf("active: %v", got)
		}
		if got := walk("deleted", 3); len(got) != 0 {
			t.Errorf("deleted: %v", got)
		}
	})
}

func TestUpdateTenant(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := newTieredNode(t, dsn)
		ctx := context.Background()
		orig := createTenant(t, env, client.CreateTenant{ID: "upd-tenant", Name: "Before", Domains: []string{"a.upd.example"},
			Config: []byte(`{"k":"v"}`)})
		str := func(s string) *string { return &s }

		// Name.
		time.Sleep(2 * time.Millisecond)
		got, err := env.Admin.UpdateTenant(ctx, "upd-tenant", client.TenantPatch{Name: str("After")})
		if err != nil || got.Name != "After" || got.Tier != "basic" || string(got.Config) != `{"k":"v"}` ||
			!slices.Equal(got.Domains, []string{"a.upd.example"}) {
			t.Fatalf("rename: %v %+v", err, got)
		}
		if !got.UpdatedAt.After(orig.UpdatedAt) || !got.CreatedAt.Equal(orig.CreatedAt) {
			t.Errorf("rename: created %v→%v updated %v→%v", orig.CreatedAt, got.CreatedAt, orig.UpdatedAt, got.UpdatedAt)
		}
		// Tier within the pool model.
		got, err = env.Admin.UpdateTenant(ctx, "upd-tenant", client.TenantPatch{Tier: str("plus")})
		if err != nil || got.Tier != "plus" || got.Isolation != "pool" || got.Name != "After" {
			t.Fatalf("pool tier change: %v %+v", err, got)
		}
		// Tier to another isolation model: a tier migration, refused, nothing changed.
		for _, tier := range []string{"premium", "standard"} {
			_, err = env.Admin.UpdateTenant(ctx, "upd-tenant", client.TenantPatch{Tier: str(tier), Name: str("Migrated")})
			wantClientErr(t, "tier "+tier, err, 409, "tier_migration_unsupported", "tier")
		}
		if g := getTenant(t, env, "upd-tenant"); g.Tier != "plus" || g.Name != "After" {
			t.Errorf("after refused migrations: %+v", g)
		}
		// Config and domains replace the old ones.
		got, err = env.Admin.UpdateTenant(ctx, "upd-tenant", client.TenantPatch{Config: []byte(`{"new":true}`),
			Domains: &[]string{"B.upd.example", "c.upd.example."}})
		if err != nil || string(got.Config) != `{"new":true}` || !slices.Equal(got.Domains, []string{"b.upd.example", "c.upd.example"}) {
			t.Fatalf("config+domains: %v %+v", err, got)
		}
		// An empty patch changes nothing but is accepted.
		got, err = env.Admin.UpdateTenant(ctx, "upd-tenant", client.TenantPatch{})
		if err != nil || got.Name != "After" || got.Tier != "plus" || len(got.Domains) != 2 {
			t.Fatalf("empty patch: %v %+v", err, got)
		}
		// config null resets to {}; domains [] removes them all.
		r := send(t, env.URL, call{method: "PATCH", path: "/v1/tenants/upd-tenant", token: apitest.AdminToken,
			body: []byte(`{"config":null,"domains":[]}`)})
		wantJSON(t, "clear", r, 200, &got)
		if len(got.Domains) != 0 {
			t.Errorf("clear: %+v config=%s", got, got.Config)
		}
		// The removed domain is free for another tenant.
		createTenant(t, env, client.CreateTenant{ID: "next-tenant", Domains: []string{"a.upd.example", "b.upd.example"}})

		// The update is audited in the tenant's chain.
		evs := auditEvents(t, env, client.AuditQuery{Tenant: "upd-tenant", Action: "tenant.updated"})
		if len(evs) != 5 {
			t.Errorf("tenant.updated events: %d, want 5", len(evs))
		}
		// The refused ones are audited as failures in the platform chain.
		fails := 0
		for _, e := range auditEvents(t, env, client.AuditQuery{Tenant: "-", Action: "tenant.update"}) {
			if e.Outcome == "failure" && e.Target == "upd-tenant" && e.Detail["code"] == "tier_migration_unsupported" {
				fails++
			}
		}
		if fails != 2 {
			t.Errorf("audited failed updates: %d, want 2", fails)
		}
	})
}

// wantClientErr checks an SDK error.
func wantClientErr(t testing.TB, what string, err error, status int, code, field string) {
	t.Helper()
	ce, ok := err.(*client.Error)
	if !ok {
		t.Fatalf("%s: error %v (%T), want %d %s", what, err, err, status, code)
	}
	if ce.Status != status || ce.Code != code || ce.Field != field {
		t.Errorf("%s: got %d %s field=%q, want %d %s field=%q (%s)", what, ce.Status, ce.Code, ce.Field, status, code, field, ce.Detail)
	}
}

func TestDomainsUniqueAcrossTenants(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{})
		ctx := context.Background()
		createTenant(t, env, client.CreateTenant{ID: "dom-a", Domains: []string{"shop.example.com", "a.example.com", "A.example.com."}})
		if got := getTenant(t, env, "dom-a").Domains; !slices.Equal(got, []string{"a.example.com", "shop.example.com"}) {
			t.Errorf("dom-a domains %v (normalized, de-duplicated)", got)
		}
		createTenant(t, env, client.CreateTenant{ID: "dom-b", Domains: []string{"b.example.com"}})

		_, err := env.Admin.CreateTenant(ctx, client.CreateTenant{ID: "dom-c", Domains: []string{"SHOP.example.com."}}, "")
		wantClientErr(t, "create with a taken domain", err, 409, "domain_taken", "domains")
		wantNoTenant(t, env, "dom-c")

		_, err = env.Admin.UpdateTenant(ctx, "dom-b", client.TenantPatch{Domains: &[]string{"b.example.com", "shop.example.com"}})
		wantClientErr(t, "update to a taken domain", err, 409, "domain_taken", "domains")
		if got := getTenant(t, env, "dom-b").Domains; !slices.Equal(got, []string{"b.example.com"}) {
			t.Errorf("dom-b domains after refused update: %v", got)
		}
		// Keeping one's own domains is not a conflict.
		if _, err := env.Admin.UpdateTenant(ctx, "dom-a", client.TenantPatch{Domains: &[]string{"shop.example.com", "a.example.com"}}); err != nil {
			t.Fatalf("re-set own domains: %v", err)
		}
		// dom-a gives shop.example.com up; dom-b may take it.
		if _, err := env.Admin.UpdateTenant(ctx, "dom-a", client.TenantPatch{Domains: &[]string{"a.example.com"}}); err != nil {
			t.Fatal(err)
		}
		got, err := env.Admin.UpdateTenant(ctx, "dom-b", client.TenantPatch{Domains: &[]string{"b.example.com", "shop.example.com"}})
		if err != nil || !slices.Equal(got.Domains, []string{"b.example.com", "shop.example.com"}) {
			t.Fatalf("take a released domain: %v %+v", err, got)
		}

		// Two concurrent creations claiming one domain: exactly one wins.
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = env.Admin.CreateTenant(ctx, client.CreateTenant{ID: fmt.Sprintf("race-%d", i), Domains: []string{"race.example.com"}}, "")
			}()
		}
		wg.Wait()
		wins := 0
		for i, err := range errs {
			if err == nil {
				wins++
				continue
			}
			wantClientErr(t, fmt.Sprintf("racer %d", i), err, 409, "domain_taken", "domains")
		}
		if wins != 1 {
			t.Errorf("%d creations won race.example.com, want 1", wins)
		}
	})
}

func TestSuspendResume(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{})
		createTenant(t, env, client.CreateTenant{ID: "sr-tenant"})
		createTenant(t, env, client.CreateTenant{ID: "sr-gone"})
		if _, err := env.Admin.DeleteTenant(context.Background(), "sr-gone"); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, env, "sr-gone", "deleted")

		steps := []struct {
			tenant, action string
			status         int
			code, want     string
		}{
			{"sr-tenant", "resume", 200, "", "active"}, // resuming an active tenant is a no-op
			{"sr-tenant", "suspend", 200, "", "suspended"},
			{"sr-tenant", "suspend", 200, "", "suspended"}, // no-op
			{"sr-tenant", "resume", 200, "", "active"},
			{"sr-tenant", "suspend", 200, "", "suspended"},
			{"sr-gone", "suspend", 409, "invalid_tenant_state", "deleted"},
			{"sr-gone", "resume", 409, "invalid_tenant_state", "deleted"},
			{"no-such-tenant", "suspend", 404, "tenant_not_found", ""},
			{"no-such-tenant", "resume", 404, "tenant_not_found", ""},
		}
		for i, s := range steps {
			what := fmt.Sprintf("step %d: %s %s", i, s.action, s.tenant)
			r := send(t, env.URL, call{method: "POST", path: "/v1/tenants/" + s.tenant + "/" + s.action, token: apitest.AdminToken})
			if s.code != "" {
				wantProblem(t, what, r, s.status, s.code, "")
			} else {
				var tn client.Tenant
				wantJSON(t, what, r, s.status, &tn)
				if tn.Status != s.want {
					t.Errorf("%s: answer says %s, want %s", what, tn.Status, s.want)
				}
			}
			if s.want != "" {
				if got := getTenant(t, env, s.tenant).Status; got != s.want {
					t.Errorf("%s: tenant is %s, want %s", what, got, s.want)
				}
			}
		}
		// A suspended tenant can still be read, updated and deleted.
		if _, err := env.Admin.UpdateTenant(context.Background(), "sr-tenant", client.TenantPatch{}); err != nil {
			t.Errorf("update suspended: %v", err)
		}
		// Real transitions are audited (two suspensions, one resumption: no-ops are not).
		sus := auditEvents(t, env, client.AuditQuery{Tenant: "sr-tenant", Action: "tenant.suspended"})
		res := auditEvents(t, env, client.AuditQuery{Tenant: "sr-tenant", Action: "tenant.resumed"})
		if len(sus) != 2 || len(res) != 1 {
			t.Errorf("audited %d suspensions and %d resumptions, want 2 and 1", len(sus), len(res))
		}
		if _, err := env.Admin.DeleteTenant(context.Background(), "sr-tenant"); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, env, "sr-tenant", "deleted")
	})
}

func TestDeleteTenant(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{})
		ctx := context.Background()
		createTenant(t, env, client.CreateTenant{ID: "del-tenant", Domains: []string{"del.example.com"}})

		r := send(t, env.URL, call{method: "DELETE", path: "/v1/tenants/del-tenant", token: apitest.AdminToken})
		var tn client.Tenant
		wantJSON(t, "delete", r, http.StatusAccepted, &tn)
		if tn.ID != "del-tenant" || (tn.Status != "offboarding" && tn.Status != "deleted") {
			t.Errorf("delete answer: %+v", tn)
		}
		gone := waitStatus(t, env, "del-tenant", "deleted")
		if len(gone.Domains) != 0 {
			t.Errorf("deleted tenant keeps domains %v", gone.Domains)
		}

		// Deleting again is accepted and changes nothing.
		r = send(t, env.URL, call{method: "DELETE", path: "/v1/tenants/del-tenant", token: apitest.AdminToken})
		wantJSON(t, "delete again", r, http.StatusAccepted, &tn)
		if tn.Status != "deleted" {
			t.Errorf("delete again: %+v", tn)
		}
		// The id stays reserved.
		_, err := env.Admin.CreateTenant(ctx, client.CreateTenant{ID: "del-tenant"}, "")
		wantClientErr(t, "re-create", err, 409, "tenant_exists", "")
		// A deleted tenant cannot change.
		name := "Zombie"
		_, err = env.Admin.UpdateTenant(ctx, "del-tenant", client.TenantPatch{Name: &name})
		wantClientErr(t, "update deleted", err, 409, "tenant_offboarded", "")
		// Its domain is released.
		createTenant(t, env, client.CreateTenant{ID: "heir-tenant", Domains: []string{"del.example.com"}})
		// It is still listed, as deleted.
		p, err := env.Admin.ListTenants(ctx, 10, "")
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, x := range p.Items {
			if x.ID == "del-tenant" {
				found = x.Status == "deleted"
			}
		}
		if !found {
			t.Errorf("del-tenant not listed as deleted: %+v", p.Items)
		}
		// Both workflows are done; offboarding ran its steps.
		wfs := workflows(t, env, "del-tenant")
		if countKind(wfs, "onboarding") != 1 || countKind(wfs, "offboarding") != 1 {
			t.Fatalf("workflows: %+v", wfs)
		}
		for _, w := range wfs {
			if w.Status != "done" {
				t.Errorf("workflow %s is %s (%s)", w.Kind, w.Status, w.LastError)
			}
			if w.Kind == "offboarding" {
				var names []string
				for _, s := range w.Steps {
					names = append(names, s.Name)
				}
				if !slices.Contains(names, "release-domains") || !slices.Contains(names, "mark-deleted") {
					t.Errorf("offboarding steps %v", names)
				}
			}
		}
		// And the trail says so.
		var actions []string
		for _, e := range auditEvents(t, env, client.AuditQuery{Tenant: "del-tenant"}) {
			actions = append(actions, e.Action)
		}
		for _, a := range []string{"tenant.onboarding.started", "tenant.activated", "tenant.offboarding.started", "tenant.deleted"} {
			if !slices.Contains(actions, a) {
				t.Errorf("audit of del-tenant lacks %s: %v", a, actions)
			}
		}
		if n := count(actions, func(a string) bool { return a == "tenant.offboarding.started" }); n != 1 {
			t.Errorf("offboarding started %d times", n)
		}

		// Deleting an unknown tenant is a 404 and creates nothing.
		r = send(t, env.URL, call{method: "DELETE", path: "/v1/tenants/never-was", token: apitest.AdminToken})
		wantProblem(t, "delete unknown", r, 404, "tenant_not_found", "")
		wantNoTenant(t, env, "never-was")
	})
}

func TestCreateIdempotency(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{})
		ctx := context.Background()
		in := client.CreateTenant{ID: "idem-tenant", Name: "Idem", Domains: []string{"idem.example.com"}, Config: []byte(`{"a":1}`)}

		first, err := env.Admin.CreateTenant(ctx, in, "key-0001")
		if err != nil {
			t.Fatal(err)
		}
		// Retries with the same key and body return the same tenant.
		for i := 0; i < 3; i++ {
			r := send(t, env.URL, call{method: "POST", path: "/v1/tenants", token: apitest.AdminToken, body: mustJSON(t, in),
				header: http.Header{"Idempotency-Key": {"key-0001"}}})
			var again client.Tenant
			if r.Status != 200 && r.Status != 201 {
				t.Fatalf("retry %d: %d %s", i, r.Status, r.Body)
			}
			wantJSON(t, "retry", r, r.Status, &again)
			if again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) {
				t.Errorf("retry %d returned %+v, want %+v", i, again, first)
			}
		}
		// An equivalent body (domain in other case) is the same request.
		same := in
		same.Domains = []string{"IDEM.example.com."}
		if again, err := env.Admin.CreateTenant(ctx, same, "key-0001"); err != nil || again.ID != first.ID {
			t.Errorf("normalized retry: %v %+v", err, again)
		}
		// Only one onboarding ran.
		if wfs := workflows(t, env, "idem-tenant"); countKind(wfs, "onboarding") != 1 {
			t.Errorf("onboardings: %+v", wfs)
		}
		if evs := auditEvents(t, env, client.AuditQuery{Tenant: "idem-tenant", Action: "tenant.onboarding.started"}); len(evs) != 1 {
			t.Errorf("onboarding.started audited %d times", len(evs))
		}
		// The same key with another body is refused, and creates nothing.
		for _, other := range []client.CreateTenant{
			{ID: "idem-other"},
			{ID: "idem-tenant", Name: "Other name", Domains: in.Domains, Config: in.Config},
			{ID: "idem-tenant", Name: "Idem", Domains: in.Domains, Config: []byte(`{"a":2}`)},
		} {
			_, err = env.Admin.CreateTenant(ctx, other, "key-0001")
			wantClientErr(t, "reused key "+other.ID+" "+other.Name, err, 409, "idempotency_key_reused", "")
		}
		wantNoTenant(t, env, "idem-other")
		if got := getTenant(t, env, "idem-tenant"); got.Name != "Idem" {
			t.Errorf("idem-tenant changed: %+v", got)
		}
		// Another key with the same body is a second creation: the id is taken.
		_, err = env.Admin.CreateTenant(ctx, in, "key-0002")
		wantClientErr(t, "new key, same id", err, 409, "tenant_exists", "")
		// Without a key, a repeat is a conflict too.
		_, err = env.Admin.CreateTenant(ctx, in, "")
		wantClientErr(t, "no key, same id", err, 409, "tenant_exists", "")
		// key-0002's failure did not record it: it can still create something else.
		if _, err := env.Admin.CreateTenant(ctx, client.CreateTenant{ID: "idem-second"}, "key-0002"); err != nil {
			t.Errorf("key-0002 after its failed use: %v", err)
		}
	})
}

// TestCreateIdempotencyConcurrent retries one creation concurrently with one
// key: every attempt must get the one tenant, and it is onboarded once.
func TestCreateIdempotencyConcurrent(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		env := apitest.New(t, dsn, apitest.Options{})
		ctx := context.Background()
		in := client.CreateTenant{ID: "conc-tenant", Domains: []string{"conc.example.com"}}
		const n = 12
		// One warm connection per attempt, so that the attempts overlap.
		tr := &http.Transport{MaxIdleConnsPerHost: n}
		defer tr.CloseIdleConnections()
		admin := client.New(env.URL, apitest.AdminToken)
		admin.HTTP = &http.Client{Transport: tr, Timeout: 30 * time.Second}
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				admin.ListTenants(ctx, 1, "")
			}()
		}
		wg.Wait()
		errs := make([]error, n)
		got := make([]client.Tenant, n)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got[i], errs[i] = admin.CreateTenant(ctx, in, "conc-key")
			}()
		}
		close(start)
		wg.Wait()
		var failed []string
		for i := range n {
			if errs[i] != nil {
				failed = append(failed, errs[i].Error())
			} else if got[i].ID != "conc-tenant" {
				t.Errorf("attempt %d got %+v", i, got[i])
			}
		}
		if wfs := workflows(t, env, "conc-tenant"); countKind(wfs, "onboarding") != 1 {
			t.Errorf("onboardings: %d", countKind(wfs, "onboarding"))
		}
		if len(failed) > 0 {
			t.Errorf("concurrent retries with one Idempotency-Key: %d of %d failed: %v", len(failed), n, failed)
		}
	})
}

// TestConcurrentCreatesComplete creates many tenants at once through the
// API: every creation must be answered, and every tenant onboarded. (More
// concurrent creations than the database pool has connections once
// deadlocked a PostgreSQL node: each onboarding held a pooled connection for
// its workflow lock while waiting for another for its steps. If that comes
// back, the test fails after a minute and apitest's cleanup closes the database
// first so that the stuck handlers return.)
func TestConcurrentCreatesComplete(t *testing.T) {
	t.Parallel()
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		nd := apitest.New(t, dsn, apitest.Options{})
		ctx := context.Background()
		const n = 96
		admin := client.New(nd.URL, apitest.AdminToken)
		tr := &http.Transport{MaxIdleConnsPerHost: n}
		defer tr.CloseIdleConnections()
		// A deadlock never answers; a loaded machine answers late. A
		// minute tells them apart without failing on a busy CI machine.
		admin.HTTP = &http.Client{Transport: tr, Timeout: time.Minute}
		var wg sync.WaitGroup
		errs := make([]error, n)
		got := make([]client.Tenant, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i], errs[i] = admin.CreateTenant(ctx, client.CreateTenant{ID: fmt.Sprintf("burst-%03d", i)}, fmt.Sprintf("burst-key-%03d", i))
			}()
		}
		wg.Wait()
		var unanswered []string
		for i, err := range errs {
			if err == nil {
				continue
			}
			if _, ok := err.(*client.Error); ok {
				t.Errorf("create burst-%03d: %v", i, err)
				continue
			}
			unanswered = append(unanswered, err.Error())
		}
		if len(unanswered) > 0 {
			t.Fatalf("%d of %d concurrent creations unanswered after a minute (is the node deadlocked?), e.g. %s",
				len(unanswered), n, unanswered[0])
		}
		for i := range n {
			if got[i].Status == "active" {
				continue
			}
			waitStatus(t, nd, got[i].ID, "active")
		}
		if all := allTenants(t, nd); len(all) != n {
			t.Errorf("%d tenants listed, want %d", len(all), n)
		}
	})
}
