// Package gateway is Bulkhead's edge: a reverse proxy in front of the SaaS
// application that resolves each request's tenant (a verified Bulkhead
// token, the tenant's custom domain, its subdomain), refuses what it cannot
// attribute, and forwards the rest to the application's upstream for that
// tenant with a signed tenant assertion in place of anything the client
// said about tenants.
//
// Nothing a client sends decides the tenant on its own: tenant headers,
// Forwarded and X-Forwarded-* are removed before the request leaves, and
// the upstream learns the tenant from X-Bulkhead-Tenant-Assertion, a
// 60-second JWT it verifies with sdk/auth.
package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/clientip"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/usage"
	"github.com/bulkhead-dev/bulkhead/internal/httpx"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/ratelimit"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Config wires a Gateway.
type Config struct {
	Tenants TenantSource
	// Domains finds the tenant of a custom domain; nil: none.
	Domains DomainOwner
	// Verifiers check bearer tokens: the API's own.
	Verifiers []authn.Verifier
	// AppDomain makes {tenant}.{AppDomain} a tenant's host; empty: none.
	AppDomain string
	// Asserter signs the tenant assertion of every forwarded request.
	Asserter *Asserter
	// Placements gives a tenant's placement model; nil: every tenant is
	// served by a route's default upstream.
	Placements Placements
	// Cache keeps tenant reads for a moment (default: none).
	Cache StateCache
	// Admitter is asked before each request is forwarded and told of each
	// response; nil admits everything.
	Admitter Admitter
	// AllowPrivateUpstreams lets upstreams be loopback, private or
	// link-local addresses.
	AllowPrivateUpstreams bool
	// BodyTimeout bounds the time a client takes to send a request body
	// (default DefaultBodyTimeout); past it the client gets 408.
	BodyTimeout time.Duration
	Clock       clock.Clock
	Logger      *slog.Logger
}

// Gateway is the edge handler. Serve it on its own listener.
type Gateway struct {
	cfg       Config
	table     atomic.Pointer[Table]
	setMu     sync.Mutex // one SetRoutes at a time: the table and its upstreams agree
	upstreams *upstreams
	// misses bounds, per client address, the requests and handshakes for
	// hosts or tenants that do not exist: each made-up name costs a
	// database read (a known one is cached), so past the bound an address
	// is refused before any read.
	misses *ratelimit.Limiter
}

// Bounds of one address's requests for unknown hosts and tenants.
const (
	missRate  = 20
	missBurst = 100
	missAddrs = 100_000
)

// New returns a Gateway with no routes.
func New(cfg Config) *Gateway {
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.Admitter == nil {
		cfg.Admitter = AdmitAll{}
	}
	cfg.AppDomain = canonicalHost(cfg.AppDomain)
	sc := newStateCache(cfg.Cache, cfg.Clock, cfg.Tenants, cfg.Domains)
	cfg.Tenants = sc
	if cfg.Domains != nil {
		cfg.Domains = sc
	}
	g := &Gateway{cfg: cfg, misses: ratelimit.New(missRate, missBurst, missAddrs)}
	g.upstreams = newUpstreams(cfg.AllowPrivateUpstreams, cfg.Logger)
	g.table.Store(NewTable(nil))
	return g
}

// ValidateRoute checks r against the gateway's app domain and upstream
// rules (Route.Validate).
func (g *Gateway) ValidateRoute(r Route) error {
	return r.Validate(g.cfg.AppDomain, g.cfg.AllowPrivateUpstreams)
}

// SetRoutes replaces the routes the gateway serves, and drops the
// upstreams that no route names any more (a route deleted, or its upstream
// or timeout changed), closing their idle connections: otherwise each
// would keep its pool until the node stops.
func (g *Gateway) SetRoutes(t *Table) {
	g.setMu.Lock()
	defer g.setMu.Unlock()
	g.table.Store(t)
	g.upstreams.retain(t.upstreamKeys())
}

func (g *Gateway) routes() *Table { return g.table.Load() }

// Close closes the upstreams' idle connections.
func (g *Gateway) Close() { g.upstreams.close() }

// notFound is the one answer to every request the gateway cannot
// attribute to a tenant and a route: an unknown host or tenant, sources
// that disagree, a path no route serves. Its body never varies.
var notFound = httpx.Problem{Problem: api.Problem{Type: httpx.ProblemType("not_found"), Title: "Not Found", Status: http.StatusNotFound,
	Code: "not_found", Detail: "nothing is served here"}}

