// Package connect is Bulkhead's split-token vault and the SaaS-to-SaaS
// proxy in front of it.
//
// A connection is a tenant's link to a third-party API: an upstream base
// URL, how the upstream token is presented (a bearer token, a named header
// or a query parameter) and which methods and paths an integration may use.
// The token itself is never stored. Each integration gets a grant: on its
// creation Bulkhead draws a random pad as long as the token, hands the
// integration Part A (the grant's id and the pad, see PartA) and stores
// Part B = token XOR pad, encrypted under the tenant's key with the
// tenant, connection and grant in the encryption context. Each part alone
// is a one-time pad: it says nothing about the token. Part A is
// authenticated by a keyed hash (HMAC-SHA256 under a key derived from the
// root key) compared in constant time, before Part B is read.
//
// The integration calls {proxy}/c/{connection}/{path} with Part A as its
// bearer token; the proxy checks the grant, the method and the path,
// decrypts Part B, recombines the token for that one request, forwards it
// to the connection's fixed upstream (never another host: no redirects are
// followed, the URL is the connection's), streams the answer back and
// clears the buffers. Every request is audited in the tenant's chain and
// fed to the grant's anomaly baseline (see detector).
//
// Since Bulkhead never holds the whole token, it cannot mint a new Part A
// alone: adding a grant, rotating one and replacing the token take the
// token (checked against the connection's keyed fingerprint) or a current
// Part A of the connection, from which the token is recombined in memory.
package connect

import (
	"context"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/clientip"
	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/lru"
	"github.com/bulkhead-dev/bulkhead/internal/netguard"
	"github.com/bulkhead-dev/bulkhead/internal/page"
	"github.com/bulkhead-dev/bulkhead/internal/ratelimit"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

//go:embed migrations
var migrations embed.FS

// Migrations is the connection service's schema.
func Migrations() storage.Component { return storage.Embedded("connect", migrations) }

// notifyChannel carries connection and grant changes to other nodes
// (payload: the tenant id); they drop that tenant's cached grants.
const notifyChannel = "bulkhead_connect"

const (
	connectionPrefix = "con"
	alertPrefix      = "alr"
)

// Grant states.
const (
	GrantActive    = "active"
	GrantSuspended = "suspended"
)

// Placement types: how the token is presented upstream.
const (
	PlaceBearer = "bearer" // Authorization: Bearer <token>
	PlaceHeader = "header" // <name>: <token>
	PlaceQuery  = "query"  // ?<name>=<token>
)

// DefaultSensitivity is how many deviations from a grant's baseline make
// an alert, when a connection does not say.
const DefaultSensitivity = 4.0

// Placement says how the token is presented to the upstream.
type Placement struct {
	Type string `json:"type"`
	Name string `json:"name,omitempty"` // the header or query parameter (header, query)
}

// Alerts are a connection's anomaly settings.
type Alerts = api.ConnectionAlerts

// Connection is a tenant's connection to a third-party API. It never holds
// the token.
type Connection struct {
	ID             string    `json:"id"`
	TenantID       tenant.ID `json:"tenant_id"`
	Name           string    `json:"name"`
	UpstreamURL    string    `json:"upstream_url"`
	Placement      Placement `json:"placement"`
	AllowedMethods []string  `json:"allowed_methods"` // empty: every method
	AllowedPaths   []string  `json:"allowed_paths"`   // path prefixes under the base; empty: every path
	Alerts         Alerts    `json:"alerts"`
	TokenVersion   int       `json:"token_version"` // counts token replacements
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Grant is one integration's access to a connection.
type Grant = api.Grant

// IssuedGrant is a grant with its Part A, shown once.
type IssuedGrant = api.IssuedGrant

// Options configure a Service.
type Options struct {
	Clock    clock.Clock
	Logger   *slog.Logger
	ClientIP *clientip.Resolver // finds a proxied request's source (nil: the peer)
	// HashKey keys the hashes of Part As and tokens (derive it from the root key).
	HashKey [32]byte
	// AllowPrivateUpstreams lets connections and webhooks reach loopback,
	// private and link-local addresses (tests, on-premises upstreams).
	AllowPrivateUpstreams bool
	// UpstreamTimeout bounds the wait for an upstream's response headers
	// (default 30s); RequestTimeout a whole proxied exchange (default 5m).
	UpstreamTimeout time.Duration
	RequestTimeout  time.Duration
	// BodyTimeout bounds the time a client takes to send its request,
	// body included (default 30s): a body trickled in a byte at a time
	// cannot hold a connection, a goroutine and an upstream open.
	BodyTimeout time.Duration
	// Anomaly tunes the per-grant baselines.
	Anomaly AnomalyOptions
	// CacheSize bounds the grants kept in memory (default 10,000), each for
	// at most CacheTTL (default 1s: a tenant's suspension reaches the
	// proxy within it; grant changes reach it at once).
	CacheSize int
	CacheTTL  time.Duration
}

// Tenants tells the service a tenant's state.
type Tenants interface {
	Get(ctx context.Context, id tenant.ID) (tenants.Tenant, error)
}

// Service is the connection service and its proxy.
type Service struct {
	db       *storage.DB
	audit    *audit.Log
	kms      *kms.Service
	tenants  Tenants
	clock    clock.Clock
	log      *slog.Logger
	opts     Options
	grants   *lru.Cache[grantKey, *grantState]
	loads    singleflight.Group
	detector *detector
	upstream *upstreams
	forward  *httputil.ReverseProxy
	refusals *ratelimit.Limiter // audit of unauthenticated proxy requests, per source IP
	bg       context.Context    // background work (webhooks), ended by Start's context
}

// New returns the service. On PostgreSQL, call Start: until this node
// listens for other nodes' changes it caches no grant.
func New(db *storage.DB, log *audit.Log, keys *kms.Service, tenants Tenants, opts Options) *Service {
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = 30 * time.Second
	}
	if opts.UpstreamTimeout <= 0 {
		opts.UpstreamTimeout = 30 * time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 5 * time.Minute
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 10000
	}
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = time.Second
	}
	s := &Service{db: db, audit: log, kms: keys, tenants: tenants, clock: opts.Clock, log: opts.Logger, opts: opts,
		detector: newDetector(opts.Anomaly), refusals: ratelimit.New(1.0/6, 20, 10000), bg: context.Background()}
	s.grants = lru.New[grantKey, *grantState](lru.Options[*grantState]{Size: opts.CacheSize, MaxAge: opts.CacheTTL,
		Now: opts.Clock.Now, Off: db.Dialect() == storage.Postgres})
	s.upstream = newUpstreams(opts)
	s.forward = s.newForwarder()
	return s
}

