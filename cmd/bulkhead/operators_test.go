package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pquerna/otp"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestCLIOperators drives the operator commands against a real server: the
// create prints the temporary password, the otpauth URL and the recovery
// codes once, and says TOTP is required; list, disable and delete follow.
func TestCLIOperators(t *testing.T) {
	p := startServe(t, filepath.Join(t.TempDir(), "data"), "")
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		out, errOut, code := runCLIInput(t, p.url, "", args...)
		if code != wantCode {
			t.Fatalf("bulkhead %s: exit %d; want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out + errOut
	}

	out := cli(0, "operator", "create", "--email", "olga@ops.example", "--name", "Olga Operator")
	pw := regexp.MustCompile(`temporary password \(shown once\): (\S+)`).FindStringSubmatch(out)
	url := regexp.MustCompile(`(?m)^\s+(otpauth://\S+)$`).FindStringSubmatch(out)
	if pw == nil || url == nil || !strings.Contains(out, "TOTP is required: scan") || !strings.Contains(out, "olga@ops.example") ||
		!strings.Contains(out, "Olga Operator") || !strings.Contains(out, "not confirmed") {
		t.Fatalf("operator create:\n%s", out)
	}
	key, err := otp.NewKeyFromURL(url[1])
	if err != nil || key.Issuer() != "Bulkhead" || key.AccountName() != "olga@ops.example" || key.Secret() == "" {
		t.Fatalf("otpauth URL %q: %v", url[1], err)
	}
	codes := regexp.MustCompile(`(?m)^  ([a-z0-9]{16})$`).FindAllStringSubmatch(out, -1)
	if len(codes) != 10 {
		t.Errorf("%d recovery codes printed; want 10:\n%s", len(codes), out)
	}

	// JSON output carries the same fields as the API.
	out = cli(0, "operator", "create", "--email", "second@ops.example", "--name", "Second", "--output", "json")
	var second client.CreatedOperator
	if err := json.Unmarshal([]byte(out), &second); err != nil || !strings.HasPrefix(second.ID, "opr_") || second.Password == "" ||
		second.TOTP.OTPAuthURL == "" || len(second.TOTP.RecoveryCodes) != 10 {
		t.Fatalf("operator create --output json: %v\n%s", err, out)
	}

	// Missing flags, a duplicate, an unknown id.
	if out = cli(2, "operator", "create", "--email", "x@ops.example"); !strings.Contains(out, "--email E and --name N are required") {
		t.Errorf("create without --name:\n%s", out)
	}
	if out = cli(1, "operator", "create", "--email", "OLGA@ops.example", "--name", "Again"); !strings.Contains(out, "409 operator_exists") {
		t.Errorf("duplicate:\n%s", out)
	}
	if out = cli(1, "operator", "disable", "opr_nobody"); !strings.Contains(out, "404 operator_not_found") {
		t.Errorf("disable unknown:\n%s", out)
	}

	out = cli(0, "operator", "list")
	if !strings.Contains(out, "olga@ops.example") || !strings.Contains(out, second.ID) || strings.Contains(out, pw[1]) {
		t.Errorf("operator list:\n%s", out)
	}
	if out = cli(0, "operator", "disable", second.ID); !regexp.MustCompile(second.ID + `\s+second@ops.example\s+Second\s+disabled`).MatchString(out) {
		t.Errorf("operator disable:\n%s", out)
	}
	if out = cli(0, "operator", "delete", second.ID); !strings.Contains(out, "deleted operator "+second.ID) {
		t.Errorf("operator delete:\n%s", out)
	}
	out = cli(0, "operator", "list", "--output", "json")
	var list struct{ Items []client.Operator }
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Items) != 1 || list.Items[0].Email != "olga@ops.example" {
		t.Errorf("list after delete: %v\n%s", err, out)
	}

	// The audit trail has the acts and none of the secrets.
	out = cli(0, "audit", "list", "--tenant", "-", "--output", "json")
	for _, action := range []string{"operator.created", "operator.disabled", "operator.deleted"} {
		if !strings.Contains(out, action) {
			t.Errorf("audit lacks %s", action)
		}
	}
	for _, secret := range []string{pw[1], key.Secret(), second.Password, second.TOTP.Secret, codes[0][1], "argon2"} {
		if strings.Contains(out, secret) {
			t.Errorf("the audit trail holds a secret")
		}
	}
}
