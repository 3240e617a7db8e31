package client_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/certs"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/certs/pebbletest"
	"github.com/bulkhead-dev/bulkhead/internal/hooksig"
	"github.com/bulkhead-dev/bulkhead/internal/httpapi"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// notInClient are the routes the client has no method for, and why. A new
// route fails TestClientRoundTrip until the client covers it (and the test
// calls it) or it is listed here.
var notInClient = map[string]string{
	"GET /healthz":         "a liveness probe for load balancers and orchestrators, not an API call",
	"GET /readyz":          "a readiness probe for load balancers and orchestrators, not an API call",
	"GET /v1/openapi.json": "the API's description itself; package sdk/api is its Go form",
	// EndMySession and EndUserSession exist; ending a session needs one
	// made by a browser's sign-in, which this test's tokens are not.
	"DELETE /v1/me/sessions/{session}":                            "covered with real browser sessions by internal/identity/provider TestSessionsAPI",
	"DELETE /v1/tenants/{tenant}/users/{user}/sessions/{session}": "covered with real browser sessions by internal/identity/provider TestSessionsAPI",
}

// routeLog is a transport that records the requests that succeeded, so
// the test can tell which routes the client reached.
type routeLog struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (l *routeLog) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && resp.StatusCode < 300 {
		l.mu.Lock()
		l.reqs = append(l.reqs, r)
		l.mu.Unlock()
	}
	return resp, err
}

// TestClientRoundTrip calls every route of the API through the client, on
// a real node of each database, and checks what the client decodes: the
// bodies of package sdk/api make the round trip whole. Each route must be
// reached with a successful answer, or be in notInClient.
func TestClientRoundTrip(t *testing.T) {
	module := apitest.CounterModule(t)
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		// A tenant's service credential for the data routes (never the
		// operator's), and, once ann exists, ann's own token for /v1/me:
		// apitest looks tokens up in this map at each request.
		tokens := map[string]tenant.Context{
			"tok-svc": {TenantID: "acme", Principal: "client:svc",
				Scopes: []string{httpapi.ScopeEncrypt, httpapi.ScopeDecrypt, httpapi.ScopeGenerateDataKey}},
			"tok-events": {TenantID: "acme", Principal: "client:events", Scopes: []string{events.ScopePublish, events.ScopeSubscribe}},
		}
		// Custom domains' HTTP checks reach the gateway's challenge
		// handler, as if every domain pointed at this node.
		var gateway string
		ca1, ca2 := pebbletest.Start(t), pebbletest.Start(t)
		env := apitest.New(t, dsn, apitest.Options{TenantTokens: tokens, NATS: true, ACMECAs: []certs.CA{ca1.CA, ca2.CA},
			Argon2: identity.Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16},
			DomainsDial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, gateway)
			}})
		challenges := httptest.NewServer(env.App.Domains.ChallengeHandler())
		defer challenges.Close()
		gateway = challenges.Listener.Addr().String()
		log := &routeLog{}
		as := func(token string) *client.Client {
			c := client.New(env.URL, token)
			c.HTTP = &http.Client{Transport: log, Timeout: 3 * time.Minute} // a publish compiles the module
			return c
		}
		op, svc := as(apitest.AdminToken), as("tok-svc")
		r := roundTrip{t: t, ctx: t.Context(), base: env.URL}

		r.tenants(op)
		ann := r.users(op)
		tokens["tok-ann"] = tenant.Context{TenantID: "acme", Principal: "user:" + ann}
		r.me(as("tok-ann"))
		r.identity(op)
		r.clients(op)
		r.operators(op)
		r.authz(op)
		r.keys(op, svc)
		r.functions(op, svc, module)
		r.connections(op, env.ProxyURL)
		r.usage(op)
		r.domains(op)
		r.certs(op, env.App.Certs, ca1.URL, ca2.URL)
		r.audit(op)
		r.gateway(op)
		r.streams(as("tok-events"))
		r.webhooks(op)
		r.partners(op)
		r.posture(op)
		r.offboarding(op, ann)
		// Last: without PostgreSQL for the application's cluster (and
		// BULKHEAD_REQUIRE_POSTGRES unset) App skips the rest.
		tokens["tok-data"] = tenant.Context{TenantID: "data-co", Principal: "client:svc"}
		r.data(op, as("tok-data"), storagetest.App(t))

		mux := http.NewServeMux()
		for _, rt := range env.API.Routes() {
			mux.HandleFunc(rt.Method+" "+rt.Path, func(http.ResponseWriter, *http.Request) {})
		}
		reached := map[string]bool{}
		for _, req := range log.reqs {
			if _, pattern := mux.Handler(req); pattern != "" {
				reached[pattern] = true
			}
		}
		routes := map[string]bool{}
		for _, rt := range env.API.Routes() {
			key := rt.Method + " " + rt.Path
			routes[key] = true
			why, listed := notInClient[key]
			switch {
			case listed && reached[key]:
				t.Errorf("%s is in notInClient (%s), but the client reached it", key, why)
			case !listed && !reached[key]:
				t.Errorf("no client call reached %s (%s) with a successful answer: give the client a method and call it here, or list the route in notInClient with the reason", key, rt.Name)
			}
		}
		for key := range notInClient {
			if !routes[key] {
				t.Errorf("notInClient lists %s, which is not a route", key)
			}
		}
	})
}

// roundTrip is one run of TestClientRoundTrip. Its methods stop the test
// at the first failed call: what follows depends on it.
type roundTrip struct {
	t    *testing.T
	ctx  context.Context
	base string // the node's URL (its token endpoint is base/oauth/token)
}

func (r roundTrip) ok(what string, err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatalf("%s: %v", what, err)
	}
}

func (r roundTrip) want(what string, ok bool, got any) {
	r.t.Helper()
	if !ok {
		r.t.Fatalf("%s: got %+v", what, got)
	}
}

