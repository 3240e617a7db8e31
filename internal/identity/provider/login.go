package provider

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clientip"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// The hosted login page: server-rendered, no JavaScript. The form carries
// the authorization request id and a CSRF token that must also arrive as a
// cookie set with the form (SameSite=Strict), so another site can neither
// post a sign-in nor log the browser into an attacker's account.

// loginStyle is the login page's styling: one <style> element whose
// SHA-256 the page's Content-Security-Policy allows (style-src with a
// hash; inline style attributes and anything else stay blocked). A
// tenant's branding sets --brand, its primary colour, in front of it.
// Colours meet WCAG AA contrast; the page reflows down to 320 px.
const loginStyle = `:root{--ink:#1c2430;--muted:#4a5568;--line:#cbd2dc}` +
	`*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:#f3f4f6}` +
	`main{max-width:26rem;margin:3rem auto;padding:1.5rem;background:#fff;border:1px solid var(--line);border-radius:.5rem}` +
	`@media (max-width:480px){main{margin:0;border:0;border-radius:0;min-height:100vh}}` +
	`header{display:flex;align-items:center;gap:.75rem;margin-bottom:.5rem}header img{max-height:3rem;max-width:10rem}` +
	`.brand{font-weight:700;font-size:1.1rem;margin:0}h1{font-size:1.5rem;margin:.5rem 0 1rem}` +
	`form p{margin:0 0 1rem}label{display:block;font-weight:600}` +
	`input,select{display:block;width:100%;margin-top:.25rem;font:inherit;font-weight:400;padding:.5rem;border:1px solid #6b7280;border-radius:.25rem;color:var(--ink)}` +
	`input:focus-visible,select:focus-visible,button:focus-visible,a:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}` +
	`button{width:100%;font:inherit;font-weight:600;padding:.6rem;border:0;border-radius:.25rem;background:var(--brand);color:#fff;cursor:pointer}` +
	`a{color:var(--brand)}.hint{color:var(--muted);font-weight:400;font-size:.9rem}` +
	`.error{background:#fdecea;color:#b42318;border:1px solid #f3b4ad;padding:.5rem .75rem;border-radius:.25rem}.help{margin:1rem 0 0;text-align:center}`

// brandColor is the form of a brand colour that may go into the style.
var brandColor = regexp.MustCompile(`^#[0-9a-f]{6}$`)

// defaultBrand is the button and link colour without a tenant's own
// (white on it: 6.7:1).
const defaultBrand = "#1d4ed8"

