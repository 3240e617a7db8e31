package rlslint

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/jackc/pgx/v5"
)

// cleanSchema is a pool schema done right: a tenant table with forced
// RLS, a tenant policy, a NOT NULL indexed tenant column; policies in the
// accepted shapes beside it; a table without the tenant column; a
// security_invoker view; an ordinary function. S stands for the schema.
const cleanSchema = `
CREATE TABLE S.notes (id bigint PRIMARY KEY, tenant_id text NOT NULL, body text);
CREATE INDEX ON S.notes (tenant_id, id);
ALTER TABLE S.notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE S.notes FORCE ROW LEVEL SECURITY;
CREATE POLICY bulkhead_tenant ON S.notes
  USING (tenant_id = current_setting('app.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY reversed ON S.notes FOR SELECT USING (current_setting('app.tenant_id') = tenant_id AND body IS NOT NULL);
CREATE POLICY upper ON S.notes FOR INSERT WITH CHECK ((tenant_id = current_setting('APP.Tenant_ID', false)));
CREATE POLICY extra ON S.notes AS RESTRICTIVE USING (body <> 'hidden');

CREATE TABLE S.items (tenant_id uuid NOT NULL, sku varchar(20), PRIMARY KEY (tenant_id, sku));
ALTER TABLE S.items ENABLE ROW LEVEL SECURITY;
ALTER TABLE S.items FORCE ROW LEVEL SECURITY;
CREATE POLICY bulkhead_tenant ON S.items
  USING (tenant_id = current_setting('app.tenant_id', true)::uuid)
  WITH CHECK (tenant_id::text = pg_catalog.current_setting('app.tenant_id', true));

CREATE TABLE S.plans (id int PRIMARY KEY, name text);
CREATE VIEW S.note_bodies WITH (security_invoker = true) AS SELECT id, body FROM S.notes;
CREATE VIEW S.plan_names AS SELECT name FROM S.plans;
CREATE FUNCTION S.add(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT a + b';
`

