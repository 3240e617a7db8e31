package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// Tokens of the authorization tests: admins and users of tenant-a and
// tenant-b. alice exists in both tenants (same user id).
const (
	tokAdminA = "tok-admin-a"
	tokAdminB = "tok-admin-b"
	tokAlice  = "tok-alice-a"
	tokBob    = "tok-bob-a"
	tokCarol  = "tok-carol-a" // member of tenant-a's admins group, through Group::"admins"
	tokAliceB = "tok-alice-b"
	tokSvcA   = "tok-svc-a" // tenant-a's backend (a client, no user)
)

func authzTokens() map[string]tenant.Context {
	return map[string]tenant.Context{
		tokAdminA: {TenantID: "tenant-a", Principal: "user:root-a", Groups: []string{"admins"}},
		tokAdminB: {TenantID: "tenant-b", Principal: "user:root-b", Groups: []string{"admins"}},
		tokAlice:  {TenantID: "tenant-a", Principal: "user:alice"},
		tokBob:    {TenantID: "tenant-a", Principal: "user:bob"},
		tokCarol:  {TenantID: "tenant-a", Principal: "user:carol", Groups: []string{"admins"}},
		tokAliceB: {TenantID: "tenant-b", Principal: "user:alice"},
		tokSvcA:   {TenantID: "tenant-a", Principal: "client:svc"},
	}
}

// azEnv drives the authorization API of a node with tenant-a and tenant-b.
type azEnv struct {
	t   *testing.T
	env *apitest.Env
}

func newAuthzEnv(t *testing.T, dsn string) *azEnv { return newTwoTenantEnv(t, dsn, authzTokens()) }

// newTwoTenantEnv starts a node with active tenants tenant-a and tenant-b
// and the given stand-in tenant credentials.
func newTwoTenantEnv(t *testing.T, dsn string, tokens map[string]tenant.Context) *azEnv {
	t.Helper()
	return newTwoTenantEnvWith(t, dsn, apitest.Options{TenantTokens: tokens})
}

// newTwoTenantEnvWith is newTwoTenantEnv with more of the node's options.
func newTwoTenantEnvWith(t *testing.T, dsn string, opts apitest.Options) *azEnv {
	t.Helper()
	env := apitest.New(t, dsn, opts)
	for _, id := range []string{"tenant-a", "tenant-b"} {
		createTenant(t, env, client.CreateTenant{ID: id, Name: id})
		waitStatus(t, env, id, "active")
	}
	return &azEnv{t: t, env: env}
}

// call sends body (marshalled unless it is a string or []byte) and returns the answer.
func (a *azEnv) call(method, path, token string, body any) response {
	a.t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		b = mustJSON(a.t, v)
	}
	return send(a.t, a.env.URL, call{method: method, path: path, token: token, body: b})
}

// ok sends and decodes a 2xx JSON answer into out.
func (a *azEnv) ok(method, path, token string, body any, status int, out any) {
	a.t.Helper()
	wantJSON(a.t, method+" "+path, a.call(method, path, token, body), status, out)
}

type azPolicy struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Statement string `json:"statement"`
}

// policy creates a static policy (or a linked one, when body is a map) in tenant tid.
func (a *azEnv) policy(tid, token string, body any) azPolicy {
	a.t.Helper()
	if s, ok := body.(string); ok {
		body = map[string]string{"statement": s}
	}
	var p azPolicy
	path := "/v1/global-policies"
	if tid != "" {
		path = "/v1/tenants/" + tid + "/policies"
	}
	a.ok("POST", path, token, body, http.StatusCreated, &p)
	return p
}

func (a *azEnv) template(tid, token, statement string) string {
	a.t.Helper()
	var tpl struct {
		ID    string   `json:"id"`
		Slots []string `json:"slots"`
	}
	a.ok("POST", "/v1/tenants/"+tid+"/policy-templates", token, map[string]string{"statement": statement}, http.StatusCreated, &tpl)
	if len(tpl.Slots) == 0 {
		a.t.Fatalf("template %q has no slots", statement)
	}
	return tpl.ID
}

type azDecision struct {
	Decision            string   `json:"decision"`
	DeterminingPolicies []string `json:"determining_policies"`
	Errors              []struct {
		Policy  string `json:"policy"`
		Message string `json:"message"`
	} `json:"errors"`
}

// decide asks tenant tid and returns the decision.
func (a *azEnv) decide(tid, token string, req map[string]any) azDecision {
	a.t.Helper()
	var d azDecision
	a.ok("POST", "/v1/tenants/"+tid+"/authorize", token, req, http.StatusOK, &d)
	return d
}

// expect checks decisions; name describes the case.
func (a *azEnv) expect(name, tid, token string, req map[string]any, want string) azDecision {
	a.t.Helper()
	d := a.decide(tid, token, req)
	if d.Decision != want {
		a.t.Errorf("%s: %s, want %s (determining %v, errors %v)", name, d.Decision, want, d.DeterminingPolicies, d.Errors)
	}
	return d
}

func ref(typ, id string) map[string]string { return map[string]string{"type": typ, "id": id} }