// Start listens for other nodes' changes until ctx ends; webhooks still
// being delivered stop with it.
func (s *Service) Start(ctx context.Context) {
	s.bg = ctx
	go s.db.Listen(ctx, notifyChannel, s.log, s.grants.Enable, s.grants.Disable, func(payload string) {
		s.forget(tenant.ID(payload))
	})
}

// CachedGrants is the number of grants this node holds in memory.
func (s *Service) CachedGrants() int { return s.grants.Len() }

// Close drops idle upstream connections.
func (s *Service) Close() { s.upstream.close() }

// forget drops tenant tid's cached grants.
func (s *Service) forget(tid tenant.ID) {
	s.grants.EvictFunc(func(k grantKey) bool { return k.tenant == tid })
}

func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

func notFound(id string) error {
	return errs.E(errs.NotFound, "connection_not_found", "connection %q not found", errs.Clip(id, 80))
}

func connectionExists(name string) error {
	return &errs.Error{Kind: errs.Conflict, Code: "connection_exists", Field: "name",
		Detail: fmt.Sprintf("the tenant has a connection named %q", name)}
}

func grantNotFound(id string) error {
	return errs.E(errs.NotFound, "grant_not_found", "grant %q not found", errs.Clip(id, 80))
}

// ---- validation ----

