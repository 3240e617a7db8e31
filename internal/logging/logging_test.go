package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/logging"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

func TestTenantIDOnEveryLineInATenantContext(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, slog.LevelInfo).With("component", "test")
	ctx := context.Background()
	log.InfoContext(ctx, "no tenant")
	log.InfoContext(tenant.NewContext(ctx, tenant.Context{TenantID: "acme", Principal: "user:1"}), "credential")
	log.InfoContext(tenant.WithID(ctx, "globex"), "workflow")
	log.InfoContext(logging.With(tenant.WithID(ctx, "initech"), slog.String("request_id", "req-1")), "request")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []struct{ msg, tenant, requestID string }{{"no tenant", "", ""}, {"credential", "acme", ""}, {"workflow", "globex", ""}, {"request", "initech", "req-1"}}
	if len(lines) != len(want) {
		t.Fatalf("%d lines; want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not JSON: %s", i, line)
		}
		got, _ := m["tenant_id"].(string)
		rid, _ := m["request_id"].(string)
		if m["msg"] != want[i].msg || got != want[i].tenant || rid != want[i].requestID || m["component"] != "test" {
			t.Errorf("line %d = %s; want msg %q tenant_id %q request_id %q", i, line, want[i].msg, want[i].tenant, want[i].requestID)
		}
		if strings.Count(line, `"tenant_id"`) > 1 {
			t.Errorf("line %d repeats tenant_id: %s", i, line)
		}
	}
}
