package main

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/gateway/certs/pebbletest"
)

// TestCertsCLI runs a node whose ACME CAs are two pebbles, trusted through
// --acme-ca-root, and its certs verbs. (Certificates are issued and moved
// in internal/gateway/certs and the API's round trip; here the flags and
// the verbs' answers are what is checked.)
func TestCertsCLI(t *testing.T) {
	ca1, ca2 := pebbletest.Start(t), pebbletest.Start(t)
	roots := filepath.Join(t.TempDir(), "roots.pem")
	var pemBytes []byte
	for _, ca := range []*pebbletest.CA{ca1, ca2} {
		pemBytes = append(pemBytes, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Leaf().Raw})...)
	}
	if err := os.WriteFile(roots, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServeArgs(t, []string{"--data-dir", filepath.Join(t.TempDir(), "data"),
		"--acme-ca", ca1.URL, "--acme-ca", ca2.URL, "--acme-ca-root", roots, "--acme-email", "ops@bulkhead.example"})
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, p.url, args...)
		if code != wantCode {
			t.Fatalf("bulkhead %s: exit %d; want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out + errOut
	}
	if out := cli(0, "certs", "list"); strings.TrimSpace(out) != "NAME  CA  NOT AFTER  SERIAL" {
		t.Errorf("list:\n%q", out)
	}
	if out := cli(0, "certs", "list", "--output", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("list json:\n%s", out)
	}
	if out := cli(0, "certs", "reissue", "--from-ca", ca1.URL); out != "" {
		t.Errorf("reissue of none:\n%s", out)
	}
	if out := cli(1, "certs", "reissue", "--from-ca", ca2.URL); !strings.Contains(out, "last_ca") && !strings.Contains(out, "last CA") {
		t.Errorf("reissue from the last CA:\n%s", out)
	}
	if out := cli(1, "certs", "reissue", "--from-ca", "https://elsewhere.example/dir"); !strings.Contains(out, "not a configured ACME CA") {
		t.Errorf("reissue from another CA:\n%s", out)
	}
	if out := cli(2, "certs", "reissue"); !strings.Contains(out, "needs --from-ca") {
		t.Errorf("reissue without --from-ca:\n%s", out)
	}
	if out := serveFails(t, "--acme-ca", "http://insecure.example/dir"); !strings.Contains(out, "not an https URL") {
		t.Errorf("serve with an http CA:\n%s", out)
	}
}
