// Package domains is the gateway's custom domains: a tenant claims a host
// name, proves it controls it (an HTTP token served by the gateway, or a DNS
// TXT record), and from then on the gateway resolves requests for that host
// to the tenant and may get a TLS certificate for it.
//
// The tenant registry's own Domains list (tenants.Tenant.Domains) is a
// different thing: names a tenant's users sign in from (home-realm discovery),
// set by the operator and never verified. A custom domain here is a host the
// gateway serves, and only a verified one resolves to a tenant or reaches a
// certificate authority. The two tables are separate so that an operator's
// sign-in hint never routes traffic or issues certificates.
package domains

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clientip"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/httpx"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/ratelimit"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

//go:embed migrations
var migrations embed.FS

// Migrations returns the custom domains' migrations.
func Migrations() storage.Component {
	c := storage.Embedded("domains", migrations)
	c.RowSecurity = map[string]storage.Rows{
		// A tenant sees its own domains; the primary key still makes a
		// name unique across tenants, because uniqueness is checked
		// against every row whatever the policies let a scope see.
		"gateway_domains": storage.TenantRows("tenant_id"),
	}
	return c
}

// State is a domain's verification state.
type State string

// The states.
const (
	Pending  State = "pending"  // claimed, not yet proven
	Verified State = "verified" // the tenant proved control; the gateway serves it
)

// Verification methods.
const (
	MethodHTTP = "http" // the token at http://{domain}/.well-known/bulkhead-domain/{token}
	MethodDNS  = "dns"  // the token in a TXT record at _bulkhead.{domain}
)

// WellKnownPrefix is the path under which the gateway serves tokens.
const WellKnownPrefix = "/.well-known/bulkhead-domain/"

// DNSLabel is the label under the domain whose TXT record carries the token.
const DNSLabel = "_bulkhead"

// Domain is a tenant's custom domain.
type Domain struct {
	Name       string    `json:"name"`
	TenantID   tenant.ID `json:"tenant_id"`
	State      State     `json:"state"`
	Token      string    `json:"token"`
	Method     string    `json:"method,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	VerifiedAt time.Time `json:"verified_at,omitzero"`
}

// Config configures the service.
type Config struct {
	DB    *storage.DB
	Audit *audit.Log
	Clock clock.Clock // default clock.System
	// Dial opens the connections of HTTP verification (default a
	// net.Dialer). Tests point it at loopback.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// DNSResolver is the host:port of the DNS server TXT records are asked
	// of ("" for the system's resolver).
	DNSResolver string
	// CheckTimeout bounds one verification attempt (default 10 s).
	CheckTimeout time.Duration
}

// Service manages custom domains.
type Service struct {
	db       *storage.DB
	audit    *audit.Log
	clock    clock.Clock
	client   *http.Client
	resolver *net.Resolver
	timeout  time.Duration
	// challenges bounds the token requests of one address: the endpoint
	// answers anyone, on any host name, with a database read each.
	challenges *ratelimit.Limiter
}

// Bounds of one address's requests for verification tokens. A check
// fetches one token; a flood from one address is refused (429) before
// the database is read.
const (
	challengeRate  = 10
	challengeBurst = 20
	challengeAddrs = 100_000
)

// maxTokenBody bounds what HTTP verification reads: a token is 29 bytes.
const maxTokenBody = 512

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = 10 * time.Second
	}
	dial := cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: cfg.CheckTimeout}).DialContext
	}
	s := &Service{db: cfg.DB, audit: cfg.Audit, clock: cfg.Clock, timeout: cfg.CheckTimeout,
		challenges: ratelimit.New(challengeRate, challengeBurst, challengeAddrs)}
	s.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil, // the check must reach the domain itself
			DialContext:            dial,
			DisableKeepAlives:      true,
			MaxResponseHeaderBytes: 8 << 10,
			ResponseHeaderTimeout:  cfg.CheckTimeout,
		},
		// A redirect could send the check to a host the tenant does not
		// control the answer of, or to an internal address: none is followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       cfg.CheckTimeout,
	}
	s.resolver = net.DefaultResolver
	if cfg.DNSResolver != "" {
		s.resolver = Resolver(cfg.DNSResolver)
	}
	return s
}

// Resolver returns a resolver that asks only the DNS server at addr
// (host:port). The node gives it to the dialer of HTTP checks too, so that
// both checks see the same DNS.
func Resolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

const columns = `domain, tenant_id, state, token, method, created_at, verified_at`

func scan(row interface{ Scan(...any) error }) (Domain, error) {
	var d Domain
	var tid string
	var created, verified int64
	if err := row.Scan(&d.Name, &tid, &d.State, &d.Token, &d.Method, &created, &verified); err != nil {
		return Domain{}, err
	}
	d.TenantID = tenant.ID(tid)
	d.CreatedAt = time.UnixMilli(created).UTC()
	if verified != 0 {
		d.VerifiedAt = time.UnixMilli(verified).UTC()
	}
	return d, nil
}

func notFound() error { return errs.E(errs.NotFound, "domain_not_found", "no such domain") }

// Create claims name for the tenant, pending verification. A name another
// tenant holds, or this one already holds, is domain_taken either way: the
// answer must not tell a tenant whether some other tenant has claimed it.
func (s *Service) Create(ctx context.Context, tid tenant.ID, name string, by tenant.Actor) (Domain, error) {
	name, err := ParseName(name)
	if err != nil {
		return Domain{}, err
	}
	d := Domain{Name: name, TenantID: tid, State: Pending, Token: ids.New("bhdv"), CreatedAt: s.clock.Now().Truncate(time.Millisecond)}
	err = s.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO gateway_domains (`+columns+`) VALUES (?, ?, ?, ?, '', ?, 0)`,
			d.Name, string(tid), string(d.State), d.Token, d.CreatedAt.UnixMilli()); err != nil {
			if storage.IsUniqueViolation(err) {
				return &errs.Error{Kind: errs.Conflict, Code: "domain_taken", Field: "domain",
					Detail: "the domain is already claimed"}
			}
			return fmt.Errorf("domains: insert: %w", err)
		}
		return s.auditTx(ctx, tx, by, "domain.create", name, nil)
	})
	if err != nil {
		return Domain{}, err
	}
	return d, nil
}

