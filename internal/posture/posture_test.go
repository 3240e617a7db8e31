package posture_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"

	_ "github.com/jackc/pgx/v5/stdlib"
)

var op = tenant.Actor{Principal: "operator:test"}

type fixture struct {
	env *apitest.Env
	ctx context.Context
}

func newFixture(t *testing.T, dsn string) *fixture {
	t.Helper()
	return &fixture{env: apitest.New(t, dsn, apitest.Options{Argon2: identity.Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}}),
		ctx: context.Background()}
}

func (f *fixture) tenant(t *testing.T, id string) {
	t.Helper()
	if _, _, err := f.env.Tenants.Create(f.ctx, tenants.CreateRequest{ID: id, Tier: "basic"}, "", op); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) scan(t *testing.T) api.PostureScan {
	t.Helper()
	var out api.PostureScan
	if err := f.env.Admin.Do(f.ctx, "POST", "/v1/posture/scan", nil, nil, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Failed) > 0 {
		t.Fatalf("checks failed: %v", out.Failed)
	}
	return out
}

// findings lists the open findings (query: "", "?tenant=-", …).
func (f *fixture) findings(t *testing.T, query string) []api.PostureFinding {
	t.Helper()
	var p api.PosturePage
	if err := f.env.Admin.Do(f.ctx, "GET", "/v1/posture"+query, nil, nil, &p); err != nil {
		t.Fatal(err)
	}
	return p.Items
}

func find(fs []api.PostureFinding, check, object string) (api.PostureFinding, bool) {
	i := slices.IndexFunc(fs, func(f api.PostureFinding) bool { return f.Check == check && strings.Contains(f.Object, object) })
	if i < 0 {
		return api.PostureFinding{}, false
	}
	return fs[i], true
}

