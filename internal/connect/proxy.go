package connect

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/httpx"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/lru"
	"github.com/bulkhead-dev/bulkhead/internal/netguard"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// MaxRequestHeaderBytes bounds the header fields of a proxied request.
const MaxRequestHeaderBytes = 32 << 10

// grantKey names a cached grant.
type grantKey struct {
	tenant tenant.ID
	grant  string
}

// grantState is what the proxy needs of a grant, read in one transaction:
// the grant, its connection, the networks it was used from, and whether
// its tenant may use it.
type grantState struct {
	tid       tenant.ID
	grant     grantRow
	conn      connRow
	upstream  *url.URL
	networks  map[string]bool
	tenantErr error // non-nil while the tenant is not active
	// used is when the grant's use was last recorded (µs), as read and
	// as noteUse records it.
	used atomic.Int64
}

// maxNetworks bounds the source networks remembered per grant; past it,
// new networks are not learned nor reported.
const maxNetworks = 1000

// loadGrant returns grant key's state from the cache or the database.
func (s *Service) loadGrant(ctx context.Context, k grantKey) (*grantState, error) {
	if g, ok := s.grants.Get(k); ok {
		return g, nil
	}
	gen := s.grants.Generation()
	v, err, _ := s.loads.Do(string(k.tenant)+"\x00"+k.grant, func() (any, error) { return s.readGrantState(ctx, k) })
	if err != nil {
		return nil, err
	}
	g := v.(*grantState)
	if s.grants.Generation() != gen {
		// A change committed while this request waited on a load begun
		// before it: read again, alone.
		if g, err = s.readGrantState(ctx, k); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func (s *Service) readGrantState(ctx context.Context, k grantKey) (*grantState, error) {
	gen := s.grants.Generation()
	g := &grantState{tid: k.tenant, networks: map[string]bool{}}
	err := s.db.View(ctx, storage.TenantScope(k.tenant), func(tx *storage.Tx) error {
		var err error
		g.grant, err = scanGrant(tx.QueryRow(ctx, `SELECT `+grantColumns+` FROM connect_grants WHERE tenant_id = ? AND id = ?`, tx.TenantID(), k.grant))
		if errors.Is(err, sql.ErrNoRows) {
			return errPartA()
		}
		if err != nil {
			return fmt.Errorf("connect: read grant: %w", err)
		}
		if g.conn, err = readConn(ctx, tx, g.grant.ConnectionID, false); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT network FROM connect_networks WHERE tenant_id = ? AND grant_id = ? LIMIT ?`, tx.TenantID(), k.grant, maxNetworks)
		if err != nil {
			return fmt.Errorf("connect: read networks: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				return fmt.Errorf("connect: read networks: %w", err)
			}
			g.networks[n] = true
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	g.used.Store(g.grant.lastUsed)
	if g.upstream, err = url.Parse(g.conn.UpstreamURL); err != nil {
		return nil, fmt.Errorf("connect: stored upstream of %s: %w", g.conn.ID, err)
	}
	t, err := s.tenants.Get(ctx, k.tenant)
	switch {
	case errs.Is(err, "tenant_not_found"):
		return nil, errPartA()
	case err != nil:
		return nil, err
	case t.Status != tenants.Active:
		g.tenantErr = errs.E(errs.Forbidden, "tenant_not_active", "the connection's tenant is %s; its connections are closed", t.Status)
	}
	s.grants.Put(k, g, gen)
	return g, nil
}

// useResolution is how stale a grant's recorded last use may grow: its
// use is written at most once per this (per cached grant state, and
// across nodes by the condition of the write).
const useResolution = 24 * time.Hour

// noteUse records that grant g is being used now, for the posture check
// grant_idle, unless that was recorded less than useResolution ago: a
// proxied request costs no write of its own. A failure is logged; the
// request goes on.
func (s *Service) noteUse(ctx context.Context, g *grantState, now time.Time) {
	last := g.used.Load()
	if now.Sub(time.UnixMicro(last)) < useResolution || !g.used.CompareAndSwap(last, now.UnixMicro()) {
		return
	}
	err := s.db.Update(ctx, storage.TenantScope(g.tid), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE connect_grants SET last_used_at = ? WHERE tenant_id = ? AND id = ? AND last_used_at < ?`,
			now.UnixMicro(), tx.TenantID(), g.grant.ID, now.Add(-useResolution).UnixMicro())
		return err
	})
	if err != nil {
		g.used.CompareAndSwap(now.UnixMicro(), last)
		s.log.ErrorContext(ctx, "connect: record a grant's use", "err", err, "tenant_id", g.tid, "grant", g.grant.ID)
	}
}

// record is what the audit keeps of one proxied request.
type record struct {
	tid        tenant.ID
	grant      string
	conn       string
	method     string
	path       string
	status     int
	bytesIn    int64
	bytesOut   int64
	latency    time.Duration
	sourceIP   string
	userAgent  string
	requestID  string
	newNetwork string
	err        error
	slowBody   bool // the body did not arrive within BodyTimeout
}

// countingBody counts a request body's bytes and notes a read that ran
// past the body deadline.
type countingBody struct {
	io.ReadCloser
	rec *record
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.rec.bytesIn += int64(n)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		b.rec.slowBody = true
	}
	return n, err
}

