// Package provider is Bulkhead's OpenID Provider, built on zitadel/oidc's
// op package: discovery, JWKS, authorization code with PKCE, refresh tokens
// (rotated; a reused one revokes its family), client credentials,
// revocation, introspection, userinfo and end-session, with a hosted login
// page; and token exchange (RFC 8693, see exchange.go and internal/sts).
//
// Issuers: pool and bridge tenants and platform clients share the platform
// issuer {base}; a silo tenant T gets {base}/t/T with its own discovery,
// JWKS and signing keys. An issuer serves only its own clients and users.
// Tokens carry tenant_id, tier and groups, set from Bulkhead's records.
package provider

import (
	"context"
	"embed"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clientip"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/httpx"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/lru"
	"github.com/bulkhead-dev/bulkhead/internal/mail"
	"github.com/bulkhead-dev/bulkhead/internal/partners"
	"github.com/bulkhead-dev/bulkhead/internal/ratelimit"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/statecache"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/sts"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

//go:embed migrations
var migrations embed.FS

// Migrations returns the provider's migrations.
func Migrations() storage.Component {
	c := storage.Embedded("oidc", migrations)
	c.RowSecurity = map[string]storage.Rows{
		// The provider is the cross-tenant entry point (a client id or a
		// token arrives before any tenant is known), so it works in the
		// platform scope; tenant_id still scopes every row for
		// tenant-scoped readers.
		"oidc_auth_requests":  storage.TenantOrPlatformRows("tenant_id"),
		"oidc_refresh_tokens": storage.TenantOrPlatformRows("tenant_id"),
		"oidc_revoked_tokens": storage.TenantOrPlatformRows("tenant_id"),
		"oidc_public_url":     storage.PlatformRows(),
		// Browser sessions and the applications they signed in to.
		"oidc_browser_sessions": storage.TenantRows("tenant_id"),
		"oidc_session_clients":  storage.TenantRows("tenant_id"),
		// Password reset links: each for one tenant's user.
		"oidc_password_resets": storage.TenantRows("tenant_id"),
	}
	return c
}

// Config wires a Provider.
type Config struct {
	BaseURL   string // the platform issuer, e.g. https://id.example.com (http only on loopback)
	CryptoKey [32]byte
	DB        *storage.DB
	Directory *identity.Directory
	Tenants   *tenants.Registry
	Signing   *signing.Store
	Audit     *audit.Log
	Clock     clock.Clock
	Logger    *slog.Logger

	// ClientIP finds client addresses for throttling and audit (nil: the
	// connection's peer).
	ClientIP *clientip.Resolver

	// ReadCache keeps the tenants the provider reads (a token request's
	// client's tenant, a sign-in's) under the rule of package statecache;
	// zero: none. The Directory keeps its clients the same way
	// (identity.Options.ReadCache).
	ReadCache statecache.Config

	// TenantPicker shows a list of tenants on the platform issuer's login
	// page. It tells anyone which tenants exist: off by default.
	TenantPicker bool

	// LoginDomain, if set, routes sign-ins by subdomain: a login page
	// reached at acme.{LoginDomain} signs in tenant acme's users.
	LoginDomain string

	// AllowPrivateUpstreams lets federation reach tenants' providers on
	// loopback, private and link-local addresses (and over http on
	// loopback). Off, those are refused on the address dialed.
	AllowPrivateUpstreams bool

	// UpstreamTimeout bounds each fetch from a tenant's provider, and the
	// upstream part of each sign-in step (default DefaultUpstreamTimeout).
	UpstreamTimeout time.Duration

	// TokenRatePerIP bounds requests per second from one address to the
	// token, introspection and revocation endpoints (default 1000; burst 2×).
	TokenRatePerIP float64

	AccessTokenLifetime  time.Duration // default 15m
	IDTokenLifetime      time.Duration // default 15m
	RefreshTokenLifetime time.Duration // default 30 days

	// ExchangeTokenLifetime bounds the life of tokens issued by token
	// exchange (default and at most sts.MaxLifetime, 15 minutes). A tenant's
	// shorter access token lifetime, and the subject token's remaining
	// life, bound it further.
	ExchangeTokenLifetime time.Duration

	// Partners decides partners' requests for sessions in tenants (the
	// partner token exchange); nil: the grant is refused.
	Partners *partners.Service

	// Mail sends password reset links; nil: the login page offers no reset.
	Mail *mail.Sender
}

// Provider serves the platform issuer and every silo tenant's issuer.
type Provider struct {
	cfg     Config
	base    *url.URL
	tenants *statecache.Reads[tenant.ID, tenants.Tenant] // Config.ReadCache

	mu      sync.Mutex
	issuers map[tenant.ID]*op.Provider // "" is the platform issuer

	loginByIP *ratelimit.Limiter
	// loginFailures throttles failed sign-ins per (account, address): a
	// guesser elsewhere cannot lock the account's owner out, and a
	// successful sign-in costs nothing.
	loginFailures *ratelimit.Limiter
	tokenByIP     *ratelimit.Limiter // the token, introspection and revocation endpoints
	// authorizeByIP bounds sign-ins started per address: each writes a
	// pending authorization request, and the endpoint needs no
	// credential (the console's client is public and known to all).
	authorizeByIP *ratelimit.Limiter
	// resets bounds reset links per account: 3, then one per 10 minutes.
	resets *ratelimit.Limiter

	// authenticated hands a client that ClientCredentials checked to the
	// token request that follows (by client id; entries live a second).
	authenticated sync.Map

	upstreams *upstreams // tenants' own providers (federation)

	configs sync.Map // tenant.ID → cachedConfig

	crypto *accessTokenCrypto // hands out the access tokens the storage signed

	partnerKeys *lru.Cache[string, *partnerKeySet] // partners' JWKS, by URL
}

type cachedConfig struct {
	access, refresh time.Duration
	at              time.Time
}

const lifetimeTTL = time.Second

// New returns the provider. Issuers are built on their first request.
func New(cfg Config) (*Provider, error) {
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || !u.IsAbs() || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("provider: public URL %q must be an absolute URL", cfg.BaseURL)
	}
	if u.Scheme != "https" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("provider: public URL %q must use https (http only on a loopback host)", cfg.BaseURL)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if cfg.TokenRatePerIP <= 0 {
		cfg.TokenRatePerIP = 1000
	}
	if cfg.AccessTokenLifetime <= 0 {
		cfg.AccessTokenLifetime = 15 * time.Minute
	}
	if cfg.IDTokenLifetime <= 0 {
		cfg.IDTokenLifetime = 15 * time.Minute
	}
	if cfg.RefreshTokenLifetime <= 0 {
		cfg.RefreshTokenLifetime = 30 * 24 * time.Hour
	}
	if err := sts.CheckLifetime(cfg.ExchangeTokenLifetime); err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	if cfg.ExchangeTokenLifetime == 0 {
		cfg.ExchangeTokenLifetime = sts.MaxLifetime
	}
	if cfg.ReadCache.Now == nil {
		cfg.ReadCache.Now = cfg.Clock.Now
	}
	return &Provider{cfg: cfg, base: u, issuers: map[tenant.ID]*op.Provider{}, tenants: statecache.New[tenant.ID, tenants.Tenant](cfg.ReadCache),
		loginByIP: ratelimit.New(1.0/3, 20, 100000), loginFailures: ratelimit.New(1.0/30, 10, 100000),
		tokenByIP: ratelimit.New(cfg.TokenRatePerIP, int(2*cfg.TokenRatePerIP), 100000), crypto: newAccessTokenCrypto(cfg.CryptoKey),
		resets: ratelimit.New(1.0/600, 3, 100000),
		// Ten a second, a hundred at once: many browsers behind one NAT
		// with several applications each checking with prompt=none.
		authorizeByIP: ratelimit.New(10, 100, 100000),
		upstreams:     newUpstreams(newUpstreamClient(cfg.UpstreamTimeout, cfg.AllowPrivateUpstreams), cfg.Clock.Now),
		partnerKeys:   lru.New[string, *partnerKeySet](lru.Options[*partnerKeySet]{Size: upstreamCacheSize, MaxAge: upstreamCacheAge, Now: cfg.Clock.Now})}, nil
}

