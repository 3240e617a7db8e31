package main

import (
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestPartnerCLI: the operator registers a partner, acme's admin trusts
// it with read-only scopes, and the partner's side (partner assume) gets
// a token for acme with acme's external id only; suspension, rotation and
// deletion stop it.
func TestPartnerCLI(t *testing.T) {
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
	cli(0, "tenant", "create", "globex")
	var partner client.PartnerCreated
	if err := json.Unmarshal([]byte(cli(0, "partner", "create", "Reporting Co", "--output", "json")), &partner); err != nil ||
		!strings.HasPrefix(partner.ClientSecret, "bhp_") {
		t.Fatalf("partner create: %+v %v", partner, err)
	}
	if out := cli(0, "partner", "list"); !strings.Contains(out, partner.ID) || strings.Contains(out, partner.ClientSecret) {
		t.Fatalf("partner list:\n%s", out)
	}
	out := cli(0, "trust", "create", "--tenant", "acme", "--partner", partner.ID, "--scope", "events:subscribe", "--scope", "reports:read",
		"--partner-tag", "region", "--tag", "plan=gold")
	ext := between(out, "external id: ", " ")
	if !strings.HasPrefix(ext, "bhx_") {
		t.Fatalf("trust create:\n%s", out)
	}
	var g client.TrustCreated
	json.Unmarshal([]byte(cli(0, "trust", "create", "--tenant", "globex", "--partner", partner.ID, "--scope", "reports:read", "--output", "json")), &g)
	var trusts client.TrustPage
	json.Unmarshal([]byte(cli(0, "trust", "list", "--tenant", "acme", "--output", "json")), &trusts)
	if len(trusts.Items) != 1 || trusts.Items[0].Tags["plan"] != "gold" || strings.Contains(cli(0, "trust", "list", "--tenant", "acme"), ext) {
		t.Fatalf("trust list: %+v", trusts)
	}
	id := trusts.Items[0].ID
	if out := cli(2, "trust", "create", "--tenant", "acme", "--partner", partner.ID); !strings.Contains(out, "--scope") {
		t.Errorf("trust create without --scope:\n%s", out)
	}

	t.Setenv("BULKHEAD_PARTNER_SECRET", partner.ClientSecret)
	assume := func(wantCode int, externalID string, extra ...string) string {
		t.Helper()
		t.Setenv("BULKHEAD_EXTERNAL_ID", externalID)
		return cli(wantCode, append([]string{"partner", "assume", "--partner", partner.ID, "--tenant", "acme"}, extra...)...)
	}
	tok := strings.TrimSpace(assume(0, ext, "--scope", "reports:read", "--tag", "region=eu"))
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	var c struct {
		Sub      string            `json:"sub"`
		TenantID string            `json:"tenant_id"`
		Scope    string            `json:"scope"`
		Tags     map[string]string `json:"tags"`
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Sub != id || c.TenantID != "acme" || c.Scope != "reports:read" ||
		c.Tags["region"] != "eu" || c.Tags["plan"] != "gold" {
		t.Fatalf("the token's claims: %s (%v)", payload, err)
	}
	for what, x := range map[string]string{"globex's external id": g.ExternalID, "none": ""} {
		if out := assume(1, x); !strings.Contains(out, "invalid_grant") || (x != "" && strings.Contains(out, x)) {
			t.Errorf("assume with %s:\n%s", what, out)
		}
	}
	cli(0, "trust", "suspend", id, "--tenant", "acme")
	assume(1, ext)
	cli(0, "trust", "resume", id, "--tenant", "acme")
	assume(0, ext)
	out = cli(0, "trust", "rotate-external-id", id, "--tenant", "acme")
	next := between(out, "external id: ", " ")
	assume(1, ext)
	assume(0, next)
	cli(0, "trust", "update", id, "--tenant", "acme", "--network", "10.0.0.0/8")
	assume(1, next)
	cli(0, "trust", "update", id, "--tenant", "acme", "--no-networks")
	assume(0, next)
	cli(0, "trust", "delete", id, "--tenant", "acme")
	assume(1, next)
	if out := cli(0, "audit", "list", "--tenant", "acme"); !strings.Contains(out, "partner.session_assumed") || !strings.Contains(out, "trust.deleted") {
		t.Errorf("acme's audit trail:\n%s", out)
	}
}

// between returns what follows prefix in s, up to sep.
func between(s, prefix, sep string) string {
	_, rest, ok := strings.Cut(s, prefix)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, sep)
	return strings.TrimSpace(v)
}
