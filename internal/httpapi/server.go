// Package httpapi is Bulkhead's HTTP API: routing, authentication,
// problem+json errors, audit of failed and refused requests, metrics and the
// OpenAPI document. Handlers are thin: they decode, call a service, encode.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/authz"
	"github.com/bulkhead-dev/bulkhead/internal/clientip"
	"github.com/bulkhead-dev/bulkhead/internal/compute"
	"github.com/bulkhead-dev/bulkhead/internal/connect"
	"github.com/bulkhead-dev/bulkhead/internal/data"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/fairshare"
	"github.com/bulkhead-dev/bulkhead/internal/gateway"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/certs"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/domains"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/usage"
	"github.com/bulkhead-dev/bulkhead/internal/httpx"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/logging"
	"github.com/bulkhead-dev/bulkhead/internal/outbox"
	"github.com/bulkhead-dev/bulkhead/internal/partners"
	"github.com/bulkhead-dev/bulkhead/internal/posture"
	"github.com/bulkhead-dev/bulkhead/internal/ratelimit"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// Config holds the services the API serves.
type Config struct {
	DB            *storage.DB
	Tenants       *tenants.Registry
	Directory     *identity.Directory
	Authz         *authz.Service
	KMS           *kms.Service
	Functions     *compute.Registry
	Connect       *connect.Service
	Data          *data.Service
	Usage         *usage.Service // the gateway's usage plans and records
	GatewayRoutes *gateway.Store // the edge gateway's routes
	Domains       *domains.Service
	Certs         *certs.Manager  // nil without ACME CAs
	Events        *events.Server  // tenants' event streams; nil when off
	Outbox        *outbox.Service // Bulkhead's own events: the operator's webhooks
	Partners      *partners.Service
	Posture       *posture.Service
	Sessions      Sessions // the users' browser sessions (the OpenID provider)
	Audit         *audit.Log
	Verifiers     []authn.Verifier   // tried in order for every bearer token
	ClientIP      *clientip.Resolver // finds client addresses (nil: the connection's peer)
	Logger        *slog.Logger
	Metrics       *prometheus.Registry // the API registers its collectors here
	Version       string
	// OnboardingWait bounds how long POST /v1/tenants waits for the
	// tenant's onboarding before answering 202 (default DefaultOnboardingWait).
	OnboardingWait time.Duration
}

// DefaultOnboardingWait is how long a create waits for onboarding by default.
const DefaultOnboardingWait = 10 * time.Second

// Server is the API handler.
type Server struct {
	Config
	log      *slog.Logger
	mux      *http.ServeMux
	routes   []Route
	reqs     *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	failures *ratelimit.Limiter
	// unaudited counts authentication failures over a source IP's audit limit.
	unaudited prometheus.Counter
	// fnStarts counts function invocations by function, tenant tier and start (cold, warm).
	fnStarts *prometheus.CounterVec
	rates    *tierRates // nil without a tenant registry
	inflight *fairshare.Slots
	// waitingPulls bounds each tenant's long-poll stream pulls.
	waitingPulls *fairshare.Slots
}

// Access says who may call a route.
type Access int

// The access levels.
const (
	Public      Access = iota // no credential
	Operator                  // an operator credential
	Tenant                    // an operator, or a tenant credential for the tenant named by {tenant}
	TenantAdmin               // an operator, or a credential of an admin (group "admins") of the tenant named by {tenant}
	Self                      // a user's own token, acting on that user (the /v1/me routes)
	TenantData                // a tenant credential acting on its own tenant's data (the /v1/kms routes); never the operator
	Invoker                   // an operator or any tenant credential; the handler finds the tenant (function invocation)
	// AuditReader is an operator, an admin of the tenant named by {tenant},
	// or a client credential of that tenant granted the scope AuditReadScope.
	// A tenant's audit trail records what its admin routes hide (users,
	// clients, keys, connections), so any credential of the tenant is not enough.
	AuditReader
)

