package domains_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/domains"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/domains/dnstest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

var op = tenant.Actor{Principal: "operator:test"}

// loopback returns a Dial that sends every connection to addr, whatever
// host the check asked for: the test's stand-in for DNS pointing a domain
// at a server.
func loopback(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

type env struct {
	db  *storage.DB
	svc *domains.Service
}

func newEnv(t *testing.T, dsn string, cfg domains.Config) env {
	db := storagetest.Open(t, dsn, audit.Migrations(), domains.Migrations())
	l := audit.New(db, audit.Options{})
	t.Cleanup(func() { l.Close() })
	cfg.DB, cfg.Audit = db, l
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = 2 * time.Second
	}
	return env{db: db, svc: domains.New(cfg)}
}

// gatewayServer serves the service's challenge handler, as the gateway does.
func gatewayServer(t *testing.T, svc *domains.Service) *httptest.Server {
	srv := httptest.NewServer(svc.ChallengeHandler())
	t.Cleanup(srv.Close)
	return srv
}

func TestDomainLifecycle(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		var target string
		e := newEnv(t, dsn, domains.Config{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return loopback(target)(ctx, network, addr)
		}})
		target = gatewayServer(t, e.svc).Listener.Addr().String()

		d, err := e.svc.Create(ctx, "acme", "Shop.Acme.Example.", op)
		if err != nil || d.Name != "shop.acme.example" || d.State != domains.Pending || d.Token == "" {
			t.Fatalf("create: %+v %v", d, err)
		}
		// Another tenant may not claim it; neither may the same tenant twice.
		// Both answers are the same, naming no tenant.
		_, errOther := e.svc.Create(ctx, "globex", "shop.acme.example", op)
		_, errSame := e.svc.Create(ctx, "acme", "SHOP.acme.example", op)
		for _, err := range []error{errOther, errSame} {
			if !errs.Is(err, "domain_taken") || strings.Contains(err.Error(), "acme\"") || strings.Contains(err.Error(), "globex") {
				t.Fatalf("duplicate claim: %v", err)
			}
		}
		if errOther.Error() != errSame.Error() {
			t.Errorf("the answers differ: %q vs %q", errOther, errSame)
		}
		// Pending: no owner.
		if _, ok, err := e.svc.DomainOwner(ctx, "shop.acme.example"); ok || err != nil {
			t.Fatalf("pending domain has an owner: %v %v", ok, err)
		}
		// Another tenant sees nothing of it.
		if _, err := e.svc.Get(ctx, "globex", "shop.acme.example"); !errs.Is(err, "domain_not_found") {
			t.Errorf("cross-tenant get: %v", err)
		}
		if _, err := e.svc.Verify(ctx, "globex", "shop.acme.example", op); !errs.Is(err, "domain_not_found") {
			t.Errorf("cross-tenant verify: %v", err)
		}
		if err := e.svc.Delete(ctx, "globex", "shop.acme.example", op); !errs.Is(err, "domain_not_found") {
			t.Errorf("cross-tenant delete: %v", err)
		}
		if ds, err := e.svc.List(ctx, "globex"); err != nil || len(ds) != 0 {
			t.Errorf("cross-tenant list: %v %v", ds, err)
		}

		v, err := e.svc.Verify(ctx, "acme", "shop.acme.example", op)
		if err != nil || v.State != domains.Verified || v.Method != domains.MethodHTTP {
			t.Fatalf("verify: %+v %v", v, err)
		}
		for _, host := range []string{"shop.acme.example", "SHOP.acme.example.:443"} {
			if tid, ok, err := e.svc.DomainOwner(ctx, host); tid != "acme" || !ok || err != nil {
				t.Errorf("owner of %q: %q %v %v", host, tid, ok, err)
			}
		}
		if ds, err := e.svc.List(ctx, "acme"); err != nil || len(ds) != 1 || ds[0].State != domains.Verified {
			t.Errorf("list: %v %v", ds, err)
		}

		// Offboarding releases it; another tenant may then claim it.
		if err := e.db.Update(ctx, storage.TenantScope("acme"), func(tx *storage.Tx) error {
			return e.svc.OffboardingStep().Run(ctx, tx, tenantsTenant())
		}); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := e.svc.DomainOwner(ctx, "shop.acme.example"); ok {
			t.Error("an offboarded tenant's domain still has an owner")
		}
		if _, err := e.svc.Create(ctx, "globex", "shop.acme.example", op); err != nil {
			t.Errorf("claim a released domain: %v", err)
		}
		if err := e.svc.Delete(ctx, "globex", "shop.acme.example", op); err != nil {
			t.Errorf("delete: %v", err)
		}
	})
}