// ServeHTTP is the proxy: {proxy}/c/{connection}/{path…} with Part A as
// the bearer token. See the package doc.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// The request, body included, must arrive within BodyTimeout; reads
	// past it fail, and the exchange ends as a 400 request_timeout.
	http.NewResponseController(w).SetReadDeadline(start.Add(s.opts.BodyTimeout))
	rec := &record{method: r.Method, sourceIP: s.opts.ClientIP.IP(r), userAgent: errs.Clip(r.UserAgent(), 200),
		requestID: ids.New("req")}
	sw := &httpx.StatusWriter{ResponseWriter: w}
	sw.Header().Set("X-Request-Id", rec.requestID)
	if r.URL.Path == "/healthz" && r.Method == http.MethodGet {
		sw.Header().Set("Content-Type", "application/json")
		io.WriteString(sw, `{"status":"ok"}`+"\n")
		return
	}
	if r.Body != nil {
		r.Body = countingBody{r.Body, rec}
	}
	defer func() {
		// ReverseProxy aborts the response (http.ErrAbortHandler) when the
		// upstream breaks off mid-body: the exchange is audited, and the
		// abort goes on so that the client sees a cut answer, not a whole one.
		if p := recover(); p != nil {
			rec.status, rec.bytesOut, rec.latency = sw.Status, sw.Bytes, time.Since(start)
			rec.err = &errs.Error{Kind: errs.BadGateway, Code: "upstream_aborted", Detail: "the upstream broke off its answer"}
			s.auditRequest(r.Context(), rec)
			panic(p)
		}
	}()
	err := s.proxy(sw, r, rec)
	if err != nil {
		p := httpx.ProblemFor(err)
		p.RequestID = rec.requestID
		if p.Status >= 500 && p.Code == "internal" {
			s.log.ErrorContext(r.Context(), "connect: proxied request failed", "err", err, "tenant_id", rec.tid, "connection", rec.conn)
		}
		if sw.Status == 0 {
			httpx.WriteProblem(sw, p)
		}
		rec.err = err
	}
	rec.status, rec.bytesOut, rec.latency = sw.Status, sw.Bytes, time.Since(start)
	s.auditRequest(r.Context(), rec)
}