// streams publishes, pulls, acknowledges and asks again over HTTP.
func (r roundTrip) streams(c *client.Client) {
	ctx := r.ctx
	pub, err := c.Publish(ctx, "orders", client.Publication{Data: []byte(`{"n":1}`), ContentType: "application/json", ID: "o-1"})
	r.ok("publish", err)
	r.want("publish", pub.Stream == "orders" && pub.Seq == 1 && !pub.Duplicate, pub)
	dup, err := c.Publish(ctx, "orders", client.Publication{Data: []byte(`{"n":1}`), ID: "o-1"})
	r.ok("publish again", err)
	r.want("the same id again", dup.Duplicate && dup.Seq == 1, dup)
	_, err = c.Publish(ctx, "orders", client.Publication{Data: []byte("two")})
	r.ok("publish a second", err)
	ms, err := c.Pull(ctx, "orders", client.StreamPull{Consumer: "billing", MaxMessages: 10})
	r.ok("pull", err)
	r.want("pull", len(ms) == 2 && string(ms[0].Data) == `{"n":1}` && ms[0].ContentType == "application/json" && ms[0].ID == "o-1" &&
		ms[0].Stream == "orders" && ms[0].Seq == 1 && ms[0].Deliveries == 1 && !ms[0].Time.IsZero() && string(ms[1].Data) == "two", ms)
	nak, err := c.Nak(ctx, "orders", ms[1].AckID)
	r.ok("nak", err)
	r.want("nak", nak.Acked == 1, nak)
	res, err := c.Ack(ctx, "orders", ms[0].AckID)
	r.ok("ack", err)
	r.want("ack", res.Acked == 1 && len(res.Expired) == 0, res)
	again, err := c.Pull(ctx, "orders", client.StreamPull{Consumer: "billing", MaxMessages: 10, WaitMS: 2000})
	r.ok("pull again", err)
	r.want("the nak'ed message, again", len(again) == 1 && string(again[0].Data) == "two" && again[0].Deliveries == 2, again)
	_, err = c.Ack(ctx, "orders", again[0].AckID)
	r.ok("ack the second", err)
	mc, err := c.MakeConsumer(ctx, "fifo", "workers")
	r.ok("make a consumer", err)
	r.want("a FIFO consumer's names", mc.Stream == "fifo" && mc.Consumer == "workers" && len(mc.Names) == 8, mc)
}

func (r roundTrip) tenants(op *client.Client) {
	ctx := r.ctx
	tiers, err := op.ListTiers(ctx)
	r.ok("list tiers", err)
	r.want("tiers", slices.ContainsFunc(tiers, func(t api.Tier) bool { return t.Name == "basic" && t.Isolation == "pool" }), tiers)

	tn, err := op.CreateTenant(ctx, client.CreateTenant{ID: "acme", Name: "Acme", Domains: []string{"acme.example"},
		Config: json.RawMessage(`{"plan":"gold"}`), AdminEmail: "root@acme.example"}, "create-acme")
	r.ok("create tenant", err)
	r.want("created tenant", tn.ID == "acme" && tn.Status == "active" && tn.Tier == "basic" && tn.Isolation == "pool" &&
		slices.Equal(tn.Domains, []string{"acme.example"}) && string(tn.Config) == `{"plan":"gold"}` && !tn.CreatedAt.IsZero() &&
		tn.InitialAdmin != nil && tn.InitialAdmin.Email == "root@acme.example" && tn.InitialAdmin.TemporaryPassword != "", tn)

	got, err := op.GetTenant(ctx, "acme")
	r.ok("get tenant", err)
	r.want("got tenant", got.ID == "acme" && got.Name == "Acme" && got.InitialAdmin == nil && got.CreatedAt.Equal(tn.CreatedAt), got)
	page, err := op.ListTenants(ctx, 10, "")
	r.ok("list tenants", err)
	r.want("tenant page", len(page.Items) == 1 && page.Items[0].ID == "acme", page)
	name := "Acme Inc"
	got, err = op.UpdateTenant(ctx, "acme", client.TenantPatch{Name: &name})
	r.ok("update tenant", err)
	r.want("updated tenant", got.Name == name, got)
	wfs, err := op.TenantWorkflows(ctx, "acme")
	r.ok("tenant workflows", err)
	r.want("workflows", len(wfs) == 1 && wfs[0].Kind == "onboarding" && wfs[0].Status == "done" && wfs[0].TenantID == "acme" &&
		len(wfs[0].Steps) > 0 && wfs[0].Steps[0].Name != "", wfs)
	got, err = op.SuspendTenant(ctx, "acme")
	r.ok("suspend tenant", err)
	r.want("suspended", got.Status == "suspended", got)
	got, err = op.ResumeTenant(ctx, "acme")
	r.ok("resume tenant", err)
	r.want("resumed", got.Status == "active", got)

	// A tier migration there and back (no data cluster: the tier and
	// issuer switch alone).
	for _, tier := range []string{"standard", "basic"} {
		m, err := op.StartMigration(ctx, "acme", tier)
		r.ok("start migration", err)
		r.want("started migration", m.ID != "" && m.ToTier == tier && m.Status == "running", m)
		deadline := time.Now().Add(30 * time.Second)
		for m.Status == "running" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			m, err = op.GetMigration(ctx, "acme", m.ID)
			r.ok("get migration", err)
		}
		r.want("migration done", m.Status == "done" && m.Data == nil && len(m.Steps) > 0, m)
	}
	ms, err := op.ListMigrations(ctx, "acme")
	r.ok("list migrations", err)
	r.want("migrations", len(ms) == 2 && ms[0].ToTier == "basic" && ms[1].ToTier == "standard", ms)
	got, err = op.GetTenant(ctx, "acme")
	r.ok("get tenant", err)
	r.want("moved back", got.Tier == "basic" && got.Isolation == "pool" && got.PriorIsolation == "bridge", got)
}

// users makes ann, a user of acme, and returns her id.
func (r roundTrip) users(op *client.Client) string {
	ctx := r.ctx
	u, err := op.CreateUser(ctx, "acme", client.CreateUser{Email: "ann@acme.example", Attributes: json.RawMessage(`{"dept":"eng"}`)})
	r.ok("create user", err)
	r.want("created user", u.ID != "" && u.TenantID == "acme" && u.Email == "ann@acme.example" && u.Status == "active" &&
		u.TemporaryPassword != "" && u.PasswordChangeRequired && string(u.Attributes) == `{"dept":"eng"}`, u)
	got, err := op.GetUser(ctx, "acme", u.ID)
	r.ok("get user", err)
	r.want("got user", got.ID == u.ID && got.TemporaryPassword == "" && got.PasswordSet, got)
	page, err := op.ListUsers(ctx, "acme", 10, "", "ann@acme.example")
	r.ok("list users", err)
	r.want("user page", len(page.Items) == 1 && page.Items[0].ID == u.ID, page)
	disabled, active := "disabled", "active"
	got, err = op.UpdateUser(ctx, "acme", u.ID, client.UserPatch{Status: &disabled})
	r.ok("update user", err)
	r.want("disabled user", got.Status == "disabled", got)
	got, err = op.UpdateUser(ctx, "acme", u.ID, client.UserPatch{Status: &active})
	r.ok("update user", err)

	g, err := op.CreateGroup(ctx, "acme", "eng", "Engineering")
	r.ok("create group", err)
	r.want("created group", g.ID != "" && g.TenantID == "acme" && g.Name == "eng" && g.Description == "Engineering", g)
	r.ok("add member", op.SetMember(ctx, "acme", g.Name, u.ID, true))
	gs, err := op.ListGroups(ctx, "acme")
	r.ok("list groups", err)
	r.want("groups", slices.ContainsFunc(gs, func(x client.Group) bool { return x.ID == g.ID && x.Members == 1 }), gs)
	r.ok("remove member", op.SetMember(ctx, "acme", g.Name, u.ID, false))

	e, err := op.EnrollTOTP(ctx, "acme", u.ID)
	r.ok("enroll totp", err)
	r.want("enrollment", e.Secret != "" && e.OTPAuthURL != "" && len(e.RecoveryCodes) > 0, e)
	code, err := totp.GenerateCode(e.Secret, time.Now())
	r.ok("totp code", err)
	r.ok("confirm totp", op.ConfirmTOTP(ctx, "acme", u.ID, code))
	r.ok("remove totp", op.RemoveTOTP(ctx, "acme", u.ID))
	ss, err := op.UserSessions(ctx, "acme", u.ID)
	r.ok("a user's sessions", err)
	r.want("no browser session", len(ss) == 0, ss)
	return u.ID
}