var misdirected = httpx.Problem{Problem: api.Problem{Type: httpx.ProblemType("misdirected_request"), Title: "Misdirected Request",
	Status: http.StatusMisdirectedRequest, Code: "misdirected_request", Detail: "the Host does not match the TLS server name"}}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rid := r.Header.Get("X-Request-Id")
	if !httpx.ValidRequestID(rid) {
		rid = ids.New("req")
	}
	w.Header().Set("X-Request-Id", rid)
	if !g.misses.Ready(peerAddr(r.RemoteAddr), g.cfg.Clock.Now()) {
		// Past its bound of misses, an address is answered from what is
		// cached (the tenants its users reach), never with a new read.
		ctx = context.WithValue(ctx, cacheOnlyKey{}, true)
	}
	host := canonicalHost(r.Host)
	if r.TLS != nil && !strings.EqualFold(strings.TrimSuffix(r.TLS.ServerName, "."), host) {
		// A connection opened for one name carries requests for that name
		// only (RFC 9110 §15.5.20): no reusing another tenant's connection.
		httpx.WriteProblem(w, misdirected)
		return
	}
	peer, _ := netip.ParseAddrPort(r.RemoteAddr)
	res, err := g.resolve(ctx, host, bearer(r), peer.Addr())
	if err != nil {
		g.fail(w, r, err)
		return
	}
	_, sub := g.subdomain(host)
	route, ok := g.routes().match(host, r.URL.Path, sub, res.custom)
	if !ok {
		httpx.WriteProblem(w, notFound)
		return
	}
	t, err := g.cfg.Tenants.Get(ctx, res.tenant)
	if err != nil {
		if errs.Is(err, "tenant_not_found") {
			err = errNoTenant
		}
		g.fail(w, r, err)
		return
	}
	switch t.Status {
	case tenants.Active:
	case tenants.Suspended:
		httpx.WriteProblem(w, httpx.ProblemFor(errs.E(errs.Forbidden, "tenant_suspended", "the tenant is suspended")))
		return
	default:
		httpx.WriteProblem(w, notFound)
		return
	}
	d, err := g.cfg.Admitter.Admit(ctx, t.ID, t.Tier)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	if !d.Allowed {
		d.Reject(w)
		return
	}
	d.SetHeaders(w.Header())
	target, err := g.upstreamFor(ctx, route, t)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	jwt, err := g.cfg.Asserter.Assert(ctx, t.ID, t.Tier, res.subject)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	start := time.Now()
	body := g.limitBody(w, r)
	defer body.finish()
	sw := &httpx.StatusWriter{ResponseWriter: w}
	up := g.upstreams.get(target, route.timeout())
	up.proxy.ServeHTTP(sw, r.WithContext(context.WithValue(ctx, forwardKey{}, &forward{
		tenant: t.ID, assertion: jwt, requestID: rid, body: body, bodyTimeout: g.cfg.BodyTimeout})))
	// The answer goes to the client now, not when this handler returns:
	// what follows is bookkeeping, and its time was the client's wait.
	if sw.Status != 0 {
		http.NewResponseController(sw).Flush()
	}
	g.cfg.Admitter.Record(context.WithoutCancel(ctx), usage.Usage{Tenant: t.ID, Tier: t.Tier, Method: r.Method, Path: r.URL.Path,
		Host: r.Host, Status: sw.Status, BytesIn: max(r.ContentLength, 0), BytesOut: sw.Bytes, Latency: time.Since(start), RequestID: rid})
}

// fail answers err: errNoTenant as the one not found, an errs.Error as
// its problem, anything else as an internal error (logged).
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errOverBudget) {
		httpx.WriteProblem(w, tooManyMisses)
		return
	}
	if errors.Is(err, errNoTenant) {
		g.missed(peerAddr(r.RemoteAddr))
		httpx.WriteProblem(w, notFound)
		return
	}
	if _, ok := errs.As(err); !ok {
		g.cfg.Logger.ErrorContext(r.Context(), "gateway request failed", "err", err, "request_id", w.Header().Get("X-Request-Id"))
	}
	httpx.WriteProblem(w, httpx.ProblemFor(err))
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// upstreamFor chooses the route's upstream for t: a silo tenant's own,
// when the tenant's data is placed as a silo and the route names one; the
// default upstream otherwise.
func (g *Gateway) upstreamFor(ctx context.Context, r Route, t tenants.Tenant) (string, error) {
	u, ok := r.Silo[t.ID]
	if !ok {
		return r.Upstream, nil
	}
	if g.cfg.Placements == nil {
		return r.Upstream, nil
	}
	model, err := g.cfg.Placements.Model(ctx, t.ID)
	if err != nil {
		return "", err
	}
	if model == "silo" {
		return u, nil
	}
	return r.Upstream, nil
}

// Placements gives a tenant's placement model ("pool", "bridge", "silo"),
// "" for a tenant without a placement.
type Placements interface {
	Model(ctx context.Context, id tenant.ID) (string, error)
}

// tooManyMisses answers an address past its bound of requests for hosts
// and tenants that do not exist.
var tooManyMisses = httpx.ProblemFor(&errs.Error{Kind: errs.Busy, Code: "rate_limited",
	Detail: "too many requests for hosts or tenants that do not exist from this address", RetryAfter: time.Second})

// missed charges address peer for a host or tenant that does not exist.
func (g *Gateway) missed(peer string) { g.misses.Take(peer, g.cfg.Clock.Now()) }

// peerAddr is the limit key (clientip.LimitKey) of a RemoteAddr: the
// gateway is the edge, the peer is the client (no forwarded header is
// believed).
func peerAddr(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	return clientip.LimitKey(host)
}
