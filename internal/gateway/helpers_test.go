package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/bulkhead-dev/bulkhead/internal/authn"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/gateway"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/auth"
)

const (
	issuer    = "http://127.0.0.1:1"
	appDomain = "app.test"
)

// platformKey is the platform issuer's signing key: the gateway's
// KeySource and the upstream validator's auth.KeySource.
type platformKey struct{ key *signing.Key }

func newPlatformKey(t *testing.T) *platformKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &platformKey{key: &signing.Key{ID: "sig_test", Algorithm: jose.ES256, Private: priv, CreatedAt: time.Now()}}
}

func (k *platformKey) Active(context.Context, signing.Issuer) (*signing.Key, error) {
	return k.key, nil
}
func (k *platformKey) Version() uint64 { return 1 }
func (k *platformKey) IssuerKeys(tid, _ string) ([]jose.JSONWebKey, bool) {
	if tid != "" {
		return nil, false
	}
	return []jose.JSONWebKey{{Key: k.key.Private.Public(), KeyID: k.key.ID, Algorithm: string(k.key.Algorithm), Use: "sig"}}, true
}

// directory is the tenants, their tokens and their domains.
type directory struct {
	mu      sync.Mutex
	tenants map[tenant.ID]tenants.Tenant
	models  map[tenant.ID]string
	gets    atomic.Int64 // reads of a tenant, as of the database
}

func (d *directory) Get(_ context.Context, id tenant.ID) (tenants.Tenant, error) {
	d.gets.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.tenants[id]
	if !ok {
		return tenants.Tenant{}, errs.E(errs.NotFound, "tenant_not_found", "no tenant")
	}
	return t, nil
}

func (d *directory) TenantForDomainAllTenants(_ context.Context, domain string) (tenant.ID, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range d.tenants {
		for _, dom := range t.Domains {
			if dom == domain {
				return t.ID, nil
			}
		}
	}
	return "", errs.E(errs.NotFound, "tenant_not_found", "no tenant claims the domain")
}

func (d *directory) Model(_ context.Context, id tenant.ID) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.models[id], nil
}

func (d *directory) setStatus(id tenant.ID, s tenants.Status) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.tenants[id]
	t.Status = s
	d.tenants[id] = t
}

// tokens verifies "tok-{tenant}" as a token of user u1 of that tenant, and
// refuses "tok-bad"; anything else is not a Bulkhead token.
type tokens struct{}

func (tokens) Verify(ctx context.Context, tok string) (context.Context, error) {
	id, ok := strings.CutPrefix(tok, "tok-")
	if !ok {
		return nil, authn.ErrUnknownToken
	}
	if id == "bad" {
		return nil, errs.E(errs.Unauthenticated, "invalid_token", "the bearer token is not valid")
	}
	return tenant.NewContext(ctx, tenant.Context{TenantID: tenant.ID(id), Principal: "user:u1", Tier: "basic"}), nil
}

// seen is one request as an upstream saw it.
type seen struct {
	claims *auth.Claims
	header http.Header
	host   string
	path   string
}

// upstream is a test application: it verifies the assertion with sdk/auth
// and counts its requests.
type upstream struct {
	*httptest.Server
	count atomic.Int64
	mu    sync.Mutex
	last  seen
}

