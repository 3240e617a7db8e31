// Package console is Bulkhead's web console: server-rendered pages,
// served by the binary at /console/, for operators (every tenant) and
// tenants' admins (their own tenant only).
//
// The console holds no authority of its own. A person signs in through
// Bulkhead's own OpenID provider (code flow with PKCE, as the built-in
// public client provider.ConsoleClientID), and every page is made from
// calls to the node's API with that person's access token, served in
// process (httpx.Loopback) with the browser's address: what a tenant
// admin can see and change in the console is exactly what their token
// can through the API, and the audit trail names the person.
//
// Browser security: the session cookie is __Host- prefixed (Secure,
// Path=/, no Domain), HttpOnly and SameSite=Strict; every form carries the
// session's CSRF token, and a POST must also come from the console's own
// origin; pages send a Content-Security-Policy without 'unsafe-inline'
// (styles and scripts are files under /console/static/), refuse framing,
// and are not cached. Destructive actions ask for a typed confirmation
// and, when the person signed in more than ReauthAfter ago, a fresh
// sign-in first.
package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/bulkhead-dev/bulkhead/internal/clientip"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
)

//go:embed migrations
var migrations embed.FS

//go:embed templates static
var assets embed.FS

// Migrations returns the console's tables: its sessions (the platform's
// own rows; a tenant admin's session names its tenant).
func Migrations() storage.Component {
	c := storage.Embedded("console", migrations)
	c.RowSecurity = map[string]storage.Rows{"console_sessions": storage.TenantOrPlatformRows("tenant_id")}
	return c
}

// Config wires the console.
type Config struct {
	// PublicURL is the node's public URL (the platform issuer); the
	// console is at PublicURL + "/console/".
	PublicURL string
	// Backend serves the API and the OpenID provider (the node's handler).
	Backend  http.Handler
	DB       *storage.DB
	Sealer   kms.Sealer // seals the sessions' tokens (the root key)
	Clock    clock.Clock
	Logger   *slog.Logger
	ClientIP *clientip.Resolver

	IdleTimeout     time.Duration // default 30 minutes
	AbsoluteTimeout time.Duration // default 12 hours
	ReauthAfter     time.Duration // default 5 minutes
}

// Console serves the console's pages.
type Console struct {
	cfg        Config
	base       *url.URL
	prefix     string // base path + "/console"
	cookieName string
	flowCookie string
	secure     bool
	mux        *http.ServeMux
	pages      map[string]*template.Template
	static     http.Handler

	mu  sync.Mutex
	oid map[string]*oidc.Provider // by silo tenant ("": the platform issuer), discovered on first use
}

// New returns the console.
func New(cfg Config) (*Console, error) {
	u, err := url.Parse(strings.TrimRight(cfg.PublicURL, "/"))
	if err != nil || !u.IsAbs() {
		return nil, errors.New("console: the public URL must be an absolute URL")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.AbsoluteTimeout <= 0 {
		cfg.AbsoluteTimeout = 12 * time.Hour
	}
	if cfg.ReauthAfter <= 0 {
		cfg.ReauthAfter = 5 * time.Minute
	}
	c := &Console{cfg: cfg, base: u, prefix: strings.TrimRight(u.Path, "/") + "/console", secure: u.Scheme == "https",
		oid: map[string]*oidc.Provider{}}
	// __Host- cookies need Secure; a plain-http public URL is allowed on
	// loopback only (the provider refuses others), where browsers treat
	// the origin as secure and keep Secure cookies.
	c.cookieName, c.flowCookie = "__Host-bulkhead-console", "__Host-bulkhead-console-flow"
	if c.pages, err = parsePages(c.prefix); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(assets, "static")
	c.static = http.StripPrefix(c.prefix+"/static/", http.FileServerFS(static))
	c.routes()
	return c, nil
}

// Path is the URL path prefix the console serves under.
func (c *Console) Path() string { return c.prefix + "/" }

func (c *Console) now() time.Time { return c.cfg.Clock.Now() }

// csp is the pages' Content-Security-Policy: files of the console only,
// nothing inline, no framing, forms post to the console only.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP serves a console request with the console's security headers.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if c.secure {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	if !strings.HasPrefix(r.URL.Path, c.prefix+"/static/") {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

// sameOrigin reports whether a state-changing request comes from the
// console's own pages: its Origin (or, without one, its Referer) is the
// public URL's origin. Browsers send Origin on every POST.
func (c *Console) sameOrigin(r *http.Request) bool {
	want := c.base.Scheme + "://" + c.base.Host
	if o := r.Header.Get("Origin"); o != "" {
		return o == want
	}
	ref, err := url.Parse(r.Header.Get("Referer"))
	return err == nil && ref.Scheme+"://"+ref.Host == want
}

// remoteAddr is the address the API sees for a console request: the
// browser's, as the node's trusted proxies tell it.
func (c *Console) remoteAddr(r *http.Request) string {
	ip := c.cfg.ClientIP.IP(r)
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:0"
	}
	return ip + ":0"
}

// withTimeout bounds the API calls of one page.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 30*time.Second)
}