func isLoopback(host string) bool { return host == "localhost" || host == "127.0.0.1" || host == "::1" }

func (p *Provider) clock() clock.Clock { return p.cfg.Clock }

// issuerURL is the issuer identifier of an issuer.
func (p *Provider) issuerURL(i signing.Issuer) string {
	if i.Tenant == "" {
		return p.base.String()
	}
	return p.base.String() + "/t/" + string(i.Tenant)
}

// APIAudience is the audience of Bulkhead's own API: the platform issuer
// URL. A token carries it (beside the client id) when its client belongs to
// a tenant, or when a platform client asked for the APIScope: only then can
// it call the API, for its tenant and subject to its user's groups.
func (p *Provider) APIAudience() string { return p.base.String() }

// APIScope is the scope a platform client registers and asks for to get
// tokens that call Bulkhead's API for the signed-in user.
const APIScope = "bulkhead:api"

func (p *Provider) audience(c identity.Client, scopes []string) []string {
	if c.TenantID != "" || slices.Contains(scopes, APIScope) {
		return []string{c.ID, p.APIAudience()}
	}
	return []string{c.ID}
}

// loginPath is the path of an issuer's login page. Clients are sent there
// with a relative URL, so a sign-in started on a tenant's login subdomain
// stays on it.
func (p *Provider) loginPath(i signing.Issuer) string {
	path := strings.TrimRight(p.base.Path, "/")
	if i.Tenant != "" {
		path += "/t/" + string(i.Tenant)
	}
	return path + "/login"
}