func (r roundTrip) me(ann *client.Client) {
	ctx := r.ctx
	u, err := ann.GetMe(ctx)
	r.ok("get me", err)
	r.want("me", u.Email == "ann@acme.example" && u.TenantID == "acme", u)
	e, err := ann.EnrollMyTOTP(ctx)
	r.ok("enroll my totp", err)
	r.want("my enrollment", e.Secret != "" && len(e.RecoveryCodes) > 0, e)
	code, err := totp.GenerateCode(e.Secret, time.Now())
	r.ok("totp code", err)
	r.ok("confirm my totp", ann.ConfirmMyTOTP(ctx, code))
	ss, err := ann.MySessions(ctx)
	r.ok("my sessions", err)
	r.want("no browser session (ann never signed in through a browser)", len(ss) == 0, ss)
}

func (r roundTrip) identity(op *client.Client) {
	ctx := r.ctx
	idp, err := op.SetIdP(ctx, "acme", api.IdPRequest{Issuer: "https://idp.acme.example/", ClientID: "bulkhead", ClientSecret: "s3cret",
		IdPSettings: api.IdPSettings{LinkExistingByEmail: true}})
	r.ok("set idp", err)
	r.want("idp", idp.Issuer == "https://idp.acme.example" && idp.ClientID == "bulkhead" && idp.LinkExistingByEmail && !idp.UpstreamMFASufficient, idp)
	got, err := op.GetIdP(ctx, "acme")
	r.ok("get idp", err)
	r.want("got idp", got == idp, got)

	twelve, hour := 12, api.Duration(time.Hour)
	cfg, err := op.UpdateIdentityConfig(ctx, "acme", api.IdentityConfigPatch{PasswordMinLength: &twelve, AccessTokenLifetime: &hour})
	r.ok("update identity config", err)
	r.want("identity config", cfg.PasswordMinLength == 12 && cfg.AccessTokenLifetime == hour, cfg)
	got2, err := op.GetIdentityConfig(ctx, "acme")
	r.ok("get identity config", err)
	r.want("got identity config", got2 == cfg, got2)

	// A 1×1 PNG as the logo; a pale colour is refused for its contrast.
	const logo = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
	_, err = op.SetBranding(ctx, "acme", api.Branding{PrimaryColor: "#ffdd00"})
	r.want("a pale primary colour refused", err != nil && strings.Contains(err.Error(), "low_contrast"), err)
	br, err := op.SetBranding(ctx, "acme", api.Branding{DisplayName: "Acme", Logo: logo, PrimaryColor: "#1D4ED8", SupportURL: "mailto:help@acme.example"})
	r.ok("set branding", err)
	r.want("branding", br.DisplayName == "Acme" && br.PrimaryColor == "#1d4ed8" && br.Logo == logo && !br.UpdatedAt.IsZero(), br)
	gotb, err := op.GetBranding(ctx, "acme")
	r.ok("get branding", err)
	r.want("got branding", gotb == br, gotb)
	r.ok("delete branding", op.DeleteBranding(ctx, "acme"))
	gotb, err = op.GetBranding(ctx, "acme")
	r.ok("get branding after delete", err)
	r.want("no branding", gotb == api.Branding{}, gotb)
}

func (r roundTrip) operators(op *client.Client) {
	ctx := r.ctx
	o, err := op.CreateOperator(ctx, client.CreateOperator{Email: "olga@ops.example", Name: "Olga"})
	r.ok("create operator", err)
	r.want("created operator", strings.HasPrefix(o.ID, "opr_") && o.Email == "olga@ops.example" && o.Name == "Olga" && o.Status == "active" &&
		o.PasswordChangeRequired && !o.TOTPConfirmed && o.Password != "" && o.TOTP.Secret != "" && len(o.TOTP.RecoveryCodes) == 10, o)
	ops, err := op.ListOperators(ctx)
	r.ok("list operators", err)
	r.want("operators", len(ops) == 1 && ops[0] == o.Operator, ops)
	got, err := op.GetOperator(ctx, o.ID)
	r.ok("get operator", err)
	r.want("got operator", got == o.Operator, got)
	d, err := op.DisableOperator(ctx, o.ID)
	r.ok("disable operator", err)
	r.want("disabled operator", d.ID == o.ID && d.Status == "disabled", d)
	r.ok("delete operator", op.DeleteOperator(ctx, o.ID))
}

func (r roundTrip) clients(op *client.Client) {
	ctx := r.ctx
	for _, tn := range []string{"acme", ""} { // a tenant's, then a platform client
		c, err := op.CreateOAuthClient(ctx, tn, client.CreateOAuthClient{Name: "svc", GrantTypes: []string{"client_credentials"}, Scopes: []string{"kms:encrypt"}})
		r.ok("create client", err)
		r.want("created client", c.ClientID != "" && c.ClientSecret != "" && c.TenantID == tn && c.Name == "svc" &&
			slices.Equal(c.GrantTypes, []string{"client_credentials"}), c)
		cs, err := op.ListOAuthClients(ctx, tn)
		r.ok("list clients", err)
		r.want("clients", len(cs) == 1 && cs[0].ClientID == c.ClientID && cs[0].ClientSecret == "", cs)
		r.ok("delete client", op.DeleteOAuthClient(ctx, tn, c.ClientID))
	}
}

