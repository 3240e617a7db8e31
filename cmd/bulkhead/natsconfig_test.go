package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulkhead-dev/bulkhead/internal/events"
	"github.com/bulkhead-dev/bulkhead/internal/events/natstest"
)

// TestNATSConfig: nats-config writes the server's part and Bulkhead's
// credentials, 0600, the server's part without a password in clear; a
// second run replaces neither.
func TestNATSConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nats")
	code, out, errOut := runHere("", "nats-config", "--out", dir)
	if code != 0 || !strings.Contains(out, events.CredentialsFile) {
		t.Fatalf("nats-config: exit %d\n%s%s", code, out, errOut)
	}
	conf, credsFile := filepath.Join(dir, events.ServerConfigFile), filepath.Join(dir, events.CredentialsFile)
	for _, p := range []string{dir, conf, credsFile} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v; want none for others", p, st.Mode().Perm())
		}
	}
	creds, err := events.ReadCredentials(credsFile)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(conf)
	for _, secret := range []string{creds.AuthPassword, creds.StreamsPassword, creds.IssuerSeed, creds.XKeySeed} {
		if strings.Contains(string(text), secret) {
			t.Errorf("the server's configuration holds a secret in clear:\n%s", text)
		}
	}
	if code, _, errOut := runHere("", "nats-config", "--out", dir); code != 1 || !strings.Contains(errOut, "not replaced") {
		t.Errorf("nats-config over existing files: exit %d\n%s", code, errOut)
	}
	if again, err := events.ReadCredentials(credsFile); err != nil || *again != *creds {
		t.Errorf("the credentials changed: %v", err)
	}
}

// TestServeNATSFlags: --nats-listen and --nats-url together, --nats-url
// without credentials, and credentials without --nats-url are usage
// errors; credentials others may read stop serve, with an error that
// says so and quotes nothing of the file.
func TestServeNATSFlags(t *testing.T) {
	base := []string{"serve", "--listen", "127.0.0.1:0", "--proxy-listen", "off", "--data-dir", t.TempDir()}
	for _, args := range [][]string{
		{"--nats-listen", "127.0.0.1:0", "--nats-url", "nats://127.0.0.1:4222", "--nats-credentials", "x"},
		{"--nats-url", "nats://127.0.0.1:4222"},
		{"--nats-credentials", "x"},
	} {
		if code, _, errOut := runHere("", append(base, args...)...); code != 2 || !strings.Contains(errOut, "--nats-") {
			t.Errorf("serve %v: exit %d; want 2\n%s", args, code, errOut)
		}
	}
	dir := t.TempDir()
	_, credsFile, err := events.WriteConfig(dir, events.DefaultTenantAccounts)
	if err != nil {
		t.Fatal(err)
	}
	creds, _ := events.ReadCredentials(credsFile)
	if err := os.Chmod(credsFile, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BULKHEAD_ADMIN_TOKEN", testAdminToken)
	code, _, errOut := runHere("", append(base, "--nats-url", "nats://127.0.0.1:1", "--nats-credentials", credsFile)...)
	if code != 1 || !strings.Contains(errOut, "readable or writable by others") || strings.Contains(errOut, creds.AuthPassword) {
		t.Errorf("serve with world-readable NATS credentials: exit %d\n%s", code, errOut)
	}
}

// TestServeExternalNATS: serve joins an external nats-server with the
// files of nats-config, and once it stops, nothing of its connections
// (their reconnect loops) is left.
func TestServeExternalNATS(t *testing.T) {
	ns := natstest.Start(t)
	t.Setenv("BULKHEAD_ADMIN_TOKEN", testAdminToken)
	args := []string{"--listen", "127.0.0.1:0", "--proxy-listen", "off", "--data-dir", t.TempDir(),
		"--nats-url", ns.URL(), "--nats-credentials", ns.CredentialsFile}
	before := goleak.IgnoreCurrent()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	out := &serveOutput{url: make(chan string, 1)}
	served := make(chan error, 1)
	go func() { served <- serve(ctx, stdio{out: io.Discard, err: out}, args) }()
	select {
	case <-out.url:
	case err := <-served:
		t.Fatalf("serve returned before listening: %v\n%s", err, out)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not listen\n%s", out)
	}
	if !strings.Contains(out.String(), "joined the NATS server") {
		t.Errorf("serve does not say it joined the NATS server:\n%s", out)
	}
	if strings.Contains(out.String(), ns.Credentials.AuthPassword) || strings.Contains(out.String(), ns.Credentials.StreamsPassword) {
		t.Errorf("serve logged a NATS password:\n%s", out)
	}
	stop()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v\n%s", err, out)
	}
	goleak.VerifyNone(t, before)
}

// TestNATSListenDefault: the embedded NATS server is on by default, on
// loopback; "off" turns it off, and --nats-url alone replaces it.
func TestNATSListenDefault(t *testing.T) {
	t.Setenv("BULKHEAD_NATS_LISTEN", "") // TestMain turns it off for the other tests
	os.Unsetenv("BULKHEAD_NATS_LISTEN")
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "127.0.0.1:4223"},
		{[]string{"--nats-listen", "off"}, ""},
		{[]string{"--nats-listen", "127.0.0.1:0"}, "127.0.0.1:0"},
		{[]string{"--nats-url", "nats://127.0.0.1:4222", "--nats-credentials", "x"}, ""},
	} {
		cfg, err := parseServeFlags(c.args, io.Discard)
		if err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		if cfg.natsListen != c.want {
			t.Errorf("%v: the embedded NATS server listens on %q; want %q", c.args, cfg.natsListen, c.want)
		}
	}
}