// lintFixture makes schema S (a name under the cluster's prefix) with
// setup as the cluster's admin, then lints it with the serving role's
// connection.
func lintFixture(t *testing.T, app storagetest.AppCluster, name, setup string, opts Options) []Finding {
	t.Helper()
	ctx := testContext(t)
	schema := app.Prefix + name
	admin := connect(t, app.AdminDSN)
	q := pgx.Identifier{schema}.Sanitize()
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+q+";\n"+strings.ReplaceAll(setup, "S.", q+".")); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	opts.Schemas = append(opts.Schemas, schema)
	fs, err := Lint(ctx, connect(t, app.ServingDSN), opts)
	if err != nil {
		t.Fatalf("lint %s: %v", name, err)
	}
	return fs
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(testContext(t), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func codes(fs []Finding) []string {
	var cs []string
	for _, f := range fs {
		cs = append(cs, f.Code)
	}
	slices.Sort(cs)
	return slices.Compact(cs)
}

// TestLintFixtures: a clean schema has no finding; each defect, made on
// top of it, is found, and nothing else is.
func TestLintFixtures(t *testing.T) {
	app := storagetest.App(t)
	superuser := func() string {
		var name string
		if err := connect(t, app.ServingDSN).QueryRow(testContext(t), "SELECT rolname FROM pg_roles WHERE oid = 10").Scan(&name); err != nil {
			t.Fatal(err)
		}
		return name // the bootstrap superuser: SUPERUSER and BYPASSRLS
	}()
	adminRole := strings.TrimPrefix(strings.SplitN(app.AdminDSN, ":", 3)[1], "//")
	tests := []struct {
		name   string
		defect string
		opts   Options
		want   []string
		object string // of the first finding, when set
	}{
		{name: "clean"},
		{name: "disabled", defect: `ALTER TABLE S.notes DISABLE ROW LEVEL SECURITY;`,
			want: []string{CodeRLSDisabled}, object: "notes"},
		{name: "not_forced", defect: `ALTER TABLE S.items NO FORCE ROW LEVEL SECURITY;`,
			want: []string{CodeRLSNotForced}, object: "items"},
		{name: "no_policy", defect: `DROP POLICY bulkhead_tenant ON S.items;`,
			want: []string{CodeNoPolicy}, object: "items"},
		{name: "policy_true", defect: `CREATE POLICY open ON S.notes FOR SELECT USING (true);`,
			want: []string{CodePolicyNotTenantScoped}, object: `policy "open"`},
		{name: "policy_or_true", defect: `CREATE POLICY open ON S.notes USING (tenant_id = current_setting('app.tenant_id', true) OR true);`,
			want: []string{CodePolicyNotTenantScoped}},
		// Casts that cut the value compare a prefix: tenant "acme-corp-2"
		// reads the rows of tenant "acme-cor" through varchar(8), and every
		// tenant whose id begins with its letter through "char".
		{name: "policy_truncating_cast", defect: `CREATE POLICY cut ON S.notes FOR SELECT
			USING (tenant_id::varchar(8) = current_setting('app.tenant_id', true)::varchar(8));`,
			want: []string{CodePolicyNotTenantScoped}, object: `policy "cut"`},
		{name: "policy_char_cast", defect: `CREATE POLICY cut ON S.notes FOR SELECT
			USING (tenant_id::"char" = current_setting('app.tenant_id', true)::"char");`,
			want: []string{CodePolicyNotTenantScoped}, object: `policy "cut"`},
		{name: "policy_character_cast", defect: `CREATE POLICY cut ON S.notes FOR SELECT
			USING (tenant_id::character = current_setting('app.tenant_id', true)::character);`,
			want: []string{CodePolicyNotTenantScoped}, object: `policy "cut"`},
		{name: "policy_mentions_setting", defect: `CREATE POLICY open ON S.notes USING (current_setting('app.tenant_id', true) IS NOT NULL);`,
			want: []string{CodePolicyNotTenantScoped}},
		{name: "policy_other_setting", defect: `CREATE POLICY open ON S.notes USING (tenant_id = current_setting('app.tenant_idx', true));`,
			want: []string{CodePolicyNotTenantScoped}},
		{name: "policy_setting_in_literal", defect: `CREATE POLICY open ON S.notes USING (body <> 'tenant_id = current_setting(''app.tenant_id'')');`,
			want: []string{CodePolicyNotTenantScoped}},
		{name: "policy_other_column", defect: `CREATE POLICY open ON S.notes USING (body = current_setting('app.tenant_id', true));`,
			want: []string{CodePolicyNotTenantScoped}},
		{name: "policy_not_equal", defect: `CREATE POLICY open ON S.notes USING (tenant_id <> current_setting('app.tenant_id', true));`,
			want: []string{CodePolicyNotTenantScoped}},
		{name: "policy_case_and", defect: `CREATE POLICY open ON S.notes USING (CASE WHEN body IS NULL AND tenant_id = current_setting('app.tenant_id', true) AND true THEN true ELSE true END);`,
			want: []string{CodePolicyNotTenantScoped}},
		{name: "policy_open_check", defect: `CREATE POLICY open ON S.notes FOR INSERT WITH CHECK (true);`,
			want: []string{CodePolicyNotTenantScoped}},
		{name: "policy_using_good_check_open", defect: `CREATE POLICY open ON S.notes FOR UPDATE USING (tenant_id = current_setting('app.tenant_id', true)) WITH CHECK (tenant_id IS NOT NULL);`,
			want: []string{CodePolicyNotTenantScoped}},
		{name: "owner", opts: Options{Role: adminRole},
			// the cluster's admin role provisions tenants' roles: CREATEROLE
			want: []string{CodeRoleCreateRole, CodeRoleOwnsTable}},
		{name: "owner_by_membership", defect: `CREATE ROLE "` + app.Prefix + `member" NOLOGIN NOINHERIT IN ROLE ` + adminRole + `;`,
			opts: Options{Role: app.Prefix + "member"}, want: []string{CodeRoleOwnsTable}},
		{name: "superuser", opts: Options{Role: superuser},
			// a superuser is also a member of every role, the owner's included
			want: []string{CodeRoleBypassRLS, CodeRoleOwnsTable, CodeRoleSuperuser}},
		{name: "view", defect: `CREATE VIEW S.all_notes AS SELECT * FROM S.notes;`,
			want: []string{CodeViewNotSecurityInvoker}, object: "all_notes"},
		{name: "view_security_invoker_false", defect: `CREATE VIEW S.all_notes WITH (security_invoker = off) AS SELECT * FROM S.notes;`,
			want: []string{CodeViewNotSecurityInvoker}},
		{name: "view_over_view", defect: `CREATE VIEW S.outer_view AS SELECT * FROM S.note_bodies;`,
			want: []string{CodeViewNotSecurityInvoker}, object: "outer_view"},
		{name: "view_in_unchecked_schema", defect: `CREATE VIEW public.leak AS SELECT * FROM S.notes;`,
			want: []string{CodeViewNotSecurityInvoker}, object: `"public"."leak"`},
		{name: "materialized_view", defect: `CREATE MATERIALIZED VIEW S.counts AS SELECT tenant_id, count(*) FROM S.notes GROUP BY 1 WITH NO DATA;`,
			want: []string{CodeMaterializedView}},
		{name: "security_definer", defect: `CREATE FUNCTION S.peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'SELECT 1::bigint';`,
			want: []string{CodeSecurityDefiner}, object: `function`},
		{name: "not_indexed", defect: `DROP INDEX S.notes_tenant_id_id_idx; CREATE INDEX ON S.notes (id, tenant_id); CREATE INDEX ON S.notes (tenant_id) WHERE body IS NULL;`,
			want: []string{CodeColumnNotIndexed}, object: "notes"},
		{name: "nullable", defect: `ALTER TABLE S.notes ALTER COLUMN tenant_id DROP NOT NULL;`,
			want: []string{CodeColumnNullable}},
		{name: "other_column_name", opts: Options{TenantColumn: "sku"},
			// sku: second in the primary key, and no policy compares it
			want: []string{CodeColumnNotIndexed, CodePolicyNotTenantScoped}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := lintFixture(t, app, tc.name, cleanSchema+tc.defect, tc.opts)
			slices.Sort(tc.want)
			if got := codes(fs); !slices.Equal(got, tc.want) {
				t.Fatalf("codes %v, want %v; findings:\n%s", got, tc.want, text(t, fs))
			}
			if tc.object != "" && !strings.Contains(fs[0].Object, tc.object) {
				t.Errorf("object %q does not name %q", fs[0].Object, tc.object)
			}
			for _, f := range fs {
				if f.Severity != Error && f.Severity != Warning || f.Object == "" || f.Detail == "" || f.Remedy == "" {
					t.Errorf("incomplete finding %+v", f)
				}
			}
		})
	}
}