func (r roundTrip) authz(op *client.Client) {
	ctx := r.ctx
	st, err := op.GetPolicyStore(ctx, "acme")
	r.ok("get policy store", err)
	r.want("policy store", st.TenantID == "acme" && !st.HasSchema && st.PrincipalType != "", st)
	yes := true
	st, err = op.UpdatePolicyStore(ctx, "acme", client.PolicyStoreUpdate{LogAllows: &yes})
	r.ok("update policy store", err)
	r.want("updated policy store", st.LogAllows, st)

	const schema = `entity User; entity Doc; action read appliesTo { principal: User, resource: Doc };`
	sc, err := op.PutSchema(ctx, "acme", client.CedarSchema(schema))
	r.ok("put schema", err)
	r.want("schema", sc.Format == client.SchemaFormatCedar && sc.Text() == schema && !sc.UpdatedAt.IsZero(), sc)
	sc, err = op.GetSchema(ctx, "acme")
	r.ok("get schema", err)
	r.want("got schema", sc.Text() == schema, sc)

	user := func(id string) *client.EntityRef { return &client.EntityRef{Type: "User", ID: id} }
	doc := func(id string) *client.EntityRef { return &client.EntityRef{Type: "Doc", ID: id} }
	read := &client.EntityRef{Type: "Action", ID: "read"}
	v, err := op.ValidatePolicy(ctx, "acme", client.PolicyInput{Statement: `permit(principal, action, resource`})
	r.ok("validate a broken policy", err)
	r.want("broken policy refused", !v.Valid && v.Problem != nil && v.Problem.Code == "invalid_policy", v)
	v, err = op.ValidatePolicy(ctx, "acme", client.PolicyInput{Statement: `permit(principal == User::"ann", action == Action::"write", resource);`})
	r.ok("validate against the schema", err)
	r.want("a policy outside the schema refused", !v.Valid && v.Problem != nil && v.Problem.Code == "schema_violation", v)
	v, err = op.ValidatePolicy(ctx, "acme", client.PolicyInput{Statement: `permit(principal == User::"ann", action == Action::"read", resource);`})
	r.ok("validate a good policy", err)
	r.want("good policy", v.Valid && v.Problem == nil, v)
	p, err := op.CreatePolicy(ctx, "acme", client.PolicyInput{Statement: `permit(principal == User::"ann", action, resource);`, Description: "ann"})
	r.ok("create policy", err)
	r.want("policy", p.ID != "" && p.Type == client.PolicyStatic && p.Description == "ann", p)
	p, err = op.ReplacePolicy(ctx, "acme", p.ID, client.PolicyInput{Statement: `permit(principal == User::"ann", action == Action::"read", resource);`})
	r.ok("replace policy", err)
	r.want("replaced policy", p.Description == "", p)
	got, err := op.GetPolicy(ctx, "acme", p.ID)
	r.ok("get policy", err)
	r.want("got policy", got.Statement == p.Statement, got)

	tpl, err := op.CreateTemplate(ctx, "acme", client.PolicyTemplateInput{Statement: `permit(principal == ?principal, action, resource == ?resource);`})
	r.ok("create template", err)
	r.want("template", tpl.ID != "" && slices.Equal(tpl.Slots, []string{"?principal", "?resource"}), tpl)
	tpl, err = op.ReplaceTemplate(ctx, "acme", tpl.ID, client.PolicyTemplateInput{
		Statement: `permit(principal == ?principal, action == Action::"read", resource == ?resource);`, Description: "readers"})
	r.ok("replace template", err)
	r.want("replaced template", tpl.Description == "readers", tpl)
	gotTpl, err := op.GetTemplate(ctx, "acme", tpl.ID)
	r.ok("get template", err)
	r.want("got template", gotTpl.Statement == tpl.Statement, gotTpl)
	tpls, err := op.ListTemplates(ctx, "acme", 10, "")
	r.ok("list templates", err)
	r.want("templates", len(tpls.Items) == 1, tpls)
	link, err := op.CreatePolicy(ctx, "acme", client.PolicyInput{TemplateID: tpl.ID, Principal: user("bob"), Resource: doc("d1")})
	r.ok("link template", err)
	r.want("linked policy", link.Type == client.PolicyLinked && link.TemplateID == tpl.ID && *link.Principal == *user("bob") && *link.Resource == *doc("d1"), link)
	ps, err := op.ListPolicies(ctx, "acme", 10, "")
	r.ok("list policies", err)
	r.want("policies", len(ps.Items) == 2, ps)

	g, err := op.CreateGlobalPolicy(ctx, client.PolicyInput{Statement: `forbid(principal == User::"mallory", action, resource);`})
	r.ok("create global policy", err)
	g, err = op.ReplaceGlobalPolicy(ctx, g.ID, client.PolicyInput{Statement: `forbid(principal == User::"mallory", action == Action::"read", resource);`})
	r.ok("replace global policy", err)
	gotG, err := op.GetGlobalPolicy(ctx, g.ID)
	r.ok("get global policy", err)
	r.want("global policy", gotG.Statement == g.Statement, gotG)
	gs, err := op.ListGlobalPolicies(ctx, 10, "")
	r.ok("list global policies", err)
	r.want("global policies", len(gs.Items) == 1 && gs.Items[0].ID == g.ID, gs)

	d, err := op.Authorize(ctx, "acme", client.AuthorizeRequest{Principal: user("ann"), Action: read, Resource: doc("d9")})
	r.ok("authorize", err)
	r.want("decision", d.Decision == client.DecisionAllow && slices.Equal(d.DeterminingPolicies, []string{p.ID}), d)
	ds, err := op.AuthorizeBatch(ctx, "acme", []client.AuthorizeRequest{
		{Principal: user("bob"), Action: read, Resource: doc("d1")},
		{Principal: user("mallory"), Action: read, Resource: doc("d1")},
	})
	r.ok("authorize batch", err)
	r.want("decisions", len(ds) == 2 && ds[0].Decision == client.DecisionAllow && ds[1].Decision == client.DecisionDeny &&
		slices.Equal(ds[0].DeterminingPolicies, []string{link.ID}) && slices.Equal(ds[1].DeterminingPolicies, []string{"global/" + g.ID}), ds)

	r.ok("delete global policy", op.DeleteGlobalPolicy(ctx, g.ID))
	r.ok("delete linked policy", op.DeletePolicy(ctx, "acme", link.ID))
	r.ok("delete template", op.DeleteTemplate(ctx, "acme", tpl.ID))
}