const homeSchema = `namespace Home {
  entity User;
  entity Company;
  entity Device { primaryOwner: User };
  action GetTemperature, SetTemperature, Reboot appliesTo {
    principal: [User, Company],
    resource: Device,
    context: { desiredTemperature?: Long, time?: Long }
  };
}`

// TestSmartHomeScenario is the first scenario of the authorization issue:
// owner, guest and power-company rules, the latter two template-linked.
func TestSmartHomeScenario(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		a := newAuthzEnv(t, dsn)
		a.ok("PUT", "/v1/tenants/tenant-a/policy-store/schema", tokAdminA,
			map[string]any{"format": "cedar", "schema": homeSchema}, http.StatusOK, nil)
		a.policy("tenant-a", tokAdminA, `// The device's primary owner may do anything to it.
permit(principal is Home::User, action, resource is Home::Device)
when { resource.primaryOwner == principal };`)
		guest := a.template("tenant-a", tokAdminA, `permit(
  principal == ?principal,
  action in [Home::Action::"GetTemperature", Home::Action::"SetTemperature"],
  resource == ?resource
) when {
  action == Home::Action::"GetTemperature" ||
  (context has desiredTemperature && context.desiredTemperature >= 72 && context.desiredTemperature <= 78)
};`)
		power := a.template("tenant-a", tokAdminA, `permit(
  principal == ?principal,
  action in [Home::Action::"GetTemperature", Home::Action::"SetTemperature"],
  resource == ?resource
) when { context has time && context.time >= 840 && context.time < 1020 };`)
		a.policy("tenant-a", tokAdminA, map[string]any{"template_id": guest,
			"principal": ref("Home::User", "gus"), "resource": ref("Home::Device", "thermostat")})
		link := a.policy("tenant-a", tokAdminA, map[string]any{"template_id": power, "description": "utility demand response",
			"principal": ref("Home::Company", "powerco"), "resource": ref("Home::Device", "thermostat")})
		if link.Type != "linked" || !strings.Contains(link.Statement, `Home::Company::"powerco"`) {
			t.Errorf("linked policy: %+v", link)
		}
		devices := []map[string]any{
			{"uid": ref("Home::Device", "thermostat"), "attrs": map[string]any{"primaryOwner": map[string]any{"__entity": ref("Home::User", "olivia")}}, "parents": []any{}},
			{"uid": ref("Home::Device", "garage"), "attrs": map[string]any{"primaryOwner": map[string]any{"__entity": ref("Home::User", "gus")}}, "parents": []any{}},
		}
		req := func(p map[string]string, action, device string, ctx map[string]any) map[string]any {
			r := map[string]any{"principal": p, "action": ref("Home::Action", action), "resource": ref("Home::Device", device), "entities": devices}
			if ctx != nil {
				r["context"] = ctx
			}
			return r
		}
		owner, gus, powerco, stranger := ref("Home::User", "olivia"), ref("Home::User", "gus"), ref("Home::Company", "powerco"), ref("Home::User", "eve")
		for _, c := range []struct {
			name string
			req  map[string]any
			want string
		}{
			{"owner reboots", req(owner, "Reboot", "thermostat", nil), "allow"},
			{"owner sets 90", req(owner, "SetTemperature", "thermostat", map[string]any{"desiredTemperature": 90}), "allow"},
			{"guest gets", req(gus, "GetTemperature", "thermostat", nil), "allow"},
			{"guest sets 72", req(gus, "SetTemperature", "thermostat", map[string]any{"desiredTemperature": 72}), "allow"},
			{"guest sets 75", req(gus, "SetTemperature", "thermostat", map[string]any{"desiredTemperature": 75}), "allow"},
			{"guest sets 78", req(gus, "SetTemperature", "thermostat", map[string]any{"desiredTemperature": 78}), "allow"},
			{"guest sets 71", req(gus, "SetTemperature", "thermostat", map[string]any{"desiredTemperature": 71}), "deny"},
			{"guest sets 79", req(gus, "SetTemperature", "thermostat", map[string]any{"desiredTemperature": 79}), "deny"},
			{"guest sets without a temperature", req(gus, "SetTemperature", "thermostat", nil), "deny"},
			{"guest reboots", req(gus, "Reboot", "thermostat", nil), "deny"},
			{"guest is owner of the garage device", req(gus, "Reboot", "garage", nil), "allow"},
			{"power company gets at 14:00", req(powerco, "GetTemperature", "thermostat", map[string]any{"time": 840}), "allow"},
			{"power company sets at 16:59", req(powerco, "SetTemperature", "thermostat", map[string]any{"time": 1019, "desiredTemperature": 60}), "allow"},
			{"power company gets at 13:59", req(powerco, "GetTemperature", "thermostat", map[string]any{"time": 839}), "deny"},
			{"power company sets at 17:00", req(powerco, "SetTemperature", "thermostat", map[string]any{"time": 1020}), "deny"},
			{"power company without a time", req(powerco, "GetTemperature", "thermostat", nil), "deny"},
			{"power company reboots at 15:00", req(powerco, "Reboot", "thermostat", map[string]any{"time": 900}), "deny"},
			{"power company on another device", req(powerco, "GetTemperature", "garage", map[string]any{"time": 900}), "deny"},
			{"stranger gets", req(stranger, "GetTemperature", "thermostat", nil), "deny"},
		} {
			a.expect(c.name, "tenant-a", tokSvcA, c.req, c.want)
		}
		// The same request against tenant-b's (empty) store: default deny.
		a.expect("guest in tenant-b", "tenant-b", tokAdminB, req(gus, "GetTemperature", "thermostat", nil), "deny")

		// The schema refuses what it does not know, with a position.
		r := a.call("POST", "/v1/tenants/tenant-a/policies", tokAdminA, map[string]string{"statement": "permit(principal, action == Home::Action::\"GetTemperature\", resource)\nwhen { resource.color == \"red\" };"})
		if p := wantProblem(t, "policy against the schema", r, 400, "schema_violation", "statement"); !strings.Contains(p.Detail, "line 1, column 1") || !strings.Contains(p.Detail, "color") {
			t.Errorf("schema violation detail: %q", p.Detail)
		}
		r = a.call("POST", "/v1/tenants/tenant-a/authorize", tokSvcA, map[string]any{"principal": gus, "action": ref("Home::Action", "GetTemperature"),
			"resource": ref("Home::Device", "thermostat"), "entities": []any{map[string]any{"uid": ref("Home::Toaster", "t"), "attrs": map[string]any{}, "parents": []any{}}}})
		wantProblem(t, "entities of unknown type", r, 400, "entities_schema_violation", "entities")
		// A link whose slot value the schema does not allow is refused.
		r = a.call("POST", "/v1/tenants/tenant-a/policies", tokAdminA, map[string]any{"template_id": guest, "principal": ref("Home::Cat", "tom"), "resource": ref("Home::Device", "thermostat")})
		wantProblem(t, "link of an unknown type", r, 400, "schema_violation", "statement")
		// A schema that a stored policy does not conform to is refused.
		r = a.call("PUT", "/v1/tenants/tenant-a/policy-store/schema", tokAdminA, map[string]any{"format": "cedar", "schema": `namespace Home { entity User; entity Company; entity Device; action GetTemperature appliesTo { principal: User, resource: Device }; }`})
		wantProblem(t, "narrower schema", r, 400, "schema_violation", "schema")
	})
}

