package console

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// view is what every page template gets.
type view struct {
	Title   string
	Prefix  string
	S       *session
	Nav     string // the highlighted section
	Notice  string // a success message
	Error   string // what went wrong, and what to do
	Data    any
	Status  int
	Tenant  string // the tenant a tenant page is about
	Confirm *confirmView
	Page    string // the template's name, on <main data-page> for tests and styles
	Refresh int    // reload the page every this many seconds (0: never): progress of a running workflow
}

// confirmView is the typed confirmation of a destructive action.
type confirmView struct {
	Action, Object, Word, Post, Cancel, Explain string
	Days                                        bool // ask for a waiting period too (7 to 30 days)
}

func parsePages(prefix string) (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"url": func(p string) string { return prefix + p },
		"esc": url.PathEscape,
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	files, _ := fs.Glob(assets, "templates/*.html")
	out := map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(assets, f)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

func (c *Console) routes() {
	m := http.NewServeMux()
	p := c.prefix
	m.Handle("GET "+p+"/static/", c.static)
	m.HandleFunc("GET "+p+"/signin", c.signin)
	m.HandleFunc("GET "+p+"/callback", c.callback)
	m.HandleFunc("POST "+p+"/signout", c.signout)
	m.HandleFunc("GET "+p+"/{$}", c.selfPage(c.home))
	m.HandleFunc("GET "+p+"/tenants", c.operatorPage(c.tenantList))
	m.HandleFunc("POST "+p+"/tenants", c.operatorPost(c.tenantCreate))
	m.HandleFunc("GET "+p+"/tenants/{tenant}", c.page(c.tenantDetail))
	m.HandleFunc("GET "+p+"/tenants/{tenant}/confirm/{action}", c.page(c.tenantConfirm))
	// A tier migration moves the tenant's data and issuer: a recent sign-in first.
	m.HandleFunc("POST "+p+"/tenants/{tenant}/tier", c.destructiveAs(accessOperator, c.confirmPage(), c.tenantTier))
	m.HandleFunc("POST "+p+"/tenants/{tenant}/{action}", c.destructive(c.confirmPage("confirm", "{action}"), c.tenantAction))
	m.HandleFunc("GET "+p+"/tenants/{tenant}/policies", c.page(c.policies))
	m.HandleFunc("POST "+p+"/tenants/{tenant}/policies", c.post(c.policySave))
	m.HandleFunc("POST "+p+"/tenants/{tenant}/policies/validate", c.policyValidate)
	m.HandleFunc("POST "+p+"/tenants/{tenant}/policies/try", c.post(c.policyTry))
	m.HandleFunc("GET "+p+"/tenants/{tenant}/policies/{policy}/confirm-delete", c.page(c.policyConfirm))
	m.HandleFunc("POST "+p+"/tenants/{tenant}/policies/{policy}/delete", c.destructive(c.confirmPage("policies", "{policy}", "confirm-delete"),
		c.deleteConfirmed("policy", "policy", "policies", "policy_deleted", c.policyConfirm,
			func(r *http.Request, cl *client.Client, tid, id string) error {
				return cl.DeletePolicy(r.Context(), tid, id)
			})))
	m.HandleFunc("GET "+p+"/tenants/{tenant}/users", c.page(c.userList))
	m.HandleFunc("POST "+p+"/tenants/{tenant}/users", c.post(c.userCreate))
	m.HandleFunc("GET "+p+"/tenants/{tenant}/users/{user}/sessions", c.page(c.userSessions))
	m.HandleFunc("POST "+p+"/tenants/{tenant}/users/{user}/sessions/{session}/end", c.post(c.userSessionEnd))
	m.HandleFunc("GET "+p+"/tenants/{tenant}/posture", c.page(c.tenantPosture))
	m.HandleFunc("GET "+p+"/posture", c.operatorPage(c.posture))
	m.HandleFunc("GET "+p+"/audit", c.operatorPage(c.platformAudit))
	m.HandleFunc("POST "+p+"/audit/verify", c.operatorPost(c.auditVerify))
	m.HandleFunc("GET "+p+"/tenants/{tenant}/audit", c.page(c.tenantAudit))
	m.HandleFunc("GET "+p+"/tenants/{tenant}/connections", c.page(c.connections))
	m.HandleFunc("GET "+p+"/tenants/{tenant}/connections/{connection}", c.page(c.connection))
	m.HandleFunc("POST "+p+"/tenants/{tenant}/connections/{connection}/grants/{grant}/{action}", c.post(c.grantAction))
	m.HandleFunc("GET "+p+"/functions", c.operatorPage(c.functions))
	m.HandleFunc("GET "+p+"/account", c.selfPage(c.account))
	m.HandleFunc("POST "+p+"/account/totp", c.destructiveAs(accessSelf, func(*http.Request) string { return c.prefix + "/account" }, c.accountTOTP))
	m.HandleFunc("POST "+p+"/account/totp/confirm", c.selfPost(c.accountTOTPConfirm))
	m.HandleFunc("POST "+p+"/account/sessions/{session}/end", c.selfPost(c.accountSessionEnd))
	m.HandleFunc("GET "+p+"/tenants/{tenant}/clients", c.page(c.clients))
	m.HandleFunc("POST "+p+"/tenants/{tenant}/clients", c.post(c.clientCreate))
	m.HandleFunc("GET "+p+"/tenants/{tenant}/clients/{client}/confirm-delete", c.page(c.clientConfirm))
	m.HandleFunc("POST "+p+"/tenants/{tenant}/clients/{client}/delete", c.destructive(c.confirmPage("clients", "{client}", "confirm-delete"),
		c.deleteConfirmed("client", "client", "clients", "client_deleted", c.clientConfirm,
			func(r *http.Request, cl *client.Client, tid, id string) error {
				return cl.DeleteOAuthClient(r.Context(), tid, id)
			})))
	m.HandleFunc("GET "+p+"/tenants/{tenant}/groups", c.page(c.groups))
	m.HandleFunc("POST "+p+"/tenants/{tenant}/groups", c.post(c.groupPost))
	m.HandleFunc("GET "+p+"/tenants/{tenant}/branding", c.page(c.branding))
	m.HandleFunc("POST "+p+"/tenants/{tenant}/branding", c.post(c.brandingSave))
	m.HandleFunc("GET "+p+"/tenants/{tenant}/keys", c.page(c.keys))
	m.HandleFunc("POST "+p+"/tenants/{tenant}/keys", c.post(c.keyCreate))
	m.HandleFunc("POST "+p+"/tenants/{tenant}/keys/{key}/rotate", c.post(c.keyRotate))
	m.HandleFunc("POST "+p+"/tenants/{tenant}/keys/{key}/cancel-deletion", c.post(c.keyCancelDeletion))
	m.HandleFunc("GET "+p+"/tenants/{tenant}/keys/{key}/confirm-deletion", c.page(c.keyConfirm))
	m.HandleFunc("POST "+p+"/tenants/{tenant}/keys/{key}/schedule-deletion", c.destructive(c.confirmPage("keys", "{key}", "confirm-deletion"), c.keyScheduleDeletion))
	m.HandleFunc("POST "+p+"/posture/scan", c.operatorPost(c.postureScan))
	m.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		s, _ := c.loadSession(r.Context(), r)
		c.notFound(w, r, s)
	})
	c.mux = m
}