func (r roundTrip) keys(op, svc *client.Client) {
	ctx := r.ctx
	k, err := op.CreateKey(ctx, "acme", client.CreateKeyRequest{Description: "orders", Alias: "alias/orders", RotationPeriod: "720h"})
	r.ok("create key", err)
	r.want("key", k.ID != "" && k.TenantID == "acme" && slices.Contains(k.Aliases, "alias/orders") && k.State == client.KeyStateEnabled &&
		k.PrimaryVersion == 1 && k.RotationPeriod == "720h0m0s" && k.NextRotationAt != nil && len(k.Versions) == 1, k)
	k, err = op.RotateKey(ctx, "acme", "alias/orders")
	r.ok("rotate key", err)
	r.want("rotated key", k.PrimaryVersion == 2 && len(k.Versions) == 2, k)
	got, err := op.GetKey(ctx, "acme", k.ID)
	r.ok("get key", err)
	r.want("got key", got.ID == k.ID && got.PrimaryVersion == 2, got)
	page, err := op.ListKeys(ctx, "acme", 10, "")
	r.ok("list keys", err)
	r.want("keys", len(page.Items) == 2, page) // and the tenant's default key

	ec := map[string]string{"tenant_id": "acme", "order": "42"}
	enc, err := svc.Encrypt(ctx, "alias/orders", []byte("card"), ec)
	r.ok("encrypt", err)
	r.want("encrypted", len(enc.Ciphertext) > 0 && enc.KeyID == k.ID && enc.KeyVersion == 2, enc)
	dec, err := svc.Decrypt(ctx, enc.Ciphertext, ec)
	r.ok("decrypt", err)
	r.want("decrypted", string(dec.Plaintext) == "card" && dec.KeyID == k.ID, dec)
	dk, err := svc.GenerateDataKey(ctx, "alias/orders", ec, false)
	r.ok("generate data key", err)
	r.want("data key", len(dk.Plaintext) == client.DataKeyBytes && len(dk.Ciphertext) > 0, dk)
	dk, err = svc.GenerateDataKey(ctx, "alias/orders", ec, true)
	r.ok("generate data key without plaintext", err)
	r.want("data key without plaintext", dk.Plaintext == nil && len(dk.Ciphertext) > 0, dk)
	re, err := svc.ReEncrypt(ctx, client.ReEncryptRequest{Ciphertext: enc.Ciphertext, SourceEncryptionContext: ec,
		DestinationKeyID: client.DefaultKeyAlias("acme")})
	r.ok("re-encrypt", err)
	r.want("re-encrypted", re.SourceKeyID == k.ID && re.SourceKeyVersion == 2 && re.KeyID != k.ID, re)

	k, err = op.ScheduleKeyDeletion(ctx, "acme", k.ID, client.MinKeyDeletionDays)
	r.ok("schedule key deletion", err)
	r.want("key pending deletion", k.State == client.KeyStatePendingDeletion && k.DeletionAt != nil, k)
	k, err = op.CancelKeyDeletion(ctx, "acme", k.ID)
	r.ok("cancel key deletion", err)
	r.want("key back", k.State == client.KeyStateEnabled && k.DeletionAt == nil, k)

	ext, err := op.CreateKey(ctx, "acme", client.CreateKeyRequest{Origin: client.KeyOriginExternal})
	r.ok("create external key", err)
	r.want("external key", ext.State == client.KeyStatePendingImport && ext.PrimaryVersion == 0, ext)
	params, err := op.GetImportParams(ctx, "acme", ext.ID)
	r.ok("import params", err)
	r.want("import params", params.KeyID == ext.ID && params.ImportToken != "" && params.Algorithm == "RSAES_OAEP_SHA_256", params)
	block, _ := pem.Decode([]byte(params.PublicKey))
	r.want("public key", block != nil, params.PublicKey)
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	r.ok("parse public key", err)
	material := make([]byte, 32)
	rand.Read(material)
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub.(*rsa.PublicKey), material, nil)
	r.ok("wrap material", err)
	validTo := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	ext, err = op.ImportKeyMaterial(ctx, "acme", ext.ID, client.ImportRequest{ImportToken: params.ImportToken, EncryptedKeyMaterial: wrapped, ValidTo: &validTo})
	r.ok("import key material", err)
	r.want("imported key", ext.State == client.KeyStateEnabled && ext.PrimaryVersion == 1 && len(ext.Versions) == 1 &&
		ext.Versions[0].ValidTo != nil && ext.Versions[0].ValidTo.Equal(validTo), ext)
}

func (r roundTrip) functions(op, svc *client.Client, module []byte) {
	ctx := r.ctx
	fn, err := op.PublishFunction(ctx, client.FunctionConfig{Name: "counter", TenancyMode: "per_tenant", TmpMiB: 4, Env: map[string]string{"A": "b"}}, module)
	r.ok("publish function", err)
	r.want("function", fn.Name == "counter" && fn.TenancyMode == "per_tenant" && fn.TmpMiB == 4 && fn.Env["A"] == "b" &&
		fn.Version == 1 && len(fn.Digest) == 64 && fn.MemoryMiB == 0, fn)
	fns, err := op.ListFunctions(ctx)
	r.ok("list functions", err)
	r.want("functions", len(fns) == 1 && fns[0].Digest == fn.Digest, fns)
	inv, err := svc.InvokeFunction(ctx, "counter", "", []byte(`{"n":1}`))
	r.ok("invoke function", err)
	var answer struct {
		Count    int    `json:"count"`
		TenantID string `json:"tenant_id"`
	}
	r.ok("decode invocation", json.Unmarshal(inv.Body, &answer))
	r.want("invocation", answer.Count == 1 && answer.TenantID == "acme" && inv.ContentType == "application/json" &&
		inv.Environment != "" && inv.ColdStart, inv)
	envs, err := op.FunctionEnvironments(ctx, "counter")
	r.ok("function environments", err)
	r.want("environments", len(envs) == 1 && envs[0].ID == inv.Environment && envs[0].TenantID == "acme" &&
		envs[0].Version == 1 && !envs[0].Busy && !envs[0].LastUsed.IsZero(), envs)
	r.ok("delete function", op.DeleteFunction(ctx, "counter"))
}