// AuditReadScope is the scope a tenant's client must be registered for, and
// ask for, to read its tenant's audit trail with a client-credentials token.
// It grants nothing to a user's token: a user reads the trail as an admin.
const AuditReadScope = "audit:read"

// Route is one registered API route.
type Route struct {
	Method  string
	Path    string // ServeMux pattern path, e.g. /v1/tenants/{tenant}
	Name    string // audit action and metrics label, e.g. "tenant.update"
	Access  Access
	handler func(http.ResponseWriter, *http.Request) error
}

// New returns the API server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.OnboardingWait <= 0 {
		cfg.OnboardingWait = DefaultOnboardingWait
	}
	s := &Server{Config: cfg, log: cfg.Logger, mux: http.NewServeMux(), inflight: newInflight(),
		waitingPulls: fairshare.New(1<<30, maxWaitingPulls)}
	s.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bulkhead_http_requests_total", Help: "API requests by route and status code.",
	}, []string{"route", "code"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "bulkhead_http_request_duration_seconds", Help: "API request latency by route.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route"})
	s.unaudited = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bulkhead_authn_failures_unaudited_total",
		Help: "Authentication failures not written to the audit trail because their source IP was over its limit.",
	})
	// Authentication failures are audited up to 20 per source IP, then one per 6 s.
	s.failures = ratelimit.New(1.0/6, 20, 10000)
	s.fnStarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bulkhead_function_invocations_total", Help: "Function invocations by function, tenant tier and start (cold or warm).",
	}, []string{"function", "tier", "start"})
	cfg.Metrics.MustRegister(s.reqs, s.latency, s.unaudited, s.fnStarts)
	if cfg.Tenants != nil {
		s.rates = newTierRates(cfg.Tenants.Tiers(), cfg.Metrics)
	}
	if cfg.Functions != nil {
		engine := cfg.Functions.Engine()
		cfg.Metrics.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "bulkhead_function_evictions_total", Help: "Idle function environments destroyed (idle TTL or the node's cap).",
		}, func() float64 { return float64(engine.Evictions()) }))
	}

	s.routes = []Route{
		{"GET", "/healthz", "health", Public, s.healthz},
		{"GET", "/readyz", "ready", Public, s.readyz},
		{"GET", "/v1/openapi.json", "openapi", Public, s.openapi},
		{"GET", "/v1/tiers", "tier.list", Operator, s.listTiers},
		{"POST", "/v1/tenants", "tenant.create", Operator, s.createTenant},
		{"GET", "/v1/tenants", "tenant.list", Operator, s.listTenants},
		{"GET", "/v1/tenants/{tenant}", "tenant.get", Tenant, s.getTenant},
		{"PATCH", "/v1/tenants/{tenant}", "tenant.update", Operator, s.updateTenant},
		{"DELETE", "/v1/tenants/{tenant}", "tenant.delete", Operator, s.deleteTenant},
		{"POST", "/v1/tenants/{tenant}/suspend", "tenant.suspend", Operator, s.suspendTenant},
		{"POST", "/v1/tenants/{tenant}/resume", "tenant.resume", Operator, s.resumeTenant},
		{"GET", "/v1/tenants/{tenant}/workflows", "tenant.workflows", Operator, s.tenantWorkflows},
		{"GET", "/v1/tenants/{tenant}/audit", "audit.list_tenant", AuditReader, s.listTenantAudit},
		{"POST", "/v1/tenants/{tenant}/users", "user.create", TenantAdmin, s.createUser},
		{"GET", "/v1/tenants/{tenant}/users", "user.list", TenantAdmin, s.listUsers},
		{"GET", "/v1/tenants/{tenant}/users/{user}", "user.get", TenantAdmin, s.getUser},
		{"PATCH", "/v1/tenants/{tenant}/users/{user}", "user.update", TenantAdmin, s.updateUser},
		{"DELETE", "/v1/tenants/{tenant}/users/{user}", "user.delete", TenantAdmin, s.deleteUser},
		{"GET", "/v1/tenants/{tenant}/users/{user}/sessions", "user.session_list", TenantAdmin, s.listUserSessions},
		{"DELETE", "/v1/tenants/{tenant}/users/{user}/sessions/{session}", "user.session_end", TenantAdmin, s.endUserSession},
		{"POST", "/v1/tenants/{tenant}/users/{user}/totp", "user.totp_enroll", TenantAdmin, s.enrollTOTP},
		{"POST", "/v1/tenants/{tenant}/users/{user}/totp/confirm", "user.totp_confirm", TenantAdmin, s.confirmTOTP},
		{"DELETE", "/v1/tenants/{tenant}/users/{user}/totp", "user.totp_remove", TenantAdmin, s.removeTOTP},
		{"GET", "/v1/tenants/{tenant}/idp", "identity.idp_get", TenantAdmin, s.getIdP},
		{"PUT", "/v1/tenants/{tenant}/idp", "identity.idp_set", TenantAdmin, s.setIdP},
		{"DELETE", "/v1/tenants/{tenant}/idp", "identity.idp_delete", TenantAdmin, s.deleteIdP},
		{"GET", "/v1/tenants/{tenant}/identity-config", "identity.config_get", TenantAdmin, s.getIdentityConfig},
		{"PATCH", "/v1/tenants/{tenant}/identity-config", "identity.config_update", TenantAdmin, s.updateIdentityConfig},
		{"GET", "/v1/tenants/{tenant}/branding", "identity.branding_get", TenantAdmin, s.getBranding},
		{"PUT", "/v1/tenants/{tenant}/branding", "identity.branding_set", TenantAdmin, s.setBranding},
		{"DELETE", "/v1/tenants/{tenant}/branding", "identity.branding_delete", TenantAdmin, s.deleteBranding},
		{"POST", "/v1/tenants/{tenant}/groups", "group.create", TenantAdmin, s.createGroup},
		{"GET", "/v1/tenants/{tenant}/groups", "group.list", TenantAdmin, s.listGroups},
		{"PUT", "/v1/tenants/{tenant}/groups/{group}/members/{user}", "group.add_member", TenantAdmin, s.addMember},
		{"DELETE", "/v1/tenants/{tenant}/groups/{group}/members/{user}", "group.remove_member", TenantAdmin, s.removeMember},
		{"POST", "/v1/tenants/{tenant}/clients", "client.create", TenantAdmin, s.createTenantClient},
		{"GET", "/v1/tenants/{tenant}/clients", "client.list", TenantAdmin, s.listTenantClients},
		{"DELETE", "/v1/tenants/{tenant}/clients/{client}", "client.delete", TenantAdmin, s.deleteTenantClient},
		{"POST", "/v1/clients", "client.create_platform", Operator, s.createPlatformClient},
		{"GET", "/v1/clients", "client.list_platform", Operator, s.listPlatformClients},
		{"DELETE", "/v1/clients/{client}", "client.delete_platform", Operator, s.deletePlatformClient},
		{"POST", "/v1/operators", "operator.create", Operator, s.createOperator},
		{"GET", "/v1/operators", "operator.list", Operator, s.listOperators},
		{"GET", "/v1/operators/{operator}", "operator.get", Operator, s.getOperator},
		{"POST", "/v1/operators/{operator}/disable", "operator.disable", Operator, s.disableOperator},
		{"DELETE", "/v1/operators/{operator}", "operator.delete", Operator, s.deleteOperator},
		{"GET", "/v1/me", "me.get", Self, s.getMe},
		{"GET", "/v1/me/sessions", "me.session_list", Self, s.listMySessions},
		{"DELETE", "/v1/me/sessions/{session}", "me.session_end", Self, s.endMySession},
		{"POST", "/v1/me/totp", "me.totp_enroll", Self, s.enrollMyTOTP},
		{"POST", "/v1/me/totp/confirm", "me.totp_confirm", Self, s.confirmMyTOTP},
		{"GET", "/v1/audit", "audit.list", Operator, s.listAudit},
		{"POST", "/v1/audit/verify", "audit.verify", Operator, s.verifyAudit},
	}
	s.routes = append(s.routes, s.authzRoutes()...)
	s.routes = append(s.routes, s.kmsRoutes()...)
	s.routes = append(s.routes, s.functionRoutes()...)
	s.routes = append(s.routes, s.connectionRoutes()...)
	s.routes = append(s.routes, s.dataRoutes()...)
	s.routes = append(s.routes, s.migrationRoutes()...)
	s.routes = append(s.routes, s.usageRoutes()...)
	s.routes = append(s.routes, s.gatewayRoutes()...)
	s.routes = append(s.routes, s.domainRoutes()...)
	s.routes = append(s.routes, s.certRoutes()...)
	s.routes = append(s.routes, s.streamRoutes()...)
	s.routes = append(s.routes, s.webhookRoutes()...)
	s.routes = append(s.routes, s.partnerRoutes()...)
	if cfg.Posture != nil {
		s.routes = append(s.routes, s.postureRoutes()...)
	}
	for _, rt := range s.routes {
		if (rt.Access == Tenant || rt.Access == TenantAdmin || rt.Access == AuditReader) && !strings.Contains(rt.Path, "{tenant}") {
			// authorize matches a tenant credential against {tenant}; a route
			// without it would let any tenant through.
			panic("httpapi: tenant-access route " + rt.Path + " does not name {tenant}")
		}
		if rt.Access == TenantData && strings.Contains(rt.Path, "{tenant}") {
			// Its tenant is the credential's, never the path's.
			panic("httpapi: tenant-data route " + rt.Path + " names {tenant}")
		}
		s.mux.Handle(rt.Method+" "+rt.Path, s.wrap(rt))
	}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("/", s.noRoute)
	return s
}

