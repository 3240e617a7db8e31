package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/sync/singleflight"

	"github.com/bulkhead-dev/bulkhead/internal/lru"
	"github.com/bulkhead-dev/bulkhead/internal/netguard"
)

// Federation reaches out to URLs a tenant chose: its provider's discovery
// document and, from that document, JWKS, token and userinfo endpoints.
// Each of those is untrusted input that the node fetches with its own
// network position, so every fetch goes through one client that
//
//   - connects only to public addresses (netguard, on the dialed address,
//     after DNS), unless the operator allows private upstreams — without
//     that, an issuer (or a discovery document) naming 127.0.0.1 or a cloud
//     metadata address would have the node post the client secret and the
//     code there;
//   - speaks https only (http only to loopback, and only when private
//     upstreams are allowed: tests and on-premises setups);
//   - follows redirects only on the same scheme and host, at most three;
//   - gives up after a total timeout, so a silent upstream cannot hold a
//     sign-in (and a handler goroutine) for minutes;
//   - stops reading an answer at a size cap, while reading, so a huge
//     document costs at most the cap in memory (the libraries read bodies
//     whole).

// Size caps of upstream answers.
const (
	// maxMetadataBytes bounds discovery documents and JWKS; real ones are
	// a few KiB.
	maxMetadataBytes = 512 << 10
	// maxExchangeBytes bounds token and userinfo answers.
	maxExchangeBytes = 64 << 10
)

// DefaultUpstreamTimeout is the total time one federation fetch may take,
// and the time the upstream part of one sign-in step may take.
const DefaultUpstreamTimeout = 10 * time.Second

// Discovery cache bounds: an entry lives an hour (a provider's endpoints
// and keys do change), and at most upstreamCacheSize are kept — each can
// hold up to maxMetadataBytes of discovery and of keys.
const (
	upstreamCacheAge  = time.Hour
	upstreamCacheSize = 256
)

var (
	errUpstreamTooLarge  = errors.New("provider: the upstream's answer is over its size limit")
	errUpstreamRedirect  = errors.New("provider: the upstream redirected to another host")
	errUpstreamCleartext = errors.New("provider: upstream URLs must use https (http only on loopback, when private upstreams are allowed)")
)

// newUpstreamClient returns the HTTP client of every federation fetch.
func newUpstreamClient(timeout time.Duration, allowPrivate bool) *http.Client {
	d := netguard.Dialer(timeout, allowPrivate)
	t := &http.Transport{
		Proxy:                  nil, // through a proxy the dialed address would be the proxy's
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
	}
	return &http.Client{
		Timeout:   timeout,
		Transport: &cappedTransport{next: t, allowPrivate: allowPrivate},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errUpstreamRedirect
			}
			if req.URL.Scheme != via[0].URL.Scheme || req.URL.Host != via[0].URL.Host {
				return errUpstreamRedirect
			}
			return nil
		},
	}
}

// cappedTransport enforces the scheme rule and the size caps.
type cappedTransport struct {
	next         http.RoundTripper
	allowPrivate bool
}

func (c *cappedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" && !(r.URL.Scheme == "http" && c.allowPrivate && netguard.Loopback(r.URL.Hostname())) {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, errUpstreamCleartext
	}
	resp, err := c.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	limit := capOf(r)
	if resp.ContentLength > limit {
		resp.Body.Close()
		return nil, fmt.Errorf("%w (%d bytes announced, %d allowed)", errUpstreamTooLarge, resp.ContentLength, limit)
	}
	resp.Body = &cappedBody{rc: resp.Body, left: limit}
	return resp, nil
}

// capOf is the size cap of the answer to r: token and userinfo requests
// carry credentials (a POST with the client's authentication, a GET with
// a bearer token); discovery and JWKS are plain GETs.
func capOf(r *http.Request) int64 {
	if r.Method != http.MethodGet || r.Header.Get("Authorization") != "" {
		return maxExchangeBytes
	}
	return maxMetadataBytes
}

// cappedBody fails a read that goes past its cap, rather than truncating:
// a truncated document could still parse.
type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errUpstreamTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, errUpstreamTooLarge
	}
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }

// upstreams caches tenants' providers' discovery (and, inside each
// provider, its keys) by issuer URL, bounded in age and number.
type upstreams struct {
	client *http.Client
	cache  *lru.Cache[string, *oidc.Provider]
	group  singleflight.Group
}

func newUpstreams(client *http.Client, now func() time.Time) *upstreams {
	return &upstreams{client: client, cache: lru.New[string, *oidc.Provider](lru.Options[*oidc.Provider]{
		Size: upstreamCacheSize, MaxAge: upstreamCacheAge, Now: now})}
}

// context returns ctx carrying the federation client, for go-oidc and
// x/oauth2 (they share the context key).
func (u *upstreams) context(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, u.client)
}

// get returns the provider of issuer, discovering it when it is not
// cached (once for concurrent callers). A failed discovery is not cached.
func (u *upstreams) get(ctx context.Context, issuer string) (*oidc.Provider, error) {
	if p, ok := u.cache.Get(issuer); ok {
		return p, nil
	}
	v, err, _ := u.group.Do(issuer, func() (any, error) {
		gen := u.cache.Generation()
		p, err := oidc.NewProvider(u.context(ctx), issuer)
		if err != nil {
			return nil, fmt.Errorf("provider: discovery of %s: %w", issuer, err)
		}
		u.cache.Put(issuer, p, gen)
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*oidc.Provider), nil
}