// proxy authenticates, checks and forwards one request.
func (s *Service) proxy(w *httpx.StatusWriter, r *http.Request, rec *record) error {
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/c/")
	if !ok {
		return errs.E(errs.NotFound, "route_not_found", "proxied requests go to /c/{connection_id}/{path}")
	}
	connID, restEscaped, _ := strings.Cut(rest, "/")
	restEscaped = "/" + restEscaped
	rec.conn = errs.Clip(connID, 64)
	restPath, err := url.PathUnescape(restEscaped)
	if err != nil || hasDotSegment(restPath) || strings.ContainsAny(restPath, "\x00\\") {
		// A backslash is refused too: some servers read it as a slash.
		return errs.E(errs.Invalid, "invalid_path", "the path after the connection id must not hold . or .. segments, backslashes or bad %%-escapes")
	}
	rec.path = errs.Clip(restPath, 512)

	// Authenticate Part A before anything else is read.
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return errPartA()
	}
	pa, err := ParsePartA(strings.TrimSpace(token))
	if err != nil {
		return err
	}
	defer clear(pa.Pad)
	g, err := s.loadGrant(r.Context(), grantKey{pa.Tenant, pa.Grant})
	if err != nil {
		return err
	}
	if !equalHash(s.partAHash(strings.TrimSpace(token)), g.grant.partAHash) {
		rec.tid, rec.grant = g.tid, g.grant.ID // a forged Part A aimed at this grant: the tenant's chain records it
		return errPartA()
	}
	rec.tid, rec.grant = g.tid, g.grant.ID
	if g.grant.ConnectionID != connID {
		// Tenant B's Part A on tenant A's connection id (or any other id):
		// the grant's own connection is the only one it reaches.
		return notFound(connID)
	}
	if g.tenantErr != nil {
		return g.tenantErr
	}
	if g.grant.Status != GrantActive {
		return errs.E(errs.Forbidden, "grant_suspended", "this grant is suspended (%s); the connection's owner can resume it", g.grant.SuspendedReason)
	}

	// What the grant may do, checked before anything is recombined.
	if err := checkRequest(r, g.conn.Connection, restPath); err != nil {
		return err
	}

	// Anomalies: a request far outside the baseline, or from a new network.
	now := s.now()
	findings := s.detector.request(g.grant.ID, restPath, g.conn.Alerts.Sensitivity, now)
	if n := network(rec.sourceIP); n != "" && !g.networks[n] && len(g.networks) < maxNetworks {
		learned, err := s.learnNetwork(r.Context(), g, n)
		if err != nil {
			return err
		}
		if learned && now.Sub(g.grant.CreatedAt) >= s.detector.opts.LearningPeriod {
			findings = append(findings, finding{kind: AlertNewNetwork, observed: 1})
			rec.newNetwork = n
		}
	}
	if len(findings) > 0 {
		suspended, err := s.raise(r.Context(), g, findings, rec)
		if err != nil {
			return err
		}
		if suspended {
			return errs.E(errs.Forbidden, "grant_suspended", "this grant was suspended by an anomaly alert; the connection's owner can resume it")
		}
	}

	s.noteUse(r.Context(), g, now)

	// Recombine the token for this request only.
	tok, err := s.recombine(r.Context(), g.tid, g.conn.ID, g.grant.ID, g.grant.partB, pa.Pad)
	if err != nil {
		return err
	}
	defer clear(tok)
	out, err := target(g, restPath, restEscaped, r.URL.RawQuery, tok)
	if err != nil {
		return err
	}
	x := &exchange{out: out, tok: tok, connID: g.conn.ID}
	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), exchangeKey{}, x), s.opts.RequestTimeout)
	defer cancel()
	s.forward.ServeHTTP(w, r.WithContext(ctx))
	if x.err != nil && rec.slowBody {
		return &errs.Error{Kind: errs.RequestTimeout, Code: "request_timeout", Err: x.err,
			Detail: fmt.Sprintf("the request body did not arrive within %s", s.opts.BodyTimeout)}
	}
	if x.err != nil {
		return upstreamError(x.err, ctx)
	}
	if fs := s.detector.response(g.grant.ID, w.Bytes, g.conn.Alerts.Sensitivity, s.now()); len(fs) > 0 {
		if _, err := s.raise(context.WithoutCancel(r.Context()), g, fs, rec); err != nil {
			s.log.ErrorContext(r.Context(), "connect: raising an alert failed", "err", err, "tenant_id", g.tid)
		}
	}
	return nil
}

