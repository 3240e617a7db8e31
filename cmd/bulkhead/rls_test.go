package main

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/data/rlslint"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/jackc/pgx/v5"
)

// TestRLSLint runs bulkhead rls lint on an application database: exit 0
// and "no findings" when its pool table is done right, exit 1 and the
// findings in text or JSON once a view leaks it, exit 2 on usage errors
// and on a database it cannot reach, never printing the DSN's password.
func TestRLSLint(t *testing.T) {
	app := storagetest.App(t)
	schema := app.Prefix + "app"
	q := pgx.Identifier{schema}.Sanitize()
	admin, err := pgx.Connect(contextT(t), app.AdminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(contextT(t))
	exec := func(sql string) {
		t.Helper()
		if _, err := admin.Exec(contextT(t), strings.ReplaceAll(sql, "S.", q+".")); err != nil {
			t.Fatal(err)
		}
	}
	exec(`CREATE SCHEMA ` + q + `;
CREATE TABLE S.notes (id bigint PRIMARY KEY, org text NOT NULL, body text);
CREATE INDEX ON S.notes (org);
ALTER TABLE S.notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE S.notes FORCE ROW LEVEL SECURITY;
CREATE POLICY bulkhead_tenant ON S.notes USING (org = current_setting('acme.org', true)) WITH CHECK (org = current_setting('acme.org', true));`)
	flags := []string{"rls", "lint", "--schema", "public, " + schema, "--tenant-column", "org", "--setting", "acme.org"}

	code, out, errOut := runHere("", append(flags, "--dsn", app.ServingDSN)...)
	if code != 0 || out != "no findings\n" || errOut != "" {
		t.Fatalf("clean: exit %d\n%s%s", code, out, errOut)
	}
	// The default column finds no tenant table here: nothing to say either.
	t.Setenv("BULKHEAD_LINT_DSN", app.ServingDSN)
	if code, out, errOut := runHere("", "rls", "lint", "--schema", schema); code != 0 || out != "no findings\n" {
		t.Fatalf("default flags, DSN from the environment: exit %d\n%s%s", code, out, errOut)
	}

	exec(`CREATE VIEW S.all_notes AS SELECT * FROM S.notes; ALTER TABLE S.notes NO FORCE ROW LEVEL SECURITY;`)
	code, out, errOut = runHere("", flags...)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 1 || errOut != "" || len(lines) != 3 || lines[2] != "2 errors, 0 warnings" ||
		!strings.HasPrefix(lines[0], "error   "+rlslint.CodeViewNotSecurityInvoker+" ") ||
		!strings.HasPrefix(lines[1], "error   "+rlslint.CodeRLSNotForced+" ") ||
		!strings.Contains(lines[1], "ALTER TABLE "+q+`."notes" FORCE ROW LEVEL SECURITY;`) {
		t.Fatalf("findings as text: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runHere("", append(flags, "--format", "json")...)
	var r rlslint.Report
	if err := json.Unmarshal([]byte(out), &r); code != 1 || err != nil || len(r.Findings) != 2 || r.Errors != 2 ||
		r.Findings[1].Code != rlslint.CodeRLSNotForced || r.Findings[1].Object != q+`."notes"` {
		t.Fatalf("findings as JSON: exit %d, %v\n%s", code, err, out)
	}
	if code, out, errOut := runHere("", append(flags, "--role", roleOf(t, app.AdminDSN))...); code != 1 ||
		!strings.Contains(out, rlslint.CodeRoleOwnsTable) {
		t.Fatalf("--role the owner: exit %d\n%s%s", code, out, errOut)
	}

	t.Setenv("BULKHEAD_LINT_DSN", "")
	u, _ := url.Parse(app.ServingDSN)
	u.User = url.UserPassword(app.Prefix+"nouser", "s3cret-wrong") // the server may trust loopback: a role it does not know
	wrongUser := u.String()
	u.Host = "127.0.0.1:1"
	unreachable := u.String()
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no dsn", flags, "--dsn"},
		{"bad format", append(flags, "--dsn", app.ServingDSN, "--format", "yaml"), "--format"},
		{"bad setting", append(flags, "--dsn", app.ServingDSN, "--setting", "x'); DROP TABLE t; --"), "setting"},
		{"no schema", append(flags, "--dsn", app.ServingDSN, "--schema", " , "), "--schema"},
		{"unknown role", append(flags, "--dsn", app.ServingDSN, "--role", app.Prefix+"nobody"), "does not exist"},
		{"argument", append(flags, "--dsn", app.ServingDSN, "extra"), "unexpected argument"},
		{"wrong user", append(flags, "--dsn", wrongUser), "connect to"},
		{"unreachable", append(flags, "--dsn", unreachable), "connect to"},
		{"unparsable", append(flags, "--dsn", "postgres://u:s3cret-wrong@127.0.0.1:notaport/db"), "not a PostgreSQL connection string"},
		{"unparsable keywords", append(flags, "--dsn", "host=127.0.0.1 password=s3cret-wrong port=notaport"), "not a PostgreSQL connection string"},
		{"keywords, unknown user", append(flags, "--dsn", "host=127.0.0.1 port=1 user=nobody password=s3cret-wrong"), "connect to 127.0.0.1:1/"},
	} {
		code, out, errOut := runHere("", c.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, want 2 and %q\n%s%s", c.name, code, c.want, out, errOut)
		}
		if strings.Contains(errOut, "s3cret") || strings.Contains(errOut, ":"+roleOf(t, app.ServingDSN)+"@") {
			t.Errorf("%s: the password is in the error: %s", c.name, errOut)
		}
	}
}