func newUpstream(t *testing.T, keys auth.KeySource, name string) *upstream {
	t.Helper()
	v, err := auth.NewValidator(auth.Config{Issuer: issuer, Audience: gateway.DefaultAudience, Keys: keys, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.count.Add(1)
		c, err := v.Validate(r.Context(), r.Header.Get(gateway.AssertionHeader))
		if err != nil {
			http.Error(w, "assertion: "+err.Error(), http.StatusUnauthorized)
			return
		}
		u.mu.Lock()
		u.last = seen{claims: c, header: r.Header.Clone(), host: r.Host, path: r.URL.Path}
		u.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Upstream", name)
		io.WriteString(w, name+" "+c.TenantID+" "+c.Subject)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) seen() seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

type env struct {
	gw   *gateway.Gateway
	url  string
	dir  *directory
	keys *platformKey
	pool *upstream
	silo *upstream
	addr string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with mod applied to the gateway's Config.
func newEnvWith(t *testing.T, mod func(*gateway.Config)) *env {
	t.Helper()
	e := &env{keys: newPlatformKey(t)}
	e.dir = &directory{tenants: map[tenant.ID]tenants.Tenant{
		"acme":    {ID: "acme", Tier: "basic", Status: tenants.Active, Domains: []string{"acme.example"}},
		"globex":  {ID: "globex", Tier: "premium", Status: tenants.Active, Domains: []string{"globex.example"}},
		"initech": {ID: "initech", Tier: "basic", Status: tenants.Active},
	}, models: map[tenant.ID]string{"acme": "pool", "globex": "silo"}}
	e.pool = newUpstream(t, e.keys, "pool")
	e.silo = newUpstream(t, e.keys, "silo")
	cfg := gateway.Config{Tenants: e.dir, Domains: registryDomains{Registry: e.dir}, Verifiers: []authn.Verifier{tokens{}},
		AppDomain: appDomain, Asserter: gateway.NewAsserter(e.keys, issuer, "", nil), Placements: e.dir, AllowPrivateUpstreams: true}
	if mod != nil {
		mod(&cfg)
	}
	e.gw = gateway.New(cfg)
	t.Cleanup(e.gw.Close)
	e.setRoutes(t, gateway.Route{ID: "rt_app", Host: "*." + appDomain, PathPrefix: "/", Upstream: e.pool.URL,
		Silo: map[tenant.ID]string{"globex": e.silo.URL}},
		gateway.Route{ID: "rt_custom", Host: "*", PathPrefix: "/", Upstream: e.pool.URL, Silo: map[tenant.ID]string{"globex": e.silo.URL}},
		gateway.Route{ID: "rt_api", Host: "api." + appDomain + ".com", PathPrefix: "/v1", Upstream: e.pool.URL})
	e.url = startGateway(t, e.gw)
	e.addr = strings.TrimPrefix(e.url, "http://")
	return e
}

// startGateway serves gw on a loopback listener until the test ends and
// returns its URL.
func startGateway(t *testing.T, gw *gateway.Gateway) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(gw)
	srv.Config = gateway.NewServer(gw, nil)
	srv.Config.ReadHeaderTimeout = 500 * time.Millisecond
	srv.Listener = gateway.NewListener(srv.Listener, gateway.MaxHeaderBytes)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

func (e *env) setRoutes(t *testing.T, routes ...gateway.Route) {
	t.Helper()
	for _, r := range routes {
		if err := r.Validate(appDomain, true); err != nil {
			t.Fatalf("route %s: %v", r.ID, err)
		}
	}
	e.gw.SetRoutes(gateway.NewTable(routes))
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(t *testing.T, method, host, path, token string, hdr map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// rawRequest sends raw bytes on a new connection and returns the first
// line of the answer.
func rawRequest(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4096)
	n, _ := io.ReadAtLeast(c, b, 12)
	line, _, _ := strings.Cut(string(b[:n]), "\r\n")
	return line
}

// domainLister is what registryDomains reads: the tenant that claims a
// domain, across tenants.
type domainLister interface {
	TenantForDomainAllTenants(ctx context.Context, domain string) (tenant.ID, error)
	gateway.TenantSource
}

// registryDomains is a test DomainOwner over a tenant directory: a host is a
// tenant's when the registry says the tenant claims it AND the domain is
// in that tenant's Domains (both reads, so that a stale index row alone
// never hands a host to a tenant).
type registryDomains struct{ Registry domainLister }

// DomainOwner implements DomainOwner.
func (d registryDomains) DomainOwner(ctx context.Context, host string) (tenant.ID, bool, error) {
	id, err := d.Registry.TenantForDomainAllTenants(ctx, host)
	if errs.Is(err, "tenant_not_found") {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	t, err := d.Registry.Get(ctx, id)
	if errs.Is(err, "tenant_not_found") {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if !slices.Contains(t.Domains, host) {
		return "", false, nil
	}
	return id, true, nil
}