var (
	namePattern       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
	headerNamePattern = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
	queryNamePattern  = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,64}$`)
)

// reservedHeaders may not carry the token: they frame the request or are
// the proxy's own.
var reservedHeaders = []string{"Host", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade", "Te",
	"Trailer", "Proxy-Authorization", "Proxy-Authenticate", "Proxy-Connection", "Content-Type", "Cookie", "Expect", "Forwarded",
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

func validName(field, n string) error {
	if !namePattern.MatchString(n) {
		return errs.Field(field, "invalid_name", "%s is 1 to 100 of A-Z a-z 0-9 . _ - (starting with a letter or digit)", field)
	}
	return nil
}

// checkToken refuses tokens that could not travel in a header unchanged.
func checkToken(token string) error {
	if len(token) == 0 || len(token) > MaxTokenBytes {
		return errs.Field("token", "invalid_token_value", "the upstream token is 1 to %d bytes", MaxTokenBytes)
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c < 0x21 || c > 0x7e {
			return errs.Field("token", "invalid_token_value", "the upstream token must be visible ASCII (no spaces or control characters)")
		}
	}
	return nil
}

// parseUpstream checks an upstream or webhook URL: http or https, a host,
// no userinfo, query or fragment, no dot segments; a literal address must
// be public unless private upstreams are allowed. It returns the URL in
// canonical form (no trailing slash on the path).
func (s *Service) parseUpstream(field, raw string) (*url.URL, error) {
	bad := func(why string) error {
		return errs.Field(field, "invalid_upstream_url", "%s must be http(s)://host[:port][/path prefix]: %s", field, why)
	}
	if len(raw) > 2048 {
		return nil, bad("it is over 2048 bytes")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, bad("it does not parse")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, bad("the scheme is not http or https")
	case u.User != nil:
		return nil, bad("it carries userinfo (credentials go in the token)")
	case u.Host == "" || u.Hostname() == "" || u.Opaque != "":
		return nil, bad("it names no host")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, bad("it has a query or fragment")
	case hasDotSegment(u.Path):
		return nil, bad("its path has . or .. segments")
	}
	if p := u.Port(); p != "" {
		if n, err := netip.ParseAddrPort("0.0.0.0:" + p); err != nil || n.Port() == 0 {
			return nil, bad("the port is not valid")
		}
	}
	if addr, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !s.opts.AllowPrivateUpstreams && !publicAddr(addr) {
		return nil, errs.Field(field, "upstream_not_allowed",
			"%s names a loopback, private or link-local address; the operator allows those with --allow-private-upstreams", field)
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/") // url.Parse keeps the path as written when its escaping is not the default one
	return u, nil
}

// publicAddr reports whether a is an address the proxy may reach by
// default (see netguard.Public, shared with federation's fetches).
func publicAddr(a netip.Addr) bool { return netguard.Public(a) }

// hasDotSegment reports whether an unescaped path has a "." or ".."
// segment, also with path parameters (";x"), which some servers drop
// before resolving the segment.
func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		seg, _, _ = strings.Cut(seg, ";")
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func (p *Placement) check() error {
	if p.Type == "" {
		p.Type = PlaceBearer
	}
	switch p.Type {
	case PlaceBearer:
		if p.Name != "" {
			return errs.Field("placement.name", "invalid_placement", "a bearer placement takes no name")
		}
	case PlaceHeader:
		if !headerNamePattern.MatchString(p.Name) {
			return errs.Field("placement.name", "invalid_placement", "a header placement names the header (1 to 64 token characters)")
		}
		p.Name = http.CanonicalHeaderKey(p.Name)
		if slices.Contains(reservedHeaders, p.Name) {
			return errs.Field("placement.name", "invalid_placement", "the header %s cannot carry the token", p.Name)
		}
	case PlaceQuery:
		if !queryNamePattern.MatchString(p.Name) {
			return errs.Field("placement.name", "invalid_placement", "a query placement names the parameter (1 to 64 of A-Z a-z 0-9 . _ ~ -)")
		}
	default:
		return errs.Field("placement.type", "invalid_placement", "placement.type is bearer, header or query")
	}
	return nil
}

func checkMethods(in []string) ([]string, error) {
	if len(in) > len(methods) {
		return nil, errs.Field("allowed_methods", "invalid_methods", "allowed_methods lists each of %s at most once", strings.Join(methods, ", "))
	}
	out := []string{}
	for _, m := range in {
		m = strings.ToUpper(m)
		if !slices.Contains(methods, m) {
			return nil, errs.Field("allowed_methods", "invalid_methods", "allowed_methods takes %s", strings.Join(methods, ", "))
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out, nil
}

func checkPaths(in []string) ([]string, error) {
	if len(in) > 100 {
		return nil, errs.Field("allowed_paths", "invalid_paths", "at most 100 allowed path prefixes")
	}
	out := []string{}
	for _, p := range in {
		if !strings.HasPrefix(p, "/") || len(p) > 512 || hasDotSegment(p) || strings.ContainsAny(p, "?#%") ||
			strings.ContainsFunc(p, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
			return nil, errs.Field("allowed_paths", "invalid_paths",
				"each allowed path is a prefix under the base URL starting with / (at most 512 bytes; no query, %%-escapes or dot segments)")
		}
		out = append(out, p)
	}
	return out, nil
}

func (s *Service) checkAlerts(a *Alerts) error {
	if a.Sensitivity == 0 {
		a.Sensitivity = DefaultSensitivity
	}
	if a.Sensitivity < 1 || a.Sensitivity > 50 {
		return errs.Field("alerts.sensitivity", "invalid_sensitivity", "alerts.sensitivity is 1 (most sensitive) to 50")
	}
	if a.WebhookURL != "" {
		u, err := s.parseUpstream("alerts.webhook_url", a.WebhookURL)
		if err != nil {
			return err
		}
		a.WebhookURL = u.String()
	}
	return nil
}

// ---- storage ----

type connRow struct {
	Connection
	fingerprint   string
	webhookSecret string // KMS ciphertext, base64
}

const connColumns = `id, name, upstream_url, placement_type, placement_name, allowed_methods, allowed_paths, sensitivity,
	webhook_url, webhook_secret, token_fingerprint, token_version, created_at, updated_at`

func scanConn(tid string, row interface{ Scan(...any) error }) (connRow, error) {
	var c connRow
	var ms, ps string
	var created, updated int64
	err := row.Scan(&c.ID, &c.Name, &c.UpstreamURL, &c.Placement.Type, &c.Placement.Name, &ms, &ps, &c.Alerts.Sensitivity,
		&c.Alerts.WebhookURL, &c.webhookSecret, &c.fingerprint, &c.TokenVersion, &created, &updated)
	if err != nil {
		return c, err
	}
	c.TenantID = tenant.ID(tid)
	if err := json.Unmarshal([]byte(ms), &c.AllowedMethods); err != nil {
		return c, fmt.Errorf("connect: stored methods: %w", err)
	}
	if err := json.Unmarshal([]byte(ps), &c.AllowedPaths); err != nil {
		return c, fmt.Errorf("connect: stored paths: %w", err)
	}
	c.CreatedAt, c.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return c, nil
}

// readConn reads connection id of tx's tenant, locking it on PostgreSQL
// when lock is set.
func readConn(ctx context.Context, tx *storage.Tx, id string, lock bool) (connRow, error) {
	if !ids.Valid(id, connectionPrefix) {
		return connRow{}, notFound(id)
	}
	q := `SELECT ` + connColumns + ` FROM connect_connections WHERE tenant_id = ? AND id = ?`
	if lock && tx.Dialect() == storage.Postgres {
		q += ` FOR UPDATE`
	}
	c, err := scanConn(tx.TenantID(), tx.QueryRow(ctx, q, tx.TenantID(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return connRow{}, notFound(id)
	}
	if err != nil {
		return connRow{}, fmt.Errorf("connect: read connection: %w", err)
	}
	return c, nil
}

type grantRow struct {
	Grant
	partAHash string
	partB     string // KMS ciphertext, base64
}

const grantColumns = `id, connection_id, name, status, auto_suspend, suspended_reason, created_at, updated_at, rotated_at, part_a_hash, part_b`

func scanGrant(row interface{ Scan(...any) error }) (grantRow, error) {
	var g grantRow
	var auto int
	var created, updated, rotated int64
	if err := row.Scan(&g.ID, &g.ConnectionID, &g.Name, &g.Status, &auto, &g.SuspendedReason, &created, &updated, &rotated,
		&g.partAHash, &g.partB); err != nil {
		return g, err
	}
	g.AutoSuspend = auto != 0
	g.CreatedAt, g.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	if rotated != 0 {
		t := time.UnixMicro(rotated).UTC()
		g.RotatedAt = &t
	}
	return g, nil
}

func readGrant(ctx context.Context, tx *storage.Tx, connID, id string) (grantRow, error) {
	if !ids.Valid(id, grantPrefix) {
		return grantRow{}, grantNotFound(id)
	}
	g, err := scanGrant(tx.QueryRow(ctx, `SELECT `+grantColumns+` FROM connect_grants WHERE tenant_id = ? AND connection_id = ? AND id = ?`,
		tx.TenantID(), connID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return grantRow{}, grantNotFound(id)
	}
	if err != nil {
		return grantRow{}, fmt.Errorf("connect: read grant: %w", err)
	}
	return g, nil
}

func listGrants(ctx context.Context, tx *storage.Tx, connID string) ([]grantRow, error) {
	rows, err := tx.Query(ctx, `SELECT `+grantColumns+` FROM connect_grants WHERE tenant_id = ? AND connection_id = ? ORDER BY id`,
		tx.TenantID(), connID)
	if err != nil {
		return nil, fmt.Errorf("connect: list grants: %w", err)
	}
	defer rows.Close()
	var out []grantRow
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, fmt.Errorf("connect: list grants: %w", err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// partBContext binds a Part B to its tenant, connection and grant.
func partBContext(tid tenant.ID, connID, grantID string) kms.Context {
	return kms.Context{"tenant_id": string(tid), "connection_id": connID, "grant_id": grantID, "purpose": "connect.part_b"}
}

func webhookContext(tid tenant.ID, connID string) kms.Context {
	return kms.Context{"tenant_id": string(tid), "connection_id": connID, "purpose": "connect.webhook_secret"}
}

// issue splits token for a new or rotated grant: the Part A to hand out,
// and what to store (its hash and Part B sealed under the tenant's key).
func (s *Service) issue(ctx context.Context, tid tenant.ID, connID, grantID string, token []byte) (partA, hash, sealedB string, err error) {
	pad, partB := split(token)
	defer clear(partB)
	ct, err := s.kms.Seal(ctx, tid, partB, partBContext(tid, connID, grantID))
	if err != nil {
		clear(pad)
		return "", "", "", fmt.Errorf("connect: seal part B: %w", err)
	}
	partA = PartA{Tenant: tid, Grant: grantID, Pad: pad}.String()
	clear(pad)
	return partA, s.partAHash(partA), base64.StdEncoding.EncodeToString(ct), nil
}

func (s *Service) partAHash(partA string) string {
	return keyedHash(s.opts.HashKey[:], "part-a", partA)
}

func (s *Service) fingerprint(tid tenant.ID, connID string, token []byte) string {
	return keyedHash(s.opts.HashKey[:], "token", string(tid), connID, string(token))
}

// change runs a write in tenant tid's scope: fn returns the audit action,
// target and detail, written in the same transaction; this node's cached
// grants are dropped after the commit, other nodes' by notification.
func (s *Service) change(ctx context.Context, tid tenant.ID, actor tenant.Actor, fn func(tx *storage.Tx) (action, target string, detail map[string]string, err error)) error {
	return s.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		action, target, detail, err := fn(tx)
		if err != nil {
			return err
		}
		if err := s.audit.AppendTx(ctx, tx, audit.Event{TenantID: tx.TenantID(), Principal: actor.Principal, Action: action,
			Target: target, RequestID: actor.RequestID, SourceIP: actor.SourceIP, Detail: detail}); err != nil {
			return err
		}
		tx.AfterCommit(func() { s.forget(tid) })
		return tx.Notify(ctx, notifyChannel, string(tid))
	})
}

// ---- connections ----

// CreateRequest creates a connection. Token is the upstream token; it is
// split at once and never stored whole.
type CreateRequest struct {
	Name           string    `json:"name"`
	UpstreamURL    string    `json:"upstream_url"`
	Token          string    `json:"token"`
	Placement      Placement `json:"placement"`
	AllowedMethods []string  `json:"allowed_methods,omitempty"`
	AllowedPaths   []string  `json:"allowed_paths,omitempty"`
	Alerts         Alerts    `json:"alerts"`
	// Grant names the first grant, made with the connection.
	Grant CreateGrantRequest `json:"grant"`
}

// Created is a new connection with its first grant (whose Part A is shown
// this once) and, when an alert webhook is set, the webhook's signing
// secret (shown this once too).
type Created struct {
	Connection
	Grant         IssuedGrant `json:"grant"`
	WebhookSecret string      `json:"webhook_secret,omitempty"`
}

// Create makes a connection in tenant tid, with its first grant.
func (s *Service) Create(ctx context.Context, tid tenant.ID, req CreateRequest, actor tenant.Actor) (Created, error) {
	if err := validName("name", req.Name); err != nil {
		return Created{}, err
	}
	u, err := s.parseUpstream("upstream_url", req.UpstreamURL)
	if err != nil {
		return Created{}, err
	}
	if err := checkToken(req.Token); err != nil {
		return Created{}, err
	}
	if err := req.Placement.check(); err != nil {
		return Created{}, err
	}
	ms, err := checkMethods(req.AllowedMethods)
	if err != nil {
		return Created{}, err
	}
	ps, err := checkPaths(req.AllowedPaths)
	if err != nil {
		return Created{}, err
	}
	if err := s.checkAlerts(&req.Alerts); err != nil {
		return Created{}, err
	}
	if err := req.Grant.check(); err != nil {
		return Created{}, err
	}
	now := s.now()
	c := Connection{ID: ids.New(connectionPrefix), TenantID: tid, Name: req.Name, UpstreamURL: u.String(), Placement: req.Placement,
		AllowedMethods: ms, AllowedPaths: ps, Alerts: req.Alerts, TokenVersion: 1, CreatedAt: now, UpdatedAt: now}
	token := []byte(req.Token)
	defer clear(token)
	// Sealing reads the tenant's key in transactions of its own: done
	// before this one, which then only writes.
	g := Grant{ID: ids.New(grantPrefix), ConnectionID: c.ID, Name: req.Grant.Name, Status: GrantActive, AutoSuspend: req.Grant.AutoSuspend,
		CreatedAt: now, UpdatedAt: now}
	partA, hash, sealedB, err := s.issue(ctx, tid, c.ID, g.ID, token)
	if err != nil {
		return Created{}, err
	}
	var secret, sealedSecret string
	if c.Alerts.WebhookURL != "" {
		if secret, sealedSecret, err = s.newWebhookSecret(ctx, tid, c.ID); err != nil {
			return Created{}, err
		}
	}
	msJSON, _ := json.Marshal(ms)
	psJSON, _ := json.Marshal(ps)
	err = s.change(ctx, tid, actor, func(tx *storage.Tx) (string, string, map[string]string, error) {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return "", "", nil, err
		}
		if err := tx.WithinQuota(ctx, "connect_connections", MaxConnectionsPerTenant, "connections"); err != nil {
			return "", "", nil, err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO connect_connections (tenant_id, `+connColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			tx.TenantID(), c.ID, c.Name, c.UpstreamURL, c.Placement.Type, c.Placement.Name, string(msJSON), string(psJSON),
			c.Alerts.Sensitivity, c.Alerts.WebhookURL, sealedSecret, s.fingerprint(tid, c.ID, token), c.TokenVersion,
			now.UnixMicro(), now.UnixMicro()); err != nil {
			if storage.IsUniqueViolation(err) {
				return "", "", nil, connectionExists(c.Name)
			}
			return "", "", nil, fmt.Errorf("connect: insert connection: %w", err)
		}
		if err := insertGrant(ctx, tx, g, hash, sealedB); err != nil {
			return "", "", nil, err
		}
		return "connection.created", c.ID, map[string]string{"name": c.Name, "upstream": u.Host, "grant": g.ID}, nil
	})
	if err != nil {
		return Created{}, err
	}
	return Created{Connection: c, Grant: IssuedGrant{Grant: g, PartA: partA}, WebhookSecret: secret}, nil
}

