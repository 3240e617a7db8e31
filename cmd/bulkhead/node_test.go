package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// stop ends the server with SIGTERM and waits for it.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("bulkhead serve did not stop\n%s", p.output())
	}
}

// serveRefused runs `bulkhead serve` on dataDir (and dsn, if not empty)
// with extra environment, and returns what it printed; the test fails
// unless it exits with an error before listening.
func serveRefused(t *testing.T, dataDir, dsn string, env ...string) string {
	t.Helper()
	args := []string{"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0"}
	if dsn != "" {
		args = append(args, "--database", dsn)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), append([]string{"BULKHEAD_ADMIN_TOKEN=" + testAdminToken, "BULKHEAD_PROXY_LISTEN=127.0.0.1:0"}, env...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "API listening") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("bulkhead serve %v was not refused:\n%s", env, out.String())
		}
	}
	var exit *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exit) {
		t.Fatalf("bulkhead serve %v: %v; want an exit with an error:\n%s", env, err, out.String())
	}
	return out.String()
}

// runInit runs `bulkhead init` on dataDir (and dsn) with more arguments
// and returns its output and exit status.
func runInit(t *testing.T, dataDir, dsn string, args ...string) (string, int) {
	t.Helper()
	args = append([]string{"init", "--data-dir", dataDir}, args...)
	if dsn != "" {
		args = append(args, "--database", dsn)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "BULKHEAD_ADMIN_TOKEN="+testAdminToken)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func newRootKeyB64() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// kmsClient registers a client_credentials client of tenant with the KMS
// scopes and returns its id and secret.
func kmsClient(t *testing.T, url, tenant string) (id, secret string) {
	t.Helper()
	out, errOut, code := runCLI(t, url, "client", "create", "svc", "--tenant", tenant, "--grant", "client_credentials",
		"--scope", "kms:encrypt", "--scope", "kms:decrypt")
	s := regexp.MustCompile(`client secret \(shown once\): (bhs_\S+)`).FindStringSubmatch(out)
	i := regexp.MustCompile(`(cli_[a-z2-7]{26})`).FindStringSubmatch(out)
	if code != 0 || s == nil || i == nil {
		t.Fatalf("client create: %d\n%s%s", code, out, errOut)
	}
	return i[1], s[1]
}

// tokenAnswer asks the token endpoint for a client_credentials token and
// returns the status and body.
func tokenAnswer(t *testing.T, base, id, secret, scope string) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(tokenRequest(t, base, id, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func hasAuditAction(t *testing.T, c *client.Client, action string) bool {
	t.Helper()
	page, err := c.ListAudit(context.Background(), client.AuditQuery{Tenant: "-", Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Items) > 0
}

// TestRootKeyMustBeTheDatabases: a node whose root.key was deleted, or
// replaced by another valid key (in the file or in BULKHEAD_ROOT_KEY),
// refuses to start, says what to restore and shows no key material; it
// used to make or take the key, report ready and fail every KMS call.
// With the key restored, the tenant's data decrypts again; `bulkhead init
// --new-root-key` replaces the key deliberately, and what the old key
// wrapped is lost while new tokens are issued.
func TestRootKeyMustBeTheDatabases(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := contextT(t)
		dataDir := filepath.Join(t.TempDir(), "data")
		if filepath.IsAbs(dsn) {
			dsn = "" // the embedded SQLite default
		}
		p := startServe(t, dataDir, dsn)
		publicURL := "BULKHEAD_PUBLIC_URL=" + p.url // restarts listen elsewhere, under the recorded URL
		if _, err := p.client().CreateTenant(ctx, client.CreateTenant{ID: "keyco"}, ""); err != nil {
			t.Fatal(err)
		}
		id, secret := kmsClient(t, p.url, "keyco")
		ec := map[string]string{"tenant_id": "keyco"}
		enc, err := client.New(p.url, clientToken(t, p.url, id, secret, "kms:encrypt kms:decrypt")).
			Encrypt(ctx, "alias/customer-keyco", []byte("payroll"), ec)
		if err != nil {
			t.Fatal(err)
		}
		p.stop(t)
		keyPath := filepath.Join(dataDir, "root.key")
		raw, err := os.ReadFile(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		key, other := strings.TrimSpace(string(raw)), newRootKeyB64()
		noKey := func(what, out string) {
			t.Helper()
			if strings.Contains(out, key) || strings.Contains(out, other) {
				t.Errorf("%s: the output shows key material:\n%s", what, out)
			}
		}

		// root.key deleted: refused; no key is made.
		if err := os.Remove(keyPath); err != nil {
			t.Fatal(err)
		}
		out := serveRefused(t, dataDir, dsn, publicURL)
		for _, want := range []string{"no root key", keyPath, "BULKHEAD_ROOT_KEY", "--new-root-key"} {
			if !strings.Contains(out, want) {
				t.Errorf("start without root.key: the message does not say %q:\n%s", want, out)
			}
		}
		noKey("start without root.key", out)
		if _, err := os.Stat(keyPath); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a start without root.key made one (%v)", err)
		}
		// Another valid key in the file, or in BULKHEAD_ROOT_KEY: refused.
		if err := os.WriteFile(keyPath, []byte(other+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out = serveRefused(t, dataDir, dsn, publicURL)
		if !strings.Contains(out, "root key is not the database's") || !strings.Contains(out, "the file "+keyPath) {
			t.Errorf("start with another key in root.key:\n%s", out)
		}
		noKey("start with another key in root.key", out)
		if err := os.WriteFile(keyPath, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		out = serveRefused(t, dataDir, dsn, publicURL, "BULKHEAD_ROOT_KEY="+other)
		if !strings.Contains(out, "root key is not the database's") || !strings.Contains(out, "from BULKHEAD_ROOT_KEY") {
			t.Errorf("start with another key in BULKHEAD_ROOT_KEY:\n%s", out)
		}
		noKey("start with another key in BULKHEAD_ROOT_KEY", out)

		// The right key again (the file, or the same key in the environment).
		p = startServe(t, dataDir, dsn, publicURL, "BULKHEAD_ROOT_KEY="+key)
		dec, err := client.New(p.url, clientToken(t, p.url, id, secret, "kms:encrypt kms:decrypt")).Decrypt(ctx, enc.Ciphertext, ec)
		if err != nil || string(dec.Plaintext) != "payroll" {
			t.Fatalf("decrypt with the key restored: %q %v", dec.Plaintext, err)
		}
		p.stop(t)

		// The deliberate replacement, with another key in the file.
		if err := os.WriteFile(keyPath, []byte(other+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := runInit(t, dataDir, dsn, "--new-root-key")
		if code != 0 || !strings.Contains(out, "ROOT KEY REPLACED") || !strings.Contains(out, "1 tenant key version(s)") ||
			!strings.Contains(out, "unreadable") {
			t.Fatalf("init --new-root-key: exit %d\n%s", code, out)
		}
		noKey("init --new-root-key", out)
		p = startServe(t, dataDir, dsn, publicURL)
		// Tokens are issued again (the signing keys were retired, new ones
		// are wrapped under the new key); what the old key wrapped is lost.
		tok := clientToken(t, p.url, id, secret, "kms:encrypt kms:decrypt")
		var ce *client.Error
		if _, err := client.New(p.url, tok).Decrypt(ctx, enc.Ciphertext, ec); !errors.As(err, &ce) || ce.Status != http.StatusInternalServerError {
			t.Errorf("decrypt under the old root key after the replacement: %v; want a 500 (the key does not unwrap)", err)
		}
		if !hasAuditAction(t, p.client(), "kms.root_key_replaced") {
			t.Error("the replacement is not in the platform's audit chain")
		}
		if _, err := os.Stat(keyPath); err != nil {
			t.Fatal(err)
		}
	})
}

// TestThirdNodeNeedsTheSharedKeyAndURL: on one PostgreSQL database, a node
// started without the root key the others use, with another, or with
// another public URL is refused at start (it used to join, refuse every
// token with 401 and answer token requests with a 500 that named the
// unwrap failure); with both it serves the first node's tokens and issues
// its own.
func TestThirdNodeNeedsTheSharedKeyAndURL(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	ctx := contextT(t)
	dir1, dir3 := filepath.Join(t.TempDir(), "node1"), filepath.Join(t.TempDir(), "node3")
	p1 := startServe(t, dir1, dsn)
	if _, err := p1.client().CreateTenant(ctx, client.CreateTenant{ID: "shared"}, ""); err != nil {
		t.Fatal(err)
	}
	id, secret := kmsClient(t, p1.url, "shared")
	tok1 := clientToken(t, p1.url, id, secret, "kms:encrypt")
	raw, err := os.ReadFile(filepath.Join(dir1, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(raw))
	sameURL := "BULKHEAD_PUBLIC_URL=" + p1.url

	out := serveRefused(t, dir3, dsn, sameURL)
	if !strings.Contains(out, "no root key") || strings.Contains(out, key) {
		t.Errorf("a node without the key:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir3, "root.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused node made a root key (%v)", err)
	}
	out = serveRefused(t, dir3, dsn, sameURL, "BULKHEAD_ROOT_KEY="+newRootKeyB64())
	if !strings.Contains(out, "root key is not the database's") {
		t.Errorf("a node with another key:\n%s", out)
	}
	out = serveRefused(t, dir3, dsn, "BULKHEAD_ROOT_KEY="+key)
	if !strings.Contains(out, "public URL") || !strings.Contains(out, "--public-url "+p1.url) || !strings.Contains(out, "no --public-url") {
		t.Errorf("a node with the key and its own default public URL:\n%s", out)
	}

	p3 := startServe(t, dir3, dsn, sameURL, "BULKHEAD_ROOT_KEY="+key)
	if tn, err := client.New(p3.url, tok1).GetTenant(ctx, "shared"); err != nil || tn.ID != "shared" {
		t.Errorf("node 3 with node 1's token: %+v %v", tn, err)
	}
	if status, body := tokenAnswer(t, p3.url, id, secret, "kms:encrypt"); status != 200 {
		t.Errorf("a token from node 3: %d %s", status, body)
	}
}

// TestPublicURLIsRecorded: the first start records the public URL; a node
// started with another (given, or the default from --listen) is refused and
// told which to use (it used to start, and its tokens and the others' got
// a bare 401 on each other's nodes); `bulkhead init --new-public-url`
// changes it deliberately, audited.
func TestPublicURLIsRecorded(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		dataDir := filepath.Join(t.TempDir(), "data")
		if filepath.IsAbs(dsn) {
			dsn = "" // the embedded SQLite default
		}
		p := startServe(t, dataDir, dsn)
		first := p.url
		p.stop(t)

		out := serveRefused(t, dataDir, dsn, "BULKHEAD_PUBLIC_URL=http://127.0.0.1:1")
		for _, want := range []string{"this node's is http://127.0.0.1:1", "is " + first, "--public-url " + first, "bulkhead init --new-public-url"} {
			if !strings.Contains(out, want) {
				t.Errorf("another --public-url: the message does not say %q:\n%s", want, out)
			}
		}
		if out = serveRefused(t, dataDir, dsn); !strings.Contains(out, "--public-url "+first) || !strings.Contains(out, "no --public-url") {
			t.Errorf("the default public URL of another listen address:\n%s", out)
		}
		p = startServe(t, dataDir, dsn, "BULKHEAD_PUBLIC_URL="+first)
		p.stop(t)

		const next = "http://localhost:8443"
		if out, code := runInit(t, dataDir, dsn, "--public-url", first, "--new-public-url", next); code != 2 {
			t.Errorf("init with two different URLs: exit %d; want 2\n%s", code, out)
		}
		out, code := runInit(t, dataDir, dsn, "--new-public-url", next)
		if code != 0 || !strings.Contains(out, "public URL is now "+next+" (was "+first+")") {
			t.Fatalf("init --new-public-url: exit %d\n%s", code, out)
		}
		serveRefused(t, dataDir, dsn, "BULKHEAD_PUBLIC_URL="+first)
		p = startServe(t, dataDir, dsn, "BULKHEAD_PUBLIC_URL="+next)
		if !hasAuditAction(t, p.client(), "oidc.public_url_changed") {
			t.Error("the change is not in the platform's audit chain")
		}
	})
}

// TestForeignIssuerIsLogged: a token from a node with another public URL
// (here another deployment) gets 401, and the refusing node says why in
// its log, at warn level, without the token; it used to log nothing.
func TestForeignIssuerIsLogged(t *testing.T) {
	ctx := contextT(t)
	a := startServe(t, filepath.Join(t.TempDir(), "a"), "")
	b := startServe(t, filepath.Join(t.TempDir(), "b"), "")
	for _, p := range []*proc{a, b} {
		if _, err := p.client().CreateTenant(ctx, client.CreateTenant{ID: "acme"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	id, secret := kmsClient(t, a.url, "acme")
	tok := clientToken(t, a.url, id, secret, "kms:encrypt")
	var ce *client.Error
	if _, err := client.New(b.url, tok).GetTenant(ctx, "acme"); !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized {
		t.Fatalf("node a's token on node b: %v; want 401", err)
	}
	var warning string
	runtest.Eventually(t, "node b's warning", func() bool {
		for _, l := range strings.Split(b.output(), "\n") {
			if strings.Contains(l, `"level":"WARN"`) && strings.Contains(l, "issuer") {
				warning = l
				return true
			}
		}
		return false
	})
	if !strings.Contains(warning, `"expected_issuer":"`+b.url+`"`) || !strings.Contains(warning, "--public-url") || !strings.Contains(warning, `"request_id":"req_`) {
		t.Errorf("the warning does not name the expected issuer, --public-url and the request: %s", warning)
	}
	for _, part := range append(strings.Split(tok, "."), tok) {
		if strings.Contains(b.output(), part) {
			t.Fatalf("node b's log shows the token:\n%s", b.output())
		}
	}
}