func (r roundTrip) connections(op *client.Client, proxyURL string) {
	ctx := r.ctx
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"contacts":[]}`)
	}))
	r.t.Cleanup(upstream.Close)
	const token = "upstream-token-0123456789"
	c, err := op.CreateConnection(ctx, "acme", client.CreateConnection{Name: "crm", UpstreamURL: upstream.URL, Token: token,
		Placement: client.Placement{Type: client.PlacementHeader, Name: "X-Api-Key"}, AllowedMethods: []string{"GET"},
		Alerts: client.Alerts{Sensitivity: 8}, Grant: client.GrantOptions{Name: "sync", AutoSuspend: true}})
	r.ok("create connection", err)
	r.want("connection", c.ID != "" && c.TenantID == "acme" && c.Placement.Name == "X-Api-Key" && c.Alerts.Sensitivity == 8 &&
		c.TokenVersion == 1 && c.Grant.Name == "sync" && c.Grant.AutoSuspend && c.Grant.PartA != "" && c.WebhookSecret == "", c)

	// One proxied request, for the connection's activity.
	req, _ := http.NewRequestWithContext(ctx, "GET", proxyURL+"/c/"+c.ID+"/contacts", nil)
	req.Header.Set("Authorization", "Bearer "+c.Grant.PartA)
	resp, err := http.DefaultClient.Do(req)
	r.ok("proxied request", err)
	resp.Body.Close()
	r.want("proxied answer", resp.StatusCode == 200, resp.Status)
	got, err := op.GetConnection(ctx, "acme", c.ID)
	r.ok("get connection", err)
	r.want("got connection", got.ID == c.ID && slices.Equal(got.AllowedMethods, []string{"GET"}), got)
	page, err := op.ListConnections(ctx, "acme", 10, "")
	r.ok("list connections", err)
	r.want("connections", len(page.Items) == 1 && page.Items[0].ID == c.ID, page)
	name := "crm2"
	up, err := op.UpdateConnection(ctx, "acme", c.ID, client.UpdateConnection{Name: &name})
	r.ok("update connection", err)
	r.want("updated connection", up.Name == name && up.Grants == nil, up)

	g, err := op.CreateGrant(ctx, "acme", c.ID, client.CreateGrant{GrantOptions: client.GrantOptions{Name: "report"},
		TokenSource: client.TokenSource{PartA: c.Grant.PartA}})
	r.ok("create grant", err)
	r.want("grant", g.Name == "report" && g.ConnectionID == c.ID && g.Status == client.GrantActive && g.PartA != "", g)
	gs, err := op.ListGrants(ctx, "acme", c.ID)
	r.ok("list grants", err)
	r.want("grants", len(gs) == 2, gs)
	rot, err := op.RotateGrant(ctx, "acme", c.ID, g.ID, client.TokenSource{Token: token})
	r.ok("rotate grant", err)
	r.want("rotated grant", rot.ID == g.ID && rot.PartA != g.PartA && rot.RotatedAt != nil, rot)
	sus, err := op.SuspendGrant(ctx, "acme", c.ID, g.ID, "audit")
	r.ok("suspend grant", err)
	r.want("suspended grant", sus.Status == client.GrantSuspended && sus.SuspendedReason == "audit", sus)
	res, err := op.ResumeGrant(ctx, "acme", c.ID, g.ID)
	r.ok("resume grant", err)
	r.want("resumed grant", res.Status == client.GrantActive && res.SuspendedReason == "", res)
	// The proxy audits a request after answering it, so its event may not
	// be written yet; whatever the page holds is that request.
	act, err := op.ConnectionActivity(ctx, "acme", c.ID, 10, "")
	r.ok("connection activity", err)
	r.want("activity", len(act.Items) <= 1 && !slices.ContainsFunc(act.Items, func(e client.AuditEvent) bool {
		return e.Action != "connection.request" || e.TenantID != "acme" || e.Outcome != "success"
	}), act)
	alerts, err := op.ListAlerts(ctx, "acme", c.ID, 10, "")
	r.ok("list alerts", err)
	r.want("alerts", len(alerts.Items) == 0, alerts)
	r.ok("delete grant", op.DeleteGrant(ctx, "acme", c.ID, g.ID))
	r.ok("delete connection", op.DeleteConnection(ctx, "acme", c.ID))
}

func (r roundTrip) audit(op *client.Client) {
	ctx := r.ctx
	page, err := op.ListAudit(ctx, client.AuditQuery{Tenant: "acme", Action: "tenant.activated", Limit: 5})
	r.ok("list audit", err)
	r.want("audit", len(page.Items) == 1 && page.Items[0].TenantID == "acme" && page.Items[0].Outcome == "success" &&
		page.Items[0].Hash != "", page)
	page, err = op.ListTenantAudit(ctx, "acme", client.AuditQuery{Action: "user.created"})
	r.ok("list tenant audit", err)
	r.want("tenant audit", len(page.Items) == 2 && page.Items[0].Action == "user.created", page) // the first admin, then ann
	rep, err := op.VerifyAudit(ctx)
	r.ok("verify audit", err)
	r.want("verified", rep.OK && rep.Chains >= 2 && rep.Events > 0 && rep.Broken == nil, rep)
}

func (r roundTrip) usage(op *client.Client) {
	ctx := r.ctx
	p, err := op.SetUsagePlan(ctx, "acme", client.UsagePlan{RPS: 5, Burst: 10, Quota: 1000, QuotaPeriod: "day"})
	r.ok("set usage plan", err)
	r.want("usage plan", p.RPS == 5 && p.Burst == 10 && p.Quota == 1000 && p.QuotaPeriod == "day", p)
	p, err = op.GetUsagePlan(ctx, "acme")
	r.ok("get usage plan", err)
	r.want("usage plan read", p.Burst == 10 && p.QuotaPeriod == "day", p)
	r.ok("delete usage plan", op.DeleteUsagePlan(ctx, "acme"))
	now := time.Now()
	u, err := op.Usage(ctx, "acme", now.Add(-time.Hour), now)
	r.ok("usage", err)
	r.want("usage list", u.Items != nil && len(u.LatencyBoundsMS) == 10 && u.LatencyBoundsMS[0] == 5, u)
}

func (r roundTrip) domains(op *client.Client) {
	ctx := r.ctx
	d, err := op.CreateDomain(ctx, "acme", client.CreateDomain{Name: "Shop.Acme.Example"})
	r.ok("create domain", err)
	r.want("created domain", d.Name == "shop.acme.example" && d.TenantID == "acme" && d.State == "pending" &&
		d.Token != "" && !d.CreatedAt.IsZero() && d.VerifiedAt == nil, d)
	ds, err := op.ListDomains(ctx, "acme")
	r.ok("list domains", err)
	r.want("domains", len(ds) == 1 && ds[0].Name == d.Name && ds[0].Token == d.Token, ds)
	v, err := op.VerifyDomain(ctx, "acme", d.Name)
	r.ok("verify domain", err)
	r.want("verified domain", v.State == "verified" && v.Method == "http" && v.VerifiedAt != nil, v)
	got, err := op.GetDomain(ctx, "acme", "SHOP.acme.example")
	r.ok("get domain", err)
	r.want("got domain", got.State == "verified" && got.VerifiedAt != nil && got.VerifiedAt.Equal(*v.VerifiedAt), got)
}

// certs gets the verified domain its certificate from the first CA by a
// handshake, moves it to the second, and releases the domain.
func (r roundTrip) certs(op *client.Client, m *certs.Manager, ca1, ca2 string) {
	ctx := r.ctx
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: m.GetCertificate})
	r.ok("listen", err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "shop.acme.example", InsecureSkipVerify: true})
	r.ok("handshake", err)
	conn.Close()
	list, err := op.ListCertificates(ctx)
	r.ok("list certificates", err)
	r.want("certificates", len(list) == 1 && list[0].Name == "shop.acme.example" && list[0].CA == ca1 &&
		!list[0].NotAfter.IsZero() && list[0].Serial != "", list)
	res, err := op.ReissueCertificates(ctx, client.ReissueCertificates{FromCA: ca1, Max: 1})
	r.ok("reissue certificates", err)
	r.want("reissued", res.Moved == 1 && res.Remaining == 0 && len(res.Items) == 1 && res.Items[0].Name == "shop.acme.example" &&
		res.Items[0].Error == "", res)
	list, err = op.ListCertificates(ctx)
	r.ok("list certificates", err)
	r.want("certificates after", len(list) == 1 && list[0].CA == ca2, list)
	page, err := op.ListAudit(ctx, client.AuditQuery{Tenant: "-", Action: "cert.reissue"})
	r.ok("audit of the reissue", err)
	r.want("reissue audited", len(page.Items) == 1 && page.Items[0].Target == "shop.acme.example" &&
		page.Items[0].Outcome == "success" && page.Items[0].Detail["to_ca"] == ca2, page)
	r.ok("delete domain", op.DeleteDomain(ctx, "acme", "shop.acme.example"))
}

func (r roundTrip) offboarding(op *client.Client, ann string) {
	ctx := r.ctx
	r.ok("delete idp", op.DeleteIdP(ctx, "acme"))
	r.ok("delete user", op.DeleteUser(ctx, "acme", ann))
	tn, err := op.DeleteTenant(ctx, "acme")
	r.ok("delete tenant", err)
	r.want("offboarding", tn.Status == "offboarding" || tn.Status == "deleted", tn)
}

// gateway sets, reads and removes a route of the edge gateway.
func (r roundTrip) gateway(op *client.Client) {
	ctx := r.ctx
	in := client.PutGatewayRoute{Host: "api.example.com", PathPrefix: "/v1", Upstream: "http://127.0.0.1:9",
		Silo: map[string]string{"acme": "http://127.0.0.1:10"}, Timeout: "5s"}
	put, err := op.PutGatewayRoute(ctx, "rt-api", in)
	r.ok("put route", err)
	want := client.GatewayRoute{ID: "rt-api", Host: in.Host, PathPrefix: in.PathPrefix, Upstream: in.Upstream, Silo: in.Silo, Timeout: in.Timeout, Source: "api"}
	r.want("put route", reflect.DeepEqual(put, want), put)
	got, err := op.GetGatewayRoute(ctx, "rt-api")
	r.ok("get route", err)
	r.want("got route", reflect.DeepEqual(got, want), got)
	list, err := op.ListGatewayRoutes(ctx)
	r.ok("list routes", err)
	r.want("routes", len(list.Routes) == 1 && reflect.DeepEqual(list.Routes[0], want), list)
	r.ok("delete route", op.DeleteGatewayRoute(ctx, "rt-api"))
}

// webhooks subscribes a loopback receiver to tenant events, suspends and
// resumes acme, and reads both deliveries from the log, each verified
// against the secret shown once.
func (r roundTrip) webhooks(op *client.Client) {
	ctx := r.ctx
	var mu sync.Mutex
	var secret string
	var got []client.Event
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		defer mu.Unlock()
		var e client.Event
		if hooksig.Verify([]byte(secret), req.Header.Get(hooksig.Header), body, time.Now(), 5*time.Minute) != nil || json.Unmarshal(body, &e) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		got = append(got, e)
	}))
	defer recv.Close()
	mu.Lock()
	created, err := op.CreateWebhook(ctx, client.CreateWebhook{URL: recv.URL, Events: []string{"tenant.suspended", "tenant.resumed"}})
	secret = created.Secret
	mu.Unlock()
	r.ok("create webhook", err)
	r.want("created webhook", strings.HasPrefix(created.Secret, "whsec_") && created.URL == recv.URL && len(created.Events) == 2, created)
	_, err = op.SuspendTenant(ctx, "acme")
	r.ok("suspend tenant", err)
	_, err = op.ResumeTenant(ctx, "acme")
	r.ok("resume tenant", err)
	var log client.WebhookDeliveryPage
	runtest.Eventually(r.t, "two deliveries", func() bool {
		log, err = op.WebhookDeliveries(ctx, created.ID, 10, "")
		return err == nil && len(log.Items) == 2 && log.Items[0].Status == "delivered" && log.Items[1].Status == "delivered"
	})
	r.want("delivery log", log.Items[0].Type == "tenant.resumed" && log.Items[1].Type == "tenant.suspended" && log.Items[0].LastStatusCode == 200, log)
	mu.Lock()
	// Deliveries run concurrently: in any order.
	r.want("received events", len(got) == 2 && got[0].TenantID == "acme" && got[0].ID != got[1].ID &&
		slices.ContainsFunc(got, func(e client.Event) bool { return e.ID == log.Items[1].EventID && e.Type == "tenant.suspended" }), got)
	mu.Unlock()
	one, err := op.GetWebhook(ctx, created.ID)
	r.ok("get webhook", err)
	r.want("got webhook", reflect.DeepEqual(one, created.Webhook), one)
	list, err := op.ListWebhooks(ctx, 0, "")
	r.ok("list webhooks", err)
	r.want("webhooks", len(list.Items) == 1 && reflect.DeepEqual(list.Items[0], created.Webhook), list)
	r.ok("delete webhook", op.DeleteWebhook(ctx, created.ID))
}

// partners registers a partner, trusts it from acme, assumes the trust
// through AssumeTrustToken, and changes, suspends, resumes, rotates and
// removes the trust and the partner.
func (r roundTrip) partners(op *client.Client) {
	ctx := r.ctx
	p, err := op.CreatePartner(ctx, client.CreatePartner{Name: "Reporting Co"})
	r.ok("create partner", err)
	r.want("created partner", strings.HasPrefix(p.ClientSecret, "bhp_") && p.AuthMethod == "client_secret_basic", p)
	got, err := op.GetPartner(ctx, p.ID)
	r.ok("get partner", err)
	r.want("got partner", reflect.DeepEqual(got, p.Partner), got)
	list, err := op.ListPartners(ctx, 0, "")
	r.ok("list partners", err)
	r.want("partners", len(list.Items) == 1 && reflect.DeepEqual(list.Items[0], p.Partner), list)
	rotated, err := op.RotatePartnerSecret(ctx, p.ID)
	r.ok("rotate partner secret", err)
	r.want("new secret", rotated.ClientSecret != p.ClientSecret && strings.HasPrefix(rotated.ClientSecret, "bhp_"), rotated.ID)
	tr, err := op.CreateTrust(ctx, "acme", client.CreateTrust{Partner: p.ID, Scopes: []string{"reports:read"}, PartnerTags: []string{"region"}})
	r.ok("create trust", err)
	r.want("created trust", strings.HasPrefix(tr.ExternalID, "bhx_") && tr.Status == "active" && tr.MaxSessionSeconds == 900, tr.ID)
	tok, err := client.AssumeTrustToken(ctx, client.AssumeTrust{TokenURL: r.base + "/oauth/token", PartnerID: p.ID, ClientSecret: rotated.ClientSecret,
		Tenant: "acme", ExternalID: tr.ExternalID, Tags: map[string]string{"region": "eu"}})
	r.ok("assume trust", err)
	r.want("partner token", tok.AccessToken != "" && slices.Equal(tok.Scopes, []string{"reports:read"}), tok.Scopes)
	_, err = client.AssumeTrustToken(ctx, client.AssumeTrust{TokenURL: r.base + "/oauth/token", PartnerID: p.ID, ClientSecret: rotated.ClientSecret,
		Tenant: "acme", ExternalID: "bhx_wrong"})
	var oe *client.OAuthError
	r.want("wrong external id", errors.As(err, &oe) && oe.Code == "invalid_grant", err)
	desc := "monthly reports"
	upd, err := op.UpdateTrust(ctx, "acme", tr.ID, client.PatchTrust{Description: &desc})
	r.ok("update trust", err)
	r.want("updated trust", upd.Description == desc && slices.Equal(upd.Scopes, tr.Scopes), upd)
	one, err := op.GetTrust(ctx, "acme", tr.ID)
	r.ok("get trust", err)
	r.want("got trust", reflect.DeepEqual(one, upd), one)
	trusts, err := op.ListTrusts(ctx, "acme", 0, "")
	r.ok("list trusts", err)
	r.want("trusts", len(trusts.Items) == 1 && trusts.Items[0].ID == tr.ID, trusts)
	s, err := op.SuspendTrust(ctx, "acme", tr.ID)
	r.ok("suspend trust", err)
	r.want("suspended", s.Status == "suspended", s.Status)
	s, err = op.ResumeTrust(ctx, "acme", tr.ID)
	r.ok("resume trust", err)
	r.want("resumed", s.Status == "active", s.Status)
	ext, err := op.RotateExternalID(ctx, "acme", tr.ID)
	r.ok("rotate external id", err)
	r.want("new external id", ext.ExternalID != tr.ExternalID && ext.ExternalIDHint == ext.ExternalID[len(ext.ExternalID)-4:], ext.ID)
	r.ok("delete trust", op.DeleteTrust(ctx, "acme", tr.ID))
	r.ok("delete partner", op.DeletePartner(ctx, p.ID))
}

// posture scans, and lists the findings as the operator and a tenant's.
func (r roundTrip) posture(op *client.Client) {
	ctx := r.ctx
	pol, err := op.CreatePolicy(ctx, "acme", client.PolicyInput{Statement: `permit(principal, action, resource);`})
	r.ok("create a permit-everything policy", err)
	s, err := op.ScanPosture(ctx)
	r.ok("scan posture", err)
	r.want("scan", s.Tenants > 0 && s.Opened > 0 && !s.ScannedAt.IsZero(), s)
	all, err := op.ListPosture(ctx, client.PostureQuery{Severity: "high"})
	r.ok("list posture", err)
	i := slices.IndexFunc(all.Items, func(f client.PostureFinding) bool { return f.Object == "policy:"+pol.ID })
	r.want("the policy's finding", i >= 0 && all.Counts["high"] > 0 && !all.ScannedAt.IsZero(), all)
	own, err := op.ListTenantPosture(ctx, "acme", client.PostureQuery{})
	r.ok("list acme's posture", err)
	r.want("acme's findings", len(own.Items) > 0 && own.Items[0].TenantID == "acme", own)
	r.ok("delete the policy", op.DeletePolicy(ctx, "acme", pol.ID))
}

// data registers the application's cluster, places a tenant on it, and
// reads the placement as the operator and as the tenant's service.
func (r roundTrip) data(op, svc *client.Client, app storagetest.AppCluster) {
	ctx := r.ctx
	c, err := op.CreateCluster(ctx, client.CreateDataCluster{Name: "app", DSN: app.ServingDSN, AdminDSN: app.AdminDSN, Prefix: app.Prefix})
	r.ok("create cluster", err)
	r.want("created cluster", c.Name == "app" && c.Prefix == app.Prefix && strings.HasSuffix(c.Host, "/"+app.Database) && !c.CreatedAt.IsZero(), c)
	spare, err := op.CreateCluster(ctx, client.CreateDataCluster{Name: "spare", DSN: app.ServingDSN, AdminDSN: app.AdminDSN, Prefix: app.Prefix + "s_"})
	r.ok("create spare cluster", err)
	list, err := op.ListClusters(ctx)
	r.ok("list clusters", err)
	r.want("clusters", list.Default == "app" && len(list.Clusters) == 2 && list.Clusters[1].Name == "spare", list)
	got, err := op.GetCluster(ctx, "spare")
	r.ok("get cluster", err)
	r.want("got cluster", got == spare, got)
	r.ok("remove cluster", op.RemoveCluster(ctx, "spare"))

	_, err = op.CreateTenant(ctx, client.CreateTenant{ID: "data-co", Tier: "standard"}, "")
	r.ok("create data-co", err)
	p, err := op.GetPlacement(ctx, "data-co")
	r.ok("get placement", err)
	r.want("placement", p.TenantID == "data-co" && p.Model == "bridge" && p.Cluster == "app" && p.Database == app.Database &&
		p.Schema == app.Prefix+"data_co" && p.Role == p.Schema && p.Status == "ready" && p.Version == 1, p)
	own, err := svc.GetPlacement(ctx, "data-co")
	r.ok("the tenant's service gets its placement", err)
	r.want("own placement", own == p, own)

	file := client.DataMigrationFile{Name: "001_notes.sql", SQL: "CREATE TABLE notes (tenant_id text NOT NULL, body text);"}
	st, err := op.RegisterMigrations(ctx, "app", client.RegisterDataMigrations{Files: []client.DataMigrationFile{file}})
	r.ok("register migrations", err)
	r.want("registered", st.Cluster == "app" && st.Newest == file.Name && len(st.Files) == 1 && len(st.Files[0].Checksum) == 64 &&
		!st.Files[0].CreatedAt.IsZero() && !st.CheckedAt.IsZero(), st)
	runtest.Eventually(r.t, "the placements to be migrated", func() bool {
		st, err = op.MigrationStatus(ctx, "app")
		r.ok("migration status", err)
		return len(st.Behind) == 0
	})
	r.want("migrated", len(st.Behind) == 0 && len(st.Places) == 2 && st.Places[0].Model == "pool" && st.Places[1].Model == "bridge" &&
		slices.Equal(st.Places[1].Tenants, []string{"data-co"}) && st.Places[1].Last == file.Name && st.Places[1].Pending == 0 &&
		st.Places[1].Schema == p.Schema && st.Places[1].Database == app.Database && st.Places[1].Error == "", st)
}