// noRoute answers a request no route matched: 405 with Allow when the path
// exists for other methods, else 404.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		s.writeError(w, r, errs.E(errs.NotFound, "route_not_found", "no API route %s %s", r.Method, r.URL.Path))
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	s.writeError(w, r, errs.E(errs.MethodNotAllowed, "method_not_allowed", "%s does not take %s; it takes %s",
		r.URL.Path, r.Method, strings.Join(allow, ", ")))
}

// Routes returns the registered API routes (not /metrics).
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rid := r.Header.Get("X-Request-Id")
	if !httpx.ValidRequestID(rid) {
		rid = ids.New("req")
	}
	ctx = context.WithValue(ctx, requestIDKey{}, rid)
	ctx = context.WithValue(ctx, clientIPKey{}, s.ClientIP.IP(r))
	ctx = logging.With(ctx, slog.String("request_id", rid))
	w.Header().Set("X-Request-Id", rid)
	s.mux.ServeHTTP(w, r.WithContext(ctx))
}

type requestIDKey struct{}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// wrap gives a route its authentication, access check, panic recovery,
// metrics, logging and the audit of failed state changes.
func (s *Server) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &httpx.StatusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				s.log.ErrorContext(r.Context(), "panic in handler", "route", rt.Name, "panic", p)
				if sw.Status == 0 {
					s.writeError(sw, r, errs.E(errs.Internal, "internal", "panic"))
				}
			}
			s.reqs.WithLabelValues(rt.Name, strconv.Itoa(sw.Status)).Inc()
			s.latency.WithLabelValues(rt.Name).Observe(time.Since(start).Seconds())
		}()
		if rt.Access != Public {
			ctx, err := s.authenticate(r)
			if err != nil {
				s.auditFailure(r, rt, audit.Denied, err)
				s.writeError(sw, r, err)
				return
			}
			r = r.WithContext(ctx)
			if err := s.authorize(r, rt); err != nil {
				s.auditFailure(r, rt, audit.Denied, err)
				s.writeError(sw, r, err)
				return
			}
			// Over its tier's rate: refused before any work, and not
			// audited one by one (the metric counts them).
			ctx, done, err := s.limitTenant(r)
			if err != nil {
				s.writeError(sw, r, err)
				return
			}
			defer done()
			r = r.WithContext(ctx)
		}
		if id, err := tenant.ParseID(r.PathValue("tenant")); err == nil {
			r = r.WithContext(tenant.WithID(r.Context(), id))
		}
		if err := rt.handler(sw, r); err != nil {
			if r.Method != http.MethodGet {
				s.auditFailure(r, rt, audit.Failure, err)
			}
			s.writeError(sw, r, err)
		}
		s.log.DebugContext(r.Context(), "request", "route", rt.Name, "status", sw.Status, "duration", time.Since(start))
	})
}

