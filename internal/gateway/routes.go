package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/netguard"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// Route sends the requests of a host and path prefix to the application.
type Route struct {
	ID string `json:"id"`
	// Host is an exact host name, "*.{app domain}" for every tenant
	// subdomain, or "*" for any host a tenant owns as a custom domain.
	Host       string `json:"host"`
	PathPrefix string `json:"path_prefix"`
	// Upstream serves pool and bridge tenants, and silo tenants without
	// an upstream of their own.
	Upstream string `json:"upstream"`
	// Silo names each silo tenant's own upstream.
	Silo map[tenant.ID]string `json:"silo,omitempty"`
	// Timeout bounds the wait for the upstream's response headers
	// (default 30s).
	Timeout Duration `json:"timeout,omitzero"`
}

// Duration is a time.Duration written as a Go duration string ("30s").
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v < 0 || v > time.Hour {
		return fmt.Errorf("a timeout is a duration between 0s and 1h, like \"30s\"")
	}
	*d = Duration(v)
	return nil
}

// DefaultTimeout is a route's upstream header timeout unless it sets one.
const DefaultTimeout = 30 * time.Second

func (r Route) timeout() time.Duration {
	if r.Timeout <= 0 {
		return DefaultTimeout
	}
	return time.Duration(r.Timeout)
}

// Validate checks a route; appDomain is the gateway's app domain, which a
// wildcard host must name. Upstreams are checked as the connections
// proxy's are: http or https, no user info, and (unless allowPrivate) no
// literal non-public address; names that resolve to one are refused when
// dialed.
func (r Route) Validate(appDomain string, allowPrivate bool) error {
	switch {
	case r.Host == "*":
	case strings.HasPrefix(r.Host, "*."):
		if appDomain == "" || r.Host != "*."+appDomain {
			return errs.Field("host", "invalid_route", "a wildcard host must be *.{app domain} (the gateway's app domain is %q)", appDomain)
		}
	default:
		if r.Host == "" || r.Host != canonicalHost(r.Host) || strings.ContainsAny(r.Host, "/*@ ") {
			return errs.Field("host", "invalid_route", "the host must be a lowercase host name without port, *.{app domain} or *")
		}
	}
	if !strings.HasPrefix(r.PathPrefix, "/") || strings.ContainsAny(r.PathPrefix, "?#") || strings.Contains(r.PathPrefix, "..") {
		return errs.Field("path_prefix", "invalid_route", "the path prefix must start with / and have no query, fragment or ..")
	}
	if err := checkUpstream(r.Upstream, allowPrivate); err != nil {
		return errs.Field("upstream", "invalid_route", "%s", err)
	}
	for id, u := range r.Silo {
		if _, err := tenant.ParseID(string(id)); err != nil {
			return errs.Field("silo", "invalid_route", "%q is not a tenant id", id)
		}
		if err := checkUpstream(u, allowPrivate); err != nil {
			return errs.Field("silo", "invalid_route", "tenant %s: %s", id, err)
		}
	}
	if r.Timeout < 0 || time.Duration(r.Timeout) > time.Hour {
		return errs.Field("timeout", "invalid_route", "the timeout must be between 0s and 1h")
	}
	return nil
}

func checkUpstream(s string, allowPrivate bool) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("the upstream must be an absolute http(s) URL without user info, query or fragment")
	}
	if !allowPrivate && netguard.LiteralNotPublic(u.Hostname()) {
		return fmt.Errorf("the upstream's address is not public (allow private upstreams to use it)")
	}
	return nil
}

// Table is an immutable set of routes, indexed for matching.
type Table struct {
	routes []Route // sorted: longest path prefix first
	exact  map[string]bool
}

// NewTable indexes routes.
func NewTable(routes []Route) *Table {
	t := &Table{routes: slices.Clone(routes), exact: map[string]bool{}}
	slices.SortStableFunc(t.routes, func(a, b Route) int { return len(b.PathPrefix) - len(a.PathPrefix) })
	for _, r := range t.routes {
		if !strings.HasPrefix(r.Host, "*") {
			t.exact[r.Host] = true
		}
	}
	return t
}

// upstreamKeys returns the upstreams the table's routes name.
func (t *Table) upstreamKeys() map[upstreamKey]bool {
	keys := map[upstreamKey]bool{}
	for _, r := range t.routes {
		keys[upstreamKey{r.Upstream, r.timeout()}] = true
		for _, u := range r.Silo {
			keys[upstreamKey{u, r.timeout()}] = true
		}
	}
	return keys
}

// Routes returns the table's routes.
func (t *Table) Routes() []Route { return slices.Clone(t.routes) }

func (t *Table) exactHost(host string) bool { return t != nil && t.exact[host] }

// match returns the route of host and path: an exact host first, then the
// subdomain wildcard (when sub), then "*" (when custom: the host is a
// tenant's domain); among a host's routes the longest matching prefix
// wins. A prefix matches whole segments: /api matches /api and /api/x,
// not /apix.
func (t *Table) match(host, path string, sub, custom bool) (Route, bool) {
	if t == nil {
		return Route{}, false
	}
	for _, want := range []string{host, "*.", "*"} {
		for _, r := range t.routes {
			ok := r.Host == host && want == host || want == "*." && sub && strings.HasPrefix(r.Host, "*.") ||
				want == "*" && custom && r.Host == "*"
			if ok && prefixMatch(r.PathPrefix, path) {
				return r, true
			}
		}
	}
	return Route{}, false
}

func prefixMatch(prefix, path string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}

// hasWildcard reports whether a route has the host "*" (w "*") or the
// subdomain wildcard (w "*.").
func (t *Table) hasWildcard(w string) bool {
	if t == nil {
		return false
	}
	for _, r := range t.routes {
		if w == "*" && r.Host == "*" || w == "*." && strings.HasPrefix(r.Host, "*.") {
			return true
		}
	}
	return false
}

// RoutesFile is the declarative routes file (serve --gateway-routes).
type RoutesFile struct {
	Routes []Route `json:"routes"`
}

// ParseRoutes decodes a routes file strictly: unknown fields, trailing
// data and duplicate ids are errors. Routes are validated by the gateway
// that takes them.
func ParseRoutes(b []byte) ([]Route, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var f RoutesFile
	if err := d.Decode(&f); err != nil {
		return nil, fmt.Errorf("routes file: %w", err)
	}
	if d.More() {
		return nil, errors.New("routes file: data after the routes object")
	}
	seen := map[string]bool{}
	for _, r := range f.Routes {
		if r.ID == "" || seen[r.ID] {
			return nil, fmt.Errorf("routes file: every route needs an id of its own (%q)", r.ID)
		}
		seen[r.ID] = true
	}
	return f.Routes, nil
}
