package netguard

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestPublic(t *testing.T) {
	tests := []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true},
		{"93.184.216.34", true},
		{"100.63.255.255", true},
		{"100.128.0.1", true},
		{"172.32.0.1", true},
		{"2606:4700::1111", true},
		{"::ffff:8.8.8.8", true},
		{"127.0.0.1", false},
		{"127.255.255.254", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"192.168.0.1", false},
		{"169.254.169.254", false},
		{"100.64.0.1", false},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"192.0.0.8", false},
		{"198.18.0.1", false},
		{"224.0.0.1", false},
		{"240.0.0.1", false},
		{"255.255.255.255", false},
		{"::", false},
		{"::1", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"fd00::1", false},
		{"ff02::1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"64:ff9b::7f00:1", false},
		{"2001:db8::1", false},
	}
	for _, tt := range tests {
		if got := Public(netip.MustParseAddr(tt.addr)); got != tt.public {
			t.Errorf("Public(%s) = %v, want %v", tt.addr, got, tt.public)
		}
	}
	if Public(netip.Addr{}) {
		t.Error("the zero address is public")
	}
}

func TestLiteralNotPublic(t *testing.T) {
	for host, want := range map[string]bool{
		"idp.example.com": false, "8.8.8.8": false, "[2606:4700::1111]": false,
		"localhost": true, "LOCALHOST.": true, "a.localhost": true, "127.0.0.1": true, "[::1]": true, "::1": true,
		"169.254.169.254": true, "10.0.0.1": true, "[::ffff:127.0.0.1]": true, "0.0.0.0": true,
	} {
		if got := LiteralNotPublic(host); got != want {
			t.Errorf("LiteralNotPublic(%q) = %v, want %v", host, got, want)
		}
	}
	for host, want := range map[string]bool{"localhost": true, "127.0.0.1": true, "127.1.2.3": true, "[::1]": true,
		"::ffff:127.0.0.1": true, "10.0.0.1": false, "example.com": false, "a.localhost": false} {
		if got := Loopback(host); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", host, got, want)
		}
	}
}

// TestDialer: the check is on the dialed address, so a name that resolves
// to loopback is refused as well as the literal.
func TestDialer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	ctx := context.Background()
	for _, addr := range []string{l.Addr().String(), net.JoinHostPort("localhost", port)} {
		if _, err := Dialer(time.Second, false).DialContext(ctx, "tcp", addr); !errors.Is(err, ErrNotPublic) {
			t.Errorf("dial %s without private upstreams: %v, want ErrNotPublic", addr, err)
		}
	}
	c, err := Dialer(time.Second, true).DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial with private upstreams allowed: %v", err)
	}
	c.Close()
}