// Paths lists the URL path prefixes the provider serves on the API listener.
func (p *Provider) Paths() []string {
	prefix := strings.TrimRight(p.base.Path, "/")
	var out []string
	for _, s := range []string{"/.well-known/openid-configuration", "/authorize", "/authorize/", "/oauth/", "/userinfo", "/revoke",
		"/end_session", "/keys", "/login", "/login/callback", "/login/reset", "/login/reset/confirm", "/t/"} {
		out = append(out, prefix+s)
	}
	return out
}

// ServeHTTP routes a request to the platform issuer or to the silo issuer
// named by /t/{tenant}/.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, strings.TrimRight(p.base.Path, "/"))
	issuer := signing.Platform
	if rest, ok := strings.CutPrefix(path, "/t/"); ok {
		id, tail, _ := strings.Cut(rest, "/")
		tid, err := tenant.ParseID(id)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		t, err := p.tenant(r.Context(), tid)
		published := tail == "keys" || tail == ".well-known/openid-configuration"
		if err != nil || (t.Isolation != tenants.Silo && !(published && p.leftSilo(r.Context(), t))) ||
			(t.Status != tenants.Active && t.Status != tenants.Suspended) {
			// Only silo tenants have an issuer of their own; one that moved
			// out keeps publishing its keys until its tokens expire.
			http.NotFound(w, r)
			return
		}
		issuer, path = signing.Issuer{Tenant: tid}, "/"+tail
	}
	o, err := p.issuer(issuer)
	if err != nil {
		p.cfg.Logger.ErrorContext(r.Context(), "build issuer", "err", err)
		http.Error(w, "issuer unavailable", http.StatusInternalServerError)
		return
	}
	if strings.HasPrefix(path, "/oauth/") || path == "/revoke" {
		if ok, _ := p.tokenByIP.Allow(clientip.LimitKey(p.cfg.ClientIP.IP(r)), p.clock().Now()); !ok {
			w.Header().Set("Retry-After", "1")
			writeOAuthError(w, http.StatusTooManyRequests, "slow_down", "too many requests from this address")
			return
		}
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = path
	r2.URL.RawPath = ""
	switch path {
	case "/authorize":
		if ok, _ := p.authorizeByIP.Allow(clientip.LimitKey(p.cfg.ClientIP.IP(r)), p.clock().Now()); !ok {
			// No redirect: the request is not checked, so neither is its
			// redirect URI.
			w.Header().Set("Retry-After", "10")
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "too many sign-ins started from your address; wait a few seconds and try again", http.StatusTooManyRequests)
			return
		}
		// A refused authorization request (an unknown client, a redirect
		// URI that is not registered exactly) is answered by zitadel with
		// an error page, not a redirect: audit it.
		sw := &httpx.StatusWriter{ResponseWriter: w}
		o.ServeHTTP(sw, p.bindBrowser(sw, r2))
		if sw.Status >= 400 {
			clientID := r.URL.Query().Get("client_id")
			if len(clientID) > 64 {
				clientID = clientID[:64]
			}
			p.auditEvent(r.Context(), "", "oauth.authorize_refused", clientID, audit.Denied,
				map[string]string{"issuer": p.issuerURL(issuer), "status": strconv.Itoa(sw.Status)})
		}
		return
	case "/.well-known/openid-configuration":
		p.discovery(w, r2, issuer, o)
		return
	case "/login":
		p.login(w, r2, issuer, o)
		return
	case "/login/callback":
		p.federationCallback(w, r2, issuer, o)
		return
	case "/login/reset":
		p.resetRequest(w, r2, issuer)
		return
	case "/login/reset/confirm":
		p.resetConfirm(w, r2, issuer)
		return
	case "/authorize/callback":
		// zitadel hands the code out here once the request is done: only
		// to the browser that started it.
		s := &issuerStorage{p: p, issuer: issuer}
		id := r2.URL.Query().Get("id")
		if len(id) > 64 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if a, err := s.loadAuthRequest(r.Context(), "id", id); err == nil && !sameBrowser(r2, a) {
			p.auditEvent(r.Context(), a.tenantID, "login.other_browser", a.userID, audit.Denied,
				map[string]string{"client_id": a.ClientID, "source_ip": p.cfg.ClientIP.IP(r), "step": "authorize_callback"})
			otherBrowser(w)
			return
		}
	case "/end_session":
		// The browser's session, which TerminateSessionFromRequest may end.
		r2 = p.withEnding(w, r2, issuer)
	case "/oauth/token":
		p.token(w, r2, issuer, o)
		return
	case "/oauth/introspect":
		p.introspect(w, r2, issuer, o)
		return
	case "/revoke":
		p.revoke(w, r2, issuer, o)
		return
	case "/userinfo":
		p.userinfo(w, r2, issuer, o)
		return
	}
	o.ServeHTTP(w, r2)
}