func insertGrant(ctx context.Context, tx *storage.Tx, g Grant, hash, sealedB string) error {
	_, err := tx.Exec(ctx, `INSERT INTO connect_grants (tenant_id, id, connection_id, name, status, auto_suspend, part_a_hash, part_b,
		suspended_reason, created_at, updated_at, rotated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, 0)`,
		tx.TenantID(), g.ID, g.ConnectionID, g.Name, g.Status, boolInt(g.AutoSuspend), hash, sealedB,
		g.CreatedAt.UnixMicro(), g.UpdatedAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("connect: insert grant: %w", err)
	}
	return nil
}

// Get returns connection id of tenant tid.
func (s *Service) Get(ctx context.Context, tid tenant.ID, id string) (Connection, error) {
	c, err := s.readConn(ctx, tid, id)
	return c.Connection, err
}

// Page is a page of connections.
type Page struct {
	Items      []Connection `json:"items"`
	NextCursor string       `json:"next_cursor"`
}

// List returns tenant tid's connections, by id.
func (s *Service) List(ctx context.Context, tid tenant.ID, limit int, cursor string) (Page, error) {
	limit, after, err := page.Bounds(limit, cursor)
	if err != nil {
		return Page{}, err
	}
	out := Page{Items: []Connection{}}
	err = s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+connColumns+` FROM connect_connections WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?`,
			tx.TenantID(), after, limit+1)
		if err != nil {
			return fmt.Errorf("connect: list connections: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanConn(tx.TenantID(), rows)
			if err != nil {
				return fmt.Errorf("connect: list connections: %w", err)
			}
			out.Items = append(out.Items, c.Connection)
		}
		return rows.Err()
	})
	if err != nil {
		return Page{}, err
	}
	out.Items, out.NextCursor = page.Trim(out.Items, limit, func(c Connection) string { return c.ID })
	return out, nil
}