// loginPageStyle is the page's <style> for a brand colour (already
// checked: #rrggbb), and the page's Content-Security-Policy allowing
// exactly it. No form-action: browsers apply it to the redirects after
// the post too, and the last one goes to the client's redirect URI on
// another origin. img-src data: is for a tenant's logo, which is stored
// as a checked PNG or JPEG.
func loginPageStyle(brand string) (style, csp string) {
	style = ":root{--brand:" + brand + "}" + loginStyle
	sum := sha256.Sum256([]byte(style))
	return style, "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; img-src data:; " +
		"frame-ancestors 'none'; base-uri 'none'"
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · {{.Brand}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{{.Style}}</style></head>
<body><main>
<header>{{if .Logo}}<img src="{{.Logo}}" alt="">{{end}}<p class="brand">{{.Brand}}</p></header>
<h1>Sign in</h1>
{{if .Error}}<p role="alert" class="error">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="authRequestID" value="{{.ID}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
{{if .SecondFactor}}<p>Your organization signed you in. Your account also has an authenticator app.</p>
<p><label>Authentication code (or a recovery code)<input name="code" autocomplete="one-time-code" inputmode="numeric" required autofocus></label></p>
{{else if .Operator}}<p>Sign in as an operator of this Bulkhead deployment.</p>
<p><label>Email<input type="email" name="email" value="{{.Email}}" autocomplete="username" required autofocus></label></p>
<p><label>Password<input type="password" name="password" autocomplete="current-password" required></label></p>
{{if .ChangePassword}}<p><label>New password <span class="hint">(your password was set for you; choose your own)</span><input type="password" name="new_password" autocomplete="new-password" required></label></p>{{end}}
<p><label>Authentication code <span class="hint">(or a recovery code)</span><input name="code" autocomplete="one-time-code" inputmode="numeric" required></label></p>
{{else}}<p><label>Email<input type="email" name="email" value="{{.Email}}" autocomplete="username" required></label></p>
<p><label>Password <span class="hint">(not needed if your organization signs you in)</span><input type="password" name="password" autocomplete="current-password"></label></p>
{{if .ChangePassword}}<p><label>New password <span class="hint">(your password was set for you; choose your own)</span><input type="password" name="new_password" autocomplete="new-password" required></label></p>{{end}}
<p><label>Authentication code <span class="hint">(if you use an authenticator app)</span><input name="code" autocomplete="one-time-code" inputmode="numeric"></label></p>
{{if .Picker}}<p><label>Organization<select name="tenant"><option value="">(from my email address)</option>
{{range .Picker}}<option value="{{.ID}}"{{if eq .ID $.Tenant}} selected{{end}}>{{.Name}}</option>{{end}}</select></label></p>
{{else if .AskTenant}}<p><label>Organization code <span class="hint">(optional)</span><input name="tenant" value="{{.Tenant}}"></label></p>{{end}}
{{end}}
<p><button type="submit">Sign in</button></p>
</form>
{{if .Reset}}<p class="help"><a href="{{.Reset}}">Forgot your password?</a></p>{{end}}
{{if .Support}}<p class="help"><a href="{{.Support}}">Trouble signing in? Contact support</a></p>{{end}}
</main></body></html>`))

type loginView struct {
	Action, ID, CSRF, Email, Tenant, Error string
	// The look: the brand's name, its logo (a data: URL of a checked
	// image), its support link, and the <style> the CSP allows.
	Brand                     string
	Logo                      template.URL
	Support                   string
	Style                     template.CSS
	Reset                     string // the "Forgot your password?" link ("": none)
	AskTenant, ChangePassword bool
	SecondFactor              bool          // a federated sign-in waits for the account's TOTP code
	Operator                  bool          // an operator's sign-in to the console (TOTP always)
	Picker                    []pickerEntry // the tenant picker, when it is on
}

type pickerEntry struct{ ID, Name string }

// wrongCredentials is the one answer to a wrong email, password or
// organization: it does not say which, nor whether an organization exists.
const wrongCredentials = "The email, password or organization code is wrong."

// siloElsewhere tells a silo tenant's user who signed in at the platform's
// page where to go; it is shown only after their password checked out.
const siloElsewhere = "Your organization has its own sign-in address. Start again from your organization's application."

func (p *Provider) login(w http.ResponseWriter, r *http.Request, issuer signing.Issuer, o *op.Provider) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	// The answers before the page (an expired sign-in) load nothing;
	// brand sets the page's own policy.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'")
	s := &issuerStorage{p: p, issuer: issuer}
	ctx := r.Context()
	if err := r.ParseForm(); err != nil || len(r.Form.Get("authRequestID")) > 64 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if r.Method == http.MethodGet && r.Form.Get("authRequestID") == "" && r.Form.Get("logged_out") == "1" {
		// Where end_session sends a browser whose application named no
		// page of its own.
		v := resetView{Heading: "Signed out", Message: "You are signed out. Go back to your application to sign in again."}
		p.brand(ctx, w, &v.loginView, issuer, &authRequest{})
		p.renderReset(w, http.StatusOK, v)
		return
	}
	a, err := s.loadAuthRequest(ctx, "id", r.Form.Get("authRequestID"))
	if err != nil || a.Done() {
		http.Error(w, "this sign-in has expired or was already used; start again from the application", http.StatusBadRequest)
		return
	}
	if !sameBrowser(r, a) {
		otherBrowser(w)
		return
	}
	view := loginView{Action: p.loginPath(issuer), ID: a.ID, CSRF: a.csrf,
		AskTenant: issuer.Tenant == "" && a.tenantID == "" && p.loginSubdomain(r.Host) == "", Email: a.LoginHint}
	if a.pendingUser != "" {
		view.SecondFactor, view.AskTenant, view.Email = true, false, ""
	}
	if operatorRequest(issuer, a) {
		view.Operator, view.AskTenant = true, false
	}
	if p.cfg.Mail != nil && !view.Operator && !view.SecondFactor {
		view.Reset = p.loginPath(issuer) + "/reset?authRequestID=" + url.QueryEscape(a.ID)
	}
	if view.AskTenant && p.cfg.TenantPicker {
		view.Picker = p.pickerEntries(ctx)
	}
	p.brand(ctx, w, &view, issuer, a)
	render := func(status int, msg string) {
		view.Error = msg
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		loginPage.Execute(w, view)
	}
	if r.Method == http.MethodGet {
		// A browser signed in here already is not asked again (or, with
		// prompt=none and no usable session, the client gets
		// login_required).
		if a.pendingUser == "" && p.trySSO(w, r, issuer, o, a) {
			return
		}
		render(http.StatusOK, "")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// The browser's binding (checked above) is the cookie half of the
	// double submit; the form's token is this request's own, so a sign-in
	// in another tab does not expire this one.
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(a.csrf)) != 1 {
		render(http.StatusForbidden, "This form expired. Please try again.")
		return
	}
	if a.pendingUser != "" {
		p.federatedSecondFactor(w, r, issuer, o, a, render)
		return
	}
	if view.Operator {
		p.operatorLogin(w, r, issuer, o, a, &view, render)
		return
	}
	email := strings.TrimSpace(r.PostForm.Get("email"))
	password := r.PostForm.Get("password")
	view.Email, view.Tenant = email, r.PostForm.Get("tenant")
	ip := p.cfg.ClientIP.IP(r)
	now := p.clock().Now()
	if ok, _ := p.loginByIP.Allow(clientip.LimitKey(ip), now); !ok {
		render(http.StatusTooManyRequests, "Too many attempts. Wait a minute and try again.")
		return
	}
	failKey := strings.ToLower(email) + "\x00" + clientip.LimitKey(ip)
	if !p.loginFailures.Ready(failKey, now) {
		render(http.StatusTooManyRequests, "Too many failed attempts for this account from your address. Wait a minute and try again.")
		return
	}
	failed := func() { p.loginFailures.Allow(failKey, now) }
	tid, msg := p.routeTenant(ctx, s, a, r.Host, email, view.Tenant)
	if msg == siloElsewhere {
		// Say where to go only to someone who knows the password: to
		// anyone else a silo tenant's domain looks like no tenant's.
		if _, err := p.cfg.Directory.Authenticate(ctx, tid, email, password); err != nil {
			failed()
			msg = wrongCredentials
		}
		render(http.StatusUnauthorized, msg)
		return
	}
	if msg != "" {
		failed()
		// Spend what a password check spends, so the answer's timing does
		// not tell a known organization from an unknown one.
		p.cfg.Directory.Authenticate(ctx, "", email, password)
		render(http.StatusUnauthorized, msg)
		return
	}
	// A tenant with its own identity provider signs its users in there.
	if federated, err := p.federate(w, r, issuer, a, tid); federated || err != nil {
		if err != nil {
			p.cfg.Logger.ErrorContext(ctx, "federated sign-in", "err", clipErr(err))
			render(http.StatusBadGateway, "Your organization's sign-in is not available. Try again later.")
		}
		return
	}
	u, err := p.cfg.Directory.Authenticate(ctx, tid, email, password)
	if err != nil {
		failed()
		p.auditEvent(ctx, tid, "login.failure", "", audit.Denied, map[string]string{"client_id": a.ClientID, "source_ip": ip})
		render(http.StatusUnauthorized, wrongCredentials)
		return
	}
	// A confirmed TOTP factor is required as well (after the password, so
	// the code field tells nothing about accounts whose password is unknown).
	needCode, err := p.cfg.Directory.TOTPRequired(ctx, tid, u.ID)
	if err != nil {
		render(http.StatusInternalServerError, "Sign-in failed. Please try again.")
		return
	}
	if needCode {
		if err := p.cfg.Directory.VerifySecondFactor(ctx, tid, u.ID, r.PostForm.Get("code")); err != nil {
			failed()
			p.auditEvent(ctx, tid, "login.failure", u.ID, audit.Denied, map[string]string{"client_id": a.ClientID, "source_ip": ip, "reason": "second factor"})
			render(http.StatusUnauthorized, "Enter the current code from your authenticator app, or a recovery code.")
			return
		}
	}
	// A password someone else set (a temporary one) is replaced before the
	// first sign-in completes.
	if u.PasswordChangeRequired {
		view.ChangePassword = true
		newPassword := r.PostForm.Get("new_password")
		if newPassword == "" {
			render(http.StatusOK, "Your password was set for you. Enter it again and choose your own.")
			return
		}
		if newPassword == password {
			render(http.StatusBadRequest, "Choose a password different from the one you were given.")
			return
		}
		self := tenant.Actor{Principal: "user:" + u.ID, SourceIP: ip}
		if _, err := p.cfg.Directory.UpdateUser(ctx, tid, u.ID, identity.UserPatch{Password: &newPassword}, self); err != nil {
			msg := "The new password was not accepted."
			if e, ok := errs.As(err); ok && e.Code == "weak_password" {
				msg = "The new password is too weak: " + e.Detail + "."
			}
			render(http.StatusBadRequest, msg)
			return
		}
		now = p.clock().Now() // the sign-in completes after the change
	}
	err = p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE oidc_auth_requests SET user_id = ?, tenant_id = ?, auth_time = ?
			WHERE id = ? AND issuer_tenant = ? AND user_id = ''`, u.ID, string(tid), now.UnixMicro(), a.ID, string(issuer.Tenant))
		return err
	})
	if err != nil {
		render(http.StatusInternalServerError, "Sign-in failed. Please try again.")
		return
	}
	p.auditEvent(ctx, tid, "login.success", u.ID, audit.Success, map[string]string{"client_id": a.ClientID, "source_ip": ip})
	amr := []string{"pwd"}
	if needCode {
		amr = append(amr, "otp")
	}
	p.startSession(w, r, issuer, a, tid, u.ID, amr, now)
	p.redirectToCallback(w, r, issuer, o, a.ID)
}