func (s *Service) auditTx(ctx context.Context, tx *storage.Tx, by tenant.Actor, action, target string, detail map[string]string) error {
	if s.audit == nil {
		return nil
	}
	return s.audit.AppendTx(ctx, tx, audit.Event{TenantID: tx.TenantID(), Principal: by.Principal, Action: action,
		Target: target, RequestID: by.RequestID, SourceIP: by.SourceIP, Detail: detail})
}

// List returns the tenant's domains by name.
func (s *Service) List(ctx context.Context, tid tenant.ID) ([]Domain, error) {
	out := []Domain{}
	err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+columns+` FROM gateway_domains WHERE tenant_id = ? ORDER BY domain`, string(tid))
		if err != nil {
			return fmt.Errorf("domains: list: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scan(rows)
			if err != nil {
				return fmt.Errorf("domains: list: %w", err)
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	return out, err
}

// Get returns one of the tenant's domains. Another tenant's is not found.
func (s *Service) Get(ctx context.Context, tid tenant.ID, name string) (Domain, error) {
	name, err := ParseName(name)
	if err != nil {
		return Domain{}, notFound()
	}
	var d Domain
	err = s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		d, err = get(ctx, tx, name)
		return err
	})
	return d, err
}

func get(ctx context.Context, tx *storage.Tx, name string) (Domain, error) {
	d, err := scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM gateway_domains WHERE domain = ? AND tenant_id = ?`, name, tx.TenantID()))
	if errors.Is(err, sql.ErrNoRows) {
		return Domain{}, notFound()
	}
	if err != nil {
		return Domain{}, fmt.Errorf("domains: get: %w", err)
	}
	return d, nil
}

// Delete releases one of the tenant's domains.
func (s *Service) Delete(ctx context.Context, tid tenant.ID, name string, by tenant.Actor) error {
	name, err := ParseName(name)
	if err != nil {
		return notFound()
	}
	return s.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM gateway_domains WHERE domain = ? AND tenant_id = ?`, name, string(tid))
		if err != nil {
			return fmt.Errorf("domains: delete: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound()
		}
		return s.auditTx(ctx, tx, by, "domain.delete", name, nil)
	})
}