func (s *Server) authenticate(r *http.Request) (context.Context, error) {
	h := r.Header.Get("Authorization")
	scheme, token, _ := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if h != "" && (!strings.EqualFold(scheme, "Bearer") || token == "") {
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the Authorization header must be \"Bearer <token>\"")
	}
	return authn.Authenticate(r.Context(), token, s.Verifiers...)
}

// authorize checks the route's access level. A tenant credential naming
// another tenant gets 404, as if that tenant did not exist (invariant 1).
func (s *Server) authorize(r *http.Request, rt Route) error {
	if rt.Access == Self {
		if tc, ok := tenant.FromContext(r.Context()); ok && strings.HasPrefix(tc.Principal, "user:") {
			if tc.Actor != "" {
				return errs.E(errs.Forbidden, "delegated_token_not_allowed",
					"%s needs the user's own token; a credential a service obtained for the user (token exchange) cannot call it", rt.Name)
			}
			return nil
		}
		return errs.E(errs.Forbidden, "user_token_required", "%s acts on the signed-in user: call it with a user's token", rt.Name)
	}
	if _, ok := authn.OperatorFrom(r.Context()); ok {
		if rt.Access == TenantData {
			return errs.E(errs.Forbidden, "tenant_credential_required",
				"%s uses a tenant's keys on its data: only that tenant's credentials may, never the operator's", rt.Name)
		}
		return nil
	}
	tc, ok := tenant.FromContext(r.Context())
	if !ok {
		return errs.E(errs.Unauthenticated, "invalid_token", "the bearer token is not valid")
	}
	if id := r.PathValue("tenant"); id != "" && id != string(tc.TenantID) {
		return notFoundTenant(id)
	}
	if tc.Partner != nil {
		return authorizePartner(r, rt, tc)
	}
	if tc.Actor != "" && rt.Access != TenantData {
		// A delegated credential (token exchange) is a session policy of
		// data scopes: it reaches the data routes that check them, never
		// the tenant's records, audit trail or administration.
		return errs.E(errs.Forbidden, "delegated_token_not_allowed",
			"%s needs the user's own token; a credential a service obtained for the user (token exchange) cannot call it", rt.Name)
	}
	switch rt.Access {
	case Tenant, TenantData, Invoker:
		return nil
	case TenantAdmin:
		if tc.InGroup(identity.AdminsGroup) {
			return nil
		}
		return errs.E(errs.Forbidden, "tenant_admin_required", "%s is for the tenant's admins (group %q)", rt.Name, identity.AdminsGroup)
	case AuditReader:
		if tc.InGroup(identity.AdminsGroup) || (!strings.HasPrefix(tc.Principal, "user:") && tc.HasScope(AuditReadScope)) {
			return nil
		}
		return errs.E(errs.Forbidden, "audit_reader_required",
			"%s is for the tenant's admins (group %q) and for its clients granted the scope %q", rt.Name, identity.AdminsGroup, AuditReadScope)
	}
	return errs.E(errs.Forbidden, "operator_required", "%s is for platform operators; a tenant credential cannot call it", rt.Name)
}