// federatedSecondFactor finishes a federated sign-in that waits for the
// account's TOTP code (see federationCallback): only the code is asked,
// for the user the tenant's provider identified, in the browser that
// started the sign-in (checked by login).
func (p *Provider) federatedSecondFactor(w http.ResponseWriter, r *http.Request, issuer signing.Issuer, o *op.Provider, a *authRequest,
	render func(int, string)) {
	ctx := r.Context()
	ip := p.cfg.ClientIP.IP(r)
	now := p.clock().Now()
	if ok, _ := p.loginByIP.Allow(clientip.LimitKey(ip), now); !ok {
		render(http.StatusTooManyRequests, "Too many attempts. Wait a minute and try again.")
		return
	}
	failKey := a.pendingUser + "\x00" + clientip.LimitKey(ip)
	if !p.loginFailures.Ready(failKey, now) {
		render(http.StatusTooManyRequests, "Too many failed attempts for this account from your address. Wait a minute and try again.")
		return
	}
	detail := map[string]string{"client_id": a.ClientID, "source_ip": ip, "via": "federation"}
	if err := p.cfg.Directory.VerifySecondFactor(ctx, a.tenantID, a.pendingUser, r.PostForm.Get("code")); err != nil {
		p.loginFailures.Allow(failKey, now)
		detail["reason"] = "second factor"
		p.auditEvent(ctx, a.tenantID, "login.failure", a.pendingUser, audit.Denied, detail)
		render(http.StatusUnauthorized, "Enter the current code from your authenticator app, or a recovery code.")
		return
	}
	u, err := p.cfg.Directory.GetUser(ctx, a.tenantID, a.pendingUser)
	if err != nil || u.Status != identity.UserActive {
		detail["reason"] = "user_disabled"
		p.auditEvent(ctx, a.tenantID, "login.failure", a.pendingUser, audit.Denied, detail)
		render(http.StatusUnauthorized, "Your account cannot sign in here.")
		return
	}
	var done bool
	err = p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE oidc_auth_requests SET user_id = pending_user_id, pending_user_id = '', auth_time = ?
			WHERE id = ? AND issuer_tenant = ? AND user_id = '' AND pending_user_id = ?`, now.UnixMicro(), a.ID, string(issuer.Tenant), u.ID)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		done = n == 1
		return nil
	})
	if err != nil || !done {
		render(http.StatusInternalServerError, "Sign-in failed. Please try again.")
		return
	}
	detail["second_factor"] = "totp"
	p.auditEvent(ctx, a.tenantID, "login.success", u.ID, audit.Success, detail)
	p.startSession(w, r, issuer, a, a.tenantID, u.ID, []string{"fed", "otp"}, now)
	p.redirectToCallback(w, r, issuer, o, a.ID)
}

// redirectToCallback sends the browser to the authorize callback, which
// hands out the code, on the host it is on: the browser's binding cookie
// is there (a sign-in on a tenant's login subdomain stays on it).
func (p *Provider) redirectToCallback(w http.ResponseWriter, r *http.Request, issuer signing.Issuer, o *op.Provider, id string) {
	abs, err := url.Parse(op.AuthCallbackURL(o)(op.ContextWithIssuer(r.Context(), p.issuerURL(issuer)), id))
	if err != nil {
		http.Error(w, "sign-in failed", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, abs.RequestURI(), http.StatusFound)
}

// routeTenant decides the tenant a sign-in is for: the silo issuer's own
// tenant, the client's tenant, an explicit organization code, or the tenant
// that claims the email's domain. A silo tenant signs in only at its own
// issuer. It returns a message for the user when no tenant fits.
func (p *Provider) routeTenant(ctx context.Context, s *issuerStorage, a *authRequest, host, email, code string) (tenant.ID, string) {
	const noTenant = wrongCredentials
	var tid tenant.ID
	sub := p.loginSubdomain(host)
	switch {
	case s.issuer.Tenant != "":
		tid = s.issuer.Tenant
	case a.tenantID != "":
		tid = a.tenantID
	case sub != "":
		id, err := tenant.ParseID(sub)
		if err != nil {
			return "", noTenant
		}
		tid = id
	case code != "":
		id, err := tenant.ParseID(strings.ToLower(strings.TrimSpace(code)))
		if err != nil {
			return "", noTenant
		}
		tid = id
	default:
		_, domain, ok := strings.Cut(email, "@")
		if !ok {
			return "", noTenant
		}
		id, err := p.cfg.Tenants.TenantForDomainAllTenants(ctx, domain)
		if err != nil {
			return "", noTenant
		}
		tid = id
	}
	t, err := p.tenant(ctx, tid)
	if err != nil || t.Status != tenants.Active {
		return "", noTenant
	}
	if s.issuer.Tenant == "" && t.Isolation == tenants.Silo {
		if code != "" {
			return "", noTenant // an organization code must not reveal which tenants exist, or their tier
		}
		return tid, siloElsewhere
	}
	if a.tenantID != "" && tid != a.tenantID {
		return "", noTenant
	}
	if sub != "" && tenant.ID(sub) != tid {
		return "", noTenant // another tenant's login subdomain
	}
	return tid, ""
}

// loginSubdomain returns the tenant label of host when host is a
// subdomain of the login domain (acme.login.example → "acme"), else "".
func (p *Provider) loginSubdomain(host string) string {
	if p.cfg.LoginDomain == "" {
		return ""
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	label, ok := strings.CutSuffix(strings.ToLower(host), "."+strings.ToLower(p.cfg.LoginDomain))
	if !ok || strings.Contains(label, ".") {
		return ""
	}
	return label
}

// pickerEntries lists the tenants a sign-in may pick: active pool and
// bridge tenants (silo tenants sign in at their own issuer). The picker
// reveals which tenants exist, so it is off unless configured.
func (p *Provider) pickerEntries(ctx context.Context) []pickerEntry {
	var out []pickerEntry
	cursor := ""
	for len(out) < 1000 {
		page, err := p.cfg.Tenants.ListAllTenants(ctx, tenants.ListOptions{Limit: 1000, Cursor: cursor, Status: tenants.Active})
		if err != nil {
			break
		}
		for _, t := range page.Items {
			if t.Isolation != tenants.Silo {
				out = append(out, pickerEntry{ID: string(t.ID), Name: t.Name})
			}
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	return out
}

// brand gives the login page its look: the tenant's branding when the
// sign-in is for one tenant known before anyone types (a silo tenant's
// issuer, or a tenant's own client), else Bulkhead's. A sign-in on a
// login subdomain or with an organization code is not branded: its
// branding would tell anyone which tenants exist. It sets the page's
// Content-Security-Policy to allow exactly its style.
func (p *Provider) brand(ctx context.Context, w http.ResponseWriter, view *loginView, issuer signing.Issuer, a *authRequest) {
	view.Brand = "Bulkhead"
	color := defaultBrand
	tid := issuer.Tenant
	if tid == "" {
		tid = a.tenantID
	}
	if tid != "" {
		if b, err := p.cfg.Directory.Branding(ctx, tid); err == nil {
			if b.DisplayName != "" {
				view.Brand = b.DisplayName
			}
			if brandColor.MatchString(b.PrimaryColor) {
				color = b.PrimaryColor // checked when set, and again here: it goes into the style
			}
			view.Support = b.SupportURL
			if raw, err := base64.StdEncoding.DecodeString(b.Logo); err == nil && len(raw) > 0 {
				if ct := http.DetectContentType(raw); ct == "image/png" || ct == "image/jpeg" {
					view.Logo = template.URL("data:" + ct + ";base64," + b.Logo) // checked when set, and again here
				}
			}
		}
	}
	style, csp := loginPageStyle(color)
	view.Style = template.CSS(style)
	w.Header().Set("Content-Security-Policy", csp)
}
