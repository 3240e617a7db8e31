package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestPlacementSurvivesKill9 registers a cluster with the CLI (its DSNs
// from the environment, not the command line), then kills bulkhead with
// SIGKILL while a bridge tenant's placement is being made: its schema and
// role exist, the placement is not recorded. After a restart the
// onboarding finishes with one schema and one role, the serving role a
// member of it, and no error left.
func TestPlacementSurvivesKill9(t *testing.T) {
	app := storagetest.App(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	p := startServeBinary(t, hookBinaryFor(t), dataDir, "", "BULKHEAD_TEST_PROVISION_DELAY=30s")

	t.Setenv("BULKHEAD_CLUSTER_DSN", app.ServingDSN)
	t.Setenv("BULKHEAD_CLUSTER_ADMIN_DSN", app.AdminDSN)
	out, errOut, code := runCLI(t, p.url, "cluster", "add", "app", "--prefix", app.Prefix)
	if code != 0 || !strings.Contains(out, "app") || !strings.Contains(out, app.Database) {
		t.Fatalf("cluster add: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, "bulkhead_app:") {
		t.Errorf("cluster add prints a DSN: %s%s", out, errOut)
	}
	out, errOut, code = runCLI(t, p.url, "cluster", "list", "--output", "json")
	var list client.DataClusterList
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || list.Default != "app" || len(list.Clusters) != 1 {
		t.Fatalf("cluster list: exit %d\n%s%s", code, out, errOut)
	}

	c := p.client()
	go c.CreateTenant(context.Background(), client.CreateTenant{ID: "kill-co", Tier: "standard"}, "") // cut off by the kill
	admin, err := pgx.Connect(contextT(t), app.AdminDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	name := app.Prefix + "kill_co"
	count := func(q string) int {
		var n int
		if err := admin.QueryRow(contextT(t), q, app.Prefix+"%").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const schemas = `SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1`
	const roles = `SELECT count(*) FROM pg_roles WHERE rolname LIKE $1`
	runtest.Eventually(t, "the tenant's schema and role to be made", func() bool {
		return count(schemas) == 1 && count(roles) == 1
	})
	if _, err := c.GetPlacement(contextT(t), "kill-co"); err == nil {
		t.Fatal("the placement is recorded before the step's end")
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited

	p2 := startServeBinary(t, hookBinaryFor(t), dataDir, "", "BULKHEAD_TEST_PROVISION_DELAY=50ms", "BULKHEAD_PUBLIC_URL="+p.url)
	c2 := p2.client()
	runtest.Eventually(t, "the tenant to become active after the restart", func() bool {
		tn, err := c2.GetTenant(contextT(t), "kill-co")
		return err == nil && tn.Status == "active"
	})
	if n, m := count(schemas), count(roles); n != 1 || m != 1 {
		t.Errorf("after the restart: %d schemas and %d roles under the prefix; want one of each", n, m)
	}
	var member bool
	if err := admin.QueryRow(contextT(t), `SELECT pg_has_role('bulkhead_app', $1, 'MEMBER')`, name).Scan(&member); err != nil || !member {
		t.Errorf("the serving role is not a member of %s: %v", name, err)
	}
	wfs := workflows(t, c2, "kill-co")
	if len(wfs) != 1 || wfs[0].Status != "done" || !slices.Contains(stepNames(wfs[0]), "data-placement") {
		t.Errorf("workflows after the restart: %+v", wfs)
	}
	if tw, err := c2.TenantWorkflows(contextT(t), "kill-co"); err != nil || len(tw) != 1 || tw[0].LastError != "" {
		t.Errorf("the workflow keeps an error: %+v %v", tw, err)
	}

	out, errOut, code = runCLI(t, p2.url, "placement", "kill-co")
	if code != 0 || !strings.Contains(out, "bridge") || !strings.Contains(out, name) || !strings.Contains(out, "ready") {
		t.Errorf("placement: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runCLI(t, p2.url, "cluster", "remove", "app")
	if code == 0 || !strings.Contains(errOut, "cluster_in_use") {
		t.Errorf("cluster remove of a cluster in use: exit %d\n%s%s", code, out, errOut)
	}
	t.Setenv("BULKHEAD_CLUSTER_DSN", "")
	out, errOut, code = runCLI(t, p2.url, "cluster", "add", "no-dsn")
	if code != 2 || !strings.Contains(errOut, "--dsn") {
		t.Errorf("cluster add without a DSN: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(p.output()+p2.output(), "bulkhead_app_admin:") || strings.Contains(p.output()+p2.output(), "bulkhead_app:bulkhead_app@") {
		t.Errorf("the server's output holds a DSN:\n%s\n%s", p.output(), p2.output())
	}
}
