package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestCLIUsersAndGroups drives the user and group commands against a real server.
func TestCLIUsersAndGroups(t *testing.T) {
	p := startServe(t, filepath.Join(t.TempDir(), "data"), "")
	cli := func(stdin string, wantCode int, args ...string) string {
		t.Helper()
		out, errOut, code := runCLIInput(t, p.url, stdin, args...)
		if code != wantCode {
			t.Fatalf("bulkhead %s: exit %d; want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out + errOut
	}
	cli("", 0, "tenant", "create", "acme")

	// Without a password: a temporary one, printed once.
	out := cli("", 0, "user", "create", "acme", "ann@acme.example", "--group", "admins")
	m := regexp.MustCompile(`temporary password \(shown once; the user must change it\): (\S+)`).FindStringSubmatch(out)
	if m == nil || len(m[1]) != 24 || !strings.Contains(out, "admins") {
		t.Fatalf("user create without a password:\n%s", out)
	}
	// With a password from stdin: not echoed anywhere.
	const pw = "a long passphrase for bob"
	out = cli(pw+"\n", 0, "user", "create", "acme", "bob@acme.example", "--password-stdin", "--output", "json")
	var bob client.User
	if err := json.Unmarshal([]byte(out), &bob); err != nil || bob.TemporaryPassword != "" || !bob.PasswordSet || strings.Contains(out, pw) {
		t.Fatalf("user create --password-stdin: %v\n%s", err, out)
	}
	if out = cli("short\n", 1, "user", "create", "acme", "cy@acme.example", "--password-stdin"); !strings.Contains(out, "weak_password") || strings.Contains(out, "short") {
		t.Errorf("weak password (must be refused, not echoed):\n%s", out)
	}
	cli("", 0, "group", "create", "acme", "support", "--description", "first line")
	if out = cli("", 0, "group", "add-member", "acme", "support", bob.ID); !strings.Contains(out, "added to group support") {
		t.Errorf("add-member:\n%s", out)
	}
	out = cli("", 0, "group", "list", "acme")
	if !regexp.MustCompile(`(?m)^support\s+1\s+first line$`).MatchString(out) || !regexp.MustCompile(`(?m)^admins\s+1\s`).MatchString(out) {
		t.Errorf("group list:\n%s", out)
	}
	if out = cli("", 0, "user", "list", "acme", "--email", "BOB@acme.example"); !strings.Contains(out, bob.ID) || strings.Contains(out, "ann@") {
		t.Errorf("user list --email:\n%s", out)
	}
	if out = cli("", 0, "user", "update", "acme", bob.ID, "--status", "disabled"); !strings.Contains(out, "disabled") {
		t.Errorf("user update:\n%s", out)
	}
	cli("", 0, "group", "remove-member", "acme", "support", bob.ID)
	if out = cli("", 0, "user", "get", "acme", bob.ID); strings.Contains(out, "support") {
		t.Errorf("bob still in support:\n%s", out)
	}
	cli("", 0, "user", "delete", "acme", bob.ID)
	if out = cli("", 1, "user", "get", "acme", bob.ID); !strings.Contains(out, "404 user_not_found") {
		t.Errorf("get after delete:\n%s", out)
	}
	// The audit trail has the acts and no password.
	out = cli("", 0, "audit", "list", "--tenant", "acme", "--output", "json")
	for _, action := range []string{"user.created", "group.created", "group.member_added", "user.updated", "group.member_removed", "user.deleted"} {
		if !strings.Contains(out, action) {
			t.Errorf("audit lacks %s", action)
		}
	}
	if strings.Contains(out, pw) || strings.Contains(out, m[1]) || strings.Contains(out, "argon2") {
		t.Error("the audit trail holds a password or a hash")
	}
}

// TestCLIClientsAndTokens registers a tenant's OAuth client with the CLI and
// gets a token for it from the provider, as the README shows with curl.
func TestCLIClientsAndTokens(t *testing.T) {
	p := startServe(t, filepath.Join(t.TempDir(), "data"), "")
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, p.url, args...)
		if code != wantCode {
			t.Fatalf("bulkhead %s: exit %d; want %d\n%s%s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out + errOut
	}
	cli(0, "tenant", "create", "acme")
	out := cli(0, "client", "create", "acme-backend", "--tenant", "acme", "--grant", "client_credentials", "--scope", "orders:read")
	secret := regexp.MustCompile(`client secret \(shown once\): (bhs_\S+)`).FindStringSubmatch(out)
	id := regexp.MustCompile(`(cli_[a-z2-7]{26})`).FindStringSubmatch(out)
	if secret == nil || id == nil {
		t.Fatalf("client create:\n%s", out)
	}
	if out = cli(0, "client", "list", "--tenant", "acme"); !strings.Contains(out, id[1]) || strings.Contains(out, secret[1]) {
		t.Errorf("client list (must not show the secret):\n%s", out)
	}
	if out = cli(0, "client", "list"); strings.Contains(out, id[1]) {
		t.Errorf("a tenant's client is listed among the platform's:\n%s", out)
	}
	resp, err := http.DefaultClient.Do(tokenRequest(t, p.url, id[1], secret[1], "grant_type=client_credentials&scope=orders:read"))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Count(tok.AccessToken, ".") != 2 || !strings.EqualFold(tok.TokenType, "bearer") {
		t.Fatalf("token: %d %+v", resp.StatusCode, tok)
	}
	cli(0, "client", "delete", id[1], "--tenant", "acme")
	resp, err = http.DefaultClient.Do(tokenRequest(t, p.url, id[1], secret[1], "grant_type=client_credentials"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Error("a deleted client still gets tokens")
	}
}

// tokenRequest is a token endpoint request authenticated with HTTP Basic, as curl -u sends it.
func tokenRequest(t *testing.T, base, id, secret, form string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/oauth/token", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	return req
}
