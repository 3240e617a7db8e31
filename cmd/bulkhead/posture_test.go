package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestPostureCLI: a clean deployment has no findings (exit 0 with
// --exit-code); a policy that permits everything is found by --scan,
// explained, exits 3 with --exit-code, and shows in its tenant's list.
func TestPostureCLI(t *testing.T) {
	p := startServeArgs(t, []string{"--data-dir", filepath.Join(t.TempDir(), "data")})
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, p.url, args...)
		if code != wantCode {
			t.Fatalf("bulkhead %s: exit %d; want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out + errOut
	}
	cli(0, "tenant", "create", "acme")
	if out := cli(0, "posture", "--scan", "--exit-code"); !strings.Contains(out, "no findings") {
		t.Fatalf("a clean deployment:\n%s", out)
	}
	cli(0, "policy", "create", "--tenant", "acme", "--statement", "permit(principal, action, resource);")
	out := cli(3, "posture", "--scan", "--exit-code")
	for _, want := range []string{"1 opened", "policy_permits_everything", "acme", "why:", "fix:"} {
		if !strings.Contains(out, want) {
			t.Errorf("posture --scan lacks %q:\n%s", want, out)
		}
	}
	var page client.PosturePage
	if err := json.Unmarshal([]byte(cli(0, "posture", "--tenant", "acme", "--output", "json")), &page); err != nil ||
		len(page.Items) != 1 || page.Items[0].TenantID != "acme" || page.Counts["high"] != 1 {
		t.Fatalf("acme's posture: %+v %v", page, err)
	}
	if out := cli(0, "posture", "--tenant", "-"); !strings.Contains(out, "no findings") {
		t.Errorf("the platform's own:\n%s", out)
	}
	if out := cli(1, "posture", "--severity", "urgent"); !strings.Contains(out, "invalid_severity") {
		t.Errorf("a bad severity:\n%s", out)
	}
}
