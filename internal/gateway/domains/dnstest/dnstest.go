// Package dnstest is a DNS server on loopback for tests of domain
// verification: it answers the TXT and A records a test sets.
package dnstest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server answers from its records; every other name is NXDOMAIN.
type Server struct {
	Addr string // host:port (UDP)

	mu  sync.Mutex
	txt map[string][]string
	a   map[string]netip.Addr
}

// Start runs a server over UDP and TCP on the same loopback port until the
// test ends (pebble's validation authority asks over TCP).
func Start(t testing.TB) *Server {
	t.Helper()
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close() // the port is taken over TCP: another one
		ln = nil
	}
	if ln == nil {
		t.Fatal("dnstest: no port free over both UDP and TCP")
	}
	s := &Server{Addr: pc.LocalAddr().String(), txt: map[string][]string{}, a: map[string]netip.Addr{}}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)}, {Listener: ln, Handler: dns.HandlerFunc(s.serve)}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
	return s
}

func fqdn(name string) string { return dns.Fqdn(strings.ToLower(name)) }

// SetTXT makes name's TXT records txt.
func (s *Server) SetTXT(name string, txt ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.txt[fqdn(name)] = txt
}

// SetA makes name's A record addr.
func (s *Server) SetA(name string, addr netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.a[fqdn(name)] = addr
}

func (s *Server) serve(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	s.mu.Lock()
	defer s.mu.Unlock()
	known := false
	for _, question := range q.Question {
		name := strings.ToLower(question.Name)
		hdr := dns.RR_Header{Name: question.Name, Class: dns.ClassINET, Ttl: 1}
		txts, hasTXT := s.txt[name]
		addr, hasA := s.a[name]
		known = known || hasTXT || hasA
		switch question.Qtype {
		case dns.TypeTXT:
			for _, txt := range txts {
				hdr.Rrtype = dns.TypeTXT
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{txt}})
			}
		case dns.TypeA:
			if hasA {
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: addr.AsSlice()})
			}
		}
	}
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}