// TestDocumentScenario is the second scenario: a global rule, owners,
// sharing by template link, an admin group, and tenant separation.
func TestDocumentScenario(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		a := newAuthzEnv(t, dsn)
		addDoc := a.policy("", apitest.AdminToken, `permit(principal is User, action == Action::"AddDocument", resource);`)
		for _, tid := range []string{"tenant-a", "tenant-b"} {
			tok := map[string]string{"tenant-a": tokAdminA, "tenant-b": tokAdminB}[tid]
			a.policy(tid, tok, `permit(principal, action, resource is Document) when { resource.owner == principal };`)
			a.policy(tid, tok, `permit(principal in Group::"admins", action, resource is Document);`)
		}
		share := a.template("tenant-a", tokAdminA, `permit(principal == ?principal, action == Action::"ReadDocument", resource == ?resource);`)
		docs := []map[string]any{{"uid": ref("Document", "plan"), "attrs": map[string]any{"owner": map[string]any{"__entity": ref("User", "alice")}}, "parents": []any{}}}
		on := func(action, doc string) map[string]any {
			return map[string]any{"action": ref("Action", action), "resource": ref("Document", doc), "entities": docs}
		}
		// The principal defaults to the token's user, its parents to the token's groups.
		a.expect("owner reads", "tenant-a", tokAlice, on("ReadDocument", "plan"), "allow")
		a.expect("owner deletes", "tenant-a", tokAlice, on("DeleteDocument", "plan"), "allow")
		a.expect("bob reads before the share", "tenant-a", tokBob, on("ReadDocument", "plan"), "deny")
		a.expect("bob adds a document (global)", "tenant-a", tokBob, on("AddDocument", "new"), "allow")
		a.expect("admin group member deletes", "tenant-a", tokCarol, on("DeleteDocument", "plan"), "allow")
		// A request cannot make its caller an admin: the token's groups win.
		forged := on("DeleteDocument", "plan")
		forged["entities"] = append(docs, map[string]any{"uid": ref("User", "bob"), "attrs": map[string]any{}, "parents": []any{ref("Group", "admins")}})
		a.expect("bob claims the admins group", "tenant-a", tokBob, forged, "deny")

		// Sharing: a link from the share template lets bob read this one document.
		link := a.policy("tenant-a", tokAdminA, map[string]any{"template_id": share, "description": "alice shares plan with bob",
			"principal": ref("User", "bob"), "resource": ref("Document", "plan")})
		if d := a.expect("bob reads after the share", "tenant-a", tokBob, on("ReadDocument", "plan"), "allow"); !contains(d.DeterminingPolicies, link.ID) {
			t.Errorf("bob's read is not determined by the share %s: %v", link.ID, d.DeterminingPolicies)
		}
		a.expect("bob edits a document shared for reading", "tenant-a", tokBob, on("EditDocument", "plan"), "deny")
		a.expect("bob reads another document", "tenant-a", tokBob, on("ReadDocument", "other"), "deny")

		// The same user id in tenant-b gets nothing of tenant-a.
		wantProblem(t, "alice of tenant-b asks tenant-a", a.call("POST", "/v1/tenants/tenant-a/authorize", tokAliceB, on("ReadDocument", "plan")), 404, "tenant_not_found", "")
		bNoDocs := on("ReadDocument", "plan")
		delete(bNoDocs, "entities")
		a.expect("alice of tenant-b reads plan in tenant-b", "tenant-b", tokAliceB, bNoDocs, "deny")
		asBob := on("ReadDocument", "plan")
		asBob["principal"] = ref("User", "bob")
		a.expect("bob in tenant-b (no share there)", "tenant-b", tokAdminB, asBob, "deny")

		// Template edits reach their links; edits that break a link, and
		// deleting a template with links, are refused.
		tplPath := "/v1/tenants/tenant-a/policy-templates/" + share
		a.ok("PUT", tplPath, tokAdminA, map[string]string{"statement": `permit(principal == ?principal, action in [Action::"ReadDocument", Action::"EditDocument"], resource == ?resource);`}, 200, nil)
		a.expect("bob edits after the template grew", "tenant-a", tokBob, on("EditDocument", "plan"), "allow")
		wantProblem(t, "template losing its ?resource slot", a.call("PUT", tplPath, tokAdminA, map[string]string{"statement": `permit(principal == ?principal, action, resource);`}), 409, "template_in_use", "")
		wantProblem(t, "delete a template with links", a.call("DELETE", tplPath, tokAdminA, nil), 409, "template_in_use", "")
		a.expect("the refused edits changed nothing", "tenant-a", tokBob, on("EditDocument", "plan"), "allow")
		var got azPolicy
		a.ok("GET", "/v1/tenants/tenant-a/policies/"+link.ID, tokAdminA, nil, 200, &got)
		if !strings.Contains(got.Statement, "EditDocument") || !strings.Contains(got.Statement, `User::"bob"`) {
			t.Errorf("linked policy statement does not follow its template: %q", got.Statement)
		}

		// Global precedence, one way: a tenant permit cannot undo a global forbid.
		locked := []map[string]any{{"uid": ref("Document", "vault"), "attrs": map[string]any{"owner": map[string]any{"__entity": ref("User", "alice")}, "locked": true}, "parents": []any{}}}
		onLocked := func(action string) map[string]any {
			return map[string]any{"action": ref("Action", action), "resource": ref("Document", "vault"), "entities": locked}
		}
		a.expect("owner deletes vault before the global forbid", "tenant-a", tokAlice, onLocked("DeleteDocument"), "allow")
		lock := a.policy("", apitest.AdminToken, `forbid(principal, action == Action::"DeleteDocument", resource) when { resource has locked && resource.locked };`)
		for _, c := range []struct{ name, tid, tok string }{{"owner", "tenant-a", tokAlice}, {"admin", "tenant-a", tokCarol}, {"tenant-b admin", "tenant-b", tokAdminB}} {
			d := a.expect(c.name+" deletes a locked document", c.tid, c.tok, onLocked("DeleteDocument"), "deny")
			if !contains(d.DeterminingPolicies, "global/"+lock.ID) {
				t.Errorf("%s: denied by %v, want global/%s", c.name, d.DeterminingPolicies, lock.ID)
			}
		}
		a.policy("tenant-a", tokAdminA, `@id("override") permit(principal, action == Action::"DeleteDocument", resource);`)
		a.expect("a tenant permit against the global forbid", "tenant-a", tokCarol, onLocked("DeleteDocument"), "deny")
		a.expect("reading a locked document is not forbidden", "tenant-a", tokAlice, onLocked("ReadDocument"), "allow")

		// The other way: a tenant forbid narrows a global permit.
		a.policy("tenant-a", tokAdminA, `forbid(principal == User::"bob", action == Action::"AddDocument", resource);`)
		a.expect("bob adds a document in tenant-a", "tenant-a", tokBob, on("AddDocument", "new"), "deny")
		addAsBob := on("AddDocument", "new")
		addAsBob["principal"] = ref("User", "bob")
		a.expect("bob adds a document in tenant-b", "tenant-b", tokAdminB, addAsBob, "allow")

		// A tenant can neither see nor remove a global policy.
		wantProblem(t, "tenant reads a global policy as its own", a.call("GET", "/v1/tenants/tenant-a/policies/"+addDoc.ID, tokAdminA, nil), 404, "policy_not_found", "")
		wantProblem(t, "tenant deletes a global policy", a.call("DELETE", "/v1/global-policies/"+addDoc.ID, tokAdminA, nil), 403, "operator_required", "")
		wantProblem(t, "tenant deletes a global policy through its store", a.call("DELETE", "/v1/tenants/tenant-a/policies/"+addDoc.ID, tokAdminA, nil), 404, "policy_not_found", "")
		var list struct{ Items []azPolicy }
		a.ok("GET", "/v1/tenants/tenant-a/policies", tokAdminA, nil, 200, &list)
		for _, p := range list.Items {
			if p.ID == addDoc.ID || p.ID == lock.ID {
				t.Errorf("tenant-a's policy list shows global policy %s", p.ID)
			}
		}
		// Changing a global policy changes every tenant at once.
		a.expect("alice adds in tenant-a", "tenant-a", tokAlice, on("AddDocument", "new"), "allow")
		a.expect("alice adds in tenant-b", "tenant-b", tokAliceB, on("AddDocument", "new"), "allow")
		a.ok("PUT", "/v1/global-policies/"+addDoc.ID, apitest.AdminToken, map[string]string{"statement": `permit(principal == User::"nobody", action == Action::"AddDocument", resource);`}, 200, nil)
		a.expect("alice adds in tenant-a after the global change", "tenant-a", tokAlice, on("AddDocument", "new"), "deny")
		a.expect("alice adds in tenant-b after the global change", "tenant-b", tokAliceB, on("AddDocument", "new"), "deny")
		r := a.call("DELETE", "/v1/global-policies/"+addDoc.ID, apitest.AdminToken, nil)
		if r.Status != 204 {
			t.Fatalf("delete global policy: %d %s", r.Status, r.Body)
		}

		// Denies are in the tenant's audit chain; allows only when the store asks.
		countDecisions := func(outcome string) int {
			n := 0
			for _, e := range auditEvents(t, a.env, client.AuditQuery{Tenant: "tenant-a", Action: "authz.decision"}) {
				if e.Outcome == outcome {
					n++
				}
			}
			return n
		}
		// Decision entries join the audit log's next group commit: wait for them.
		runtest.Eventually(t, "denies in the decision log", func() bool { return countDecisions("denied") > 0 })
		if n := countDecisions("success"); n != 0 {
			t.Errorf("decision log: %d allows; want none without log_allows", n)
		}
		a.ok("PATCH", "/v1/tenants/tenant-a/policy-store", tokAdminA, map[string]any{"log_allows": true}, 200, nil)
		a.expect("logged allow", "tenant-a", tokAlice, on("ReadDocument", "plan"), "allow")
		runtest.Eventually(t, "the allow in the decision log", func() bool { return countDecisions("success") == 1 })
		// Batches decide in order.
		var batch struct{ Results []azDecision }
		a.ok("POST", "/v1/tenants/tenant-a/authorize/batch", tokBob, map[string]any{"requests": []any{
			on("ReadDocument", "plan"), on("ShareDocument", "plan"), on("EditDocument", "plan")}}, 200, &batch)
		if got := decisions(batch.Results); got != "allow,deny,allow" {
			t.Errorf("batch: %s, want allow,deny,allow", got)
		}
	})
}