// redactHeaders removes the token from an upstream's response headers: an
// upstream that redirects keeping the query (query placement) would
// otherwise hand the whole token to the holder of Part A. (A body that
// echoes the token is the upstream's to avoid; the proxy streams bodies
// unread.)
func redactHeaders(h http.Header, tok []byte) {
	escaped := appendQueryEscaped(make([]byte, 0, 3*len(tok)), tok) // sized: no growth leaves a partial copy behind
	redactForms(h, tok, escaped)
	clear(escaped) // redactForms has returned: no string over it is left
}

// redactForms replaces each form in h's values. It reads the forms through
// strings over their bytes, not copies (a copy of the token could not be
// cleared): those strings live only during this call, are never stored
// (ReplaceAll returns new strings of its own) and nothing writes the
// bytes while they live.
func redactForms(h http.Header, forms ...[]byte) {
	for _, vs := range h {
		for i := range vs {
			for _, b := range forms {
				f := unsafe.String(unsafe.SliceData(b), len(b))
				if f != "" && strings.Contains(vs[i], f) {
					vs[i] = strings.ReplaceAll(vs[i], f, "REDACTED")
				}
			}
		}
	}
}

// exchange is one proxied request's state, handed to the shared
// ReverseProxy in the request's context.
type exchange struct {
	out    outbound
	tok    []byte // cleared by the request's handler when the exchange is over
	connID string
	err    error // the upstream's failure, if any
}

type exchangeKey struct{}

func exchangeOf(ctx context.Context) *exchange { return ctx.Value(exchangeKey{}).(*exchange) }

// newForwarder is the proxy's one ReverseProxy: it places the token,
// drops the integration's own credentials, redacts the token from the
// answer's headers and sends each request through its connection's
// transport.
func (s *Service) newForwarder() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			x := exchangeOf(pr.In.Context())
			pr.Out.URL = x.out.url
			pr.Out.Host = ""
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Cookie")
			if x.out.header != "" {
				pr.Out.Header[x.out.header] = []string{x.out.value}
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			redactHeaders(resp.Header, exchangeOf(resp.Request.Context()).tok)
			return nil
		},
		Transport:    s.upstream,
		ErrorLog:     slog.NewLogLogger(slog.DiscardHandler, slog.LevelError),
		ErrorHandler: func(_ http.ResponseWriter, r *http.Request, err error) { exchangeOf(r.Context()).err = err },
	}
}

// RoundTrip sends req through its connection's transport.
func (u *upstreams) RoundTrip(req *http.Request) (*http.Response, error) {
	return u.transport(exchangeOf(req.Context()).connID).RoundTrip(req)
}

// checkRequest refuses what a grant may not send.
func checkRequest(r *http.Request, c Connection, restPath string) error {
	var size int
	for k, vs := range r.Header {
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
	}
	if size > MaxRequestHeaderBytes {
		return &errs.Error{Kind: errs.HeadersTooLarge, Code: "headers_too_large",
			Detail: fmt.Sprintf("the request's header fields are over %d bytes", MaxRequestHeaderBytes)}
	}
	if r.Header.Get("Upgrade") != "" || r.Method == http.MethodConnect {
		return errs.E(errs.Invalid, "upgrade_not_supported", "the proxy forwards plain HTTP requests only (no Upgrade, no CONNECT)")
	}
	allowed := c.AllowedMethods
	if len(allowed) == 0 {
		allowed = methods
	}
	if !slices.Contains(allowed, r.Method) {
		return errs.E(errs.Forbidden, "method_not_allowed", "this connection does not allow %s (it allows %s)",
			errs.Clip(r.Method, 20), strings.Join(allowed, ", "))
	}
	if len(c.AllowedPaths) > 0 && !slices.ContainsFunc(c.AllowedPaths, func(p string) bool { return underPrefix(restPath, p) }) {
		return errs.E(errs.Forbidden, "path_not_allowed", "this connection does not allow the path %s", errs.Clip(restPath, 200))
	}
	return nil
}