func (p *Provider) issuer(i signing.Issuer) (*op.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if o, ok := p.issuers[i.Tenant]; ok {
		return o, nil
	}
	conf := &op.Config{
		CryptoKey: p.cfg.CryptoKey,
		// Under the issuer's own URL (a base path, a silo tenant's /t/{id}),
		// so the signed-out page is that issuer's, with its branding.
		DefaultLogoutRedirectURI: p.issuerURL(i) + "/login?logged_out=1",
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		GrantTypeRefreshToken:    true,
		SupportedUILocales:       []language.Tag{language.English},
		SupportedClaims:          supportedClaims,
		SupportedScopes:          supportedScopes,
	}
	opts := []op.Option{op.WithLogger(p.cfg.Logger), op.WithCrypto(p.crypto),
		// Tokens presented back (userinfo, introspection, revocation, token
		// exchange) are verified with the algorithms Bulkhead signs with.
		op.WithAccessTokenVerifierOpts(op.WithSupportedAccessTokenSigningAlgorithms(string(jose.ES256), string(jose.EdDSA)))}
	if p.base.Scheme == "http" {
		opts = append(opts, op.WithAllowInsecure())
	}
	o, err := op.NewProvider(conf, &issuerStorage{p: p, issuer: i}, op.StaticIssuer(p.issuerURL(i)), opts...)
	if err != nil {
		return nil, fmt.Errorf("provider: issuer %s: %w", p.issuerURL(i), err)
	}
	p.issuers[i.Tenant] = o
	return o, nil
}

