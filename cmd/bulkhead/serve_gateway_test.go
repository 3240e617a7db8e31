package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/sdk/client"
)

var gatewayListening = regexp.MustCompile(`gateway listening on (http://\S+)`)

// TestServeGateway: serve --gateway-listen with a routes file forwards a
// tenant's subdomain to the file's upstream; a routes file with a bad
// route, or an HTTPS listener without a certificate, stops serve before
// it listens.
func TestServeGateway(t *testing.T) {
	dsn := storagetest.DSN(t, "sqlite")
	t.Setenv("BULKHEAD_ADMIN_TOKEN", testAdminToken)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Bulkhead-Tenant"))
	}))
	defer up.Close()
	dir := t.TempDir()
	routes := filepath.Join(dir, "routes.json")
	os.WriteFile(routes, []byte(`{"routes":[{"id":"app","host":"*.app.test","path_prefix":"/","upstream":"`+up.URL+`"}]}`), 0o600)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"routes":[{"id":"app","host":"*.evil.test","path_prefix":"/","upstream":"`+up.URL+`"}]}`), 0o600)
	base := []string{"--listen", "127.0.0.1:0", "--proxy-listen", "off", "--data-dir", filepath.Join(dir, "data"), "--database", dsn,
		"--gateway-listen", "127.0.0.1:0", "--gateway-app-domain", "app.test", "--allow-private-upstreams"}

	for name, tc := range map[string]struct {
		extra []string
		want  string
	}{
		"bad route":           {[]string{"--gateway-routes", bad}, "wildcard"},
		"unknown field":       {[]string{"--gateway-routes", writeFile(t, dir, "x.json", `{"routes":[],"extra":1}`)}, "unknown field"},
		"TLS without a cert":  {[]string{"--gateway-routes", routes, "--gateway-tls-listen", "127.0.0.1:0"}, "--gateway-tls-cert"},
		"missing routes file": {[]string{"--gateway-routes", filepath.Join(dir, "none.json")}, "--gateway-routes"},
	} {
		extra := tc.extra
		args := append(append([]string{}, base...), extra...)
		args = append(args, "--data-dir", filepath.Join(dir, name), "--database", filepath.Join(dir, name, "b.db")) // not the node's
		err := serve(context.Background(), stdio{out: io.Discard, err: io.Discard}, args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	out := &serveOutput{url: make(chan string, 1)}
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, stdio{out: io.Discard, err: out}, append(base, "--gateway-routes", routes))
	}()
	var url string
	select {
	case url = <-out.url:
	case err := <-served:
		t.Fatalf("serve returned before listening: %v\n%s", err, out)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not listen\n%s", out)
	}
	var gw string
	runtest.Eventually(t, "the gateway listening", func() bool {
		m := gatewayListening.FindStringSubmatch(out.String())
		if m != nil {
			gw = m[1]
		}
		return m != nil
	})
	if _, err := client.New(url, testAdminToken).CreateTenant(ctx, client.CreateTenant{ID: "acme"}, ""); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", gw+"/", nil)
	req.Host = "acme.app.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "acme" {
		t.Fatalf("through the gateway: %d %q", resp.StatusCode, b)
	}
	// The listener refuses ambiguous framing before net/http reads it.
	c, err := net.Dial("tcp", strings.TrimPrefix(gw, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: acme.app.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 400 {
		t.Fatalf("CL and TE through the node's gateway: %v %v", resp, err)
	}
	stop()
	if err := <-served; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("serve: %v\n%s", err, out)
	}
	if strings.Contains(out.String(), "panic") {
		t.Fatal(out.String())
	}
	// The access log line, held in the buffer, is written by the stop.
	if !regexp.MustCompile(`"msg":"gateway request","tenant_id":"acme".*"status":200`).MatchString(out.String()) {
		t.Errorf("no access log line for the request:\n%s", out)
	}
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