// session returns the request's session, or sends the browser to sign in
// (a page) or answers 401 (a form post, whose data would be lost).
func (c *Console) session(w http.ResponseWriter, r *http.Request, post bool) (*session, bool) {
	s, err := c.loadSession(r.Context(), r)
	if err != nil {
		if !errors.Is(err, errNoSession) {
			c.cfg.Logger.ErrorContext(r.Context(), "console session", "err", err)
		}
		if post {
			c.fail(w, r, nil, http.StatusUnauthorized, "Your session ended. Sign in again; what you sent was not saved.")
			return nil, false
		}
		c.render(w, r, nil, http.StatusOK, "signin", view{Title: "Sign in", Data: r.URL.RequestURI()})
		return nil, false
	}
	if post {
		if !c.sameOrigin(r) || parseForm(r) != nil ||
			subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.CSRF)) != 1 {
			c.fail(w, r, s, http.StatusForbidden, "This form expired or did not come from the console. Reload the page and try again.")
			return nil, false
		}
	}
	return s, true
}

// handler is a page's work: it returns the template, its view, or an error.
type handler func(w http.ResponseWriter, r *http.Request, s *session, api *client.Client) (string, view, error)

// access is who may reach a page.
type access int

const (
	accessAdmin    access = iota // operators and tenants' admins (the API decides which tenant)
	accessOperator               // operators only
	accessSelf                   // anyone signed in, members too: their own account
)

