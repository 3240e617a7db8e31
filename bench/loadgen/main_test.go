package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// TestMain makes the test binary the aggressor process when the noisy
// phases start it again (os.Executable is the test binary here).
func TestMain(m *testing.M) {
	if os.Getenv(floodEnv) == "1" {
		if err := floodMain(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: aggressor:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestSchedule(t *testing.T) {
	start := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		rate float64
		i    int
		want time.Duration
	}{{50, 0, 0}, {50, 1, 20 * time.Millisecond}, {50, 50, time.Second}, {100, 7, 70 * time.Millisecond}, {3, 1, 333333333}, {3, 3, time.Second}} {
		if got := schedule(start, c.rate, c.i).Sub(start); got != c.want {
			t.Errorf("schedule(rate %v, %d) = %v, want %v", c.rate, c.i, got, c.want)
		}
	}
}

// TestOpenLoopSchedule: the ops are sent in turn, each at the rate, on the
// schedule, and only the requests due after the warm-up are recorded.
func TestOpenLoopSchedule(t *testing.T) {
	var mu sync.Mutex
	var sent [2][]time.Time
	op := func(j int) func(context.Context) (bool, error) {
		return func(context.Context) (bool, error) {
			mu.Lock()
			sent[j] = append(sent[j], time.Now())
			mu.Unlock()
			return j == 0, nil // op 1 always fails
		}
	}
	t0 := time.Now()
	rs, err := openLoop(context.Background(), 100, 200*time.Millisecond, 500*time.Millisecond, 0, op(0), op(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || len(rs[0].lat) != 50 || rs[0].errors != 0 || len(rs[1].lat) != 0 || rs[1].errors != 50 {
		t.Fatalf("got %d results: op 0 %d ok %d errors, op 1 %d ok %d errors; want 50 ok, 50 errors",
			len(rs), len(rs[0].lat), rs[0].errors, len(rs[1].lat), rs[1].errors)
	}
	if len(sent[0]) != 70 || len(sent[1]) != 70 {
		t.Fatalf("sent %d and %d requests, want 70 each (20 of them in the warm-up)", len(sent[0]), len(sent[1]))
	}
	// None early; the last ones near their time (0.695 s) unless the machine stalls.
	if d := sent[1][69].Sub(t0); d < 695*time.Millisecond || d > 3*time.Second {
		t.Errorf("the last request was sent after %v, want ≈ 695ms", d)
	}
	if e := rs[0].elapsed; e < 490*time.Millisecond || e > 3*time.Second {
		t.Errorf("recorded span %v, want ≈ 500ms", e)
	}
}

// TestOpenLoopCountsQueueing: a server that takes 20 ms per request, one at
// a time, sent 100 requests a second, falls further behind with each; the
// open loop keeps sending on time and counts the wait (a closed loop would
// have slowed down and seen 20 ms every time).
func TestOpenLoopCountsQueueing(t *testing.T) {
	var server sync.Mutex
	slow := func(context.Context) (bool, error) {
		server.Lock()
		defer server.Unlock()
		time.Sleep(20 * time.Millisecond)
		return true, nil
	}
	rs, err := openLoop(context.Background(), 100, 0, 500*time.Millisecond, 0, slow)
	if err != nil {
		t.Fatal(err)
	}
	lat := rs[0].lat
	if len(lat) != 50 {
		t.Fatalf("%d requests recorded, want 50", len(lat))
	}
	// The last one waits for the 49 before it: ≈ 50×20 ms − 49×10 ms.
	if lat[0] < 20*time.Millisecond || lat[0] > 300*time.Millisecond || lat[49] < 450*time.Millisecond {
		t.Errorf("latencies from %v to %v, want from ≈ 20ms to ≈ 510ms", lat[0], lat[49])
	}
}

// TestOpenLoopInFlightBound: requests due while maxInFlight wait are not
// sent and count as errors; transport errors count as errors.
func TestOpenLoopInFlightBound(t *testing.T) {
	release := make(chan struct{})
	time.AfterFunc(time.Second, func() { close(release) })
	var calls atomic.Int64
	block := func(context.Context) (bool, error) {
		calls.Add(1)
		<-release
		return true, nil
	}
	rs, err := openLoop(context.Background(), 10000, 0, 300*time.Millisecond, 0, block)
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != maxInFlight || len(rs[0].lat) != maxInFlight || rs[0].errors != 3000-maxInFlight {
		t.Errorf("%d sent, %d ok, %d errors; want %d sent and ok, %d errors", calls.Load(), len(rs[0].lat), rs[0].errors, maxInFlight, 3000-maxInFlight)
	}
	failing := func(context.Context) (bool, error) { return true, errors.New("connection refused") }
	rs, err = openLoop(context.Background(), 100, 0, 100*time.Millisecond, 0, failing)
	if err != nil || len(rs[0].lat) != 0 || rs[0].errors != 10 {
		t.Errorf("transport errors: %v, %d ok, %d errors; want 0 ok, 10 errors", err, len(rs[0].lat), rs[0].errors)
	}
}

func TestParseFloodSpec(t *testing.T) {
	good := floodSpec{Phase: "noisy_get_aggressor", Base: "http://127.0.0.1:8080", Conns: 16, Warmup: time.Second, Limit: time.Minute,
		Method: "GET", Path: "/v1/tenants/a", Auth: "Bearer x", Want: 200}
	line, _ := json.Marshal(good)
	if s, err := parseFloodSpec(line); err != nil || s != good {
		t.Fatalf("parseFloodSpec(%s) = %+v, %v", line, s, err)
	}
	for name, mod := range map[string]func(*floodSpec){
		"not loopback":  func(s *floodSpec) { s.Base = "http://10.0.0.1:8080" },
		"no phase":      func(s *floodSpec) { s.Phase = "" },
		"phase with =":  func(s *floodSpec) { s.Phase = "a=b" },
		"no conns":      func(s *floodSpec) { s.Conns = 0 },
		"limit≤warmup":  func(s *floodSpec) { s.Limit = s.Warmup },
		"long limit":    func(s *floodSpec) { s.Limit = time.Hour },
		"relative path": func(s *floodSpec) { s.Path = "v1/tenants" },
		"no status":     func(s *floodSpec) { s.Want = 0 },
	} {
		s := good
		mod(&s)
		line, _ := json.Marshal(s)
		if _, err := parseFloodSpec(line); err == nil {
			t.Errorf("%s: parseFloodSpec accepted %s", name, line)
		}
	}
	for _, line := range []string{`{"phase":"x","unknown":1}`, `not json`, ``} {
		if _, err := parseFloodSpec([]byte(line)); err == nil {
			t.Errorf("parseFloodSpec accepted %q", line)
		}
	}
}

func TestParseResult(t *testing.T) {
	var b strings.Builder
	r := result{elapsed: 2 * time.Second, lat: []time.Duration{time.Millisecond, 3 * time.Millisecond}, errors: 1,
		serverCPU: -1, machineCPU: 1.5, extra: "refused_429=7 refused_503=0 tier=limited"}
	r.print(&b, "noisy_get_limited_aggressor", 16)
	m, err := parseResult(strings.TrimSpace(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"phase": "noisy_get_limited_aggressor", "conns": "16", "requests": "2", "errors": "1",
		"rps": "1.0", "p50_us": "1000", "max_us": "3000", "server_cpu": "-1.00", "refused_429": "7", "tier": "limited"} {
		if m[k] != want {
			t.Errorf("%s = %q, want %q (line %q)", k, m[k], want, b.String())
		}
	}
	for _, line := range []string{"", "RESULT", "FLOODING", "RESULT phase=", "RESULT phase=a x", "RESULT phase=a n=1 n=2", "RESULT =1 phase=a"} {
		if _, err := parseResult(line); err == nil {
			t.Errorf("parseResult accepted %q", line)
		}
	}
}

// TestNoisy runs the noisy-neighbour phases briefly against an in-process
// node whose tiers file has a rate-limited tier, with the spin function.
func TestNoisy(t *testing.T) {
	tiers := filepath.Join(t.TempDir(), "tiers.json")
	if err := os.WriteFile(tiers, []byte(`{"tiers":[{"name":"basic","isolation":"pool","max_function_environments":2},
{"name":"limited","isolation":"pool","rate_limit_rps":50,"rate_limit_burst":100,"max_function_environments":2}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := apitest.New(t, storagetest.DSN(t, storage.SQLite), apitest.Options{TiersFile: tiers,
		Argon2: identity.Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}})
	o := options{base: env.URL, token: apitest.AdminToken, conns: 4, duration: 100 * time.Millisecond, createCount: 1, prefix: "nz",
		serverPID: os.Getpid(), warmup: 100 * time.Millisecond, noisyDuration: 1200 * time.Millisecond, noisyRate: 50,
		noisyLimitedTier: "limited", noisySpin: 1000}
	want := []string{"get", "noisy_alone_victim_get", "noisy_alone_victim_authz"}
	aggressors := []string{"get", "get_unlimited", "authz_batch", "user_create"}
	if testing.Short() {
		t.Log("-short: no function phase (it builds the spin module)")
	} else {
		o.noisyFunction = filepath.Join(t.TempDir(), "spin.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", o.noisyFunction, "./spin")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build spin: %v: %s", err, b)
		}
		aggressors = append(aggressors, "function")
	}
	for _, a := range aggressors {
		want = append(want, "noisy_"+a+"_victim_get", "noisy_"+a+"_victim_authz", "noisy_"+a+"_aggressor")
	}
	var out strings.Builder
	if err := run(context.Background(), o, &out); err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	var got []string
	lines := map[string]map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		m, err := parseResult(line)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m["phase"])
		lines[m["phase"]] = m
	}
	if !slices.Equal(got, want) {
		t.Fatalf("phases %q, want %q", got, want)
	}
	for phase, m := range lines {
		switch {
		case strings.Contains(phase, "_victim_"):
			// 1.2 s at 50/s: 60 requests, every one answered. (The window
			// is longer than the 1 s for which the node holds a refusal
			// over the rate, so the limited aggressor's refusals are
			// counted in it even on one slow core.)
			if m["requests"] != "60" || m["errors"] != "0" || m["rate"] != "50" {
				t.Errorf("victim: %v", m)
			}
			if phase != "noisy_alone_victim_get" && phase != "noisy_alone_victim_authz" && (m["p99_ratio"] == "" || m["alone_p99_us"] == "") {
				t.Errorf("victim line without its ratio: %v", m)
			}
		case strings.HasSuffix(phase, "_aggressor"):
			// It ran: answered, or refused over its tier's rate (a batch of
			// 100 decisions spends a limited tier's burst at once, and on a
			// loaded machine the window may see only its refusals).
			if m["requests"] == "0" && m["refused_503"] == "0" && m["refused_429"] == "0" || m["errors"] != "0" {
				t.Errorf("aggressor: %v", m)
			}
		}
	}
	if m := lines["noisy_get_victim_get"]; m["target"] != "2" || lines["noisy_get_victim_authz"]["target"] != "3" ||
		lines["noisy_authz_batch_victim_authz"]["target"] != "2" || lines["noisy_user_create_victim_get"]["target"] != "3" ||
		lines["noisy_get_unlimited_victim_get"]["target"] != "none" {
		t.Errorf("targets: same path 2, other 3, none for a tier without a rate: %v", m)
	}
	// The aggressor's tier gives it 50/s after a burst of 100: most of its
	// flood is refused, and a batch of 100 decisions costs 100.
	for _, a := range []string{"get", "authz_batch"} {
		if m := lines["noisy_"+a+"_aggressor"]; m["tier"] != "limited" || m["refused_429"] == "0" {
			t.Errorf("%s aggressor in the limited tier: %v", a, m)
		}
	}
	if m := lines["noisy_get_unlimited_aggressor"]; m["refused_429"] != "0" || m["tier"] != "" {
		t.Errorf("the aggressor in a tier without a rate was refused: %v", m)
	}
}