// OffboardingStep returns the step that revokes every refresh token of an
// offboarded tenant and forgets its pending sign-ins. (Access tokens are
// short-lived JWTs; the API refuses those of a tenant that is not active.)
func (p *Provider) OffboardingStep() tenants.Step {
	return tenants.Step{Name: "oidc-tokens", Run: func(ctx context.Context, tx *storage.Tx, _ tenants.Tenant) error {
		if _, err := tx.Exec(ctx, `UPDATE oidc_refresh_tokens SET status = 'revoked' WHERE tenant_id = ?`, tx.TenantID()); err != nil {
			return fmt.Errorf("provider: revoke tokens: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM oidc_auth_requests WHERE tenant_id = ?`, tx.TenantID()); err != nil {
			return fmt.Errorf("provider: forget sign-ins: %w", err)
		}
		for _, table := range []string{"oidc_password_resets", "oidc_browser_sessions", "oidc_session_clients"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = ?`, tx.TenantID()); err != nil {
				return fmt.Errorf("provider: forget %s: %w", table, err)
			}
		}
		return nil
	}}
}

// lifetimes returns the access and refresh token lifetimes of a tenant's
// tokens: its own configuration where set, else the provider's defaults.
// A tenant's configuration is remembered for lifetimeTTL, so a burst of
// tokens reads it once; a change takes effect within that time.
func (p *Provider) lifetimes(ctx context.Context, tid tenant.ID) (access, refresh time.Duration) {
	access, refresh = p.cfg.AccessTokenLifetime, p.cfg.RefreshTokenLifetime
	if tid == "" {
		return access, refresh
	}
	now := p.clock().Now()
	if v, ok := p.configs.Load(tid); ok {
		if c := v.(cachedConfig); now.Sub(c.at) < lifetimeTTL && now.Sub(c.at) >= 0 {
			return c.access, c.refresh
		}
	}
	defer func() { p.configs.Store(tid, cachedConfig{access, refresh, now}) }()
	if c, err := p.cfg.Directory.Config(ctx, tid); err == nil {
		if c.AccessTokenLifetime > 0 {
			access = time.Duration(c.AccessTokenLifetime)
		}
		if c.RefreshTokenLifetime > 0 {
			refresh = time.Duration(c.RefreshTokenLifetime)
		}
	}
	return access, refresh
}

// Purge deletes what has expired by now: pending sign-ins, refresh tokens
// (a replay of one past its expiry is refused anyway), the revocation
// list's entries for access tokens that expired, reset links and browser
// sessions. It returns how many rows
// it deleted.
func (p *Provider) Purge(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		for _, table := range []string{"oidc_auth_requests", "oidc_refresh_tokens", "oidc_revoked_tokens", "oidc_password_resets"} {
			res, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE expires_at < ?`, now.UnixMicro())
			if err != nil {
				return fmt.Errorf("provider: purge %s: %w", table, err)
			}
			k, _ := res.RowsAffected()
			n += k
		}
		// Browser sessions past their absolute or idle timeout, and the
		// record of their applications (nobody is told: they ended by
		// time, and their refresh tokens expire by theirs).
		res, err := tx.Exec(ctx, `DELETE FROM oidc_browser_sessions WHERE expires_at < ? OR last_seen < ?`,
			now.UnixMicro(), now.Add(-SessionIdle).UnixMicro())
		if err != nil {
			return fmt.Errorf("provider: purge browser sessions: %w", err)
		}
		k, _ := res.RowsAffected()
		n += k
		if _, err := tx.Exec(ctx, `DELETE FROM oidc_session_clients WHERE sid NOT IN (SELECT sid FROM oidc_browser_sessions)`); err != nil {
			return fmt.Errorf("provider: purge sessions' clients: %w", err)
		}
		return nil
	})
	return n, err
}

// Run purges expired rows every interval until ctx ends, and returns then.
func (p *Provider) Run(ctx context.Context, interval time.Duration) error {
	t, tick := p.clock().NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			if n, err := p.Purge(ctx, p.clock().Now()); err != nil {
				p.cfg.Logger.ErrorContext(ctx, "purge expired sign-ins and tokens", "err", err)
			} else if n > 0 {
				p.cfg.Logger.InfoContext(ctx, "purged expired sign-ins and tokens", "rows", n)
			}
		}
	}
}