// allows reports whether s may reach a page of level a. Pages a session
// may not reach answer as pages that do not exist.
func (a access) allows(s *session) bool {
	switch a {
	case accessOperator:
		return s.Operator()
	case accessAdmin:
		return s.Operator() || s.Kind == kindTenant
	case accessSelf:
		return s.Operator() || s.Kind == kindTenant || s.Member()
	}
	return false
}

func (c *Console) serve(w http.ResponseWriter, r *http.Request, post bool, a access, h handler) {
	if post {
		r.Body = http.MaxBytesReader(w, r.Body, maxPost(r))
	}
	s, ok := c.session(w, r, post)
	if !ok {
		return
	}
	if !a.allows(s) {
		c.notFound(w, r, s)
		return
	}
	ctx, cancel := withTimeout(r.Context())
	defer cancel()
	cl, err := c.apiClient(ctx, r, s)
	if err != nil {
		if errors.Is(err, errNoSession) {
			c.render(w, r, nil, http.StatusOK, "signin", view{Title: "Sign in", Data: r.URL.RequestURI(),
				Error: "Your session ended. Sign in again."})
			return
		}
		c.fail(w, r, s, http.StatusBadGateway, "The console could not reach the API. Try again.")
		return
	}
	name, v, err := h(w, r.WithContext(ctx), s, cl)
	if err != nil {
		c.apiError(w, r, s, err)
		return
	}
	if name == "" {
		return // redirected
	}
	status := v.Status
	if status == 0 {
		status = http.StatusOK
	}
	c.render(w, r, s, status, name, v)
}

// maxPost bounds a form's body: 64 KiB, or 256 KiB for a form with a
// file (a logo).
func maxPost(r *http.Request) int64 {
	if isMultipart(r) {
		return 256 << 10
	}
	return 64 << 10
}

func isMultipart(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data")
}

// parseForm reads a posted form, with its files when it has any (kept in
// memory: maxPost bounds them).
func parseForm(r *http.Request) error {
	if isMultipart(r) {
		return r.ParseMultipartForm(256 << 10)
	}
	return r.ParseForm()
}

func (c *Console) page(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { c.serve(w, r, false, accessAdmin, h) }
}
func (c *Console) post(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { c.serve(w, r, true, accessAdmin, h) }
}
func (c *Console) operatorPage(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { c.serve(w, r, false, accessOperator, h) }
}
func (c *Console) operatorPost(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { c.serve(w, r, true, accessOperator, h) }
}
func (c *Console) selfPage(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { c.serve(w, r, false, accessSelf, h) }
}
func (c *Console) selfPost(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { c.serve(w, r, true, accessSelf, h) }
}

// destructive is a post that needs a recent sign-in: older than
// ReauthAfter, the person signs in again first and comes back to the
// confirmation page, back(r).
func (c *Console) destructive(back func(*http.Request) string, h handler) http.HandlerFunc {
	return c.destructiveAs(accessAdmin, back, h)
}

// destructiveAs is destructive for the pages of level a.
func (c *Console) destructiveAs(a access, back func(*http.Request) string, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c.serve(w, r, true, a, func(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client) (string, view, error) {
			if c.now().Sub(s.AuthTime) > c.cfg.ReauthAfter {
				c.startFlow(w, r, s.Operator(), true, s.Issuer, back(r))
				return "", view{}, nil
			}
			return h(w, r, s, cl)
		})
	}
}

// confirmPage is the path of a tenant's confirmation page for the
// destructive post at r: its {tenant}, then rest with r's path values.
func (c *Console) confirmPage(rest ...string) func(*http.Request) string {
	return func(r *http.Request) string {
		p := c.prefix + "/tenants/" + url.PathEscape(r.PathValue("tenant"))
		for _, part := range rest {
			if name, ok := strings.CutPrefix(part, "{"); ok {
				part = url.PathEscape(r.PathValue(strings.TrimSuffix(name, "}")))
			}
			p += "/" + part
		}
		return p
	}
}