// partnerDecisionRoutes are the routes beyond the data routes that a partner's
// session may call: decisions about itself (the trust's bound applies).
var partnerDecisionRoutes = []string{"authz.authorize", "authz.authorize_batch"}

// authorizePartner checks a partner's session: from the trust's networks
// only, on the data routes (its scopes decide there) and on its own
// decisions; never on the tenant's records, audit trail or
// administration (trusts, clients, users, keys), and never a token
// exchange (a partner's token is no subject token).
func authorizePartner(r *http.Request, rt Route, tc tenant.Context) error {
	ip, _ := netip.ParseAddr(sourceIP(r))
	if !partners.InNetworks(tc.Partner.Networks, ip) {
		return errs.E(errs.Forbidden, "source_network_not_allowed",
			"the trust lets this partner's sessions in from its source networks only")
	}
	if rt.Access == TenantData || slices.Contains(partnerDecisionRoutes, rt.Name) {
		return nil
	}
	return errs.E(errs.Forbidden, "partner_session_not_allowed",
		"%s is not for a partner's session: it reaches the tenant's data routes and its own authorization decisions only", rt.Name)
}

func notFoundTenant(id string) error {
	if _, err := tenants.ParseID(id); err != nil {
		return err
	}
	return errs.E(errs.NotFound, "tenant_not_found", "tenant %q not found", id)
}

