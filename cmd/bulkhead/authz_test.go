package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

const (
	testGlobalForbid = `forbid(principal == User::"mallory", action, resource);`
	testViewPublic   = `permit(principal, action == Action::"view", resource in Folder::"public");`
	testEditTemplate = `permit(principal == ?principal, action == Action::"edit", resource in ?resource);`
	testSchema       = `entity Group;
entity User in [Group];
entity Folder;
entity Doc in [Folder];
action view, edit appliesTo { principal: [User], resource: [Doc, Folder] };
`
	testEntities = `[
  {"uid": {"type": "Doc", "id": "readme"}, "attrs": {}, "parents": [{"type": "Folder", "id": "public"}]},
  {"uid": {"type": "Doc", "id": "secret"}, "attrs": {}, "parents": [{"type": "Folder", "id": "private"}]}
]`
)

// TestCLIPolicyAndAuthorize drives the policy and authorize commands against
// a real server: a global policy, a tenant policy from a file, a template and
// a link, a schema, decisions (and their exit codes), lists and deletes, and
// a tenant credential that cannot reach another tenant's policies.
func TestCLIPolicyAndAuthorize(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		dataDir := filepath.Join(t.TempDir(), "data")
		if filepath.IsAbs(dsn) {
			dsn = "" // the embedded SQLite default
		}
		p := startServe(t, dataDir, dsn)
		cli := func(stdin string, wantCode int, args ...string) string {
			t.Helper()
			out, errOut, code := runCLIInput(t, p.url, stdin, args...)
			if code != wantCode {
				t.Fatalf("bulkhead %s: exit %d; want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errOut)
			}
			return out + errOut
		}
		jsonCLI := func(v any, stdin string, wantCode int, args ...string) {
			t.Helper()
			out := cli(stdin, wantCode, append(args, "--output", "json")...)
			if err := json.Unmarshal([]byte(out), v); err != nil {
				t.Fatalf("bulkhead %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		dir := t.TempDir()
		file := func(name, text string) string {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}
		cli("", 0, "tenant", "create", "acme")
		cli("", 0, "tenant", "create", "globex")

		// The operator's global policy, and the tenant's own.
		var global, view, link client.Policy
		jsonCLI(&global, "", 0, "policy", "create", "--global", "--statement", testGlobalForbid, "--description", "no mallory anywhere")
		if global.Type != client.PolicyStatic || global.Statement != testGlobalForbid || global.Description != "no mallory anywhere" {
			t.Fatalf("global create: %+v", global)
		}
		jsonCLI(&view, "", 0, "policy", "create", "--tenant", "acme", "--file", file("view.cedar", testViewPublic+"\n"))
		if !strings.HasPrefix(view.ID, "pol_") || view.Type != client.PolicyStatic || !strings.Contains(view.Statement, `Folder::"public"`) {
			t.Fatalf("policy create --file: %+v", view)
		}
		var tpl client.PolicyTemplate
		jsonCLI(&tpl, testEditTemplate, 0, "policy", "template", "create", "--tenant", "acme", "--file", "-", "--description", "editors of a folder")
		if !strings.HasPrefix(tpl.ID, "tpl_") || !slices.Equal(tpl.Slots, []string{"?principal", "?resource"}) {
			t.Fatalf("template create --file -: %+v", tpl)
		}
		jsonCLI(&link, "", 0, "policy", "link", "--tenant", "acme", "--template", tpl.ID,
			"--principal-type", "User", "--principal-id", "alice", "--resource-type", "Folder", "--resource-id", "public")
		if link.Type != client.PolicyLinked || link.TemplateID != tpl.ID || *link.Principal != (client.EntityRef{Type: "User", ID: "alice"}) ||
			!strings.Contains(link.Statement, `principal == User::"alice"`) || !strings.Contains(link.Statement, `resource in Folder::"public"`) {
			t.Fatalf("policy link: %+v", link)
		}

		// A schema that the policies conform to, and one that the link does not.
		if out := cli("", 0, "policy", "schema", "put", "--tenant", "acme", "--file", file("schema.cedarschema", testSchema)); !strings.Contains(out, "schema of acme set (format cedar)") {
			t.Errorf("schema put:\n%s", out)
		}
		if out := cli("", 0, "policy", "schema", "get", "--tenant", "acme"); out != testSchema {
			t.Errorf("schema get prints the text as put:\n%s", out)
		}
		noEdit := strings.Replace(testSchema, "view, edit", "view", 1)
		if out := cli(noEdit, 1, "policy", "schema", "put", "--tenant", "acme", "--file", "-"); !strings.Contains(out, "400 schema_violation") || !strings.Contains(out, `Action::"edit"`) {
			t.Errorf("a schema the template and link do not conform to:\n%s", out)
		}
		if out := cli("", 1, "policy", "create", "--tenant", "acme", "--statement", `permit(principal, action == Action::"fly", resource);`); !strings.Contains(out, "400 schema_violation") {
			t.Errorf("a policy outside the schema:\n%s", out)
		}
		var st client.PolicyStore
		jsonCLI(&st, "", 0, "policy", "store", "update", "--tenant", "acme", "--log-allows", "true")
		if !st.LogAllows || !st.HasSchema || st.PrincipalType != "User" {
			t.Errorf("store update: %+v", st)
		}
		if out := cli("", 0, "policy", "store", "get", "--tenant", "acme"); !regexp.MustCompile(`(?m)^acme\s+true\s+true\s+User\s+Group\s`).MatchString(out) {
			t.Errorf("store get:\n%s", out)
		}

		// Decisions.
		entities := file("entities.json", testEntities)
		authorize := func(wantCode int, principal, action, resource string, extra ...string) client.Decision {
			t.Helper()
			var d client.Decision
			args := append([]string{"authorize", "--tenant", "acme", "--principal-type", "User", "--principal-id", principal,
				"--action-id", action, "--resource-type", "Doc", "--resource-id", resource, "--entities", "@" + entities}, extra...)
			out := cli("", wantCode, args...)
			if err := json.Unmarshal([]byte(out), &d); err != nil {
				t.Fatalf("authorize prints JSON: %v\n%s", err, out)
			}
			return d
		}
		if d := authorize(0, "alice", "view", "readme", "--exit-code", "--context", "{}"); d.Decision != client.DecisionAllow || !slices.Equal(d.DeterminingPolicies, []string{view.ID}) {
			t.Errorf("alice views readme: %+v", d)
		}
		if d := authorize(0, "alice", "view", "secret"); d.Decision != client.DecisionDeny || len(d.DeterminingPolicies) != 0 {
			t.Errorf("alice views secret (default deny, exit 0 without --exit-code): %+v", d)
		}
		authorize(3, "alice", "view", "secret", "--exit-code")
		if d := authorize(3, "mallory", "view", "readme", "--exit-code"); d.Decision != client.DecisionDeny || !slices.Equal(d.DeterminingPolicies, []string{"global/" + global.ID}) {
			t.Errorf("the global forbid wins over the tenant's permit: %+v", d)
		}
		if d := authorize(0, "alice", "edit", "readme"); d.Decision != client.DecisionAllow || !slices.Equal(d.DeterminingPolicies, []string{link.ID}) {
			t.Errorf("alice edits readme (linked policy): %+v", d)
		}
		if out := cli("", 0, "authorize", "--tenant", "acme", "--principal-type", "User", "--principal-id", "bob", "--action-id", "edit",
			"--resource-type", "Doc", "--resource-id", "readme", "--entities", "@"+entities, "--output", "table"); !regexp.MustCompile(`(?m)^0\s+deny\s+-\s+-$`).MatchString(out) {
			t.Errorf("authorize --output table:\n%s", out)
		}
		if out := cli("", 1, "authorize", "--tenant", "acme", "--principal-type", "User", "--principal-id", "bob", "--action-id", "fly",
			"--resource-type", "Doc", "--resource-id", "readme"); !strings.Contains(out, "400 request_schema_violation") {
			t.Errorf("a request outside the schema:\n%s", out)
		}
		batch, _ := json.Marshal([]map[string]any{
			{"principal": client.EntityRef{Type: "User", ID: "alice"}, "action": client.EntityRef{Type: "Action", ID: "view"},
				"resource": client.EntityRef{Type: "Doc", ID: "readme"}, "entities": json.RawMessage(testEntities)},
			{"principal": client.EntityRef{Type: "User", ID: "bob"}, "action": client.EntityRef{Type: "Action", ID: "edit"},
				"resource": client.EntityRef{Type: "Doc", ID: "readme"}, "entities": json.RawMessage(testEntities)},
		})
		var results struct {
			Results []client.Decision `json:"results"`
		}
		jsonCLI(&results, string(batch), 3, "authorize", "--tenant", "acme", "--batch", "@-", "--exit-code")
		if len(results.Results) != 2 || results.Results[0].Decision != client.DecisionAllow || results.Results[1].Decision != client.DecisionDeny {
			t.Errorf("authorize --batch: %+v", results)
		}
		// Denies are audited; allows too, as log_allows is on. Decision
		// records are queued, not awaited: they land with the next commit.
		decisions := map[string]int{}
		runtest.Eventually(t, "the audited decisions", func() bool {
			var audit client.AuditPage
			jsonCLI(&audit, "", 0, "audit", "list", "--tenant", "acme", "--action", "authz.decision", "--limit", "100")
			clear(decisions)
			for _, e := range audit.Items {
				decisions[e.Detail["decision"]]++
			}
			// A batch is one event that lists its decisions.
			var batches client.AuditPage
			jsonCLI(&batches, "", 0, "audit", "list", "--tenant", "acme", "--action", "authz.batch_decision", "--limit", "100")
			for _, e := range batches.Items {
				var list []struct{ Decision string }
				if err := json.Unmarshal([]byte(e.Detail["decisions"]), &list); err != nil {
					t.Fatalf("batch event's decisions %q: %v", e.Detail["decisions"], err)
				}
				for _, d := range list {
					decisions[d.Decision]++
				}
			}
			return decisions["allow"] >= 3 && decisions["deny"] >= 4
		})

		// Lists, replacement, deletes.
		out := cli("", 0, "policy", "list", "--tenant", "acme")
		if !regexp.MustCompile(`(?m)^`+view.ID+`\s+static\s+-\s`).MatchString(out) ||
			!regexp.MustCompile(`(?m)^`+link.ID+`\s+linked\s+`+tpl.ID+`\s`).MatchString(out) || strings.Contains(out, global.ID) {
			t.Errorf("policy list (the tenant's own, no global ones):\n%s", out)
		}
		var page client.PolicyPage
		jsonCLI(&page, "", 0, "policy", "list", "--tenant", "acme", "--limit", "1")
		if len(page.Items) != 1 || page.NextCursor == "" {
			t.Errorf("a page of 1: %+v", page)
		}
		jsonCLI(&page, "", 0, "policy", "list", "--tenant", "acme", "--limit", "1", "--cursor", page.NextCursor)
		if len(page.Items) != 1 || page.NextCursor != "" {
			t.Errorf("the second page of 1: %+v", page)
		}
		if out = cli("", 0, "policy", "template", "list", "--tenant", "acme"); !regexp.MustCompile(`(?m)^` + tpl.ID + `\s+\?principal,\?resource\s+editors of a folder\s`).MatchString(out) {
			t.Errorf("template list:\n%s", out)
		}
		if out = cli("", 0, "policy", "get", link.ID, "--tenant", "acme"); !strings.Contains(out, link.Statement) {
			t.Errorf("policy get prints the statement:\n%s", out)
		}
		if out = cli("", 1, "policy", "template", "delete", tpl.ID, "--tenant", "acme"); !strings.Contains(out, "409 template_in_use") {
			t.Errorf("delete of a template with a link:\n%s", out)
		}
		var replaced client.Policy
		jsonCLI(&replaced, "", 0, "policy", "replace", view.ID, "--tenant", "acme", "--statement", strings.Replace(testViewPublic, "public", "private", 1), "--description", "now private")
		if replaced.ID != view.ID || replaced.Description != "now private" || !strings.Contains(replaced.Statement, "private") {
			t.Errorf("policy replace: %+v", replaced)
		}
		if d := authorize(0, "alice", "view", "secret"); d.Decision != client.DecisionAllow {
			t.Errorf("after replace, alice views secret: %+v", d)
		}
		if out = cli("", 0, "policy", "delete", link.ID, "--tenant", "acme"); !strings.Contains(out, "deleted policy "+link.ID) {
			t.Errorf("policy delete:\n%s", out)
		}
		cli("", 0, "policy", "template", "delete", tpl.ID, "--tenant", "acme")
		if out = cli("", 1, "policy", "get", link.ID, "--tenant", "acme"); !strings.Contains(out, "404 policy_not_found") {
			t.Errorf("get after delete:\n%s", out)
		}
		if out = cli("", 1, "policy", "template", "get", tpl.ID, "--tenant", "acme"); !strings.Contains(out, "404 template_not_found") {
			t.Errorf("template get after delete:\n%s", out)
		}

		// A tenant credential: only its own tenant, and not its policies
		// (they are for the tenant's admins), nor the global ones.
		out = cli("", 0, "client", "create", "svc", "--tenant", "globex", "--grant", "client_credentials")
		secret := regexp.MustCompile(`client secret \(shown once\): (bhs_\S+)`).FindStringSubmatch(out)
		id := regexp.MustCompile(`(cli_[a-z2-7]{26})`).FindStringSubmatch(out)
		if secret == nil || id == nil {
			t.Fatalf("client create:\n%s", out)
		}
		resp, err := http.DefaultClient.Do(tokenRequest(t, p.url, id[1], secret[1], "grant_type=client_credentials"))
		if err != nil {
			t.Fatal(err)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		if resp.StatusCode != 200 || tok.AccessToken == "" {
			t.Fatalf("token: %d", resp.StatusCode)
		}
		for _, args := range [][]string{
			{"policy", "list", "--tenant", "acme"},
			{"policy", "get", view.ID, "--tenant", "acme"},
			{"policy", "delete", view.ID, "--tenant", "acme"},
			{"policy", "create", "--tenant", "acme", "--statement", `permit(principal, action, resource);`},
			{"policy", "schema", "get", "--tenant", "acme"},
			{"policy", "store", "update", "--tenant", "acme", "--log-allows", "false"},
			{"authorize", "--tenant", "acme", "--principal-type", "User", "--principal-id", "x", "--action-id", "view", "--resource-type", "Doc", "--resource-id", "readme"},
		} {
			if out := cli("", 1, append(args, "--token", tok.AccessToken)...); !strings.Contains(out, "404 tenant_not_found") {
				t.Errorf("globex's token: bulkhead %s:\n%s", strings.Join(args, " "), out)
			}
		}
		if out = cli("", 1, "policy", "list", "--tenant", "globex", "--token", tok.AccessToken); !strings.Contains(out, "403 tenant_admin_required") {
			t.Errorf("a client's token lists its tenant's policies:\n%s", out)
		}
		if out = cli("", 1, "policy", "list", "--global", "--token", tok.AccessToken); !strings.Contains(out, "403 operator_required") {
			t.Errorf("a tenant's token lists the global policies:\n%s", out)
		}
		var d client.Decision
		jsonCLI(&d, "", 0, "authorize", "--tenant", "globex", "--token", tok.AccessToken, "--principal-type", "User", "--principal-id", "mallory",
			"--action-id", "view", "--resource-type", "Doc", "--resource-id", "x")
		if d.Decision != client.DecisionDeny || !slices.Equal(d.DeterminingPolicies, []string{"global/" + global.ID}) {
			t.Errorf("the global forbid applies to globex too: %+v", d)
		}
		jsonCLI(&st, "", 0, "policy", "store", "get", "--tenant", "acme")
		if !st.LogAllows {
			t.Error("globex's token changed acme's store")
		}
		if out = cli("", 0, "policy", "get", view.ID, "--tenant", "acme"); !strings.Contains(out, "now private") {
			t.Errorf("acme's policy after globex's attempts:\n%s", out)
		}

		// The global policies: list, get, replace, delete.
		if out = cli("", 0, "policy", "list", "--global"); !regexp.MustCompile(`(?m)^` + global.ID + `\s+static\s+-\s+no mallory anywhere\s`).MatchString(out) {
			t.Errorf("global list:\n%s", out)
		}
		var g client.Policy
		jsonCLI(&g, "", 0, "policy", "replace", global.ID, "--global", "--statement", `forbid(principal == User::"mallory", action == Action::"edit", resource);`)
		if g.ID != global.ID || g.Description != "" {
			t.Errorf("global replace: %+v", g)
		}
		if d := authorize(0, "mallory", "view", "secret", "--exit-code"); d.Decision != client.DecisionAllow {
			t.Errorf("after the global replace, mallory views: %+v", d)
		}
		if out = cli("", 0, "policy", "delete", global.ID, "--global"); !strings.Contains(out, "deleted policy "+global.ID) {
			t.Errorf("global delete:\n%s", out)
		}
		jsonCLI(&page, "", 0, "policy", "list", "--global")
		if len(page.Items) != 0 {
			t.Errorf("global policies after delete: %+v", page)
		}
		if out = cli("", 1, "policy", "get", global.ID, "--global"); !strings.Contains(out, "404 policy_not_found") {
			t.Errorf("global get after delete:\n%s", out)
		}
	})
}

// TestPolicyAuthorizeUsage checks the usage errors (exit 2) and help of the
// policy and authorize commands, which need no server.
func TestPolicyAuthorizeUsage(t *testing.T) {
	t.Setenv("BULKHEAD_TOKEN", "unused-token-0123456789")
	run1 := func(args ...string) (int, string, string) { return runHere("", args...) }
	for _, args := range [][]string{
		{"policy"},
		{"policy", "fly"},
		{"policy", "list"},
		{"policy", "list", "--tenant", "acme", "--global"},
		{"policy", "get", "--tenant", "acme"},
		{"policy", "create", "--tenant", "acme"},
		{"policy", "create", "--tenant", "acme", "--statement", "permit(principal, action, resource);", "--file", "x.cedar"},
		{"policy", "create", "--global", "--template", "tpl_x"},
		{"policy", "replace", "pol_x", "--global", "--template", "tpl_x"},
		{"policy", "replace", "pol_x", "--tenant", "acme", "--template", "tpl_x", "--statement", "permit(principal, action, resource);"},
		{"policy", "replace", "pol_x", "--tenant", "acme", "--statement", "permit(principal, action, resource);", "--principal-type", "User", "--principal-id", "a"},
		{"policy", "link", "--tenant", "acme"},
		{"policy", "link", "--global", "--template", "tpl_x"},
		{"policy", "link", "--tenant", "acme", "--template", "tpl_x", "--principal-id", "alice"},
		{"policy", "link", "--tenant", "acme", "--template", "tpl_x", "--principal-type", "User"},
		{"policy", "template", "create", "--tenant", "acme"},
		{"policy", "template", "list", "--global"},
		{"policy", "schema", "put", "--tenant", "acme"},
		{"policy", "schema", "put", "--tenant", "acme", "--file", "-", "--format", "yaml"},
		{"policy", "store", "update", "--tenant", "acme"},
		{"policy", "store", "update", "--tenant", "acme", "--log-allows", "maybe"},
		{"authorize", "--tenant", "acme", "--resource-type", "Doc", "--resource-id", "x"},
		{"authorize", "--tenant", "acme", "--action-id", "view"},
		{"authorize", "--action-id", "view", "--resource-type", "Doc", "--resource-id", "x"},
		{"authorize", "--tenant", "acme", "--action-id", "view", "--resource-type", "Doc", "--resource-id", "x", "--context", "{nope"},
		{"authorize", "--tenant", "acme", "--batch", `[{"principle": {"type": "User", "id": "a"}}]`},
		{"authorize", "--tenant", "acme", "--batch", `[]`},
		{"authorize", "--tenant", "acme", "--batch", `[{}]`, "--action-id", "view"},
	} {
		if code, _, errOut := run1(args...); code != 2 {
			t.Errorf("bulkhead %s: exit %d; want 2 (usage)\n%s", strings.Join(args, " "), code, errOut)
		}
	}
	code, _, errOut := run1("authorize", "--help")
	if code != 0 || !strings.Contains(errOut, "-exit-code") || !strings.Contains(errOut, "3") || !strings.Contains(errOut, "--principal-type User --principal-id") {
		t.Errorf("authorize --help: exit %d\n%s", code, errOut)
	}
	for _, args := range [][]string{{"policy", "--help"}, {"policy", "template", "help"}, {"policy", "schema", "-h"}, {"policy", "store", "--help"}} {
		if code, out, _ := run1(args...); code != 0 || !strings.Contains(out, "Usage:\n  bulkhead policy ") {
			t.Errorf("bulkhead %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
	}
	if code, _, errOut := run1("policy", "link", "--help"); code != 0 || !strings.Contains(errOut, "-principal-type") || !strings.Contains(errOut, "Usage:") {
		t.Errorf("policy link --help: exit %d\n%s", code, errOut)
	}
	if code, out, _ := run1("help"); code != 0 || !strings.Contains(out, "bulkhead policy <command>") || !strings.Contains(out, "bulkhead authorize") {
		t.Errorf("help lacks the policy commands:\n%s", out)
	}
}
