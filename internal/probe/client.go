package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// maxAnswer bounds how much of an answer the probe reads (and searches
// for another tenant's ids); a document is read up to one byte past its
// own bound, so that an oversized one is refused rather than cut.
const maxAnswer = 1 << 20

const maxDocumentAnswer = MaxDocumentBytes + 1

// errBudget ends a run whose request budget is spent.
var errBudget = errors.New("probe: request budget spent")

// sender sends the probe's requests: to the one host it was given (the
// address resolved once, at the start, so a DNS answer that changes
// mid-run cannot move the traffic), never following a redirect, at most
// rate requests a second and budget requests in all.
type sender struct {
	base    *url.URL
	client  *http.Client
	limiter *rate.Limiter
	budget  int // 0: no bound
	sent    int
	secrets []string
	// documents: answers are documents, read to MaxDocumentBytes
	documents bool // credentials, masked wherever an answer echoes one
}

// answer is a response as the probe keeps it.
type answer struct {
	status      int
	contentType string
	location    string
	retryAfter  string
	body        []byte
}

func newSender(ctx context.Context, base *url.URL, perSecond float64, budget int, tlsConfig *tls.Config) (*sender, error) {
	host := base.Hostname()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return nil, fmt.Errorf("probe: resolve %s: %w", host, err)
	}
	target := hostPort(base)
	_, p, _ := net.SplitHostPort(target)
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("probe: the base URL's port %q: %w", p, err)
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		Proxy: nil, // never through a proxy: that would be another host
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if !strings.EqualFold(addr, target) {
				return nil, fmt.Errorf("probe: refused to connect to %s: the probe only talks to %s", addr, target)
			}
			var last error
			for _, a := range addrs {
				c, err := dialer.DialContext(ctx, network, netip.AddrPortFrom(a.Unmap(), uint16(port)).String())
				if err == nil {
					return c, nil
				}
				last = err
			}
			return nil, last
		},
		TLSClientConfig:       tlsConfig,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   8,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       30 * time.Second,
	}
	lim := rate.NewLimiter(rate.Inf, 1)
	if perSecond > 0 {
		lim = rate.NewLimiter(rate.Limit(perSecond), 1)
	}
	return &sender{base: base, limiter: lim, budget: budget, client: &http.Client{
		Transport: tr,
		Timeout:   60 * time.Second,
		// A redirect is an answer like any other: following it could
		// lead to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// close lets go of idle connections.
func (s *sender) close() { s.client.CloseIdleConnections() }

// send sends one request: path (already filled) and query on the base
// URL, with token as the bearer credential unless it is empty. A 429 is
// waited out and sent again (twice at most) when its Retry-After, in
// seconds or as a date, is at most 30 seconds away, or a second when it
// has none: a throttled answer is no evidence, and the run judges one
// that stays throttled as not covered.
func (s *sender) send(ctx context.Context, method, path string, query url.Values, body []byte, token string) (answer, error) {
	for try := 0; ; try++ {
		a, err := s.sendOnce(ctx, method, path, query, body, token)
		if err != nil || a.status != http.StatusTooManyRequests || try == 2 {
			return a, err
		}
		wait, ok := retryAfter(a.retryAfter, time.Now())
		if !ok {
			return a, nil
		}
		t := time.NewTimer(wait + 100*time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return a, ctx.Err()
		case <-t.C:
		}
	}
}

// retryAfter is how long a 429's Retry-After asks to wait: a second when
// it says nothing, and ok=false when it is more than 30 seconds away.
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	wait := time.Second
	if n, err := strconv.Atoi(h); err == nil {
		wait = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		wait = t.Sub(now)
	}
	return max(wait, 0), wait <= 30*time.Second
}

func (s *sender) sendOnce(ctx context.Context, method, path string, query url.Values, body []byte, token string) (answer, error) {
	if s.budget > 0 && s.sent >= s.budget {
		return answer{}, errBudget
	}
	if err := s.limiter.Wait(ctx); err != nil {
		// The limiter refuses at once a wait that would pass ctx's
		// deadline; the run stops at the deadline itself, so that its
		// report says why (--timeout), and the wait is one request's.
		<-ctx.Done()
		return answer{}, ctx.Err()
	}
	s.sent++
	// path is escaped already (fill escapes each segment, so that an
	// id's "/" is "%2F" and stays within its segment): it is the URL's
	// escaped path, not a path to escape again.
	u := *s.base
	u.RawPath = strings.TrimRight(s.base.EscapedPath(), "/") + path
	var err error
	if u.Path, err = url.PathUnescape(u.RawPath); err != nil {
		return answer{}, fmt.Errorf("probe: %s %s: %w", method, path, err)
	}
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return answer{}, fmt.Errorf("probe: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json, application/problem+json;q=0.9, */*;q=0.1")
	req.Header.Set("User-Agent", "bulkhead-probe")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("probe: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	limit := int64(maxAnswer)
	if s.documents {
		limit = maxDocumentAnswer
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return answer{}, fmt.Errorf("probe: %s %s: read the answer: %w", method, path, err)
	}
	return answer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"),
		location: resp.Header.Get("Location"), retryAfter: resp.Header.Get("Retry-After"), body: b}, nil
}

// holdsSecret reports whether t holds one of the credentials.
func (s *sender) holdsSecret(t string) bool {
	return maskSecrets(t, s.secrets) != t
}

// secretForms are the ways an application may echo a credential back:
// as sent, in upper or lower case, JSON-escaped (with or without "\/"),
// URL-escaped, and in base64 (standard or URL alphabet, padded or not).
// Each is masked in the report.
func secretForms(token string) []string {
	j, _ := json.Marshal(token)
	forms := []string{token, strings.Trim(string(j), `"`), strings.ReplaceAll(token, "/", `\/`),
		url.QueryEscape(token), url.PathEscape(token)}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		forms = append(forms, enc.EncodeToString([]byte(token)))
	}
	var out []string
	for _, f := range forms {
		for _, g := range []string{f, strings.ToUpper(f), strings.ToLower(f)} {
			if g != "" && !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	return out
}

// maskSecrets replaces every one of secrets (the forms of each
// credential) in t.
func maskSecrets(t string, secrets []string) string {
	for _, secret := range secrets {
		if secret != "" {
			t = strings.ReplaceAll(t, secret, "[credential]")
		}
	}
	return t
}

// excerpt is the first KiB of b with every credential masked.
func (s *sender) excerpt(b []byte) string {
	t := maskSecrets(string(b), s.secrets)
	if len(t) > 1024 {
		t = t[:1024] + "…"
	}
	return t
}

// FetchDocument reads an application's OpenAPI document from docURL,
// which must be on base's scheme, host and port: the probe talks to no
// other host, and a document served elsewhere could describe another
// application than the one probed.
func FetchDocument(ctx context.Context, base, docURL string) ([]byte, error) {
	b, err := url.Parse(base)
	if err != nil || b.Host == "" {
		return nil, fmt.Errorf("probe: the base URL %q is not a URL", base)
	}
	u, err := url.Parse(docURL)
	if err != nil || !sameHost(u, b) {
		return nil, fmt.Errorf("%w: its URL %q is not on %s, the only host the probe talks to", ErrDocument, docURL, hostPort(b))
	}
	s, err := newSender(ctx, b, 0, 1, nil)
	if err != nil {
		return nil, err
	}
	defer s.close()
	s.base, s.documents = &url.URL{Scheme: u.Scheme, Host: u.Host}, true
	a, err := s.send(ctx, http.MethodGet, u.EscapedPath(), u.Query(), nil, "")
	if err != nil {
		return nil, err
	}
	if a.status != http.StatusOK {
		return nil, fmt.Errorf("%w: GET %s answered %d", ErrDocument, docURL, a.status)
	}
	if len(a.body) > MaxDocumentBytes {
		return nil, fmt.Errorf("%w: it is more than %d bytes", ErrDocument, MaxDocumentBytes)
	}
	return a.body, nil
}