// auditFailure records a refused or failed request in the platform chain.
// Successful state changes are audited by the services, in the transaction
// that makes them. The request waits for the event's batch to commit.
// Authentication failures are limited per source IP.
func (s *Server) auditFailure(r *http.Request, rt Route, outcome audit.Outcome, err error) {
	code := "internal"
	if e, ok := errs.As(err); ok {
		code = e.Code
	}
	target := ""
	if id := r.PathValue("tenant"); id != "" {
		if _, perr := tenant.ParseID(id); perr == nil {
			target = id
		}
	}
	action := rt.Name
	detail := map[string]string{"code": code}
	if e, ok := errs.As(err); ok && e.Kind == errs.Unauthenticated {
		action = "authn.failure"
		target = rt.Name
		ok, suppressed := s.failures.Allow(sourceIP(r), time.Now())
		if !ok {
			s.unaudited.Inc()
			return
		}
		if suppressed > 0 {
			detail["unaudited_before"] = strconv.Itoa(suppressed)
		}
	}
	ev := audit.Event{Principal: authn.PrincipalName(r.Context()), Action: action, Target: target, Outcome: outcome,
		RequestID: requestID(r.Context()), SourceIP: sourceIP(r), Detail: detail}
	if aerr := s.Audit.Append(r.Context(), ev); aerr != nil {
		s.log.ErrorContext(r.Context(), "audit append failed", "err", aerr, "action", action)
	}
}

type clientIPKey struct{}

// sourceIP is the request's client address, found once per request (behind
// trusted proxies, from X-Forwarded-For).
func sourceIP(r *http.Request) string {
	ip, _ := r.Context().Value(clientIPKey{}).(string)
	return ip
}

func actor(r *http.Request) tenant.Actor {
	return tenant.Actor{Principal: authn.PrincipalName(r.Context()), RequestID: requestID(r.Context()), SourceIP: sourceIP(r)}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.Version})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.DB.Ping(ctx); err != nil {
		return &errs.Error{Kind: errs.Unavailable, Code: "database_unreachable", Detail: "the database does not answer", Err: err}
	}
	if !s.DB.Migrated() {
		return errs.E(errs.Unavailable, "migrations_pending", "database migrations have not been applied")
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "database": string(s.DB.Dialect())})
	return nil
}
