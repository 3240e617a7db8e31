package main

// The edge comparison (-edge-duration): Bulkhead's gateway beside nginx and
// a bare httputil.ReverseProxy, each a separate process in front of the
// same upstream process, measured in the same run and interleaved so that
// a change in the machine's load falls on all of them alike.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// edgeTarget is one proxy of the comparison: its name in the RESULT lines,
// its base URL and the processes whose CPU is its own (nginx's master; its
// workers are found as the master's children).
type edgeTarget struct {
	name string
	base string
	pids []int
}

// parseEdgeTarget parses -edge-target's "name=http://127.0.0.1:port[,pid…]".
func parseEdgeTarget(s string) (edgeTarget, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || strings.ContainsAny(name, " =") {
		return edgeTarget{}, fmt.Errorf("-edge-target %q: want name=url[,pid…]", s)
	}
	parts := strings.Split(rest, ",")
	t := edgeTarget{name: name, base: strings.TrimRight(parts[0], "/")}
	if err := checkLoopback("edge-target", t.base); err != nil {
		return edgeTarget{}, err
	}
	for _, p := range parts[1:] {
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return edgeTarget{}, fmt.Errorf("-edge-target %q: bad pid %q", s, p)
		}
		t.pids = append(t.pids, pid)
	}
	return t, nil
}

// edgeTargets is the repeatable -edge-target flag.
type edgeTargets []edgeTarget

func (e *edgeTargets) String() string { return fmt.Sprint(len(*e), " targets") }

func (e *edgeTargets) Set(s string) error {
	t, err := parseEdgeTarget(s)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(*e, func(o edgeTarget) bool { return o.name == t.name }) || t.name == "direct" {
		return fmt.Errorf("-edge-target %q: name used twice (direct is the upstream's)", t.name)
	}
	*e = append(*e, t)
	return nil
}

// edgeOptions configures the edge comparison.
type edgeOptions struct {
	duration      time.Duration // each phase's measured time, split over rounds for the conns phase
	rounds        int
	warmup        time.Duration
	conns         int
	host          string // Host header of every request (the gateway resolves the tenant from it)
	upstreamURL   string
	upstreamToken string
	targets       edgeTargets
}

func (o edgeOptions) validate() error {
	switch {
	case o.duration <= 0 || o.duration > time.Minute:
		return errors.New("-edge-duration must be between 0 and 60s")
	case o.rounds < 1 || o.rounds > 100:
		return errors.New("-edge-rounds must be between 1 and 100")
	case o.conns < 1 || o.conns > 1024:
		return errors.New("-conns must be between 1 and 1024")
	case o.warmup < 0 || o.warmup > 10*time.Second:
		return errors.New("-warmup must be between 0 and 10s")
	case len(o.targets) == 0:
		return errors.New("-edge-duration needs at least one -edge-target")
	case o.upstreamToken == "":
		return errors.New("-edge-duration needs -upstream-token")
	}
	return checkLoopback("upstream-url", o.upstreamURL)
}

// procsCPU is the CPU time of pids and of their children (nginx's
// workers), or -1 when one cannot be read.
func procsCPU(pids []int) time.Duration {
	var sum time.Duration
	for _, pid := range withChildren(pids) {
		c := procCPU(pid)
		if c < 0 {
			return -1
		}
		sum += c
	}
	return sum
}

// withChildren returns pids and their direct children (Linux
// /proc/<pid>/task/<tid>/children).
func withChildren(pids []int) []int {
	all := slices.Clone(pids)
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			continue
		}
		for f := range strings.FieldsSeq(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				all = append(all, c)
			}
		}
	}
	return all
}

// edgeRun measures, for the upstream directly and for each target: one
// connection taking them in turn (phases edge_lat_<name>), then -conns
// connections on one target at a time, the targets taken in turn for
// -edge-rounds rounds (phases edge_<name>; see interleave).
func edgeRun(ctx context.Context, o edgeOptions, out io.Writer) error {
	if err := o.validate(); err != nil {
		return err
	}
	const path = "/v1/items"
	newLoader := func(base string, conns int) *loader {
		return &loader{client: newClient(conns), base: base, auth: "Bearer " + o.upstreamToken}
	}
	get := func(l *loader) func(context.Context) (bool, error) {
		return func(ctx context.Context) (bool, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.base+path, nil)
			if err != nil {
				return false, err
			}
			req.Host = o.host
			req.Header.Set("Authorization", l.auth)
			b, ok, err := l.send(req, http.StatusOK)
			return ok && string(b) == string(upstreamBody), err
		}
	}
	all := append(edgeTargets{{name: "direct", base: strings.TrimRight(o.upstreamURL, "/")}}, o.targets...)
	for _, t := range all {
		if ok, err := get(newLoader(t.base, 1))(ctx); err != nil || !ok {
			return errors.Join(err, fmt.Errorf("a check request through %s failed (see above)", t.name))
		}
	}

	// One connection per target, the targets in turn request by request.
	ops := make([]func(context.Context) (bool, error), len(all))
	for i, t := range all {
		ops[i] = get(newLoader(t.base, 1))
	}
	lat := &loader{}
	if o.warmup > 0 {
		if _, err := lat.loop(ctx, 1, o.warmup, ops); err != nil {
			return err
		}
	}
	cpu0 := make([]time.Duration, len(all))
	for i, t := range all {
		cpu0[i] = procsCPU(t.pids)
	}
	rs, err := lat.loop(ctx, 1, o.duration, ops)
	if err != nil {
		return err
	}
	for i, t := range all {
		rs[i].extra = cpuFields(cpu0[i], procsCPU(t.pids), rs[i].elapsed, len(rs[i].lat), t.pids)
		rs[i].print(out, "edge_lat_"+t.name, 1)
	}

	// -conns connections, one target at a time, round-robin.
	cs := make([]contender, len(all))
	for i, t := range all {
		l := newLoader(t.base, o.conns)
		cs[i] = contender{name: t.name, pids: t.pids, l: l, op: get(l)}
	}
	return interleave(ctx, out, "edge_", o.conns, o.rounds, o.warmup, o.duration/time.Duration(o.rounds), cs)
}

// reverseProxyOnly serves a bare httputil.ReverseProxy to target on addr
// (loopback), printing "REVERSEPROXY <url>", until SIGINT or SIGTERM: the
// Go floor of the edge comparison, with the pooling a proxy needs and
// nothing else.
func reverseProxyOnly(addr, target string, out io.Writer) error {
	if err := checkLoopback("reverse-proxy-to", target); err != nil {
		return err
	}
	to, err := url.Parse(target)
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-serve-reverse-proxy must be a loopback address, got %q", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(to)
			r.Out.Host = r.In.Host
			r.SetXForwarded()
		},
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second, DisableCompression: true},
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "REVERSEPROXY http://%s\n", ln.Addr())
	if f, ok := out.(interface{ Sync() error }); ok {
		f.Sync()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