// eventually polls cond for up to 10 seconds.
func decisions(ds []azDecision) string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Decision)
	}
	return strings.Join(out, ",")
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// TestAuthzCrossTenant: tenant-a's admin cannot list, read, write, link
// into or authorize against tenant-b's store, and learns nothing of it:
// every answer is the one a tenant that does not exist gets.
func TestAuthzCrossTenant(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		a := newAuthzEnv(t, dsn)
		a.ok("PUT", "/v1/tenants/tenant-b/policy-store/schema", tokAdminB,
			map[string]any{"format": "cedar", "schema": `entity User; entity Doc; action read appliesTo { principal: User, resource: Doc };`}, 200, nil)
		bPolicy := a.policy("tenant-b", tokAdminB, `permit(principal == User::"alice", action == Action::"read", resource);`)
		bTpl := a.template("tenant-b", tokAdminB, `permit(principal == ?principal, action == Action::"read", resource == ?resource);`)
		bLink := a.policy("tenant-b", tokAdminB, map[string]any{"template_id": bTpl, "principal": ref("User", "bob"), "resource": ref("Doc", "d1")})
		aTpl := a.template("tenant-a", tokAdminA, `permit(principal == ?principal, action, resource);`)
		snapshot := func() string {
			var ps, ts json.RawMessage
			a.ok("GET", "/v1/tenants/tenant-b/policies", tokAdminB, nil, 200, &ps)
			a.ok("GET", "/v1/tenants/tenant-b/policy-templates", tokAdminB, nil, 200, &ts)
			return string(ps) + string(ts)
		}
		before := snapshot()
		allow := map[string]any{"principal": ref("User", "alice"), "action": ref("Action", "read"), "resource": ref("Doc", "d1")}
		if d := a.decide("tenant-b", tokAdminB, allow); d.Decision != "allow" {
			t.Fatalf("tenant-b's own decision: %+v", d)
		}
		calls := func(tid string) []call {
			p, tp := "/v1/tenants/"+tid+"/policies", "/v1/tenants/"+tid+"/policy-templates"
			stmt := mustJSON(t, map[string]string{"statement": `permit(principal, action, resource);`})
			return []call{
				{method: "GET", path: "/v1/tenants/" + tid + "/policy-store"},
				{method: "PATCH", path: "/v1/tenants/" + tid + "/policy-store", body: []byte(`{"log_allows":true}`)},
				{method: "GET", path: "/v1/tenants/" + tid + "/policy-store/schema"},
				{method: "PUT", path: "/v1/tenants/" + tid + "/policy-store/schema", body: []byte(`{"format":"cedar","schema":"entity X;"}`)},
				{method: "GET", path: p},
				{method: "GET", path: p + "?limit=1"},
				{method: "POST", path: p, body: stmt},
				{method: "POST", path: p, body: mustJSON(t, map[string]any{"template_id": bTpl, "principal": ref("User", "mallory"), "resource": ref("Doc", "d1")})},
				{method: "GET", path: p + "/" + bPolicy.ID},
				{method: "GET", path: p + "/" + bLink.ID},
				{method: "PUT", path: p + "/" + bPolicy.ID, body: stmt},
				{method: "DELETE", path: p + "/" + bPolicy.ID},
				{method: "DELETE", path: p + "/" + bLink.ID},
				{method: "GET", path: tp},
				{method: "POST", path: tp, body: []byte(`{"statement":"permit(principal == ?principal, action, resource);"}`)},
				{method: "GET", path: tp + "/" + bTpl},
				{method: "PUT", path: tp + "/" + bTpl, body: []byte(`{"statement":"permit(principal == ?principal, action, resource);"}`)},
				{method: "DELETE", path: tp + "/" + bTpl},
				{method: "POST", path: "/v1/tenants/" + tid + "/authorize", body: mustJSON(t, allow)},
				{method: "POST", path: "/v1/tenants/" + tid + "/authorize/batch", body: mustJSON(t, map[string]any{"requests": []any{allow}})},
			}
		}
		for _, tok := range []string{tokAdminA, tokAlice, tokSvcA} {
			ghost, real := calls("tenant-zz"), calls("tenant-b")
			for i := range real {
				real[i].token, ghost[i].token = tok, tok
				rb, rg := send(t, a.env.URL, real[i]), send(t, a.env.URL, ghost[i])
				what := real[i].String() + " with " + tok
				wantProblem(t, what, rb, 404, "tenant_not_found", "")
				if got, want := stripProblem(t, what, rb, "tenant-b"), stripProblem(t, what, rg, "tenant-zz"); got != want {
					t.Errorf("%s answers unlike a tenant that does not exist:\n got %s\nwant %s", what, got, want)
				}
			}
		}
		// tenant-b's ids through tenant-a's own store: not found there either.
		wantProblem(t, "B's policy in A", a.call("GET", "/v1/tenants/tenant-a/policies/"+bPolicy.ID, tokAdminA, nil), 404, "policy_not_found", "")
		wantProblem(t, "B's link in A", a.call("PUT", "/v1/tenants/tenant-a/policies/"+bLink.ID, tokAdminA, map[string]string{"statement": "permit(principal, action, resource);"}), 404, "policy_not_found", "")
		wantProblem(t, "B's template in A", a.call("GET", "/v1/tenants/tenant-a/policy-templates/"+bTpl, tokAdminA, nil), 404, "template_not_found", "")
		wantProblem(t, "link into A from B's template", a.call("POST", "/v1/tenants/tenant-a/policies", tokAdminA,
			map[string]any{"template_id": bTpl, "principal": ref("User", "mallory"), "resource": ref("Doc", "d1")}), 404, "template_not_found", "")
		wantProblem(t, "B's template deleted through A", a.call("DELETE", "/v1/tenants/tenant-a/policy-templates/"+bTpl, tokAdminA, nil), 404, "template_not_found", "")
		// A's own template works in A: the 404s above are about B, not links.
		a.policy("tenant-a", tokAdminA, map[string]any{"template_id": aTpl, "principal": ref("User", "mallory")})
		// A's users who are not admins cannot manage A's own store.
		wantProblem(t, "non-admin lists policies", a.call("GET", "/v1/tenants/tenant-a/policies", tokAlice, nil), 403, "tenant_admin_required", "")
		if after := snapshot(); after != before {
			t.Errorf("tenant-b's store changed:\nbefore %s\nafter  %s", before, after)
		}
		if d := a.decide("tenant-b", tokAdminB, allow); d.Decision != "allow" {
			t.Errorf("tenant-b's decision changed: %+v", d)
		}
		// The operator may query any store; its allows are audited too.
		if d := a.decide("tenant-b", apitest.AdminToken, allow); d.Decision != "allow" {
			t.Errorf("operator's decision in tenant-b: %+v", d)
		}
		runtest.Eventually(t, "the operator's allow in tenant-b's decision log", func() bool {
			var byOperator int
			for _, e := range auditEvents(t, a.env, client.AuditQuery{Tenant: "tenant-b", Action: "authz.decision"}) {
				if strings.HasPrefix(e.Principal, "operator:") && e.Outcome == "success" {
					byOperator++
				}
			}
			return byOperator == 1
		})
	})
}

