package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {0, 1}, {1, 1}} {
		if got := percentile(s, c.p); got != c.want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil) = %v", got)
	}
}

func TestValidate(t *testing.T) {
	ok := options{base: "http://127.0.0.1:1", token: "x", conns: 1, duration: time.Second, prefix: "lg", createDuration: time.Second}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"http://example.com", "http://10.0.0.1:80", "https://127.0.0.1:1", ""} {
		o := ok
		o.base = u
		if o.validate() == nil {
			t.Errorf("validate accepted -url %q", u)
		}
	}
	o := ok
	o.prefix = "Bad_"
	if o.validate() == nil {
		t.Error("validate accepted a bad prefix")
	}
	o = ok
	o.clientID = "cli_x"
	if o.validate() == nil {
		t.Error("validate accepted -client-id without -client-secret")
	}
	o = ok
	o.tokenDuration = 2 * time.Minute
	if o.validate() == nil {
		t.Error("validate accepted a token phase over 60s")
	}
	o = ok
	o.proxyDuration = time.Second
	for _, u := range []string{"", "http://10.0.0.1:8090"} {
		o.proxyURL = u
		if o.validate() == nil {
			t.Errorf("validate accepted a proxy phase with -proxy-url %q", u)
		}
	}
	o.proxyURL = "http://127.0.0.1:8090"
	if err := o.validate(); err != nil {
		t.Errorf("validate refused a proxy phase: %v", err)
	}
	o.upstreamURL = "http://127.0.0.1:9"
	if o.validate() == nil {
		t.Error("validate accepted -upstream-url without -upstream-token")
	}
	for _, c := range []struct{ addr, token string }{{"10.0.0.1:0", "x"}, {"localhost:0", "x"}, {"127.0.0.1:0", ""}} {
		if upstreamOnly(c.addr, c.token, io.Discard) == nil {
			t.Errorf("-serve-upstream %q with token %q was accepted", c.addr, c.token)
		}
	}
}

// TestRun runs every phase briefly against an in-process node and its
// connections proxy (the token phase with a client it registers itself,
// then with one given by flags; the proxy phase with an upstream of its
// own, then with one given by flags).
func TestRun(t *testing.T) {
	env := apitest.New(t, storagetest.DSN(t, storage.SQLite), apitest.Options{})
	given, err := env.Directory.CreateClient(context.Background(), "", identity.CreateClientRequest{Name: "given",
		GrantTypes: []string{identity.GrantClientCredentials}}, tenant.Actor{Principal: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, createDur := range []time.Duration{300 * time.Millisecond, 0} {
		var out strings.Builder
		o := options{base: env.URL, token: apitest.AdminToken, conns: 4, duration: 300 * time.Millisecond,
			createDuration: createDur, createCount: 20, prefix: "x" + createDur.String()[:1], serverPID: os.Getpid(),
			// A short token phase: the test node keeps the provider's
			// default limit of 1000 token requests/s per address (burst 2000).
			warmup: 50 * time.Millisecond, tokenDuration: 150 * time.Millisecond, authzDuration: 150 * time.Millisecond, kmsDuration: 100 * time.Millisecond,
			proxyURL: env.ProxyURL, proxyDuration: 100 * time.Millisecond}
		if createDur == 0 {
			o.clientID, o.clientSecret = given.ID, given.ClientSecret
			o.upstreamToken = "sk_given_upstream"
			up, stop, err := serveUpstream("127.0.0.1:0", o.upstreamToken)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			o.upstreamURL = up
		}
		if err := run(context.Background(), o, &out); err != nil {
			t.Fatal(err)
		}
		phases := map[string]string{}
		sc := bufio.NewScanner(strings.NewReader(out.String()))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 || f[0] != "RESULT" {
				t.Fatalf("unexpected line %q", sc.Text())
			}
			phases[strings.TrimPrefix(f[1], "phase=")] = sc.Text()
		}
		for _, p := range []string{"get", "token", "authz", "kms_encrypt", "kms_decrypt", "kms_generate_data_key",
			"proxy_lat_direct", "proxy_lat", "proxy_direct", "proxy"} {
			if _, ok := phases[p]; !ok {
				t.Fatalf("no %s phase in %q", p, out.String())
			}
		}
		if _, ok := phases["create"]; ok != (createDur > 0) {
			t.Fatalf("create phase printed=%v with -create-duration %v: %q", ok, createDur, out.String())
		}
		for _, line := range phases {
			if !strings.Contains(line, " errors=0 ") || strings.Contains(line, " requests=0 ") {
				t.Errorf("bad result: %s", line)
			}
		}
		t.Log(out.String())
	}
}
