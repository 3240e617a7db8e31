package main

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/gateway/domains/dnstest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestDomainCLI claims a domain for a tenant, verifies it through a DNS
// server on loopback (--domains-dns-resolver), and releases it.
func TestDomainCLI(t *testing.T) {
	dnsServer := dnstest.Start(t)
	p := startServeArgs(t, []string{"--data-dir", filepath.Join(t.TempDir(), "data"),
		"--domains-dns-resolver", dnsServer.Addr, "--allow-private-upstreams"})
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, p.url, args...)
		if code != wantCode {
			t.Fatalf("bulkhead %s: exit %d; want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out + errOut
	}
	cli(0, "tenant", "create", "acme")
	var d client.Domain
	if err := json.Unmarshal([]byte(cli(0, "domain", "add", "Shop.Acme.Example", "--tenant", "acme", "--output", "json")), &d); err != nil ||
		d.Name != "shop.acme.example" || d.State != "pending" || d.Token == "" {
		t.Fatalf("add: %+v %v", d, err)
	}
	if out := cli(1, "domain", "add", "shop.acme.example", "--tenant", "acme"); !strings.Contains(out, "domain_taken") && !strings.Contains(out, "already claimed") {
		t.Errorf("add again:\n%s", out)
	}
	if out := cli(1, "domain", "verify", "shop.acme.example", "--tenant", "acme"); !strings.Contains(out, "neither check passed") {
		t.Errorf("verify without a record:\n%s", out)
	}
	// The name points at loopback, where nothing answers HTTP; the TXT
	// record proves control.
	dnsServer.SetA("shop.acme.example", netip.MustParseAddr("127.0.0.1"))
	dnsServer.SetTXT("_bulkhead.shop.acme.example", d.Token)
	if out := cli(0, "domain", "verify", "shop.acme.example", "--tenant", "acme"); !regexp.MustCompile(`(?m)^shop\.acme\.example\s+verified\s+dns\s`).MatchString(out) {
		t.Errorf("verify:\n%s", out)
	}
	if out := cli(0, "domain", "list", "--tenant", "acme"); !strings.Contains(out, "shop.acme.example") || !strings.Contains(out, "verified") {
		t.Errorf("list:\n%s", out)
	}
	if out := cli(0, "domain", "get", "SHOP.acme.example", "--tenant", "acme"); !strings.Contains(out, d.Token) {
		t.Errorf("get:\n%s", out)
	}
	if out := cli(2, "domain", "list"); !strings.Contains(out, "needs --tenant") {
		t.Errorf("list without --tenant:\n%s", out)
	}
	cli(0, "domain", "delete", "shop.acme.example", "--tenant", "acme")
	if out := cli(0, "domain", "list", "--tenant", "acme", "--output", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("list after delete:\n%s", out)
	}
	if out := cli(1, "domain", "add", "10.0.0.1", "--tenant", "acme"); !strings.Contains(out, "invalid_domain") && !strings.Contains(out, "not a domain") {
		t.Errorf("add an address:\n%s", out)
	}
}
