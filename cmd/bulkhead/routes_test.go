package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

// TestRouteCommands: route add, list and remove through the API.
func TestRouteCommands(t *testing.T) {
	env := apitest.New(t, storagetest.DSN(t, "sqlite"), apitest.Options{GatewayAppDomain: "app.test"})
	runCLI := func(_ *testing.T, _ string, args ...string) (string, string, int) {
		code, out, errOut := runHere("", append(args, "--addr", env.URL, "--token", apitest.AdminToken)...)
		return out, errOut, code
	}
	out, errOut, code := runCLI(t, env.URL, "route", "add", "rt-app", "--host", "*.app.test", "--upstream", "http://127.0.0.1:9",
		"--silo", "acme=http://127.0.0.1:10", "--timeout", "5s")
	if code != 0 || !strings.Contains(out, "rt-app") || !strings.Contains(out, "acme=http://127.0.0.1:10") {
		t.Fatalf("route add: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runCLI(t, env.URL, "route", "list", "--output", "json")
	var list client.GatewayRouteList
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Routes) != 1 || list.Routes[0].Timeout != "5s" ||
		list.Routes[0].Source != "api" || list.Routes[0].PathPrefix != "/" {
		t.Fatalf("route list: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code = runCLI(t, env.URL, "route", "add", "rt-bad", "--host", "*.evil.test", "--upstream", "http://127.0.0.1:9"); code == 0 ||
		!strings.Contains(errOut, "invalid_route") && !strings.Contains(errOut, "wildcard") {
		t.Fatalf("bad route: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code = runCLI(t, env.URL, "route", "remove", "rt-app"); code != 0 {
		t.Fatalf("route remove: exit %d\n%s%s", code, out, errOut)
	}
	if out, _, _ = runCLI(t, env.URL, "route", "list"); strings.Contains(out, "rt-app") {
		t.Fatalf("removed route listed: %s", out)
	}
}