// TestAuthzBadInput: clear 400s, nothing written.
func TestAuthzBadInput(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		a := newAuthzEnv(t, dsn)
		tpl := a.template("tenant-a", tokAdminA, `permit(principal == ?principal, action, resource in ?resource);`)
		count := func() int {
			var ps, ts struct{ Items []json.RawMessage }
			a.ok("GET", "/v1/tenants/tenant-a/policies", tokAdminA, nil, 200, &ps)
			a.ok("GET", "/v1/tenants/tenant-a/policy-templates", tokAdminA, nil, 200, &ts)
			return len(ps.Items) + len(ts.Items)
		}
		before := count()
		deep := "permit(principal, action, resource) when { " + strings.Repeat("(", 10000) + "true" + strings.Repeat(")", 10000) + " };"
		bangs := "permit(principal, action, resource) when { " + strings.Repeat("!", 10000) + "true };"
		huge := `{"statement":"` + strings.Repeat("a", 10<<20) + `"}`
		policies, templates := "/v1/tenants/tenant-a/policies", "/v1/tenants/tenant-a/policy-templates"
		for _, c := range []struct {
			name, path string
			body       any
			status     int
			code       string
			field      string
			detail     string // substring of the detail
		}{
			{"unparsable", policies, map[string]string{"statement": "permit(principal, action, resource) when { 1 + };"}, 400, "invalid_policy", "statement", "line 1, column"},
			{"two policies", policies, map[string]string{"statement": "permit(principal, action, resource);\nforbid(principal, action, resource);"}, 400, "invalid_policy", "statement", "exactly one"},
			{"empty", policies, map[string]string{"statement": " "}, 400, "invalid_policy", "statement", ""},
			{"slot in a static policy", policies, map[string]string{"statement": "permit(principal == ?principal, action, resource);"}, 400, "invalid_policy", "statement", "?principal"},
			{"reserved identifier", policies, map[string]string{"statement": `permit(principal == __S::"p", action, resource);`}, 400, "invalid_policy", "statement", "reserved"},
			{"10,000-deep expression", policies, map[string]string{"statement": deep}, 400, "invalid_policy", "statement", "nest"},
			{"10,000 negations", policies, map[string]string{"statement": bangs}, 400, "invalid_policy", "statement", "unary"},
			{"10 MB body", policies, huge, 400, "body_too_large", "", ""},
			{"statement over the limit", policies, map[string]string{"statement": "permit(principal, action, resource) when { \"" + strings.Repeat("x", 40<<10) + "\" == \"\" };"}, 400, "policy_too_large", "statement", ""},
			{"template without slots", templates, map[string]string{"statement": "permit(principal, action, resource);"}, 400, "invalid_template", "statement", ""},
			{"slot in a condition", templates, map[string]string{"statement": "permit(principal == ?principal, action, resource) when { resource.owner == ?principal };"}, 400, "invalid_template", "statement", "scope"},
			{"slot in the wrong scope", templates, map[string]string{"statement": "permit(principal, action, resource == ?principal);"}, 400, "invalid_template", "statement", ""},
			{"unknown slot", templates, map[string]string{"statement": "permit(principal == ?owner, action, resource);"}, 400, "invalid_policy", "statement", "?owner"},
			{"link without its slot values", policies, map[string]any{"template_id": tpl, "principal": ref("User", "x")}, 400, "missing_slot_value", "resource", ""},
			{"link with a value for no slot", policies, map[string]any{"template_id": a.template("tenant-a", tokAdminA, "permit(principal == ?principal, action, resource);"), "principal": ref("User", "x"), "resource": ref("Doc", "d")}, 400, "unexpected_slot_value", "resource", ""},
			{"link with a bad entity type", policies, map[string]any{"template_id": tpl, "principal": ref("User::", "x"), "resource": ref("Doc", "d")}, 400, "invalid_entity", "principal.type", ""},
			{"link and statement", policies, map[string]any{"template_id": tpl, "statement": "permit(principal, action, resource);"}, 400, "invalid_policy", "statement", ""},
			{"slot values without a template", policies, map[string]any{"statement": "permit(principal, action, resource);", "principal": ref("User", "x")}, 400, "missing_template", "template_id", ""},
			{"unknown field", policies, map[string]any{"statement": "permit(principal, action, resource);", "effect": "permit"}, 400, "unknown_field", "effect", ""},
			{"schema that does not parse", "/v1/tenants/tenant-a/policy-store/schema", map[string]any{"format": "cedar", "schema": "entity User {"}, 400, "invalid_schema", "schema", ""},
			{"schema in an unknown format", "/v1/tenants/tenant-a/policy-store/schema", map[string]any{"format": "yaml", "schema": "x"}, 400, "invalid_schema_format", "format", ""},
		} {
			method := "POST"
			if strings.HasSuffix(c.path, "/schema") {
				method = "PUT"
			}
			p := wantProblem(t, c.name, a.call(method, c.path, tokAdminA, c.body), c.status, c.code, c.field)
			if !strings.Contains(p.Detail, c.detail) {
				t.Errorf("%s: detail %q does not mention %q", c.name, p.Detail, c.detail)
			}
		}
		if after := count(); after != before+1 { // +1: the one-slot template made for a case above
			t.Errorf("bad input wrote: %d objects, want %d", after, before+1)
		}

		authorize := "/v1/tenants/tenant-a/authorize"
		ok := func() map[string]any {
			return map[string]any{"principal": ref("User", "a"), "action": ref("Action", "read"), "resource": ref("Doc", "d")}
		}
		with := func(k string, v any) map[string]any { r := ok(); r[k] = v; return r }
		entity := func(id string, parents ...string) map[string]any {
			ps := []any{}
			for _, p := range parents {
				ps = append(ps, ref("Group", p))
			}
			return map[string]any{"uid": ref("Group", id), "attrs": map[string]any{}, "parents": ps}
		}
		deepCtx := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
		var batch []any
		for range 101 {
			batch = append(batch, ok())
		}
		for _, c := range []struct {
			name   string
			path   string
			body   any
			status int
			code   string
			field  string
		}{
			{"self-parent", authorize, with("entities", []any{entity("g", "g")}), 400, "entities_cycle", "entities"},
			{"three-cycle", authorize, with("entities", []any{entity("x", "y"), entity("y", "z"), entity("z", "x")}), 400, "entities_cycle", "entities"},
			{"entities not an array", authorize, with("entities", map[string]any{}), 400, "invalid_entities", "entities"},
			{"entity without parents", authorize, with("entities", []any{map[string]any{"uid": ref("User", "a")}}), 400, "invalid_entities", "entities"},
			{"context not an object", authorize, with("context", []int{1}), 400, "invalid_context", "context"},
			{"context 100 deep", authorize, with("context", json.RawMessage(deepCtx)), 400, "invalid_context", "context"},
			{"no action", authorize, with("action", nil), 400, "missing_entity", "action"},
			{"no principal with a client token", authorize, with("principal", nil), 400, "missing_entity", "principal"},
			{"bad resource type", authorize, with("resource", ref("9Doc", "d")), 400, "invalid_entity", "resource.type"},
			{"empty batch", authorize + "/batch", map[string]any{"requests": []any{}}, 400, "invalid_batch", "requests"},
			{"101 requests", authorize + "/batch", map[string]any{"requests": batch}, 400, "invalid_batch", "requests"},
			{"bad request in a batch", authorize + "/batch", map[string]any{"requests": []any{ok(), with("context", 7)}}, 400, "invalid_context", "requests[1].context"},
		} {
			wantProblem(t, c.name, a.call("POST", c.path, tokSvcA, c.body), c.status, c.code, c.field)
		}
	})
}

