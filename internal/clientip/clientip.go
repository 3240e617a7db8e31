// Package clientip finds the address a request came from, behind trusted
// reverse proxies: the rightmost X-Forwarded-For entry that is not one of
// them. With no trusted proxies it is the connection's peer, and a client
// cannot choose it by sending a header.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds client addresses.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a resolver that believes X-Forwarded-For only from peers in
// trusted (CIDR prefixes such as "10.0.0.0/8" or single addresses).
func New(trusted []string) (*Resolver, error) {
	r := &Resolver{}
	for _, t := range trusted {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !strings.Contains(t, "/") {
			a, err := netip.ParseAddr(t)
			if err != nil {
				return nil, fmt.Errorf("clientip: trusted proxy %q: %w", t, err)
			}
			t = netip.PrefixFrom(a, a.BitLen()).String()
		}
		p, err := netip.ParsePrefix(t)
		if err != nil {
			return nil, fmt.Errorf("clientip: trusted proxy %q: %w", t, err)
		}
		r.trusted = append(r.trusted, p.Masked())
	}
	return r, nil
}

func (r *Resolver) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// IP returns the client address of req.
func (r *Resolver) IP(req *http.Request) string {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		host = req.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || r == nil || !r.isTrusted(peer) {
		return host
	}
	hops := strings.Split(strings.Join(req.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return host // a hop we cannot read: stop at the last address we trust to have written it
		}
		if !r.isTrusted(a) {
			return a.Unmap().String()
		}
	}
	return host
}

// LimitKey is the key under which a per-address limit counts ip: the
// address itself for IPv4, its /64 for IPv6, which one subscriber is
// usually given whole (so a client rotating through its own /64 still
// counts as one). Anything that is not an address is its own key.
func LimitKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}
