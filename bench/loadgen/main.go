// Command loadgen puts HTTP load on a running bulkhead serve from a second
// process, on loopback only. bench/run starts it.
//
// It runs up to seven phases; the first six with -conns concurrent
// keep-alive connections, each connection a closed loop (send, read the
// whole answer, send again):
//
//  1. create: POST /v1/tenants with new ids for -create-duration (0 skips
//     it), which onboards each tenant to active before answering;
//  2. get: after a short warm-up, GET /v1/tenants/{id} round-robin over the
//     tenants it created (or -create-count of them when the create phase is
//     skipped) for -duration;
//  3. token (only with -token-duration > 0): after the same warm-up, POST
//     /oauth/token with grant_type=client_credentials and HTTP Basic client
//     authentication for -token-duration. The client is -client-id and
//     -client-secret, or, without -client-id, one that loadgen registers
//     with the operator token (POST /v1/tenants/{id}/clients) under the
//     first tenant it created. Before measuring it checks that the answer's
//     access_token is a JWT of that client.
//  4. authz (only with -authz-duration > 0): loadgen writes 50 policies
//     into the first tenant's store (operator token), registers a client of
//     that tenant and takes a client-credentials token, checks one allow
//     and one deny, then, after the warm-up, POSTs
//     /v1/tenants/{id}/authorize with the tenant's token for
//     -authz-duration: allow decisions (a deny writes a decision log entry),
//     each with three entities and a context.
//  5. kms (only with -kms-duration > 0): loadgen registers a client of the
//     first tenant with the kms scopes, takes its token, and measures
//     POST /v1/kms/encrypt (32 bytes), /v1/kms/decrypt and
//     /v1/kms/generate-data-key under alias/customer-<tenant>, with a
//     context naming the tenant, each for -kms-duration after the warm-up.
//  6. proxy (only with -proxy-duration > 0 and -proxy-url, the server's
//     connections proxy): against a stand-in upstream API on 127.0.0.1
//     (200 bytes of JSON for its token, 401 otherwise), a third process
//     (loadgen -serve-upstream, given as -upstream-url and
//     -upstream-token) or, without -upstream-url, served in this one,
//     loadgen creates a connection of the first tenant (the server needs
//     --allow-private-upstreams) and compares GET
//     {upstream}/v1/items with the token against GET
//     {proxy}/c/{connection}/v1/items with the grant's Part A, each
//     measured for -proxy-duration after the warm-up: first one loop
//     alternating the two (phases proxy_lat_direct and proxy_lat: the
//     added latency without queueing), then -conns loops of each
//     (proxy_direct, proxy). An upstream in this process counts in
//     client_cpu, and its direct calls do not leave the process.
//  7. noisy neighbour (only with -noisy-duration > 0; noisy.go): a victim
//     and an aggressor tenant, each with a client-credentials client and
//     token. The victim runs an open loop (-noisy-rate requests/s on each
//     of GET /v1/tenants/{victim} and POST …/authorize/batch with 100
//     allows; latency from each request's due time) alone, then while an
//     aggressor process (at nice 19, standing in for a client on another
//     machine) floods with -conns closed loops, as a tenant of
//     -noisy-limited-tier (if set): the same GET of its own tenant; the
//     same GET as a tenant of the default tier (get_unlimited, if
//     -noisy-limited-tier is set; target=none); batch authorize with 100 denies; user creation with a tenant
//     admin's token (signed in through the hosted login page); invocations
//     of the -noisy-function module (if set; bench/loadgen/spin). Each
//     phase is -warmup then -noisy-duration measured. Victim lines carry
//     the rate, the p99 alone, p99_ratio and its target (2 on the path the
//     aggressor floods, 3 on the other); aggressor lines the 429 and 503
//     refusals (tier= when the aggressor has one), counted apart from errors, and
//     its process's CPU as client_cpu.
//
// Each measurement prints one line that bench/run parses:
//
//	RESULT phase=get conns=16 seconds=10.00 requests=123456 errors=0 rps=12345.6 p50_us=812 p90_us=1400 p99_us=2900 max_us=15000 client_cpu=0.71 server_cpu=1.20 machine_cpu=1.98
//
// client_cpu and server_cpu are the cores each process used on average
// during the phase (server_cpu only with -server-pid, else -1), and
// machine_cpu the cores busy on the whole machine (Linux /proc/stat, else
// -1), so a reader can see how much the load generator itself took and
// whether something else was running.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	base           string
	token          string
	conns          int
	duration       time.Duration
	warmup         time.Duration
	createDuration time.Duration
	createCount    int
	prefix         string
	serverPID      int
	tokenDuration  time.Duration
	clientID       string
	clientSecret   string
	authzDuration  time.Duration
	// The peers (peers.go).
	opaURL        string
	opaPID        int
	zitadelURL    string
	zitadelPID    int
	peerRounds    int
	kmsDuration   time.Duration
	proxyURL      string
	proxyDuration time.Duration
	upstreamURL   string
	upstreamToken string
	// Noisy-neighbour phases (noisy.go).
	noisyDuration    time.Duration
	noisyRate        float64
	noisyLimitedTier string
	noisyFunction    string
	noisySpin        int
	// The event-stream comparison (events.go).
	eventsDuration time.Duration
	natsURL        string
	natsRawURL     string
	natsRawPID     int
	natsRawUser    string
}