// apiClient is the API client of a session: its token, in process.
func (c *Console) apiClient(ctx context.Context, r *http.Request, s *session) (*client.Client, error) {
	tok, err := c.tokenFor(ctx, r, s)
	if err != nil {
		return nil, err
	}
	cl := client.New(c.base.String(), tok)
	cl.HTTP = c.client(r)
	return cl, nil
}

// apiError shows an API error: a 404 (no such object, or another
// tenant's: the API does not tell them apart, nor does the console) as
// the console's not-found page, others with the API's detail.
func (c *Console) apiError(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var p *api.Problem
	if errors.As(err, &p) {
		switch {
		case p.Status == http.StatusNotFound:
			c.notFound(w, r, s)
			return
		case p.Status == http.StatusUnauthorized:
			c.deleteSession(r.Context(), s.id)
			c.render(w, r, nil, http.StatusOK, "signin", view{Title: "Sign in", Data: r.URL.RequestURI(),
				Error: "Your session ended. Sign in again."})
			return
		case p.Status < 500:
			c.fail(w, r, s, p.Status, problemMessage(p))
			return
		}
	}
	c.cfg.Logger.ErrorContext(r.Context(), "console page", "path", r.URL.Path, "err", err)
	c.fail(w, r, s, http.StatusInternalServerError, "Something went wrong. Try again; if it persists, check the server's log.")
}

// refusal is the API's refusal of what the person sent — a 4xx they act
// on by changing the form — or nil. Not found and unauthenticated are
// apiError's (the not-found page, a new sign-in), as are 5xx.
func refusal(err error) *api.Problem {
	var p *api.Problem
	if !errors.As(err, &p) || p.Status >= 500 || p.Status == http.StatusNotFound || p.Status == http.StatusUnauthorized {
		return nil
	}
	return p
}

// again shows page h once more with msg as its error: a form's refusal,
// shown on the page the form is on.
func (c *Console) again(w http.ResponseWriter, r *http.Request, s *session, cl *client.Client, h handler, status int, msg string) (string, view, error) {
	name, v, err := h(w, r, s, cl)
	v.Status, v.Error = status, msg
	return name, v, err
}

// seeOther sends the browser to the console page at path (under the
// console's prefix) after a post.
func (c *Console) seeOther(w http.ResponseWriter, r *http.Request, path string) (string, view, error) {
	http.Redirect(w, r, c.prefix+path, http.StatusSeeOther)
	return "", view{}, nil
}

func problemMessage(p *api.Problem) string {
	msg := p.Title
	if p.Detail != "" {
		msg = p.Detail
	}
	if msg == "" {
		msg = "The request was refused."
	}
	first, n := utf8.DecodeRuneInString(msg)
	return string(unicode.ToUpper(first)) + msg[n:] + "."
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, r, s, http.StatusNotFound, "notfound", view{Title: "Not found"})
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	c.render(w, r, s, status, "error", view{Title: "Something went wrong", Error: msg})
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, status int, name string, v view) {
	t := c.pages[name]
	v.Prefix, v.S, v.Page = c.prefix, s, name
	// Made whole before it is sent: a template that fails halfway is an
	// error page, not half a page.
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		c.cfg.Logger.ErrorContext(r.Context(), "console render", "page", name, "err", err)
		if name == "error" {
			http.Error(w, "Something went wrong.", http.StatusInternalServerError)
			return
		}
		c.fail(w, r, s, http.StatusInternalServerError, "Something went wrong. Try again; if it persists, check the server's log.")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// tenantOf is the {tenant} of a tenant page, which a tenant admin's
// session must own: another tenant's pages are "not found" to them, as
// the API's answers are.
func (c *Console) tenantOf(r *http.Request, s *session) (string, error) {
	id, err := tenant.ParseID(r.PathValue("tenant"))
	if err != nil || (!s.Operator() && id != s.TenantID) {
		return "", &api.Problem{Status: http.StatusNotFound, Code: "tenant_not_found"}
	}
	return string(id), nil
}
