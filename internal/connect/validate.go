package connect

import (
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/netguard"
)

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