func main() {
	var o options
	flag.StringVar(&o.base, "url", "", "base URL of the server, e.g. http://127.0.0.1:8080 (loopback only)")
	flag.StringVar(&o.token, "token", os.Getenv("BULKHEAD_ADMIN_TOKEN"), "operator bearer token (default $BULKHEAD_ADMIN_TOKEN)")
	flag.IntVar(&o.conns, "conns", 16, "concurrent connections")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of the GET phase (at most 60s)")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "GET warm-up before measuring")
	flag.DurationVar(&o.createDuration, "create-duration", 3*time.Second, "length of the create phase (0: no measured create phase)")
	flag.IntVar(&o.createCount, "create-count", 1000, "tenants to create first when -create-duration is 0")
	flag.StringVar(&o.prefix, "prefix", "lg", "tenant id prefix ([a-z0-9]{1,10})")
	flag.IntVar(&o.serverPID, "server-pid", 0, "pid of the server, to report its CPU use (Linux /proc)")
	flag.DurationVar(&o.tokenDuration, "token-duration", 0, "length of the client-credentials token phase (0: no token phase; at most 60s)")
	flag.StringVar(&o.clientID, "client-id", "", "OAuth client for the token phase (default: register one under the first tenant created)")
	flag.StringVar(&o.clientSecret, "client-secret", os.Getenv("LOADGEN_CLIENT_SECRET"), "secret of -client-id (default $LOADGEN_CLIENT_SECRET)")
	flag.DurationVar(&o.authzDuration, "authz-duration", 0, "length of the authorization decision phase (0: none; at most 60s)")
	flag.DurationVar(&o.eventsDuration, "events-duration", 0, "event streams: publish, then consume, through Bulkhead's NATS with a tenant token and through a plain nats-server (-nats-raw-url), interleaved over -peer-rounds, each this long in all (0 skips)")
	flag.StringVar(&o.natsURL, "nats-url", "", "Bulkhead's NATS (serve --nats-listen), for -events-duration")
	flag.StringVar(&o.natsRawURL, "nats-raw-url", "", "a plain nats-server of the same version with JetStream, for -events-duration")
	flag.IntVar(&o.natsRawPID, "nats-raw-pid", 0, "the plain nats-server's process id (its CPU per message)")
	flag.StringVar(&o.natsRawUser, "nats-raw-user", "", "the plain nats-server's static user, user:password")
	flag.StringVar(&o.opaURL, "opa-url", "", "OPA serving -write-rego's policy (loopback): the authz phase then also checks both engines decide alike and measures them interleaved")
	flag.IntVar(&o.opaPID, "opa-pid", 0, "pid of -opa-url's OPA, to read its CPU (Linux /proc)")
	flag.StringVar(&o.zitadelURL, "zitadel-url", "", "the zitadel/oidc example OP (bench/peers/zitadelop, loopback): the token phase then also measures it beside Bulkhead, interleaved")
	flag.IntVar(&o.zitadelPID, "zitadel-pid", 0, "pid of -zitadel-url's OP, to read its CPU (Linux /proc)")
	flag.IntVar(&o.peerRounds, "peer-rounds", 4, "rounds of the interleaved peer comparison")
	writeRego := flag.String("write-rego", "", "only write the authz phase's 50 policies in Rego (package bench, rule allow) to this file")
	flag.DurationVar(&o.kmsDuration, "kms-duration", 0, "length of each KMS phase: encrypt, decrypt, generate-data-key (0: none; at most 60s)")
	flag.StringVar(&o.proxyURL, "proxy-url", "", "base URL of the server's connections proxy, e.g. http://127.0.0.1:8090 (loopback only; the server needs --allow-private-upstreams)")
	flag.DurationVar(&o.proxyDuration, "proxy-duration", 0, "length of each connections proxy phase (0: none; at most 60s; needs -proxy-url)")
	flag.StringVar(&o.upstreamURL, "upstream-url", "", "the proxy phase's upstream: a loadgen -serve-upstream (loopback only; default: one in this process)")
	flag.StringVar(&o.upstreamToken, "upstream-token", os.Getenv("LOADGEN_UPSTREAM_TOKEN"), "the token of -upstream-url or -serve-upstream (default $LOADGEN_UPSTREAM_TOKEN)")
	flag.DurationVar(&o.noisyDuration, "noisy-duration", 0, "length of each measured noisy-neighbour phase (0: none; at most 60s)")
	flag.Float64Var(&o.noisyRate, "noisy-rate", 50, "the noisy-neighbour victim's open-loop rate on each of its two paths, requests/s")
	flag.StringVar(&o.noisyLimitedTier, "noisy-limited-tier", "", "a tier with a request rate: adds a phase whose aggressor is a tenant of it flooding the victim's GET path (default: no such phase)")
	flag.StringVar(&o.noisyFunction, "noisy-function", "", "a wasm module built from bench/loadgen/spin: adds a phase whose aggressor floods invocations of it (default: no such phase)")
	flag.IntVar(&o.noisySpin, "noisy-spin", 1_000_000, "xorshift rounds per invocation of the spin function")
	var eo edgeOptions
	flag.DurationVar(&eo.duration, "edge-duration", 0, "run only the edge comparison: each of its two phases (1 conn, -conns conns) lasts this long (at most 60s; needs -edge-target, -upstream-url, -upstream-token)")
	flag.IntVar(&eo.rounds, "edge-rounds", 4, "the edge comparison's -conns phase takes the targets in turn this many times")
	flag.StringVar(&eo.host, "edge-host", "", "Host header of the edge comparison's requests (the gateway's tenant subdomain)")
	flag.Var(&eo.targets, "edge-target", "a proxy of the edge comparison, name=http://127.0.0.1:port[,pid…] (its processes' CPU is read; repeatable)")
	rpAddr := flag.String("serve-reverse-proxy", "", "only serve a bare httputil.ReverseProxy to -reverse-proxy-to on this loopback address, printing REVERSEPROXY <url>, until SIGINT or SIGTERM")
	rpTo := flag.String("reverse-proxy-to", "", "the upstream of -serve-reverse-proxy (loopback)")
	freePort := flag.Bool("free-port", false, "only print a free TCP port on 127.0.0.1 (for a server that cannot listen on port 0)")
	serveAddr := flag.String("serve-upstream", "", "only serve the stand-in upstream on this loopback address (e.g. 127.0.0.1:0), printing UPSTREAM <url>, until SIGINT or SIGTERM")
	flag.Parse()
	if os.Getenv(floodEnv) == "1" {
		if err := floodMain(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: aggressor:", err)
			os.Exit(1)
		}
		return
	}
	switch {
	case *writeRego != "":
		if err := os.WriteFile(*writeRego, []byte(authzRego(50)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		return
	case *freePort:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
		return
	case *rpAddr != "":
		if err := reverseProxyOnly(*rpAddr, *rpTo, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		return
	case eo.duration > 0:
		eo.conns, eo.warmup, eo.upstreamURL, eo.upstreamToken = o.conns, o.warmup, o.upstreamURL, o.upstreamToken
		if err := edgeRun(context.Background(), eo, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: edge:", err)
			os.Exit(1)
		}
		return
	}
	if *serveAddr != "" {
		if err := upstreamOnly(*serveAddr, o.upstreamToken, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// checkLoopback checks that the URL of flag name is http:// to a loopback
// IP address.
func checkLoopback(name, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("-%s must be an http:// URL, got %q", name, raw)
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-%s must name a loopback IP address (127.0.0.1 or ::1), got %q", name, u.Hostname())
	}
	return nil
}

func (o options) validate() error {
	if err := checkLoopback("url", o.base); err != nil {
		return err
	}
	if err := o.validateEvents(); err != nil {
		return err
	}
	if o.proxyDuration != 0 {
		if err := checkLoopback("proxy-url", o.proxyURL); err != nil {
			return err
		}
	}
	for name, u := range map[string]string{"opa-url": o.opaURL, "zitadel-url": o.zitadelURL} {
		if u == "" {
			continue
		}
		if err := checkLoopback(name, u); err != nil {
			return err
		}
	}
	if o.upstreamURL != "" {
		if err := checkLoopback("upstream-url", o.upstreamURL); err != nil {
			return err
		}
		if o.upstreamToken == "" {
			return errors.New("-upstream-url needs -upstream-token (or $LOADGEN_UPSTREAM_TOKEN)")
		}
	}
	switch {
	case o.token == "":
		return errors.New("no token: set -token or BULKHEAD_ADMIN_TOKEN")
	case o.conns < 1 || o.conns > 1024:
		return errors.New("-conns must be between 1 and 1024")
	case o.duration <= 0 || o.duration > time.Minute:
		return errors.New("-duration must be between 0 and 60s")
	case o.createDuration < 0 || o.createDuration > time.Minute:
		return errors.New("-create-duration must be between 0 and 60s")
	case o.createDuration == 0 && (o.createCount < 1 || o.createCount > 100000):
		return errors.New("-create-count must be between 1 and 100000")
	case o.warmup < 0 || o.warmup > 10*time.Second:
		return errors.New("-warmup must be between 0 and 10s")
	case o.tokenDuration < 0 || o.tokenDuration > time.Minute:
		return errors.New("-token-duration must be between 0 and 60s")
	case o.kmsDuration < 0 || o.kmsDuration > time.Minute:
		return errors.New("-kms-duration must be between 0 and 60s")
	case o.authzDuration < 0 || o.authzDuration > time.Minute:
		return errors.New("-authz-duration must be between 0 and 60s")
	case o.opaURL != "" && (o.authzDuration == 0 || o.serverPID == 0 || o.opaPID <= 0):
		return errors.New("-opa-url needs -authz-duration, -server-pid and -opa-pid")
	case o.zitadelURL != "" && (o.tokenDuration == 0 || o.serverPID == 0 || o.zitadelPID <= 0):
		return errors.New("-zitadel-url needs -token-duration, -server-pid and -zitadel-pid")
	case (o.opaURL != "" || o.zitadelURL != "") && (o.peerRounds < 1 || o.peerRounds > 100):
		return errors.New("-peer-rounds must be between 1 and 100")
	case o.proxyDuration < 0 || o.proxyDuration > time.Minute:
		return errors.New("-proxy-duration must be between 0 and 60s")
	case o.noisyDuration < 0 || o.noisyDuration > time.Minute:
		return errors.New("-noisy-duration must be between 0 and 60s")
	case o.noisyDuration > 0 && (o.noisyRate < 1 || o.noisyRate > 10000):
		return errors.New("-noisy-rate must be between 1 and 10000 requests/s")
	case o.noisyFunction != "" && (o.noisySpin < 1 || o.noisySpin > 1_000_000_000):
		return errors.New("-noisy-spin must be between 1 and 1e9")
	case o.clientID != "" && o.clientSecret == "":
		return errors.New("-client-id needs -client-secret (or $LOADGEN_CLIENT_SECRET)")
	}
	for _, c := range o.prefix {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return fmt.Errorf("-prefix must be [a-z0-9]{1,10}, got %q", o.prefix)
		}
	}
	if o.prefix == "" || len(o.prefix) > 10 {
		return fmt.Errorf("-prefix must be [a-z0-9]{1,10}, got %q", o.prefix)
	}
	return nil
}

// newClient is a client of up to conns connections to one loopback server.
func newClient(conns int) *http.Client {
	tr := &http.Transport{
		Proxy:               nil, // loopback: never a proxy
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func run(ctx context.Context, o options, out io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	base := strings.TrimRight(o.base, "/")
	client := newClient(o.conns)
	defer client.CloseIdleConnections()
	l := &loader{client: client, base: base, auth: "Bearer " + o.token, serverPID: o.serverPID}

	// Create phase.
	var next atomic.Int64
	var idsMu sync.Mutex
	var ids []string
	create := func(ctx context.Context) (bool, error) {
		id := fmt.Sprintf("%s-%07d", o.prefix, next.Add(1))
		body := fmt.Sprintf(`{"id":%q,"name":"Load %s"}`, id, id)
		ok, err := l.do(ctx, http.MethodPost, "/v1/tenants", []byte(body), http.StatusCreated)
		if ok {
			idsMu.Lock()
			ids = append(ids, id)
			idsMu.Unlock()
		}
		return ok, err
	}
	if o.createDuration > 0 {
		r, err := l.phase(ctx, o.conns, 0, o.createDuration, create)
		if err != nil {
			return fmt.Errorf("create phase: %w", err)
		}
		r.print(out, "create", o.conns)
	} else {
		if _, err := l.count(ctx, o.conns, o.createCount, create); err != nil {
			return fmt.Errorf("create tenants: %w", err)
		}
	}
	if len(ids) == 0 {
		return errors.New("no tenant was created")
	}

	// GET phase, round-robin over the created tenants.
	var i atomic.Uint64
	get := func(ctx context.Context) (bool, error) {
		id := ids[int(i.Add(1)%uint64(len(ids)))]
		return l.do(ctx, http.MethodGet, "/v1/tenants/"+id, nil, http.StatusOK)
	}
	r, err := l.phase(ctx, o.conns, o.warmup, o.duration, get)
	if err != nil {
		return fmt.Errorf("get phase: %w", err)
	}
	r.print(out, "get", o.conns)

	if o.tokenDuration > 0 {
		if err := l.tokenPhase(ctx, o, ids[0], out); err != nil {
			return fmt.Errorf("token phase: %w", err)
		}
	}
	if o.authzDuration > 0 {
		if err := l.authzPhase(ctx, o, ids[0], out); err != nil {
			return fmt.Errorf("authz phase: %w", err)
		}
	}
	if o.kmsDuration > 0 {
		if err := l.kmsPhase(ctx, o, ids[0], out); err != nil {
			return fmt.Errorf("kms phase: %w", err)
		}
	}
	if o.proxyDuration > 0 {
		if err := l.proxyPhase(ctx, o, ids[0], out); err != nil {
			return fmt.Errorf("proxy phase: %w", err)
		}
	}
	if o.eventsDuration > 0 {
		if err := l.eventsPhase(ctx, o, ids[0], out); err != nil {
			return fmt.Errorf("events phase: %w", err)
		}
	}
	if o.noisyDuration > 0 {
		if err := l.noisyPhases(ctx, o, out); err != nil {
			return fmt.Errorf("noisy-neighbour phases: %w", err)
		}
	}
	return nil
}

// authzPolicy is the i-th of the 50 policies the authz phase writes.
func authzPolicy(i int) string {
	switch i % 3 {
	case 0:
		return fmt.Sprintf(`permit(principal == User::"u%d", action == Action::"read", resource in Folder::"f%d");`, i, i%5)
	case 1:
		return fmt.Sprintf(`permit(principal in Group::"g%d", action in [Action::"read", Action::"write"], resource) when { resource.owner == principal || context.level > %d };`, i%7, i)
	}
	return fmt.Sprintf(`forbid(principal, action == Action::"delete", resource in Folder::"f%d") when { resource has locked && resource.locked } unless { principal in Group::"admins" };`, i%5)
}

// authzRequest asks whether user u may do action on d7 (in folder f2; u is in group g3).
func authzRequest(user, action string) []byte {
	return []byte(`{"principal":{"type":"User","id":"` + user + `"},"action":{"type":"Action","id":"` + action + `"},
"resource":{"type":"Doc","id":"d7"},"context":{"level":12},"entities":[
{"uid":{"type":"User","id":"` + user + `"},"attrs":{},"parents":[{"type":"Group","id":"g3"}]},
{"uid":{"type":"Doc","id":"d7"},"attrs":{"owner":{"__entity":{"type":"User","id":"u2"}},"locked":false},"parents":[{"type":"Folder","id":"f2"}]},
{"uid":{"type":"Folder","id":"f2"},"attrs":{},"parents":[]}]}`)
}

// tenantLoader registers a client-credentials client of tenant tid with
// scopes and returns a loader that sends its access token.
func (l *loader) tenantLoader(ctx context.Context, tid string, scopes ...string) (*loader, error) {
	id, secret, err := l.registerClient(ctx, tid, scopes...)
	if err != nil {
		return nil, err
	}
	form := "grant_type=client_credentials"
	if len(scopes) > 0 {
		form += "&scope=" + url.QueryEscape(strings.Join(scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base+"/oauth/token", strings.NewReader(form))
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	b, ok, err := l.send(req, http.StatusOK)
	if err != nil || !ok {
		return nil, errors.Join(err, errors.New("no token for the tenant's client (see above)"))
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &tok); err != nil || tok.AccessToken == "" {
		return nil, fmt.Errorf("token answer without access_token: %.300s", b)
	}
	return &loader{client: l.client, base: l.base, auth: "Bearer " + tok.AccessToken, serverPID: l.serverPID}, nil
}

// kmsPhase measures encrypt, decrypt and generate-data-key over HTTP with
// a tenant client's token (kms scopes), one measured phase each.
func (l *loader) kmsPhase(ctx context.Context, o options, tenantID string, out io.Writer) error {
	tl, err := l.tenantLoader(ctx, tenantID, "kms:encrypt", "kms:decrypt", "kms:generate-data-key")
	if err != nil {
		return err
	}
	ec := map[string]string{"tenant_id": tenantID, "table": "orders"}
	key := "alias/customer-" + tenantID
	call := func(ctx context.Context, path string, body []byte) ([]byte, bool, error) {
		return tl.request(ctx, http.MethodPost, path, body, http.StatusOK)
	}
	encBody, _ := json.Marshal(map[string]any{"key_id": key, "plaintext": bytes.Repeat([]byte("p"), 32), "encryption_context": ec})
	b, ok, err := call(ctx, "/v1/kms/encrypt", encBody)
	if err != nil || !ok {
		return errors.Join(err, errors.New("encrypt failed (see above)"))
	}
	var ct struct {
		Ciphertext []byte `json:"ciphertext"`
	}
	if err := json.Unmarshal(b, &ct); err != nil || len(ct.Ciphertext) == 0 {
		return fmt.Errorf("encrypt answer without ciphertext: %.300s", b)
	}
	decBody, _ := json.Marshal(map[string]any{"ciphertext": ct.Ciphertext, "encryption_context": ec})
	gdkBody, _ := json.Marshal(map[string]any{"key_id": key, "encryption_context": ec})
	for _, p := range []struct {
		phase, path string
		body        []byte
	}{
		{"kms_encrypt", "/v1/kms/encrypt", encBody},
		{"kms_decrypt", "/v1/kms/decrypt", decBody},
		{"kms_generate_data_key", "/v1/kms/generate-data-key", gdkBody},
	} {
		r, err := tl.phase(ctx, o.conns, o.warmup, o.kmsDuration, func(ctx context.Context) (bool, error) {
			_, ok, err := call(ctx, p.path, p.body)
			return ok, err
		})
		if err != nil {
			return err
		}
		r.print(out, p.phase, o.conns)
	}
	return nil
}

// upstreamBody is what loadgen's upstream answers: 200 bytes of JSON, a
// small page of a third-party API.
var upstreamBody = []byte(`{"items":[{"id":"itm_0001","name":"First item","status":"current","updated_at":"2026-12-01T10:00:00Z"},` +
	`{"id":"itm_0002","name":"Second item","status":"archived","updated_at":"2026-12-02T11:30:00Z"}]}` + "\n")

// serveUpstream starts loadgen's stand-in for a third-party API on addr:
// it answers upstreamBody to requests with the bearer token and 401 to any
// other. stop closes it.
func serveUpstream(addr, token string) (base string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	want := "Bearer " + token
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != want {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(upstreamBody)
	})}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// upstreamOnly serves the stand-in upstream on addr, a loopback address,
// until SIGINT or SIGTERM, after printing "UPSTREAM <base URL>" to out.
// Run so, the upstream is a process of its own, as a third-party API is:
// a direct call crosses from one process to another as a proxied one does.
func upstreamOnly(addr, token string, out io.Writer) error {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-serve-upstream must be a loopback IP address and port, got %q", addr)
	}
	if token == "" {
		return errors.New("-serve-upstream needs -upstream-token (or $LOADGEN_UPSTREAM_TOKEN)")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	base, stop, err := serveUpstream(addr, token)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintln(out, "UPSTREAM", base)
	<-ctx.Done()
	return nil
}

// proxyPhase measures the connections proxy against direct calls to the
// same upstream: -upstream-url, or one it starts in this process. It
// creates a connection of tenant tenantID to it (bearer placement) and
// checks that the first grant's Part A works through the proxy but not
// sent upstream directly. Then, each for -proxy-duration after the
// warm-up: one loop that alternates a direct GET (with the token) and a
// proxied one (with Part A), the added latency without queueing
// (proxy_lat_direct, proxy_lat); -conns loops of direct GETs
// (proxy_direct); -conns loops of proxied GETs (proxy).
func (l *loader) proxyPhase(ctx context.Context, o options, tenantID string, out io.Writer) error {
	up, token := strings.TrimRight(o.upstreamURL, "/"), o.upstreamToken
	if up == "" {
		token = "sk_loadgen_" + rand.Text()
		base, stop, err := serveUpstream("127.0.0.1:0", token)
		if err != nil {
			return err
		}
		defer stop()
		up = base
	}
	body, _ := json.Marshal(map[string]any{"name": "loadgen", "upstream_url": up, "token": token, "placement": map[string]string{"type": "bearer"}})
	b, ok, err := l.request(ctx, http.MethodPost, "/v1/tenants/"+url.PathEscape(tenantID)+"/connections", body, http.StatusCreated)
	if err != nil || !ok {
		return errors.Join(err, errors.New("creating a connection failed (see above; the server needs --allow-private-upstreams)"))
	}
	var c struct {
		ID    string `json:"id"`
		Grant struct {
			PartA string `json:"part_a"`
		} `json:"grant"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.ID == "" || c.Grant.PartA == "" {
		return fmt.Errorf("create connection: unexpected answer %.300s", b)
	}
	const path = "/v1/items"
	get := func(to *loader, p string) func(context.Context) (bool, error) {
		return func(ctx context.Context) (bool, error) {
			b, ok, err := to.request(ctx, http.MethodGet, p, nil, http.StatusOK)
			return ok && bytes.Equal(b, upstreamBody), err
		}
	}
	direct := get(&loader{client: l.client, base: up, auth: "Bearer " + token}, path)
	proxied := get(&loader{client: l.client, base: strings.TrimRight(o.proxyURL, "/"), auth: "Bearer " + c.Grant.PartA}, "/c/"+c.ID+path)
	for _, op := range []func(context.Context) (bool, error){direct, proxied} {
		if ok, err := op(ctx); err != nil || !ok {
			return errors.Join(err, errors.New("a check request failed (see above)"))
		}
	}
	partAUpstream := &loader{client: l.client, base: up, auth: "Bearer " + c.Grant.PartA}
	if _, ok, err := partAUpstream.request(ctx, http.MethodGet, path, nil, http.StatusUnauthorized); err != nil || !ok {
		return errors.Join(err, errors.New("the upstream did not refuse Part A"))
	}
	rs, err := l.phaseEach(ctx, 1, o.warmup, o.proxyDuration, direct, proxied)
	if err != nil {
		return err
	}
	rs[0].print(out, "proxy_lat_direct", 1)
	rs[1].print(out, "proxy_lat", 1)
	for _, p := range []struct {
		phase string
		op    func(context.Context) (bool, error)
	}{{"proxy_direct", direct}, {"proxy", proxied}} {
		r, err := l.phase(ctx, o.conns, o.warmup, o.proxyDuration, p.op)
		if err != nil {
			return err
		}
		r.print(out, p.phase, o.conns)
	}
	return nil
}

// authzPhase measures POST /v1/tenants/{id}/authorize with a tenant token.
func (l *loader) authzPhase(ctx context.Context, o options, tenantID string, out io.Writer) error {
	path := "/v1/tenants/" + url.PathEscape(tenantID)
	if err := l.writePolicies(ctx, tenantID); err != nil {
		return err
	}
	tl, err := l.tenantLoader(ctx, tenantID)
	if err != nil {
		return err
	}
	decide := func(ctx context.Context, body []byte) (string, bool, error) {
		b, ok, err := tl.request(ctx, http.MethodPost, path+"/authorize", body, http.StatusOK)
		var d struct {
			Decision string `json:"decision"`
		}
		json.Unmarshal(b, &d)
		return d.Decision, ok, err
	}
	allow, deny := authzRequest("u0", "read"), authzRequest("u9", "delete")
	for _, c := range []struct {
		body []byte
		want string
	}{{allow, "allow"}, {deny, "deny"}} {
		got, ok, err := decide(ctx, c.body)
		if err != nil || !ok || got != c.want {
			return errors.Join(err, fmt.Errorf("check decision: %q, want %q", got, c.want))
		}
	}
	r, err := tl.phase(ctx, o.conns, o.warmup, o.authzDuration, func(ctx context.Context) (bool, error) {
		got, ok, err := decide(ctx, allow)
		return ok && got == "allow", err
	})
	if err != nil {
		return err
	}
	r.print(out, "authz", o.conns)
	if o.opaURL == "" {
		return nil
	}
	return authzVersusOPA(ctx, o, tl, path+"/authorize", out)
}

// tokenPhase measures client-credentials token issuance.
func (l *loader) tokenPhase(ctx context.Context, o options, tenantID string, out io.Writer) error {
	id, secret := o.clientID, o.clientSecret
	if id == "" {
		var err error
		if id, secret, err = l.registerClient(ctx, tenantID); err != nil {
			return err
		}
	}
	issue := tokenIssuer(l, id, secret)
	b, ok, err := issue(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("the token endpoint refused the client (see above)")
	}
	alg, err := checkAccessToken(b, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "loadgen: token phase: client %s, %s access tokens of %d bytes\n", id, alg, tokenLen(b))
	r, err := l.phase(ctx, o.conns, o.warmup, o.tokenDuration, func(ctx context.Context) (bool, error) {
		b, ok, err := issue(ctx)
		if ok && !bytes.Contains(b, []byte(`"access_token"`)) {
			l.errOnce.Do(func() { fmt.Fprintf(os.Stderr, "loadgen: token answer without access_token: %.300s\n", b) })
			ok = false
		}
		return ok, err
	})
	if err != nil {
		return err
	}
	r.print(out, "token", o.conns)
	if o.zitadelURL == "" {
		return nil
	}
	return tokensVersusZitadel(ctx, o, l, id, secret, out)
}

// tokenIssuer returns a client-credentials token request of client id to
// l's /oauth/token, giving the answer's body and whether it was 200.
func tokenIssuer(l *loader, id, secret string) func(context.Context) ([]byte, bool, error) {
	// RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding.
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
	form := []byte("grant_type=client_credentials")
	return func(ctx context.Context) ([]byte, bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base+"/oauth/token", bytes.NewReader(form))
		if err != nil {
			return nil, false, err
		}
		req.Header.Set("Authorization", basic)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return l.send(req, http.StatusOK)
	}
}

// registerClient registers a confidential client-credentials client of
// tenant tid with the operator token and returns its id and secret.
func (l *loader) registerClient(ctx context.Context, tid string, scopes ...string) (id, secret string, err error) {
	body, _ := json.Marshal(map[string]any{"name": "loadgen", "grant_types": []string{"client_credentials"}, "scopes": scopes})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base+"/v1/tenants/"+url.PathEscape(tid)+"/clients", bytes.NewReader(body))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Authorization", l.auth)
	req.Header.Set("Content-Type", "application/json")
	b, ok, err := l.send(req, http.StatusCreated)
	if err != nil {
		return "", "", err
	}
	if !ok {
		return "", "", errors.New("registering a client failed (see above)")
	}
	var c struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.ID == "" || c.Secret == "" {
		return "", "", fmt.Errorf("register client: unexpected answer %.300s", b)
	}
	return c.ID, c.Secret, nil
}

// checkAccessToken checks that a token answer holds a JWT access token
// whose client is clientID and returns its signature algorithm.
func checkAccessToken(body []byte, clientID string) (string, error) {
	var t struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(body, &t); err != nil || t.AccessToken == "" {
		return "", fmt.Errorf("token answer without access_token: %.300s", body)
	}
	parts := strings.Split(t.AccessToken, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("the access token is not a JWS (%d parts)", len(parts))
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	var claims struct {
		ClientID string `json:"client_id"`
		Sub      string `json:"sub"`
	}
	h, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	c, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err := errors.Join(err1, err2, json.Unmarshal(h, &hdr), json.Unmarshal(c, &claims)); err != nil {
		return "", fmt.Errorf("the access token is not a readable JWT: %w", err)
	}
	if claims.ClientID != clientID && claims.Sub != clientID {
		return "", fmt.Errorf("the access token is for client %q/%q, want %q", claims.ClientID, claims.Sub, clientID)
	}
	return hdr.Alg, nil
}

func tokenLen(body []byte) int {
	var t struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(body, &t)
	return len(t.AccessToken)
}

type loader struct {
	client    *http.Client
	base      string
	auth      string
	serverPID int
	errOnce   sync.Once
}

// do sends one request and reads the whole answer. It reports whether the
// status was the expected one; err is for transport failures only.
func (l *loader) do(ctx context.Context, method, path string, body []byte, want int) (bool, error) {
	_, ok, err := l.request(ctx, method, path, body, want)
	return ok, err
}

// request is do that also returns the answer's body.
func (l *loader) request(ctx context.Context, method, path string, body []byte, want int) ([]byte, bool, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.base+path, rd)
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Authorization", l.auth)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return l.send(req, want)
}

// send sends req and reads the whole answer, which it returns with whether
// the status was want; err is for transport failures only.
func (l *loader) send(req *http.Request, want int) ([]byte, bool, error) {
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, false, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, false, err
	}
	if resp.StatusCode != want {
		l.errOnce.Do(func() {
			fmt.Fprintf(os.Stderr, "loadgen: %s %s: status %d (want %d): %.300s\n", req.Method, req.URL.Path, resp.StatusCode, want, b)
		})
		return b, false, nil
	}
	return b, true, nil
}

type result struct {
	elapsed    time.Duration
	lat        []time.Duration // successful requests, sorted
	errors     int
	clientCPU  float64 // cores
	serverCPU  float64 // cores, -1 when unknown
	machineCPU float64 // cores, -1 when unknown
	extra      string  // more key=value fields for the RESULT line
}

// phase runs op in conns closed loops: a warm-up that is not recorded, then
// d of recorded requests.
func (l *loader) phase(ctx context.Context, conns int, warmup, d time.Duration, op func(context.Context) (bool, error)) (result, error) {
	rs, err := l.phaseEach(ctx, conns, warmup, d, op)
	if err != nil {
		return result{}, err
	}
	return rs[0], nil
}

// phaseEach is phase for several operations taken in turn: each loop runs
// ops[0], ops[1], … in a cycle, and each operation's latencies make its own
// result (the elapsed time and the CPU figures are the whole phase's).
func (l *loader) phaseEach(ctx context.Context, conns int, warmup, d time.Duration, ops ...func(context.Context) (bool, error)) ([]result, error) {
	if warmup > 0 {
		if _, err := l.loop(ctx, conns, warmup, ops); err != nil {
			return nil, err
		}
	}
	return l.loop(ctx, conns, d, ops)
}

func (l *loader) loop(ctx context.Context, conns int, d time.Duration, ops []func(context.Context) (bool, error)) ([]result, error) {
	cpu0, srv0, all0 := selfCPU(), procCPU(l.serverPID), machineCPU()
	start := time.Now()
	deadline := start.Add(d)
	lats := make([][][]time.Duration, conns) // [conn][op]
	errs := make([][]int, conns)
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine, bad := make([][]time.Duration, len(ops)), make([]int, len(ops))
			for j := range mine {
				mine[j] = make([]time.Duration, 0, 4096)
			}
			defer func() { lats[w], errs[w] = mine, bad }()
			for time.Now().Before(deadline) {
				for j, op := range ops {
					t0 := time.Now()
					ok, err := op(ctx)
					if err != nil {
						firstErr.CompareAndSwap(nil, &err)
						return
					}
					if ok {
						mine[j] = append(mine[j], time.Since(t0))
					} else {
						bad[j]++
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if p := firstErr.Load(); p != nil {
		return nil, *p
	}
	r := result{elapsed: elapsed, serverCPU: -1, machineCPU: -1}
	r.clientCPU = (selfCPU() - cpu0).Seconds() / elapsed.Seconds()
	if srv1 := procCPU(l.serverPID); srv0 >= 0 && srv1 >= 0 {
		r.serverCPU = (srv1 - srv0).Seconds() / elapsed.Seconds()
	}
	if all1 := machineCPU(); all0 >= 0 && all1 >= 0 {
		r.machineCPU = (all1 - all0).Seconds() / elapsed.Seconds()
	}
	rs := make([]result, len(ops))
	for j := range ops {
		rs[j] = r
		for w := range conns {
			rs[j].lat = append(rs[j].lat, lats[w][j]...)
			rs[j].errors += errs[w][j]
		}
		slices.Sort(rs[j].lat)
	}
	return rs, nil
}

// count runs op in conns loops until n operations succeeded.
func (l *loader) count(ctx context.Context, conns, n int, op func(context.Context) (bool, error)) (int, error) {
	var done, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done.Load() < int64(n) && failed.Load() < 100 {
				ok, err := op(ctx)
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				if ok {
					done.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return int(done.Load()), *p
	}
	if failed.Load() >= 100 {
		return int(done.Load()), errors.New("100 requests failed")
	}
	return int(done.Load()), nil
}

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(p/100*float64(len(sorted))+0.999999999) - 1
	k = max(0, min(k, len(sorted)-1))
	return sorted[k]
}

func (r result) print(w io.Writer, phase string, conns int) {
	us := func(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) }
	var mx time.Duration
	if len(r.lat) > 0 {
		mx = r.lat[len(r.lat)-1]
	}
	extra := ""
	if r.extra != "" {
		extra = " " + r.extra
	}
	fmt.Fprintf(w, "RESULT phase=%s conns=%d seconds=%.2f requests=%d errors=%d rps=%.1f p50_us=%s p90_us=%s p99_us=%s max_us=%s client_cpu=%.2f server_cpu=%.2f machine_cpu=%.2f%s\n",
		phase, conns, r.elapsed.Seconds(), len(r.lat), r.errors, float64(len(r.lat))/r.elapsed.Seconds(),
		us(percentile(r.lat, 50)), us(percentile(r.lat, 90)), us(percentile(r.lat, 99)), us(mx),
		r.clientCPU, r.serverCPU, r.machineCPU, extra)
}

// selfCPU is the user+system CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU is the user+system CPU time of process pid from /proc, or -1.
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(utime+stime) * time.Second / userHZ
}

const userHZ = 100 // the unit of /proc CPU times on Linux

// machineCPU is the busy (not idle, not iowait) CPU time of all cores from
// /proc/stat, or -1.
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1
	}
	var busy int64
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return -1
		}
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / userHZ
}