// underPrefix reports whether path is prefix or below it.
func underPrefix(path, prefix string) bool {
	if path == prefix || prefix == "/" {
		return true
	}
	return strings.HasPrefix(path, strings.TrimSuffix(prefix, "/")+"/")
}

// outbound is where one request goes and the token's header, if any.
type outbound struct {
	url           *url.URL
	header, value string
}

// target builds the upstream URL and places the token.
//
// One copy of the token remains per request, and cannot be cleared:
// net/http takes header values and the URL's query as strings, and a Go
// string is immutable, so the header value (or the query that carries the
// token) is a string made here from the token's bytes, a copy that never
// aliases them, reclaimed by the garbage collector rather than zeroed. A
// query's escaped form is built first in a buffer that target owns and
// clears as soon as the string is made. Go's HTTP client makes copies of
// its own while writing the request (its buffered writer, TLS records),
// outside the proxy's reach.
func target(g *grantState, restPath, restEscaped, rawQuery string, tok []byte) (outbound, error) {
	u := *g.upstream
	u.Path = g.upstream.Path + restPath
	u.RawPath = g.upstream.EscapedPath() + restEscaped
	if u.RawPath == u.Path {
		u.RawPath = ""
	}
	u.RawQuery = rawQuery
	out := outbound{url: &u}
	p := g.conn.Placement
	switch p.Type {
	case PlaceBearer:
		out.header, out.value = "Authorization", "Bearer "+string(tok) // one allocation: the concatenation reads tok in place
	case PlaceHeader:
		out.header, out.value = p.Name, string(tok)
	case PlaceQuery:
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return out, errs.E(errs.Invalid, "invalid_query", "the query string does not parse")
		}
		q.Del(p.Name) // the integration cannot set the token's parameter
		rest, name := q.Encode(), url.QueryEscape(p.Name)
		// Sized for the longest escaping, so that no growth leaves a
		// partial copy of the token behind in an abandoned array.
		buf := make([]byte, 0, len(rest)+1+len(name)+1+3*len(tok))
		buf = append(buf, rest...)
		if len(buf) > 0 {
			buf = append(buf, '&')
		}
		buf = append(buf, name...)
		buf = append(buf, '=')
		buf = appendQueryEscaped(buf, tok)
		u.RawQuery = string(buf)
		clear(buf)
	}
	return out, nil
}

// appendQueryEscaped appends b escaped for a query value, without making a
// string of it: as url.QueryEscape would, but a space as %20 (tokens hold
// none).
func appendQueryEscaped(dst, b []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~':
			dst = append(dst, c)
		default:
			dst = append(dst, '%', hex[c>>4], hex[c&15])
		}
	}
	return dst
}

// errPrivateUpstream is the dialer's refusal of a non-public address.
var errPrivateUpstream = netguard.ErrNotPublic

// upstreamError maps a failed exchange to a problem.
func upstreamError(err error, ctx context.Context) error {
	var ne net.Error
	switch {
	case errors.Is(err, errPrivateUpstream):
		return &errs.Error{Kind: errs.BadGateway, Code: "upstream_not_allowed", Err: err,
			Detail: "the upstream resolves to a loopback, private or link-local address, which this proxy does not reach"}
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return &errs.Error{Kind: errs.GatewayTimeout, Code: "upstream_timeout", Err: err, Detail: "the upstream did not answer in time"}
	case errors.Is(err, context.Canceled):
		return &errs.Error{Kind: errs.Invalid, Code: "client_closed", Err: err, Detail: "the client went away before the upstream answered"}
	}
	return &errs.Error{Kind: errs.BadGateway, Code: "upstream_unreachable", Err: err, Detail: "the upstream could not be reached or broke off"}
}