func text(t *testing.T, fs []Finding) string {
	var b bytes.Buffer
	if err := NewReport(fs).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestLintRemedies: running the remedies of a broken schema's findings
// leaves a schema with nothing to find.
func TestLintRemedies(t *testing.T) {
	app := storagetest.App(t)
	broken := `CREATE TABLE S.notes (id bigint PRIMARY KEY, tenant_id text, body text);
CREATE VIEW S.all_notes AS SELECT * FROM S.notes;`
	fs := lintFixture(t, app, "broken", broken, Options{})
	want := []string{CodeColumnNotIndexed, CodeColumnNullable, CodeNoPolicy, CodeRLSDisabled, CodeRLSNotForced, CodeViewNotSecurityInvoker}
	slices.Sort(want)
	if got := codes(fs); !slices.Equal(got, want) {
		t.Fatalf("codes %v, want %v", got, want)
	}
	admin := connect(t, app.AdminDSN)
	for _, f := range fs {
		if _, err := admin.Exec(testContext(t), f.Remedy); err != nil {
			t.Fatalf("remedy of %s: %q: %v", f.Code, f.Remedy, err)
		}
	}
	again, err := Lint(testContext(t), connect(t, app.ServingDSN), Options{Schemas: []string{app.Prefix + "broken"}})
	if err != nil || len(again) != 0 {
		t.Fatalf("after the remedies: %v\n%s", err, text(t, again))
	}
}

// TestLintHostileNames: a table whose name holds quotes, a newline and a
// terminal escape is reported on one line, its name escaped, and its
// remedy quotes it as an identifier.
func TestLintHostileNames(t *testing.T) {
	app := storagetest.App(t)
	name := "no\"tes\nno findings\x1b[2J"
	setup := `CREATE TABLE S.` + pgx.Identifier{name}.Sanitize() + ` (tenant_id text NOT NULL PRIMARY KEY);
ALTER TABLE S.` + pgx.Identifier{name}.Sanitize() + ` FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON S.` + pgx.Identifier{name}.Sanitize() + ` USING (tenant_id = current_setting('app.tenant_id', true));`
	fs := lintFixture(t, app, "hostile", setup, Options{})
	if got := codes(fs); !slices.Equal(got, []string{CodeRLSDisabled}) {
		t.Fatalf("codes %v", got)
	}
	out := text(t, fs)
	if lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); len(lines) != 2 || strings.ContainsRune(out, 0x1b) {
		t.Fatalf("text output not one line per finding plus a summary:\n%q", out)
	}
	admin := connect(t, app.AdminDSN)
	if _, err := admin.Exec(testContext(t), fs[0].Remedy); err != nil {
		t.Fatalf("remedy %q: %v", fs[0].Remedy, err)
	}
	var b bytes.Buffer
	if err := NewReport(fs).WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b.Bytes(), &r); err != nil || len(r.Findings) != 1 || !strings.Contains(r.Findings[0].Object, pgx.Identifier{name}.Sanitize()) || r.Errors != 1 {
		t.Fatalf("JSON report: %v %+v", err, r)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{
		{Setting: "tenant_id"},                     // no prefix
		{Setting: "app.tenant_id'); DROP TABLE x"}, // would break the remedy's literal
		{TenantColumn: strings.Repeat("a", 64)},
		{Schemas: []string{""}},
		{Role: "a\x00b"},
	} {
		if _, err := Lint(context.Background(), nil, o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
}

func TestReportText(t *testing.T) {
	var b bytes.Buffer
	if err := NewReport(nil).WriteText(&b); err != nil || b.String() != "no findings\n" {
		t.Fatalf("%q %v", b.String(), err)
	}
	b.Reset()
	NewReport([]Finding{{Code: "a", Severity: Error}, {Code: "b", Severity: Warning}, {Code: "c", Severity: Warning}}).WriteText(&b)
	if !strings.HasSuffix(b.String(), "1 error, 2 warnings\n") {
		t.Fatalf("%q", b.String())
	}
	var r Report
	b.Reset()
	NewReport(nil).WriteJSON(&b)
	if err := json.Unmarshal(b.Bytes(), &r); err != nil || r.Findings == nil || !strings.Contains(b.String(), `"findings": []`) {
		t.Fatalf("%s", b.String())
	}
}

func TestSecurityInvoker(t *testing.T) {
	for opts, want := range map[string]bool{
		"": false, "security_invoker=true": true, "security_invoker=on": true, "security_invoker=1": true,
		"security_invoker=t": true, "security_invoker=YES": true, "security_invoker=false": false,
		"security_invoker=off": false, "security_invoker=o": false, "check_option=local": false,
		"security_invoker=true,security_invoker=false": false,
	} {
		if got := securityInvoker(strings.Split(opts, ",")); got != want {
			t.Errorf("%q: %v", opts, got)
		}
	}
}