// Verify checks that the tenant controls the domain, by HTTP and then by
// DNS, and marks it verified if either check passes. The checks run outside
// any transaction; the state changes only if the record is still the one
// that was checked (same token), so a domain deleted and claimed again
// meanwhile is not verified by the old check.
func (s *Service) Verify(ctx context.Context, tid tenant.ID, name string, by tenant.Actor) (Domain, error) {
	d, err := s.Get(ctx, tid, name)
	if err != nil {
		return Domain{}, err
	}
	if d.State == Verified {
		return d, nil
	}
	method, httpErr := MethodHTTP, s.checkHTTP(ctx, d)
	if httpErr != nil {
		method = MethodDNS
		if dnsErr := s.checkDNS(ctx, d); dnsErr != nil {
			s.auditFailure(ctx, tid, by, d.Name, httpErr, dnsErr)
			return Domain{}, &errs.Error{Kind: errs.Conflict, Code: "verification_failed", Field: "domain",
				Detail: fmt.Sprintf("neither check passed: http: %v; dns: %v", httpErr, dnsErr)}
		}
	}
	now := s.clock.Now().Truncate(time.Millisecond)
	err = s.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE gateway_domains SET state = ?, method = ?, verified_at = ? WHERE domain = ? AND tenant_id = ? AND token = ?`,
			string(Verified), method, now.UnixMilli(), d.Name, string(tid), d.Token)
		if err != nil {
			return fmt.Errorf("domains: verify: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return notFound()
		}
		return s.auditTx(ctx, tx, by, "domain.verify", d.Name, map[string]string{"method": method})
	})
	if err != nil {
		return Domain{}, err
	}
	d.State, d.Method, d.VerifiedAt = Verified, method, now
	return d, nil
}

func (s *Service) auditFailure(ctx context.Context, tid tenant.ID, by tenant.Actor, name string, httpErr, dnsErr error) {
	if s.audit == nil {
		return
	}
	// Best effort: the request fails either way, and its failure is in the log.
	_ = s.audit.Append(ctx, audit.Event{TenantID: string(tid), Principal: by.Principal, Action: "domain.verify",
		Target: name, Outcome: audit.Failure, RequestID: by.RequestID, SourceIP: by.SourceIP,
		Detail: map[string]string{"http": errs.Clip(httpErr.Error(), 200), "dns": errs.Clip(dnsErr.Error(), 200)}})
}

// checkHTTP fetches the token from the domain itself. The host is the
// domain's canonical name (never an address the tenant chose), no redirect
// is followed, and both time and body size are bounded.
func (s *Service) checkHTTP(ctx context.Context, d Domain) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.Name+WellKnownPrefix+d.Token, nil)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch: %w", errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody+1))
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	n := len(body)
	if n > maxTokenBody {
		return errors.New("the answer is too large")
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(string(body))), []byte(d.Token)) != 1 {
		return errors.New("the answer is not the domain's token")
	}
	return nil
}

// checkDNS looks for the token in the TXT records of _bulkhead.{domain}.
func (s *Service) checkDNS(ctx context.Context, d Domain) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	txts, err := s.resolver.LookupTXT(ctx, DNSLabel+"."+d.Name)
	if err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	for _, t := range txts {
		if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(t)), []byte(d.Token)) == 1 {
			return nil
		}
	}
	return errors.New("no TXT record holds the domain's token")
}

// DomainOwner returns the tenant whose verified domain host is (a port and
// a trailing dot are ignored). It crosses tenants: it is how the gateway
// finds the tenant of a request, before any credential. A pending domain
// has no owner.
func (s *Service) DomainOwner(ctx context.Context, host string) (tenant.ID, bool, error) {
	name, err := ParseName(stripPort(host))
	if err != nil {
		return "", false, nil
	}
	var tid string
	err = s.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT tenant_id FROM gateway_domains WHERE domain = ? AND state = ?`, name, string(Verified)).Scan(&tid)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("domains: owner: %w", err)
	}
	return tenant.ID(tid), true, nil
}

// Verified reports whether name is a verified domain of some tenant: the
// certificate manager asks it before any ACME order.
func (s *Service) Verified(ctx context.Context, name string) (bool, error) {
	_, ok, err := s.DomainOwner(ctx, name)
	return ok, err
}

func stripPort(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// ChallengeHandler serves the tokens of HTTP verification; the gateway
// mounts it at WellKnownPrefix on its plain-HTTP listener. It answers a
// token only for the host whose record holds it, so a tenant cannot make
// the gateway vouch for another tenant's domain.
func (s *Service) ChallengeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.URL.Path, WellKnownPrefix)
		name, err := ParseName(stripPort(r.Host))
		if !ok || token == "" || err != nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			http.NotFound(w, r)
			return
		}
		// The gateway is the edge: the peer's address, no forwarded header.
		addr, _, _ := net.SplitHostPort(r.RemoteAddr)
		if ok, _ := s.challenges.Take(clientip.LimitKey(addr), s.clock.Now()); !ok {
			httpx.WriteProblem(w, httpx.ProblemFor(&errs.Error{Kind: errs.Busy, Code: "rate_limited",
				Detail: "too many verification requests from this address", RetryAfter: time.Second}))
			return
		}
		var want string
		err = s.db.View(r.Context(), storage.PlatformScope(), func(tx *storage.Tx) error {
			return tx.QueryRow(r.Context(), `SELECT token FROM gateway_domains WHERE domain = ?`, name).Scan(&want)
		})
		if err != nil || subtle.ConstantTimeCompare([]byte(token), []byte(want)) != 1 {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, want)
	})
}

// OffboardingStep releases the tenant's custom domains when it is
// offboarded, so another tenant may claim them and no certificate is
// renewed for them.
func (s *Service) OffboardingStep() tenants.Step {
	return tenants.Step{Name: "release-custom-domains", Run: func(ctx context.Context, tx *storage.Tx, _ tenants.Tenant) error {
		if _, err := tx.Exec(ctx, `DELETE FROM gateway_domains WHERE tenant_id = ?`, tx.TenantID()); err != nil {
			return fmt.Errorf("domains: release: %w", err)
		}
		return nil
	}}
}
