package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestCLI drives every client command against a real server, then alters an
// audit row directly in the database and shows `bulkhead audit verify`
// failing and naming the event.
func TestCLI(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		dataDir := filepath.Join(t.TempDir(), "data")
		serveDSN := dsn
		if filepath.IsAbs(dsn) {
			serveDSN = "" // the embedded default
			dsn = filepath.Join(dataDir, "bulkhead.db")
		}
		p := startServe(t, dataDir, serveDSN)
		cli := func(wantCode int, args ...string) string {
			t.Helper()
			out, errOut, code := runCLI(t, p.url, args...)
			if code != wantCode {
				t.Fatalf("bulkhead %s: exit %d; want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errOut)
			}
			return out + errOut
		}
		var tn client.Tenant
		out := cli(0, "tenant", "create", "acme", "--name", "Acme Corp", "--domain", "acme.example", "--config", `{"plan":"gold"}`, "--output", "json")
		if err := json.Unmarshal([]byte(out), &tn); err != nil || tn.ID != "acme" || tn.Status != "active" || tn.Domains[0] != "acme.example" {
			t.Fatalf("create --output json: %v %s", err, out)
		}
		for i := range 4 {
			cli(0, "tenant", "create", fmt.Sprintf("tenant-%d", i), "--tier", "standard")
		}
		out = cli(0, "tenant", "list")
		if !regexp.MustCompile(`(?m)^acme\s+Acme Corp\s+basic\s+pool\s+active\s+acme.example`).MatchString(out) {
			t.Errorf("tenant list table:\n%s", out)
		}
		out = cli(0, "tenant", "list", "--limit", "2")
		if !strings.Contains(out, "more: --cursor ") || strings.Count(out, "\n") != 4 {
			t.Errorf("a page of 2 with a cursor hint:\n%s", out)
		}
		var page client.TenantPage
		if err := json.Unmarshal([]byte(cli(0, "tenant", "list", "--limit", "2", "--all", "--output", "json")), &page); err != nil || len(page.Items) != 5 {
			t.Errorf("list --all followed cursors to %d tenants (%v); want 5", len(page.Items), err)
		}
		out = cli(0, "tenant", "update", "acme", "--name", "Acme Inc", "--domains", "acme.io,www.acme.io")
		if !strings.Contains(out, "Acme Inc") || !strings.Contains(out, "acme.io,www.acme.io") {
			t.Errorf("update:\n%s", out)
		}
		if out = cli(0, "tenant", "suspend", "acme"); !strings.Contains(out, "suspended") {
			t.Errorf("suspend:\n%s", out)
		}
		if out = cli(0, "tenant", "resume", "acme"); !strings.Contains(out, "active") {
			t.Errorf("resume:\n%s", out)
		}
		if out = cli(0, "tenant", "delete", "tenant-3"); !strings.Contains(out, "offboarding") {
			t.Errorf("delete:\n%s", out)
		}
		// Errors: the server's code and detail reach the user, exit status 1.
		if out = cli(1, "tenant", "get", "nope-nope"); !strings.Contains(out, "404 tenant_not_found") {
			t.Errorf("get of a missing tenant:\n%s", out)
		}
		if out = cli(1, "tenant", "create", "acme"); !strings.Contains(out, "409 tenant_exists") {
			t.Errorf("duplicate create:\n%s", out)
		}
		if out = cli(1, "tenant", "get", "acme", "--token", "wrong-token-wrong-token"); !strings.Contains(out, "401") || strings.Contains(out, "wrong-token") {
			t.Errorf("bad token (must be refused and not echoed):\n%s", out)
		}
		out = cli(0, "audit", "list", "--tenant", "acme")
		for _, action := range []string{"tenant.onboarding.started", "tenant.activated", "tenant.updated", "tenant.suspended", "tenant.resumed"} {
			if !strings.Contains(out, action) {
				t.Errorf("audit list --tenant acme lacks %s:\n%s", action, out)
			}
		}
		var ap client.AuditPage
		if err := json.Unmarshal([]byte(cli(0, "audit", "list", "--action", "authn.failure", "--output", "json")), &ap); err != nil ||
			len(ap.Items) != 1 || ap.Items[0].Outcome != "denied" || ap.Items[0].SourceIP != "127.0.0.1" {
			t.Errorf("the failed authentication is audited once, denied, with the source IP: %v %+v", err, ap.Items)
		}
		if out = cli(0, "audit", "verify"); !strings.HasPrefix(out, "ok: ") {
			t.Errorf("verify:\n%s", out)
		}

		// Tamper with acme's third event directly in the database, as its owner.
		storagetest.ExecAsOwner(t, dsn, []string{"audit_events"}, `UPDATE audit_events SET principal = 'nobody' WHERE chain = 'acme' AND seq = 3`)
		out = cli(1, "audit", "verify")
		if !strings.Contains(out, "audit chain broken: chain acme, event seq 3") || !strings.Contains(out, "altered") {
			t.Errorf("verify after tampering:\n%s", out)
		}
	})
}
