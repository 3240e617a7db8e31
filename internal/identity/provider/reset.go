package provider

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clientip"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/mail"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// Password reset by email. From the login page ("Forgot your password?")
// a user gives their email; if it is an active account of the sign-in's
// tenant with a password, a link that works once for resetLifetime goes
// to that address. The answer is the same whether or not an email was
// sent, and the email is queued (mail.Sender), so neither the words nor
// the timing tell which emails have accounts. Only the SHA-256 of the
// link's secret is stored. Setting a new password through it ends the
// account's sessions (refresh tokens from before are refused) and
// invalidates its other links. Operators have no reset: another operator
// replaces their account.

// resetLifetime bounds a reset link's life.
const resetLifetime = 30 * time.Minute

var resetPage = template.Must(template.New("reset").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Heading}} · {{.Brand}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{{.Style}}</style></head>
<body><main>
<header>{{if .Logo}}<img src="{{.Logo}}" alt="">{{end}}<p class="brand">{{.Brand}}</p></header>
<h1>{{.Heading}}</h1>
{{if .Error}}<p role="alert" class="error">{{.Error}}</p>{{end}}
{{if .Message}}<p role="status">{{.Message}}</p>{{end}}
{{if eq .Form "request"}}<form method="post" action="{{.Action}}">
<input type="hidden" name="authRequestID" value="{{.ID}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<p><label>Email<input type="email" name="email" value="{{.Email}}" autocomplete="username" required autofocus></label></p>
{{if .AskTenant}}<p><label>Organization code <span class="hint">(optional)</span><input name="tenant" value="{{.Tenant}}"></label></p>{{end}}
<p><button type="submit">Send me a link</button></p>
</form>
{{else if eq .Form "confirm"}}<form method="post" action="{{.Action}}">
<input type="hidden" name="token" value="{{.Token}}">
<p><label>New password<input type="password" name="new_password" autocomplete="new-password" required autofocus></label></p>
<p><button type="submit">Set my password</button></p>
</form>{{end}}
{{if .Support}}<p class="help"><a href="{{.Support}}">Trouble signing in? Contact support</a></p>{{end}}
</main></body></html>`))

// resetView is what the reset page shows: loginView's look, and its form.
type resetView struct {
	loginView
	Heading, Form, Message, Token string
}

func (p *Provider) renderReset(w http.ResponseWriter, status int, v resetView) {
	if v.Heading == "" {
		v.Heading = "Reset your password"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	resetPage.Execute(w, v)
}

func resetHeaders(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer") // the confirm page's URL holds the link's secret
	w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'")
}

// resetSent is the one answer to a reset request.
const resetSent = "If an account with this email can sign in here, we sent it a link to choose a new password. It works once, for 30 minutes."

// resetRequest serves the "Forgot your password?" form of a sign-in in
// progress (its authRequestID and CSRF token, as the login form).
func (p *Provider) resetRequest(w http.ResponseWriter, r *http.Request, issuer signing.Issuer) {
	resetHeaders(w)
	if p.cfg.Mail == nil {
		http.NotFound(w, r)
		return
	}
	s := &issuerStorage{p: p, issuer: issuer}
	ctx := r.Context()
	if err := r.ParseForm(); err != nil || len(r.Form.Get("authRequestID")) > 64 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	a, err := s.loadAuthRequest(ctx, "id", r.Form.Get("authRequestID"))
	if err != nil || a.Done() || operatorRequest(issuer, a) {
		http.Error(w, "this sign-in has expired or was already used; start again from the application", http.StatusBadRequest)
		return
	}
	if !sameBrowser(r, a) {
		otherBrowser(w)
		return
	}
	v := resetView{loginView: loginView{Action: p.loginPath(issuer) + "/reset", ID: a.ID, CSRF: a.csrf, Email: a.LoginHint,
		AskTenant: issuer.Tenant == "" && a.tenantID == "" && p.loginSubdomain(r.Host) == ""}, Form: "request"}
	p.brand(ctx, w, &v.loginView, issuer, a)
	if r.Method == http.MethodGet {
		p.renderReset(w, http.StatusOK, v)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(a.csrf)) != 1 {
		v.Error = "This form expired. Please try again."
		p.renderReset(w, http.StatusForbidden, v)
		return
	}
	email := strings.TrimSpace(r.PostForm.Get("email"))
	v.Email, v.Tenant = email, r.PostForm.Get("tenant")
	ip := p.cfg.ClientIP.IP(r)
	if ok, _ := p.loginByIP.Allow(clientip.LimitKey(ip), p.clock().Now()); !ok {
		v.Error = "Too many attempts. Wait a minute and try again."
		p.renderReset(w, http.StatusTooManyRequests, v)
		return
	}
	if tid, msg := p.routeTenant(ctx, s, a, r.Host, email, v.Tenant); msg == "" {
		p.sendReset(ctx, issuer, tid, email, ip)
	}
	v.Form, v.Message = "", resetSent
	p.renderReset(w, http.StatusOK, v)
}

// sendReset makes and queues a reset link for email's account of tenant
// tid, if it has one that signs in with a password here. It says
// nothing to the caller either way.
func (p *Provider) sendReset(ctx context.Context, issuer signing.Issuer, tid tenant.ID, email, ip string) {
	if ok, _ := p.resets.Allow(string(tid)+"\x00"+strings.ToLower(email), p.clock().Now()); !ok {
		return
	}
	page, err := p.cfg.Directory.ListUsers(ctx, tid, identity.ListOptions{Email: email, Limit: 1})
	if err != nil || len(page.Items) != 1 {
		return
	}
	u := page.Items[0]
	if u.Status != identity.UserActive || !u.PasswordSet {
		return
	}
	secret := ids.Secret("bpr")
	now := p.clock().Now()
	err = p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO oidc_password_resets (id, issuer_tenant, tenant_id, user_id, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?)`, hashToken(secret), string(issuer.Tenant), string(tid), u.ID, now.UnixMicro(), now.Add(resetLifetime).UnixMicro())
		return err
	})
	if err != nil {
		p.cfg.Logger.ErrorContext(ctx, "password reset: store the link", "err", err)
		return
	}
	brand := "Bulkhead"
	if b, err := p.cfg.Directory.Branding(ctx, tid); err == nil && b.DisplayName != "" {
		brand = b.DisplayName
	}
	link := p.issuerURL(issuer) + "/login/reset/confirm?token=" + secret
	body := "Someone, probably you, asked to reset the password of your account (" + u.Email + ") at " + brand + ".\n\n" +
		"Open this link within 30 minutes to choose a new password. It works once:\n\n" + link + "\n\n" +
		"If it was not you, ignore this email: your password stays as it is.\n"
	if err := p.cfg.Mail.Enqueue(mail.Message{To: u.Email, Subject: "Reset your password at " + brand, Body: body}); err != nil {
		p.cfg.Logger.WarnContext(ctx, "password reset: not queued", "err", err)
		return
	}
	p.auditEvent(ctx, tid, "login.password_reset_requested", u.ID, audit.Success, map[string]string{"source_ip": ip})
}

