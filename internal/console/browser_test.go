package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/browsertest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// onPage waits for the console page name (its <main data-page>).
func onPage(name string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(`main[data-page="` + name + `"]`))
}

// waitURL waits until the tab's address contains part (a form posted
// and the next page loaded).
func waitURL(t *testing.T, tab context.Context, part string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if loc, err := chromedp.Run(tab, chromedp.Location()); err == nil && strings.Contains(loc, part) {
			if err := chromedp.Do(tab, chromedp.WaitReady(chromedp.CSS("main"))); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	loc, _ := chromedp.Run(tab, chromedp.Location())
	t.Fatalf("the tab is at %s, not at %s", loc, part)
}

// text reads the text of the first element sel matches.
func text(t *testing.T, tab context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func do(t *testing.T, tab context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	step, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(step, steps...); err != nil {
		loc, _ := chromedp.Run(tab, chromedp.Location())
		body, _ := chromedp.Run(tab, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v (at %s: %.500s)", what, err, loc, body)
	}
}

// signInWith fills the provider's login page the console sent the tab to:
// email and password, then, if asked, the code of the TOTP secret and a
// new password.
func signInWith(t *testing.T, tab context.Context, email, password, newPassword, totpSecret string) {
	t.Helper()
	do(t, tab, "login page", chromedp.WaitVisible(chromedp.CSS(`input[name="email"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), email),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password))
	if totpSecret != "" {
		code, err := totp.GenerateCode(totpSecret, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		do(t, tab, "code", chromedp.SendKeys(chromedp.CSS(`input[name="code"]`), code))
	}
	do(t, tab, "submit", chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	if newPassword == "" {
		return
	}
	do(t, tab, "new password", chromedp.WaitVisible(chromedp.CSS(`input[name="new_password"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.SendKeys(chromedp.CSS(`input[name="new_password"]`), newPassword))
	if totpSecret != "" {
		// The form came back before the code was checked: it is still good.
		code, _ := totp.GenerateCode(totpSecret, time.Now())
		do(t, tab, "code", chromedp.SendKeys(chromedp.CSS(`input[name="code"]`), code))
	}
	do(t, tab, "submit", chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
}

// TestBrowserTenantAdmin drives the console in Chromium as a tenant's
// admin: sign-in through the provider, the session cookie's attributes,
// another tenant unreachable by URL, adding a user, the pages'
// accessibility (axe) and their layout at 320 px.
func TestBrowserTenantAdmin(t *testing.T) {
	env := apitest.New(t, storagetest.DSN(t, storage.SQLite), apitest.Options{Argon2: fast})
	ctx := context.Background()
	for _, id := range []string{"acme", "globex"} {
		if _, err := env.Admin.CreateTenant(ctx, client.CreateTenant{ID: id, Name: strings.ToUpper(id[:1]) + id[1:] + " Inc.", Tier: "standard",
			Domains: []string{id + ".example"}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.Admin.Do(ctx, http.MethodPost, "/v1/tenants/acme/users", nil,
		api.CreateUser{Email: "ann@acme.example", Password: "ann's long password", Groups: []string{"admins"}}, nil); err != nil {
		t.Fatal(err)
	}
	b := browsertest.New(t)
	tab := b.Tab(t)
	do(t, tab, "console", chromedp.Navigate(env.URL+"/console/"), onPage("signin"))
	browsertest.RequireNoSerious(t, b.Axe(tab, t))
	b.Screenshot(tab, t, "signin")
	do(t, tab, "start", chromedp.Click(chromedp.CSS(`a.button[href*="signin?return"]`)))
	signInWith(t, tab, "ann@acme.example", "ann's long password", "", "")
	do(t, tab, "tenant page", onPage("tenant"))
	if h := text(t, tab, "h1"); h != "Acme Inc." {
		t.Errorf("tenant page heading %q", h)
	}
	ck := browsertest.Cookie(tab, t, env.URL, "__Host-bulkhead-console")
	if ck == nil || !ck.Secure || !ck.HTTPOnly || ck.SameSite != network.CookieSameSiteStrict || ck.Path != "/" {
		t.Errorf("session cookie: %+v", ck)
	}
	browsertest.RequireNoSerious(t, b.Axe(tab, t))
	b.Screenshot(tab, t, "tenant")

	// Another tenant, by URL: the same page as a tenant that does not exist.
	do(t, tab, "other tenant", chromedp.Navigate(env.URL+"/console/tenants/globex/users"), onPage("notfound"))
	if strings.Contains(text(t, tab, "body"), "Globex") {
		t.Error("the not-found page names the other tenant")
	}

	// Add a user through the form.
	do(t, tab, "users", chromedp.Navigate(env.URL+"/console/tenants/acme/users"), onPage("users"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "bob@acme.example"),
		chromedp.Click(chromedp.CSS(`form.stack button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.secret code`)))
	if !strings.Contains(text(t, tab, ".secret"), "bob@acme.example") {
		t.Error("no temporary password shown for the new user")
	}
	browsertest.RequireNoSerious(t, b.Axe(tab, t))
	b.Screenshot(tab, t, "users")

	// Brand the sign-in page; an application of acme's shows it.
	do(t, tab, "branding", chromedp.Navigate(env.URL+"/console/tenants/acme/branding"), onPage("branding"),
		chromedp.SendKeys(chromedp.CSS(`input[name="display_name"]`), "Acme Rockets"),
		chromedp.SendKeys(chromedp.CSS(`input[name="support_url"]`), "https://help.acme.example"))
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`document.querySelector('input[name="primary_color"]').value = "#7c2d12"; true`)); err != nil {
		t.Fatal(err)
	}
	do(t, tab, "save branding", chromedp.Click(chromedp.CSS(`form.stack button[type="submit"]`)))
	waitURL(t, tab, "notice=branding")
	browsertest.RequireNoSerious(t, b.Axe(tab, t))
	app, err := env.Admin.CreateOAuthClient(ctx, "acme", client.CreateOAuthClient{Name: "acme app", Public: true,
		GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"http://127.0.0.1:9/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	login := b.Tab(t)
	do(t, login, "branded login", chromedp.Navigate(env.URL+"/authorize?response_type=code&scope=openid&client_id="+app.ClientID+
		"&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&state=s&code_challenge_method=S256&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="email"]`)))
	if brand := text(t, login, ".brand"); brand != "Acme Rockets" {
		t.Errorf("the login page's brand: %q", brand)
	}
	browsertest.RequireNoSerious(t, b.Axe(login, t))
	b.Screenshot(login, t, "login-branded")
	browsertest.Mobile(login, t)
	do(t, login, "branded login at 320 px", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`input[name="email"]`)))
	b.Screenshot(login, t, "login-branded-320")

	// Ann sets up her authenticator app: a QR code drawn on the server.
	do(t, tab, "account", chromedp.Navigate(env.URL+"/console/account"), onPage("account"),
		chromedp.Click(chromedp.CSS(`section[aria-labelledby="totp-h"] button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS(`svg.qr`)))
	browsertest.RequireNoSerious(t, b.Axe(tab, t))
	b.Screenshot(tab, t, "account-totp")

	// A connection's page, its chart and grants.
	con, err := env.Admin.CreateConnection(ctx, "acme", client.CreateConnection{Name: "crm", UpstreamURL: "http://127.0.0.1:9/api", Token: "crm-token-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	do(t, tab, "connection", chromedp.Navigate(env.URL+"/console/tenants/acme/connections/"+con.ID), onPage("connection"))
	browsertest.RequireNoSerious(t, b.Axe(tab, t))
	b.Screenshot(tab, t, "connection")
	// Suspend its grant, with a reason: the proxy refuses its Part A from then on.
	suspend := `form[action$="/grants/` + con.Grant.ID + `/suspend"]`
	do(t, tab, "suspend a grant", chromedp.SendKeys(chromedp.CSS(suspend+` input[name="reason"]`), "laptop lost"),
		chromedp.Click(chromedp.CSS(suspend+` button`)))
	waitURL(t, tab, "notice=grant_suspended")
	if grants, err := env.Admin.ListGrants(ctx, "acme", con.ID); err != nil || len(grants) != 1 || grants[0].Status != "suspended" || grants[0].SuspendedReason != "laptop lost" {
		t.Errorf("the grant after the suspension: %+v %v", grants, err)
	}

	// 320 px wide: nothing overflows the page sideways.
	browsertest.Mobile(tab, t)
	do(t, tab, "mobile", chromedp.Navigate(env.URL+"/console/tenants/acme"), onPage("tenant"))
	wide, err := chromedp.Run(tab, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > document.documentElement.clientWidth`))
	if err != nil || wide {
		t.Errorf("the tenant page overflows 320 px: %v %v", wide, err)
	}
	b.Screenshot(tab, t, "tenant-320")
}

// TestBrowserOperator drives the console in Chromium as an operator: the
// first sign-in (new password and TOTP), creating a tenant, adding its
// admin, writing a policy that the editor checks as it is typed, trying
// a decision, and suspending the tenant behind a typed confirmation;
// every page checked with axe-core.
func TestBrowserOperator(t *testing.T) {
	env := apitest.New(t, storagetest.DSN(t, storage.SQLite), apitest.Options{Argon2: fast})
	ctx := context.Background()
	olga, err := env.Admin.CreateOperator(ctx, client.CreateOperator{Email: "olga@ops.example", Name: "Olga"})
	if err != nil {
		t.Fatal(err)
	}
	b := browsertest.New(t)
	tab := b.Tab(t)
	do(t, tab, "console", chromedp.Navigate(env.URL+"/console/"), onPage("signin"),
		chromedp.Click(chromedp.CSS(`a.button[href*="as=operator"]`)), chromedp.WaitVisible(chromedp.CSS(`input[name="code"]`)))
	browsertest.RequireNoSerious(t, b.Axe(tab, t))
	b.Screenshot(tab, t, "operator-login")
	signInWith(t, tab, "olga@ops.example", olga.Password, "olga's very own password", olga.TOTP.Secret)
	do(t, tab, "tenants", onPage("tenants"))
	browsertest.RequireNoSerious(t, b.Axe(tab, t))

	// Create a tenant.
	do(t, tab, "create tenant",
		chromedp.SendKeys(chromedp.CSS(`input[name="id"]`), "initech"),
		chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "Initech"),
		chromedp.Click(chromedp.CSS(`section[aria-labelledby="new-tenant"] button[type="submit"]`)),
		onPage("tenant"))
	if n := text(t, tab, ".notice"); !strings.Contains(n, "Tenant created") {
		t.Errorf("notice after create: %q", n)
	}
	b.Screenshot(tab, t, "tenant")

	// Add a user.
	do(t, tab, "add user", chromedp.Navigate(env.URL+"/console/tenants/initech/users"), onPage("users"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), "peter@initech.example"),
		chromedp.Click(chromedp.CSS(`input[name="admin"]`)),
		chromedp.Click(chromedp.CSS(`section[aria-labelledby="new-user"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.secret code`)))

	// Write a policy: the editor says what is wrong while it is typed.
	do(t, tab, "policies", chromedp.Navigate(env.URL+"/console/tenants/initech/policies"), onPage("policies"))
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`document.getElementById("statement").value = ""; true`)); err != nil {
		t.Fatal(err)
	}
	do(t, tab, "type a policy",
		chromedp.SendKeys(chromedp.ID("statement"), `permit (principal == User::"peter", action == Action::"read", resource)`),
		chromedp.WaitVisible(chromedp.CSS(`#policy-check.bad`)))
	if msg := text(t, tab, "#policy-check"); !strings.Contains(strings.ToLower(msg), "line") {
		t.Errorf("the editor's message for a broken policy: %q", msg)
	}
	browsertest.RequireNoSerious(t, b.Axe(tab, t))
	do(t, tab, "fix the policy", chromedp.SendKeys(chromedp.ID("statement"), ";"), chromedp.WaitVisible(chromedp.CSS(`#policy-check.ok`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="description"]`), "Peter reads everything"),
		chromedp.Click(chromedp.CSS(`#editor button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS(`.notice`)))
	// Try a decision.
	do(t, tab, "try", chromedp.SendKeys(chromedp.CSS(`input[name="principal_type"]`), "User"),
		chromedp.SendKeys(chromedp.CSS(`input[name="principal_id"]`), "peter"),
		chromedp.SendKeys(chromedp.CSS(`input[name="action_id"]`), "read"),
		chromedp.SendKeys(chromedp.CSS(`input[name="resource_type"]`), "Document"),
		chromedp.SendKeys(chromedp.CSS(`input[name="resource_id"]`), "tps-report"),
		chromedp.Click(chromedp.CSS(`form.grid3 button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS(`.decision`)))
	if d := text(t, tab, ".decision"); !strings.Contains(d, "Allowed by pol_") {
		t.Errorf("decision: %q", d)
	}
	browsertest.RequireNoSerious(t, b.Axe(tab, t))
	b.Screenshot(tab, t, "policies")

	// Keys: rotate one, schedule the deletion of another behind a typed
	// confirmation with its waiting period.
	do(t, tab, "keys", chromedp.Navigate(env.URL+"/console/tenants/initech/keys"), onPage("keys"),
		chromedp.SendKeys(chromedp.CSS(`input[name="alias"]`), "alias/reports"),
		chromedp.Click(chromedp.CSS(`section[aria-labelledby="new-key"] button[type="submit"]`)))
	waitURL(t, tab, "notice=key_created")
	keys, err := env.Admin.ListKeys(ctx, "initech", 100, "")
	if err != nil || len(keys.Items) < 2 {
		t.Fatalf("keys: %+v %v", keys, err)
	}
	var reports string
	for _, k := range keys.Items {
		if len(k.Aliases) > 0 && k.Aliases[0] == "alias/reports" {
			reports = k.ID
		}
	}
	do(t, tab, "rotate", chromedp.Click(chromedp.CSS(`form[action$="/keys/`+reports+`/rotate"] button`)))
	waitURL(t, tab, "notice=key_rotated")
	if k, err := env.Admin.GetKey(ctx, "initech", reports); err != nil || k.PrimaryVersion != 2 {
		t.Errorf("after rotate: %+v %v", k, err)
	}
	browsertest.RequireNoSerious(t, b.Axe(tab, t))
	b.Screenshot(tab, t, "keys")
	do(t, tab, "schedule deletion", chromedp.Click(chromedp.CSS(`a[href$="/keys/`+reports+`/confirm-deletion"]`)), onPage("confirm"),
		chromedp.SendKeys(chromedp.CSS(`input[name="confirm"]`), reports),
		chromedp.Click(chromedp.CSS(`form.confirm button[type="submit"]`)))
	waitURL(t, tab, "notice=key_deletion")
	if k, err := env.Admin.GetKey(ctx, "initech", reports); err != nil || k.State != "pending_deletion" {
		t.Errorf("after scheduling the deletion: %+v %v", k, err)
	}
	// The audit timeline names Olga for each of these.
	do(t, tab, "audit", chromedp.Navigate(env.URL+"/console/tenants/initech/audit"), onPage("audit"))
	if body := text(t, tab, "table"); !strings.Contains(body, "operator:"+olga.ID) || !strings.Contains(body, olga.Email) || !strings.Contains(body, "kms.key_rotated") {
		t.Errorf("the tenant's audit timeline: %.800s", body)
	}
	browsertest.RequireNoSerious(t, b.Axe(tab, t))
	b.Screenshot(tab, t, "audit")
	do(t, tab, "verify", chromedp.Navigate(env.URL+"/console/audit"), onPage("audit"),
		chromedp.Click(chromedp.CSS(`section.chain button[type="submit"]`)), chromedp.WaitVisible(chromedp.CSS(`section.chain .notice`)))

	// Suspend, behind a typed confirmation.
	do(t, tab, "suspend", chromedp.Navigate(env.URL+"/console/tenants/initech"), onPage("tenant"),
		chromedp.Click(chromedp.CSS(`a.button.danger[href$="/confirm/suspend"]`)), onPage("confirm"))
	browsertest.RequireNoSerious(t, b.Axe(tab, t))
	do(t, tab, "confirm", chromedp.SendKeys(chromedp.CSS(`input[name="confirm"]`), "initech"),
		chromedp.Click(chromedp.CSS(`form.confirm button[type="submit"]`)), onPage("tenant"))
	if st := text(t, tab, "dl.facts .status"); st != "suspended" {
		t.Errorf("status after suspend: %q", st)
	}
	b.Screenshot(tab, t, "suspended")
	tn, err := env.Admin.GetTenant(ctx, "initech")
	if err != nil || tn.Status != "suspended" {
		t.Errorf("the API says %+v %v", tn, err)
	}
}