func (f *fixture) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if err := f.env.DB.Update(f.ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(f.ctx, q, args...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestPostureFindings: a fixture deployment with each defect gets each
// finding, with its severity, object, why and fix; each is audited when
// opened, kept under its id while the defect stays, and resolved when it
// goes; a tenant's admins see their tenant's findings only; a clean
// deployment has none.
func TestPostureFindings(t *testing.T) {
	f := newFixture(t, storagetest.DSN(t, storage.SQLite))
	f.tenant(t, "acme")
	f.tenant(t, "globex")
	if s := f.scan(t); s.Opened != 0 || len(f.findings(t, "")) != 0 {
		t.Fatalf("a clean deployment: %+v %+v", s, f.findings(t, ""))
	}

	// The defects.
	ann, err := f.env.Directory.CreateUser(f.ctx, "acme", identity.CreateUserRequest{Email: "ann@acme.example", Password: "correct horse battery staple 1", Groups: []string{"admins"}}, op)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := f.env.Admin.CreatePolicy(f.ctx, "acme", client.PolicyInput{Statement: `permit(principal, action, resource);`})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.Admin.CreatePolicy(f.ctx, "globex", client.PolicyInput{Statement: `permit(principal, action, resource) when { principal.level > 3 };`}); err != nil {
		t.Fatal(err)
	}
	global, err := f.env.Admin.CreateGlobalPolicy(f.ctx, client.PolicyInput{Statement: `permit (principal, action, resource);`})
	if err != nil {
		t.Fatal(err)
	}
	key, err := f.env.Admin.CreateKey(f.ctx, "acme", client.CreateKeyRequest{Description: "rotates yearly", RotationPeriod: "8760h"})
	if err != nil {
		t.Fatal(err)
	}
	stale, err := f.env.Admin.CreateKey(f.ctx, "globex", client.CreateKeyRequest{Description: "imported, expiring"})
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-72 * time.Hour).UnixMicro()
	f.exec(t, `UPDATE kms_keys SET next_rotation_at = ? WHERE id = ?`, past, key.ID)
	f.exec(t, `UPDATE kms_key_versions SET valid_to = ? WHERE key_id = ?`, time.Now().Add(3*24*time.Hour).UnixMicro(), stale.ID)
	p, err := f.env.Admin.CreatePartner(f.ctx, client.CreatePartner{Name: "Reporting Co"})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := f.env.Admin.CreateTrust(f.ctx, "globex", client.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"}})
	if err != nil {
		t.Fatal(err)
	}

	s := f.scan(t)
	all := f.findings(t, "")
	want := []struct {
		check, object, severity string
		tenant                  string
	}{
		{"admin_without_second_factor", "user:" + ann.ID, api.SeverityHigh, "acme"},
		{"policy_permits_everything", "policy:" + pol.ID, api.SeverityHigh, "acme"},
		{"global_policy_permits_everything", "policy:" + global.ID, api.SeverityCritical, ""},
		{"key_rotation_overdue", "key:" + key.ID, api.SeverityMedium, "acme"},
		{"imported_key_material_expiring", "key:" + stale.ID, api.SeverityHigh, "globex"},
		{"trust_without_network_limit", "trust:" + tr.ID, api.SeverityLow, "globex"},
	}
	for _, w := range want {
		got, ok := find(all, w.check, w.object)
		if !ok {
			t.Errorf("no %s finding for %s in %+v", w.check, w.object, all)
			continue
		}
		if got.Severity != w.severity || got.TenantID != w.tenant || got.Why == "" || got.Fix == "" || got.Title == "" || !strings.HasPrefix(got.ID, "pf_") {
			t.Errorf("%s: %+v", w.check, got)
		}
	}
	if len(all) != len(want) || s.Opened != len(want) {
		t.Errorf("%d findings (scan opened %d), want %d: %+v", len(all), s.Opened, len(want), all)
	}
	// Most severe first.
	if len(all) > 0 && all[0].Severity != api.SeverityCritical {
		t.Errorf("first finding: %+v", all[0])
	}
	// The globex policy with a condition is not a finding.
	if _, ok := find(all, "policy_permits_everything", "globex"); ok {
		t.Error("a conditional policy was taken for a permit-everything")
	}
	// Each opening is audited in its tenant's chain.
	events, err := f.env.Audit.ListAllTenants(f.ctx, audit.Filter{Tenant: "acme", Action: "posture.finding_opened"})
	if err != nil || len(events.Items) != 3 {
		t.Errorf("acme's posture.finding_opened events: %d (%v)", len(events.Items), err)
	}

	// A tenant's admins see their own tenant's findings only.
	var page api.PosturePage
	if err := f.env.Admin.Do(f.ctx, "GET", "/v1/tenants/globex/posture", nil, nil, &page); err != nil {
		t.Fatal(err)
	}
	for _, fd := range page.Items {
		if fd.TenantID != "globex" {
			t.Errorf("globex's posture shows %+v", fd)
		}
	}
	if len(page.Items) != 2 || page.Counts[api.SeverityHigh] != 1 || page.Counts[api.SeverityLow] != 1 {
		t.Errorf("globex's posture: %+v", page)
	}
	if got := f.findings(t, "?tenant=-"); len(got) != 1 || got[0].Check != "global_policy_permits_everything" {
		t.Errorf("the platform's own: %+v", got)
	}
	if got := f.findings(t, "?severity=high"); len(got) != 4 {
		t.Errorf("high or worse: %d", len(got))
	}

	// Stable ids: a second scan opens nothing new.
	before, _ := find(all, "admin_without_second_factor", ann.ID)
	if s := f.scan(t); s.Opened != 0 || s.Resolved != 0 {
		t.Errorf("a second scan: %+v", s)
	}
	again, _ := find(f.findings(t, ""), "admin_without_second_factor", ann.ID)
	if again.ID != before.ID || !again.FirstSeen.Equal(before.FirstSeen) || !again.LastSeen.After(before.LastSeen) {
		t.Errorf("the same finding across scans: %+v then %+v", before, again)
	}

	// Fixing the defects resolves their findings.
	if err := f.env.Admin.DeletePolicy(f.ctx, "acme", pol.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.env.Admin.DeleteGlobalPolicy(f.ctx, global.ID); err != nil {
		t.Fatal(err)
	}
	nets := []string{"203.0.113.0/24"}
	if _, err := f.env.Admin.UpdateTrust(f.ctx, "globex", tr.ID, client.PatchTrust{SourceNetworks: &nets}); err != nil {
		t.Fatal(err)
	}
	if s := f.scan(t); s.Resolved != 3 || s.Opened != 0 {
		t.Errorf("after three fixes: %+v", s)
	}
	if got := f.findings(t, "?resolved=true"); len(got) != 3 {
		t.Errorf("resolved findings: %+v", got)
	}

	// A tampered audit chain.
	f.exec(t, `UPDATE audit_events SET action = 'rewritten' WHERE chain = 'acme' AND seq = 2`)
	f.scan(t)
	if got, ok := find(f.findings(t, ""), "audit_chain_broken", "audit_chain"); !ok || got.TenantID != "acme" || got.Severity != api.SeverityCritical {
		t.Errorf("a tampered chain: %+v %v", got, ok)
	}
}

// TestServingRolePosture: the node serving as the role that owns nothing
// (the deployment's) has no finding; once the owner grants it the right to
// create objects in Bulkhead's schema (a drift after the start, which the
// start's own check would have refused), the next scan finds it.
func TestServingRolePosture(t *testing.T) {
	serving, owner := storagetest.PostgresDSNs(t)
	f := newFixture(t, serving)
	f.scan(t)
	if got, ok := find(f.findings(t, ""), "serving_role_privileges", "role:"); ok {
		t.Fatalf("the serving role: %+v", got)
	}
	u, err := url.Parse(serving)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", owner)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var schema string
	if err := db.QueryRowContext(f.ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(f.ctx, fmt.Sprintf(`GRANT CREATE ON SCHEMA %q TO %q`, schema, u.User.Username())); err != nil {
		t.Fatal(err)
	}
	f.scan(t)
	got, ok := find(f.findings(t, "?tenant=-"), "serving_role_privileges", "role:"+u.User.Username())
	if !ok || got.Severity != api.SeverityCritical || !strings.Contains(got.Detail, "create objects") {
		t.Fatalf("after GRANT CREATE: %+v %v", got, ok)
	}
}