// UpdateRequest changes a connection; absent fields stay. A new Token
// re-splits every grant (each gets a new Part A; the old ones stop
// working). The upstream URL can change only together with the token, so
// that a token is never sent to a host it was not given for.
type UpdateRequest struct {
	Name           *string    `json:"name,omitempty"`
	UpstreamURL    *string    `json:"upstream_url,omitempty"`
	Token          *string    `json:"token,omitempty"`
	Placement      *Placement `json:"placement,omitempty"`
	AllowedMethods *[]string  `json:"allowed_methods,omitempty"`
	AllowedPaths   *[]string  `json:"allowed_paths,omitempty"`
	Alerts         *Alerts    `json:"alerts,omitempty"`
}

// Updated is a changed connection; after a token replacement, its grants'
// new Part As (shown this once), and a new webhook secret when the
// webhook changed.
type Updated struct {
	Connection
	Grants        []IssuedGrant `json:"grants,omitempty"`
	WebhookSecret string        `json:"webhook_secret,omitempty"`
}

// Update changes connection id of tenant tid.
func (s *Service) Update(ctx context.Context, tid tenant.ID, id string, req UpdateRequest, actor tenant.Actor) (Updated, error) {
	var out Updated
	if req.Name != nil {
		if err := validName("name", *req.Name); err != nil {
			return out, err
		}
	}
	var upstream string
	if req.UpstreamURL != nil {
		if req.Token == nil {
			return out, errs.Field("upstream_url", "token_required",
				"the upstream URL changes only with a new token (a token is never sent to a host it was not given for); send token too")
		}
		u, err := s.parseUpstream("upstream_url", *req.UpstreamURL)
		if err != nil {
			return out, err
		}
		upstream = u.String()
	}
	var token []byte
	if req.Token != nil {
		if err := checkToken(*req.Token); err != nil {
			return out, err
		}
		token = []byte(*req.Token)
		defer clear(token)
	}
	if req.Placement != nil {
		if err := req.Placement.check(); err != nil {
			return out, err
		}
	}
	var ms, ps []string
	var err error
	if req.AllowedMethods != nil {
		if ms, err = checkMethods(*req.AllowedMethods); err != nil {
			return out, err
		}
	}
	if req.AllowedPaths != nil {
		if ps, err = checkPaths(*req.AllowedPaths); err != nil {
			return out, err
		}
	}
	if req.Alerts != nil {
		if err := s.checkAlerts(req.Alerts); err != nil {
			return out, err
		}
	}
	// Grants to re-split are sealed before the writing transaction, which
	// checks that they are still the connection's grants.
	type resplit struct {
		id, partA, hash, sealedB string
	}
	var splits []resplit
	if token != nil {
		var gs []grantRow
		err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
			if _, err := readConn(ctx, tx, id, false); err != nil {
				return err
			}
			gs, err = listGrants(ctx, tx, id)
			return err
		})
		if err != nil {
			return out, err
		}
		for _, g := range gs {
			partA, hash, sealedB, err := s.issue(ctx, tid, id, g.ID, token)
			if err != nil {
				return out, err
			}
			splits = append(splits, resplit{g.ID, partA, hash, sealedB})
		}
	}
	var secret, sealedSecret string
	if req.Alerts != nil && req.Alerts.WebhookURL != "" {
		if secret, sealedSecret, err = s.newWebhookSecret(ctx, tid, id); err != nil {
			return out, err
		}
	}
	err = s.change(ctx, tid, actor, func(tx *storage.Tx) (string, string, map[string]string, error) {
		c, err := readConn(ctx, tx, id, true)
		if err != nil {
			return "", "", nil, err
		}
		detail := map[string]string{}
		if req.Name != nil {
			c.Name, detail["name"] = *req.Name, *req.Name
		}
		if upstream != "" {
			c.UpstreamURL, detail["upstream_url"] = upstream, "changed"
		}
		if req.Placement != nil {
			c.Placement, detail["placement"] = *req.Placement, req.Placement.Type
		}
		if ms != nil {
			c.AllowedMethods, detail["allowed_methods"] = ms, strings.Join(ms, ",")
		}
		if ps != nil {
			c.AllowedPaths, detail["allowed_paths"] = ps, "changed"
		}
		if req.Alerts != nil {
			if req.Alerts.WebhookURL == "" {
				c.webhookSecret = ""
			} else if req.Alerts.WebhookURL != c.Alerts.WebhookURL || c.webhookSecret == "" {
				c.webhookSecret = sealedSecret
			} else {
				secret = "" // the same webhook keeps its secret
			}
			c.Alerts, detail["alerts"] = *req.Alerts, "changed"
		}
		now := s.now()
		if token != nil {
			gs, err := listGrants(ctx, tx, id)
			if err != nil {
				return "", "", nil, err
			}
			if len(gs) != len(splits) {
				return "", "", nil, errs.E(errs.Conflict, "connection_changed", "the connection's grants changed meanwhile; send the request again")
			}
			for i, g := range gs {
				if g.ID != splits[i].id {
					return "", "", nil, errs.E(errs.Conflict, "connection_changed", "the connection's grants changed meanwhile; send the request again")
				}
				if _, err := tx.Exec(ctx, `UPDATE connect_grants SET part_a_hash = ?, part_b = ?, rotated_at = ?, updated_at = ?
					WHERE tenant_id = ? AND id = ?`, splits[i].hash, splits[i].sealedB, now.UnixMicro(), now.UnixMicro(), tx.TenantID(), g.ID); err != nil {
					return "", "", nil, fmt.Errorf("connect: re-split grant: %w", err)
				}
				g.RotatedAt, g.UpdatedAt = &now, now
				out.Grants = append(out.Grants, IssuedGrant{Grant: g.Grant, PartA: splits[i].partA})
			}
			c.fingerprint = s.fingerprint(tid, id, token)
			c.TokenVersion++
			detail["token"] = "replaced"
			detail["grants_resplit"] = fmt.Sprint(len(gs))
		}
		c.UpdatedAt = now
		msJSON, _ := json.Marshal(c.AllowedMethods)
		psJSON, _ := json.Marshal(c.AllowedPaths)
		if _, err := tx.Exec(ctx, `UPDATE connect_connections SET name = ?, upstream_url = ?, placement_type = ?, placement_name = ?,
			allowed_methods = ?, allowed_paths = ?, sensitivity = ?, webhook_url = ?, webhook_secret = ?, token_fingerprint = ?,
			token_version = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
			c.Name, c.UpstreamURL, c.Placement.Type, c.Placement.Name, string(msJSON), string(psJSON), c.Alerts.Sensitivity,
			c.Alerts.WebhookURL, c.webhookSecret, c.fingerprint, c.TokenVersion, now.UnixMicro(), tx.TenantID(), id); err != nil {
			if storage.IsUniqueViolation(err) {
				return "", "", nil, connectionExists(c.Name)
			}
			return "", "", nil, fmt.Errorf("connect: update connection: %w", err)
		}
		out.Connection = c.Connection
		return "connection.updated", id, detail, nil
	})
	if err != nil {
		return Updated{}, err
	}
	if out.Connection.Alerts.WebhookURL != "" {
		out.WebhookSecret = secret
	}
	return out, nil
}

// Delete removes a connection and its grants: every Part A of it stops
// working at once, and the stored Part Bs are gone.
// Its alerts stay, as history, in the tenant's alert list.
func (s *Service) Delete(ctx context.Context, tid tenant.ID, id string, actor tenant.Actor) error {
	var gone []grantRow
	err := s.change(ctx, tid, actor, func(tx *storage.Tx) (string, string, map[string]string, error) {
		if _, err := readConn(ctx, tx, id, true); err != nil {
			return "", "", nil, err
		}
		var err error
		if gone, err = listGrants(ctx, tx, id); err != nil {
			return "", "", nil, err
		}
		for _, q := range []string{
			`DELETE FROM connect_networks WHERE tenant_id = ? AND grant_id IN (SELECT id FROM connect_grants WHERE tenant_id = ? AND connection_id = ?)`,
			`DELETE FROM connect_grants WHERE tenant_id = ? AND connection_id = ?`,
			`DELETE FROM connect_connections WHERE tenant_id = ? AND id = ?`,
		} {
			args := []any{tx.TenantID(), id}
			if strings.Count(q, "?") == 3 {
				args = []any{tx.TenantID(), tx.TenantID(), id}
			}
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return "", "", nil, fmt.Errorf("connect: delete connection: %w", err)
			}
		}
		return "connection.deleted", id, nil, nil
	})
	if err == nil {
		for _, g := range gone {
			s.detector.drop(g.ID)
		}
	}
	return err
}

// ---- grants ----

// CreateGrantRequest adds a grant to a connection. Bulkhead does not hold
// the token, so the request brings it: Token (checked against the
// connection's) or PartA, a current Part A of one of the connection's
// active grants. (Inside a CreateRequest neither is needed.)
type CreateGrantRequest struct {
	Name        string `json:"name,omitempty"`
	AutoSuspend bool   `json:"auto_suspend,omitempty"`
	Token       string `json:"token,omitempty"`
	PartA       string `json:"part_a,omitempty"`
}

func (r CreateGrantRequest) check() error {
	if r.Name != "" {
		return validName("grant.name", r.Name)
	}
	return nil
}

// TokenSource brings the token for a rotation: Token or a current PartA of
// the connection (the grant's own, or another active grant's).
type TokenSource = api.TokenSource

// tokenFrom returns connection c's token from src, checked: a token must
// match the connection's fingerprint; a Part A must authenticate as an
// active grant of c. The caller clears the result.
func (s *Service) tokenFrom(ctx context.Context, tid tenant.ID, c connRow, src TokenSource) ([]byte, error) {
	switch {
	case src.Token != "" && src.PartA != "":
		return nil, errs.Field("token", "invalid_token_source", "send token or part_a, not both")
	case src.Token != "":
		if err := checkToken(src.Token); err != nil {
			return nil, err
		}
		token := []byte(src.Token)
		if !equalHash(s.fingerprint(tid, c.ID, token), c.fingerprint) {
			clear(token)
			return nil, errs.Field("token", "token_mismatch", "the token is not this connection's token")
		}
		return token, nil
	case src.PartA != "":
		refused := errs.Field("part_a", "invalid_part_a", "part_a is not a current Part A of an active grant of this connection")
		pa, err := ParsePartA(src.PartA)
		if err != nil || pa.Tenant != tid {
			return nil, refused
		}
		defer clear(pa.Pad)
		var g grantRow
		err = s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) (err error) {
			g, err = readGrant(ctx, tx, c.ID, pa.Grant)
			return err
		})
		if err != nil {
			if errs.Is(err, "grant_not_found") {
				return nil, refused
			}
			return nil, err
		}
		if !equalHash(s.partAHash(src.PartA), g.partAHash) || g.Status != GrantActive {
			return nil, refused
		}
		return s.recombine(ctx, tid, c.ID, g.ID, g.partB, pa.Pad)
	}
	return nil, errs.Field("token", "token_required",
		"Bulkhead never keeps the whole token, so this needs it again: send token (the connection's upstream token) or part_a (a current Part A of the connection)")
}

// recombine decrypts a stored Part B and XORs it with pad. The caller
// clears the token.
func (s *Service) recombine(ctx context.Context, tid tenant.ID, connID, grantID, sealedB string, pad []byte) ([]byte, error) {
	ct, err := base64.StdEncoding.DecodeString(sealedB)
	if err != nil {
		return nil, fmt.Errorf("connect: stored part B of %s: %w", grantID, err)
	}
	partB, err := s.kms.Open(ctx, tid, ct, partBContext(tid, connID, grantID))
	if err != nil {
		return nil, fmt.Errorf("connect: open part B of %s: %w", grantID, err)
	}
	defer clear(partB)
	token := combine(pad, partB)
	if token == nil {
		return nil, errPartA()
	}
	return token, nil
}

// CreateGrant adds a grant to connection connID of tenant tid.
func (s *Service) CreateGrant(ctx context.Context, tid tenant.ID, connID string, req CreateGrantRequest, actor tenant.Actor) (IssuedGrant, error) {
	if err := req.check(); err != nil {
		return IssuedGrant{}, err
	}
	c, err := s.readConn(ctx, tid, connID)
	if err != nil {
		return IssuedGrant{}, err
	}
	token, err := s.tokenFrom(ctx, tid, c, TokenSource{Token: req.Token, PartA: req.PartA})
	if err != nil {
		return IssuedGrant{}, err
	}
	defer clear(token)
	now := s.now()
	g := Grant{ID: ids.New(grantPrefix), ConnectionID: connID, Name: req.Name, Status: GrantActive, AutoSuspend: req.AutoSuspend,
		CreatedAt: now, UpdatedAt: now}
	partA, hash, sealedB, err := s.issue(ctx, tid, connID, g.ID, token)
	if err != nil {
		return IssuedGrant{}, err
	}
	err = s.change(ctx, tid, actor, func(tx *storage.Tx) (string, string, map[string]string, error) {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return "", "", nil, err
		}
		c2, err := readConn(ctx, tx, connID, true)
		if err != nil {
			return "", "", nil, err
		}
		if c2.TokenVersion != c.TokenVersion {
			return "", "", nil, errs.E(errs.Conflict, "connection_changed", "the connection's token was replaced meanwhile; send the request again")
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM connect_grants WHERE tenant_id = ? AND connection_id = ?`, tx.TenantID(), connID).Scan(&n); err != nil {
			return "", "", nil, fmt.Errorf("connect: count grants: %w", err)
		}
		if n >= MaxGrants {
			return "", "", nil, errs.E(errs.Conflict, "too_many_grants", "a connection has at most %d grants", MaxGrants)
		}
		if err := insertGrant(ctx, tx, g, hash, sealedB); err != nil {
			return "", "", nil, err
		}
		return "connection.grant_created", g.ID, map[string]string{"connection": connID}, nil
	})
	if err != nil {
		return IssuedGrant{}, err
	}
	return IssuedGrant{Grant: g, PartA: partA}, nil
}