// Revoked reports whether an access token (by its jti) was revoked.
func (p *Provider) Revoked(ctx context.Context, tokenID string) bool {
	return (&issuerStorage{p: p}).revoked(ctx, tokenID)
}

// IssuerOf returns the issuer URL that a tenant's tokens must carry: its own
// for a silo tenant, the platform's otherwise.
func (p *Provider) IssuerOf(t tenants.Tenant) string {
	if t.Isolation == tenants.Silo {
		return p.issuerURL(signing.Issuer{Tenant: t.ID})
	}
	return p.issuerURL(signing.Platform)
}

// PriorIssuerOf returns the issuer a tier migration moved the tenant
// away from ("" if it never moved, or its issuer did not change): tokens
// it issued before the move stay valid until they expire, and a silo
// issuer left behind keeps publishing its keys and discovery meanwhile.
func (p *Provider) PriorIssuerOf(t tenants.Tenant) string {
	if t.PriorIsolation == "" || (t.PriorIsolation == tenants.Silo) == (t.Isolation == tenants.Silo) {
		return ""
	}
	return p.IssuerOf(tenants.Tenant{ID: t.ID, Isolation: t.PriorIsolation})
}

// leftSilo reports whether tenant t moved out of silo isolation so
// recently that tokens of its silo issuer may still be unexpired.
func (p *Provider) leftSilo(ctx context.Context, t tenants.Tenant) bool {
	if t.PriorIsolation != tenants.Silo || t.Isolation == tenants.Silo {
		return false
	}
	access, _ := p.lifetimes(ctx, t.ID) // the tenant's own, if it set one
	longest := max(access, p.cfg.AccessTokenLifetime, p.cfg.IDTokenLifetime, p.cfg.ExchangeTokenLifetime)
	return p.clock().Now().Before(t.IsolationChangedAt.Add(longest))
}

func (p *Provider) userTenant(ctx context.Context, userID string) (tenant.ID, error) {
	if ids.Valid(userID, "opr") {
		return "", nil // an operator account: no tenant
	}
	return p.cfg.Directory.UserTenantAllTenants(ctx, userID)
}

// auditEvent records a sign-in or token event in the tenant's chain (or the
// platform's when tid is "").
func (p *Provider) auditEvent(ctx context.Context, tid tenant.ID, action, target string, outcome audit.Outcome, detail map[string]string) {
	p.audit(ctx, p.cfg.Audit.Append, audit.Event{TenantID: string(tid), Principal: "oidc", Action: action, Target: target, Outcome: outcome, Detail: detail})
}

// audit writes ev with write (Append or Record), logging a failure: the
// act it records has happened either way.
func (p *Provider) audit(ctx context.Context, write func(context.Context, audit.Event) error, ev audit.Event) {
	if err := write(context.WithoutCancel(ctx), ev); err != nil {
		p.cfg.Logger.ErrorContext(ctx, "audit append failed", "err", err, "action", ev.Action)
	}
}

// tenant reads tenant id through the read cache (Config.ReadCache).
func (p *Provider) tenant(ctx context.Context, id tenant.ID) (tenants.Tenant, error) {
	// "Not found" is kept like a tenant (under the same rule): a request
	// naming a tenant that does not exist costs as little as one naming a
	// tenant that does, so its time tells nothing.
	return p.tenants.Get(ctx, id, func(ctx context.Context) (tenants.Tenant, error) { return p.cfg.Tenants.Get(ctx, id) },
		func(_ tenants.Tenant, err error) bool { return err == nil || errs.Is(err, "tenant_not_found") })
}

// auditIssued records an issued token: an act of its own, which changes
// no state that the nodes' caches keep (audit.Log.Record).
func (p *Provider) auditIssued(ctx context.Context, tid tenant.ID, target string, detail map[string]string) {
	p.audit(ctx, p.cfg.Audit.Record, audit.Event{TenantID: string(tid), Principal: "oidc", Action: "oauth.token_issued",
		Target: target, Outcome: audit.Success, Detail: detail})
}
