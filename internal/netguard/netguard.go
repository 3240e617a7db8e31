// Package netguard keeps Bulkhead's outbound connections to operator- or
// tenant-supplied URLs (connections, alert webhooks, tenants' own OpenID
// providers) away from the node's own network: loopback, private,
// link-local and similar addresses are refused unless the operator allows
// private upstreams.
//
// The check is made on the address actually dialed, after name
// resolution, so a public-looking name that resolves to 127.0.0.1 or to a
// cloud metadata address is refused as well; a URL check alone could not
// see that (nor a DNS answer that changes between check and dial).
package netguard

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrNotPublic is the error of a dial to an address that is not public.
var ErrNotPublic = errors.New("netguard: the address is loopback, private, link-local or otherwise not public")

// Public reports whether a is an address Bulkhead may reach by default:
// not loopback, private, link-local, unspecified, multicast, shared
// (100.64/10), reserved, documentation, or an IPv4 address in IPv6 form
// of those.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("240.0.0.0/4"), netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// Dialer returns a dialer with the given connect timeout that reaches
// public addresses only, unless allowPrivate. Use it with a transport
// whose Proxy is nil: through a proxy, the dialed address is the proxy's.
func Dialer(timeout time.Duration, allowPrivate bool) *net.Dialer {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !Public(ap.Addr()) {
				return ErrNotPublic
			}
			return nil
		}
	}
	return d
}

// LiteralNotPublic reports whether a URL's host (as url.URL.Hostname
// returns it) names a non-public address outright: an IP literal that is
// not Public, or localhost. It lets input validation refuse such URLs
// early with a clear message; names that resolve to such addresses are
// caught when dialed.
func LiteralNotPublic(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && !Public(a)
}

// Loopback reports whether a URL's host is localhost or a loopback literal.
func Loopback(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Unmap().IsLoopback()
}