// TestPolicyStoreLifecycle: onboarding gives a tenant an empty store (with
// a JSON-format schema it can put and read back), offboarding deletes it.
func TestPolicyStoreLifecycle(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		a := newAuthzEnv(t, dsn)
		var st struct {
			TenantID      string `json:"tenant_id"`
			HasSchema     bool   `json:"has_schema"`
			LogAllows     bool   `json:"log_allows"`
			PrincipalType string `json:"principal_type"`
		}
		a.ok("GET", "/v1/tenants/tenant-b/policy-store", tokAdminB, nil, 200, &st)
		if st.TenantID != "tenant-b" || st.HasSchema || st.LogAllows || st.PrincipalType != "User" {
			t.Errorf("new store: %+v", st)
		}
		wantProblem(t, "schema of a new store", a.call("GET", "/v1/tenants/tenant-b/policy-store/schema", tokAdminB, nil), 404, "schema_not_found", "")
		jsonSchema := map[string]any{"App": map[string]any{
			"entityTypes": map[string]any{"User": map[string]any{}, "Doc": map[string]any{}},
			"actions": map[string]any{"read": map[string]any{"appliesTo": map[string]any{
				"principalTypes": []string{"User"}, "resourceTypes": []string{"Doc"}}}},
		}}
		a.ok("PUT", "/v1/tenants/tenant-b/policy-store/schema", tokAdminB, map[string]any{"format": "json", "schema": jsonSchema}, 200, nil)
		var got struct {
			Format string          `json:"format"`
			Schema json.RawMessage `json:"schema"`
		}
		a.ok("GET", "/v1/tenants/tenant-b/policy-store/schema", tokAdminB, nil, 200, &got)
		if got.Format != "json" || !strings.Contains(string(got.Schema), `"principalTypes":["User"]`) {
			t.Errorf("schema read back: %s %s", got.Format, got.Schema)
		}
		a.policy("tenant-b", tokAdminB, `permit(principal == App::User::"a", action == App::Action::"read", resource);`)
		wantProblem(t, "policy against the JSON schema", a.call("POST", "/v1/tenants/tenant-b/policies", tokAdminB,
			map[string]string{"statement": `permit(principal, action == App::Action::"write", resource);`}), 400, "schema_violation", "statement")

		if _, err := a.env.Admin.DeleteTenant(context.Background(), "tenant-b"); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, a.env, "tenant-b", "deleted")
		var left int
		err := a.env.DB.View(context.Background(), storage.PlatformScope(), func(tx *storage.Tx) error {
			return tx.QueryRow(context.Background(), `SELECT (SELECT COUNT(*) FROM authz_stores WHERE tenant_id = 'tenant-b')
				+ (SELECT COUNT(*) FROM authz_policies WHERE tenant_id = 'tenant-b')`).Scan(&left)
		})
		if err != nil || left != 0 {
			t.Errorf("tenant-b's store after offboarding: %d rows, %v", left, err)
		}
		wantProblem(t, "a deleted tenant's decisions", a.call("POST", "/v1/tenants/tenant-b/authorize", apitest.AdminToken,
			map[string]any{"principal": ref("App::User", "a"), "action": ref("App::Action", "read"), "resource": ref("App::Doc", "d")}), 404, "tenant_not_found", "")
	})
}