// upstreams keeps one HTTP transport per connection, so that a kept-alive
// upstream connection that carried one tenant's token is never handed to
// another tenant's request.
type upstreams struct {
	opts Options
	ts   *lru.Cache[string, *http.Transport]
}

func newUpstreams(opts Options) *upstreams {
	return &upstreams{opts: opts, ts: lru.New[string, *http.Transport](lru.Options[*http.Transport]{
		Size: 1000, OnEvict: func(t *http.Transport) { t.CloseIdleConnections() }})}
}

func (u *upstreams) transport(connID string) *http.Transport {
	if t, ok := u.ts.Get(connID); ok {
		return t
	}
	gen := u.ts.Generation()
	d := u.opts.dialer(10 * time.Second)
	t := &http.Transport{
		Proxy:                  nil, // never an environment's proxy
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      false,
		TLSNextProto:           map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1 only: see target
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  u.opts.UpstreamTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
	}
	u.ts.Put(connID, t, gen)
	return t
}

func (u *upstreams) close() { u.ts.Purge() }

// dialer is how the proxy and the webhooks connect: to public addresses
// only (checked on the address dialed, after name resolution, so a name
// that resolves to a private address is refused too) unless private
// upstreams are allowed.
func (o Options) dialer(timeout time.Duration) *net.Dialer {
	return netguard.Dialer(timeout, o.AllowPrivateUpstreams)
}

// auditRequest writes one proxied request to the audit log without waiting for
// its commit: in the grant's tenant's chain once the grant is known, else
// (a Part A that does not parse or names no grant) in the platform's
// chain, at most 20 per source address and then one per 6 s.
func (s *Service) auditRequest(ctx context.Context, rec *record) {
	outcome := audit.Success
	detail := map[string]string{"method": errs.Clip(rec.method, 20), "path": rec.path, "status": strconv.Itoa(rec.status),
		"bytes_in": strconv.FormatInt(rec.bytesIn, 10), "bytes_out": strconv.FormatInt(rec.bytesOut, 10),
		"latency_us": strconv.FormatInt(rec.latency.Microseconds(), 10), "user_agent": rec.userAgent}
	if rec.grant != "" {
		detail["grant"] = rec.grant
	}
	if rec.newNetwork != "" {
		detail["new_network"] = rec.newNetwork
	}
	if rec.err != nil {
		outcome = audit.Failure
		code := "internal"
		if e, ok := errs.As(rec.err); ok {
			code = e.Code
			if e.Kind == errs.Unauthenticated || e.Kind == errs.Forbidden || e.Kind == errs.NotFound {
				outcome = audit.Denied
			}
		}
		detail["code"] = code
	}
	principal := "grant:" + rec.grant
	if rec.grant == "" {
		principal = "anonymous"
	}
	if outcome == audit.Denied && (rec.tid == "" || detail["code"] == "invalid_part_a") {
		ok, suppressed := s.refusals.Allow(rec.sourceIP, time.Now())
		if !ok {
			return
		}
		if suppressed > 0 {
			detail["unaudited_before"] = strconv.Itoa(suppressed)
		}
	}
	ev := audit.Event{TenantID: string(rec.tid), Principal: principal, Action: requestAction, Target: rec.conn, Outcome: outcome,
		RequestID: rec.requestID, SourceIP: rec.sourceIP, Detail: detail}
	if err := s.audit.Enqueue(context.WithoutCancel(ctx), ev); err != nil {
		s.log.ErrorContext(ctx, "connect: audit enqueue failed", "err", err, "tenant_id", rec.tid)
	}
}