// resetLink is a stored, live reset link.
type resetLink struct {
	id     string
	tid    tenant.ID
	userID string
}

var errResetLink = errors.New("provider: no such reset link")

// liveReset finds the live link of secret at issuer.
func (p *Provider) liveReset(ctx context.Context, issuer signing.Issuer, secret string) (resetLink, error) {
	if !ids.HasPrefix(secret, "bpr") || len(secret) > 64 {
		return resetLink{}, errResetLink
	}
	l := resetLink{id: hashToken(secret)}
	var tid, issuerTenant string
	var expires, used int64
	err := p.cfg.DB.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT issuer_tenant, tenant_id, user_id, expires_at, used_at FROM oidc_password_resets WHERE id = ?`, l.id).
			Scan(&issuerTenant, &tid, &l.userID, &expires, &used)
	})
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (issuerTenant != string(issuer.Tenant) || used != 0 || p.clock().Now().UnixMicro() > expires)) {
		return resetLink{}, errResetLink
	}
	if err != nil {
		return resetLink{}, err
	}
	l.tid = tenant.ID(tid)
	return l, nil
}

// resetConfirm serves the link: a form for the new password, then the
// change.
func (p *Provider) resetConfirm(w http.ResponseWriter, r *http.Request, issuer signing.Issuer) {
	resetHeaders(w)
	if p.cfg.Mail == nil {
		http.NotFound(w, r)
		return
	}
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	secret := r.Form.Get("token")
	v := resetView{loginView: loginView{Action: p.loginPath(issuer) + "/reset/confirm"}, Form: "confirm", Token: secret}
	link, err := p.liveReset(ctx, issuer, secret)
	p.brand(ctx, w, &v.loginView, issuer, &authRequest{tenantID: link.tid})
	if err != nil {
		v.Form, v.Token, v.Error = "", "", "This link has expired or was already used. Ask for a new one from your application's sign-in page."
		p.renderReset(w, http.StatusBadRequest, v)
		return
	}
	if r.Method == http.MethodGet {
		p.renderReset(w, http.StatusOK, v)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ip := p.cfg.ClientIP.IP(r)
	if ok, _ := p.loginByIP.Allow(clientip.LimitKey(ip), p.clock().Now()); !ok {
		v.Error = "Too many attempts. Wait a minute and try again."
		p.renderReset(w, http.StatusTooManyRequests, v)
		return
	}
	password := r.PostForm.Get("new_password")
	self := tenant.Actor{Principal: "user:" + link.userID, SourceIP: ip}
	if _, err := p.cfg.Directory.UpdateUser(ctx, link.tid, link.userID, identity.UserPatch{Password: &password}, self); err != nil {
		v.Error = "The new password was not accepted."
		if e, ok := errs.As(err); ok && e.Code == "weak_password" {
			v.Error = "The new password is too weak: " + e.Detail + "."
		}
		p.renderReset(w, http.StatusBadRequest, v)
		return
	}
	// This link, and any other of the account, is spent.
	now := p.clock().Now()
	if err := p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE oidc_password_resets SET used_at = ? WHERE tenant_id = ? AND user_id = ? AND used_at = 0`,
			now.UnixMicro(), string(link.tid), link.userID)
		return err
	}); err != nil {
		p.cfg.Logger.ErrorContext(ctx, "password reset: spend the links", "err", err)
	}
	p.auditEvent(ctx, link.tid, "login.password_reset", link.userID, audit.Success, map[string]string{"source_ip": ip})
	v.Form, v.Token, v.Message = "", "", "Your password is changed, and your other sessions are signed out. Go back to your application and sign in."
	p.renderReset(w, http.StatusOK, v)
}