// TestVerifyHostile: every way a check could be fooled or held up fails,
// within its bounds.
func TestVerifyHostile(t *testing.T) {
	dsn := storagetest.DSN(t, storage.SQLite)
	ctx := context.Background()
	var target string
	e := newEnv(t, dsn, domains.Config{CheckTimeout: 500 * time.Millisecond,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return loopback(target)(ctx, network, addr)
		}})
	victim, err := e.svc.Create(ctx, "victim", "victim.example", op)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Create(ctx, "evil", "evil.example", op); err != nil {
		t.Fatal(err)
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(victim.Token)) // whatever is asked, the other domain's token
	}))
	defer other.Close()
	release := make(chan struct{})
	cases := map[string]http.HandlerFunc{
		"token for another domain": func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(victim.Token))
		},
		"redirect to another host": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
		},
		"huge body": func(w http.ResponseWriter, r *http.Request) {
			for range 1 << 10 {
				if _, err := w.Write([]byte(strings.Repeat("x", 1<<10))); err != nil {
					return
				}
			}
		},
		"slow server": func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		},
		"not found": http.NotFound,
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			target = srv.Listener.Addr().String()
			start := time.Now()
			_, err := e.svc.Verify(ctx, "evil", "evil.example", op)
			if !errs.Is(err, "verification_failed") {
				t.Fatalf("verify: %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the check took %v", d)
			}
			if _, ok, _ := e.svc.DomainOwner(ctx, "evil.example"); ok {
				t.Error("the domain has an owner")
			}
		})
	}
	close(release)

	// The gateway's own handler answers a token only for its host.
	gw := gatewayServer(t, e.svc)
	for _, c := range []struct{ host, token string }{
		{"evil.example", victim.Token},   // the victim's token under the attacker's host
		{"victim.example", "bhdv_guess"}, // a guess
		{"127.0.0.1", victim.Token},      // no host
	} {
		req, _ := http.NewRequest("GET", gw.URL+domains.WellKnownPrefix+c.token, nil)
		req.Host = c.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s: %d", c.host, c.token, resp.StatusCode)
		}
	}
}

// TestVerifyDNS checks the TXT record through a DNS server on loopback.
func TestVerifyDNS(t *testing.T) {
	dsn := storagetest.DSN(t, storage.SQLite)
	ctx := context.Background()
	dnsServer := dnstest.Start(t)
	e := newEnv(t, dsn, domains.Config{DNSResolver: dnsServer.Addr,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nil, &net.OpError{Op: "dial", Err: errNoRoute}
		}})
	a, _ := e.svc.Create(ctx, "acme", "acme.example", op)
	b, _ := e.svc.Create(ctx, "globex", "globex.example", op)
	// The other domain's token under this name does not verify it.
	dnsServer.SetTXT("_bulkhead.globex.example", a.Token)
	if _, err := e.svc.Verify(ctx, "globex", "globex.example", op); !errs.Is(err, "verification_failed") {
		t.Fatalf("another domain's token: %v", err)
	}
	dnsServer.SetTXT("_bulkhead.globex.example", "v=spf1 -all", b.Token)
	d, err := e.svc.Verify(ctx, "globex", "globex.example", op)
	if err != nil || d.State != domains.Verified || d.Method != domains.MethodDNS {
		t.Fatalf("verify: %+v %v", d, err)
	}
}

type noRoute struct{}

func (noRoute) Error() string { return "no route" }

var errNoRoute = noRoute{}

// TestChallengeFloodBounded: one address asking for verification tokens
// on made-up host names is refused (429, problem+json, Retry-After)
// past its burst, before the database is read; another address still
// gets its domain's token, and the first one does again a second later.
func TestChallengeFloodBounded(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC))
	e := newEnv(t, storagetest.DSN(t, storage.SQLite), domains.Config{Clock: clk})
	d, err := e.svc.Create(context.Background(), "acme", "shop.acme.example", op)
	if err != nil {
		t.Fatal(err)
	}
	h := e.svc.ChallengeHandler()
	get := func(addr, host, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "http://"+host+domains.WellKnownPrefix+token, nil)
		r.RemoteAddr = addr + ":40000"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	refused := 0
	for i := range 100 {
		w := get("203.0.113.9", fmt.Sprintf("x%d.flood.example", i), "tok")
		switch w.Code {
		case http.StatusNotFound:
		case http.StatusTooManyRequests:
			refused++
			if w.Header().Get("Retry-After") == "" || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/problem+json") {
				t.Fatalf("429 without Retry-After or problem: %v", w.Header())
			}
		default:
			t.Fatalf("flood answer %d", w.Code)
		}
	}
	if refused < 70 {
		t.Errorf("%d of 100 flood requests refused; want all past the burst", refused)
	}
	if w := get("198.51.100.7", "shop.acme.example", d.Token); w.Code != 200 || w.Body.String() != d.Token {
		t.Errorf("another address: %d %q", w.Code, w.Body)
	}
	clk.Advance(time.Second)
	if w := get("203.0.113.9", "shop.acme.example", d.Token); w.Code != 200 {
		t.Errorf("the flooding address a second later: %d", w.Code)
	}
}
