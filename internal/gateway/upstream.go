package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/httpx"
	"github.com/bulkhead-dev/bulkhead/internal/netguard"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// TenantHeader names the request's tenant to the upstream, for logs; the
// assertion is what the upstream should trust.
const TenantHeader = "X-Bulkhead-Tenant"

type forwardKey struct{}

// forward is what the gateway decided about a request, for the proxy's
// Rewrite.
type forward struct {
	tenant    tenant.ID
	assertion string
	requestID string
	// body is the request body's deadline (nil without a body), for the
	// error handler to tell a slow client from a failing upstream.
	body        *bodyDeadline
	bodyTimeout time.Duration
}

// upstream is one upstream URL with its own transport, so that one slow or
// failing upstream's connections never queue another's requests.
type upstream struct {
	transport *http.Transport
	proxy     *httputil.ReverseProxy
}

type upstreamKey struct {
	url     string
	timeout time.Duration
}

// upstreams keeps one upstream per URL and timeout; they are as many as
// the routes name.
type upstreams struct {
	allowPrivate bool
	log          *slog.Logger
	buffers      copyBuffers
	mu           sync.Mutex
	m            map[upstreamKey]*upstream
}

func newUpstreams(allowPrivate bool, log *slog.Logger) *upstreams {
	return &upstreams{allowPrivate: allowPrivate, log: log, m: map[upstreamKey]*upstream{}}
}

// copyBuffers is the proxies' httputil.BufferPool: without one a
// ReverseProxy allocates 32 KiB to copy each answer, three quarters of
// what a request allocated, and the collector's work followed.
type copyBuffers struct{ p sync.Pool }

func (b *copyBuffers) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *copyBuffers) Put(buf []byte) { b.p.Put(&buf) }

func (u *upstreams) get(target string, timeout time.Duration) *upstream {
	k := upstreamKey{target, timeout}
	u.mu.Lock()
	defer u.mu.Unlock()
	if up, ok := u.m[k]; ok {
		return up
	}
	up := u.newUpstream(target, timeout)
	u.m[k] = up
	return up
}

// retain drops the upstreams not in keep and closes their idle
// connections. A request that chose its route before the change still
// completes on the dropped transport (its connection then idles out after
// IdleConnTimeout); one that asks get for it after the change makes it
// anew, to be dropped by the next change.
func (u *upstreams) retain(keep map[upstreamKey]bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for k, up := range u.m {
		if !keep[k] {
			up.transport.CloseIdleConnections()
			delete(u.m, k)
		}
	}
}

func (u *upstreams) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, up := range u.m {
		up.transport.CloseIdleConnections()
	}
}

func (u *upstreams) newUpstream(target string, timeout time.Duration) *upstream {
	tu, _ := url.Parse(target) // validated with the route
	t := &http.Transport{
		Proxy:             nil, // the dialer checks the address it dials: never through a proxy
		DialContext:       netguard.Dialer(10*time.Second, u.allowPrivate).DialContext,
		ForceAttemptHTTP2: true,
		// The client's Accept-Encoding goes through as it came: without
		// this the transport would ask the application for gzip and
		// unpack it here, costing the gateway the CPU and the client the
		// compression it did not ask to lose.
		DisableCompression:    true,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
	}
	up := &upstream{transport: t}
	up.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			f := pr.In.Context().Value(forwardKey{}).(*forward)
			pr.SetURL(tu)
			stripTenantHeaders(pr.Out.Header)
			pr.SetXForwarded()
			pr.Out.Header.Set(TenantHeader, string(f.tenant))
			pr.Out.Header.Set(AssertionHeader, f.assertion)
			pr.Out.Header.Set("X-Request-Id", f.requestID)
		},
		Transport:  retrying{t},
		BufferPool: &u.buffers,
		// Streams (no Content-Length, text/event-stream) are flushed as
		// they come by ReverseProxy itself; other bodies are buffered.
		ErrorLog: slog.NewLogLogger(u.log.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if f, _ := r.Context().Value(forwardKey{}).(*forward); f != nil && f.body.timedOut() {
				w.Header().Set("Connection", "close")
				httpx.WriteProblem(w, httpx.ProblemFor(&errs.Error{Kind: errs.RequestTimeout, Code: "request_timeout", Err: err,
					Detail: fmt.Sprintf("the request body did not arrive within %s", f.bodyTimeout)}))
				return
			}
			if r.Context().Err() != nil {
				return // the client went away: nobody to answer
			}
			httpx.WriteProblem(w, httpx.ProblemFor(upstreamError(err)))
		},
		// The upstream's redirects go back to the client as they are:
		// a ReverseProxy never follows them.
	}
	return up
}

func upstreamError(err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return errs.E(errs.GatewayTimeout, "upstream_timeout", "the application did not answer in time")
	}
	return errs.E(errs.BadGateway, "upstream_unavailable", "the application could not be reached")
}

// stripTenantHeaders removes every header through which a client could
// claim a tenant or an origin: X-Bulkhead-*, X-Tenant-*, Forwarded,
// X-Forwarded-* and X-Real-IP. Names are compared with _ read as -, as
// some application servers do.
func stripTenantHeaders(h http.Header) {
	for k := range h {
		n := strings.ReplaceAll(strings.ToLower(k), "_", "-")
		if strings.HasPrefix(n, "x-bulkhead-") || strings.HasPrefix(n, "x-tenant-") || n == "x-tenant" ||
			n == "forwarded" || strings.HasPrefix(n, "x-forwarded-") || n == "x-real-ip" {
			delete(h, k)
		}
	}
}

// retrying retries a request once more when the connection to the upstream
// failed before anything was sent back, and only when that is safe: an
// idempotent method without a body.
type retrying struct{ rt http.RoundTripper }

const attempts = 2

func (t retrying) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	for i := 1; i < attempts && err != nil && retryable(r, err); i++ {
		resp, err = t.rt.RoundTrip(r)
	}
	return resp, err
}

func retryable(r *http.Request, err error) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		return false
	}
	if r.Body != nil && r.Body != http.NoBody || r.ContentLength != 0 || r.Context().Err() != nil {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false // a hanging upstream is not asked twice
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || isDial(err)
}

func isDial(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial" && !errors.Is(err, netguard.ErrNotPublic)
}