// MaxGrants bounds the grants of one connection.
const MaxGrants = 100

// MaxConnectionsPerTenant bounds a tenant's connections.
const MaxConnectionsPerTenant = 1000

func (s *Service) readConn(ctx context.Context, tid tenant.ID, id string) (connRow, error) {
	var c connRow
	err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) (err error) {
		c, err = readConn(ctx, tx, id, false)
		return err
	})
	return c, err
}

// ListGrants returns connection connID's grants.
func (s *Service) ListGrants(ctx context.Context, tid tenant.ID, connID string) ([]Grant, error) {
	out := []Grant{}
	err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if _, err := readConn(ctx, tx, connID, false); err != nil {
			return err
		}
		gs, err := listGrants(ctx, tx, connID)
		for _, g := range gs {
			out = append(out, g.Grant)
		}
		return err
	})
	return out, err
}

// Rotate gives a grant a new Part A (its old one stops working at once)
// without touching the upstream token, which src brings (see TokenSource).
func (s *Service) Rotate(ctx context.Context, tid tenant.ID, connID, grantID string, src TokenSource, actor tenant.Actor) (IssuedGrant, error) {
	c, err := s.readConn(ctx, tid, connID)
	if err != nil {
		return IssuedGrant{}, err
	}
	var g grantRow
	if err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) (err error) {
		g, err = readGrant(ctx, tx, connID, grantID)
		return err
	}); err != nil {
		return IssuedGrant{}, err
	}
	token, err := s.tokenFrom(ctx, tid, c, src)
	if err != nil {
		return IssuedGrant{}, err
	}
	defer clear(token)
	partA, hash, sealedB, err := s.issue(ctx, tid, connID, grantID, token)
	if err != nil {
		return IssuedGrant{}, err
	}
	err = s.change(ctx, tid, actor, func(tx *storage.Tx) (string, string, map[string]string, error) {
		c2, err := readConn(ctx, tx, connID, true)
		if err != nil {
			return "", "", nil, err
		}
		if c2.TokenVersion != c.TokenVersion {
			return "", "", nil, errs.E(errs.Conflict, "connection_changed", "the connection's token was replaced meanwhile; send the request again")
		}
		if g, err = readGrant(ctx, tx, connID, grantID); err != nil {
			return "", "", nil, err
		}
		now := s.now()
		if _, err := tx.Exec(ctx, `UPDATE connect_grants SET part_a_hash = ?, part_b = ?, rotated_at = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
			hash, sealedB, now.UnixMicro(), now.UnixMicro(), tx.TenantID(), grantID); err != nil {
			return "", "", nil, fmt.Errorf("connect: rotate grant: %w", err)
		}
		g.RotatedAt, g.UpdatedAt = &now, now
		return "connection.grant_rotated", grantID, map[string]string{"connection": connID}, nil
	})
	if err != nil {
		return IssuedGrant{}, err
	}
	return IssuedGrant{Grant: g.Grant, PartA: partA}, nil
}

// SetGrantStatus suspends (with a reason) or resumes a grant; a suspended
// grant's Part A is refused from the next request on.
func (s *Service) SetGrantStatus(ctx context.Context, tid tenant.ID, connID, grantID string, suspend bool, reason string, actor tenant.Actor) (Grant, error) {
	var g grantRow
	err := s.change(ctx, tid, actor, func(tx *storage.Tx) (string, string, map[string]string, error) {
		var err error
		if g, err = s.setStatus(ctx, tx, connID, grantID, suspend, reason); err != nil {
			return "", "", nil, err
		}
		if suspend {
			return "connection.grant_suspended", grantID, map[string]string{"connection": connID, "reason": g.SuspendedReason}, nil
		}
		return "connection.grant_resumed", grantID, map[string]string{"connection": connID}, nil
	})
	return g.Grant, err
}

func (s *Service) setStatus(ctx context.Context, tx *storage.Tx, connID, grantID string, suspend bool, reason string) (grantRow, error) {
	if _, err := readConn(ctx, tx, connID, true); err != nil {
		return grantRow{}, err
	}
	g, err := readGrant(ctx, tx, connID, grantID)
	if err != nil {
		return g, err
	}
	g.Status, g.SuspendedReason = GrantActive, ""
	if suspend {
		g.Status, g.SuspendedReason = GrantSuspended, errs.Clip(reason, 200)
		if g.SuspendedReason == "" {
			g.SuspendedReason = "suspended on request"
		}
	}
	g.UpdatedAt = s.now()
	if _, err := tx.Exec(ctx, `UPDATE connect_grants SET status = ?, suspended_reason = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
		g.Status, g.SuspendedReason, g.UpdatedAt.UnixMicro(), tx.TenantID(), grantID); err != nil {
		return g, fmt.Errorf("connect: set grant status: %w", err)
	}
	return g, nil
}

// DeleteGrant removes a grant: its Part A is refused from the next request
// on, and its Part B is gone.
func (s *Service) DeleteGrant(ctx context.Context, tid tenant.ID, connID, grantID string, actor tenant.Actor) error {
	err := s.change(ctx, tid, actor, func(tx *storage.Tx) (string, string, map[string]string, error) {
		if _, err := readConn(ctx, tx, connID, true); err != nil {
			return "", "", nil, err
		}
		if _, err := readGrant(ctx, tx, connID, grantID); err != nil {
			return "", "", nil, err
		}
		for _, q := range []string{`DELETE FROM connect_grants WHERE tenant_id = ? AND id = ?`, `DELETE FROM connect_networks WHERE tenant_id = ? AND grant_id = ?`} {
			if _, err := tx.Exec(ctx, q, tx.TenantID(), grantID); err != nil {
				return "", "", nil, fmt.Errorf("connect: delete grant: %w", err)
			}
		}
		return "connection.grant_deleted", grantID, map[string]string{"connection": connID}, nil
	})
	if err == nil {
		s.detector.drop(grantID)
	}
	return err
}

// ---- activity ----

// Activity returns connection connID's proxied requests, newest first.
func (s *Service) Activity(ctx context.Context, tid tenant.ID, connID string, limit int, cursor string) (audit.Page, error) {
	if _, err := s.readConn(ctx, tid, connID); err != nil {
		return audit.Page{}, err
	}
	return s.audit.ListTenant(ctx, storage.TenantScope(tid), audit.Filter{Action: requestAction, Target: connID, Limit: limit, Cursor: cursor})
}

// requestAction is the audit action of a proxied request.
const requestAction = "connection.request"

// OffboardingStep removes the tenant's connections, grants (so their Part
// Bs), networks and alerts.
func (s *Service) OffboardingStep() tenants.Step {
	return tenants.Step{Name: "connections", Run: func(ctx context.Context, tx *storage.Tx, _ tenants.Tenant) error {
		for _, t := range []string{"connect_grants", "connect_networks", "connect_alerts", "connect_connections"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+t+` WHERE tenant_id = ?`, tx.TenantID()); err != nil {
				return fmt.Errorf("connect: offboarding: %w", err)
			}
		}
		tid := tenant.ID(tx.TenantID())
		tx.AfterCommit(func() { s.forget(tid) })
		return tx.Notify(ctx, notifyChannel, tx.TenantID())
	}}
}

// network is the source network of an address: its /24 (IPv4) or /48 (IPv6).
func network(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p.String()
}
