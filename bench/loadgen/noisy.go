package main

// Noisy-neighbour phases: does one tenant's flood slow another tenant down?
//
// Two tenants of their own, a victim and an aggressor, each with a client
// of its own and its token. The victim sends an open loop: requests on a
// fixed schedule, -noisy-rate a second on each of its two paths (GET
// /v1/tenants/{victim}, and POST …/authorize/batch with 100 allow
// requests), whatever the answers' latency, each request's latency counted
// from the time it was due, so that a stalled server shows in the figures
// instead of slowing the load down (no coordinated omission). The
// aggressor is a second process (loadgen re-run with LOADGEN_FLOOD=1, so
// that its goroutines, allocations and collections do not delay the
// victim's in the Go runtime) with -conns closed loops on one path. Each
// phase: the aggressor starts, both warm up for -warmup, the victim is
// measured for -noisy-duration, the aggressor stops.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/textproto"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// floodEnv set to 1 makes loadgen the aggressor process: it reads a
// floodSpec from stdin, floods, and prints one RESULT line.
const floodEnv = "LOADGEN_FLOOD"

// Noisy-neighbour targets: the victim's p99 with the aggressor flooding,
// over its p99 alone.
const (
	samePathTarget  = 2.0
	otherPathTarget = 3.0
)

// maxInFlight bounds the victim's requests waiting for an answer on one
// open loop; a request due while that many wait is not sent and counts as
// an error.
const maxInFlight = 2000

// floodSpec is the aggressor's work, sent by the parent as one JSON line.
type floodSpec struct {
	Phase     string        `json:"phase"`
	Base      string        `json:"base"`
	Conns     int           `json:"conns"`
	Warmup    time.Duration `json:"warmup"`
	Limit     time.Duration `json:"limit"` // the aggressor stops by itself after this long
	ServerPID int           `json:"server_pid"`
	Tier      string        `json:"tier"`
	Method    string        `json:"method"`
	Path      string        `json:"path"`
	Auth      string        `json:"auth"`
	Body      string        `json:"body,omitempty"`
	Want      int           `json:"want"`
	// Seq, if not empty, is replaced in Body by a number that no other
	// request of the process has (user creation needs a new email).
	Seq string `json:"seq,omitempty"`
}

// parseFloodSpec reads and checks a spec.
func parseFloodSpec(line []byte) (floodSpec, error) {
	var s floodSpec
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("flood spec: %w", err)
	}
	if err := checkLoopback("url", s.Base); err != nil {
		return s, err
	}
	switch {
	case s.Phase == "" || strings.ContainsAny(s.Phase, " \t\n="):
		return s, fmt.Errorf("flood spec: bad phase %q", s.Phase)
	case s.Conns < 1 || s.Conns > 1024:
		return s, errors.New("flood spec: conns must be between 1 and 1024")
	case s.Warmup < 0 || s.Limit <= s.Warmup || s.Limit > 3*time.Minute:
		return s, errors.New("flood spec: need 0 ≤ warmup < limit ≤ 3m")
	case s.Method == "" || !strings.HasPrefix(s.Path, "/") || s.Want < 100 || s.Want > 599:
		return s, errors.New("flood spec: need a method, a path starting with / and an expected status")
	}
	return s, nil
}

// floodMain is the aggressor process: a spec on the first line of in,
// flooding until in ends (the parent is done) or the spec's limit, then
// one RESULT line on out for the requests sent after the warm-up, with
// the refusals (429, 503) counted apart from the other failures.
func floodMain(in io.Reader, out io.Writer) error {
	br := bufio.NewReader(in)
	line, err := br.ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return fmt.Errorf("flood spec: %w", err)
	}
	s, err := parseFloodSpec(line)
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, br)
		close(stop)
	}()
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: s.Conns, MaxConnsPerHost: s.Conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	fmt.Fprintln(out, "FLOODING") // out is unbuffered (stdout)
	r := flood(client, s, stop)
	r.print(out, s.Phase, s.Conns)
	return nil
}

// flood runs s.Conns closed loops until stop is closed or s.Limit.
func flood(client *http.Client, s floodSpec, stop <-chan struct{}) result {
	var seq atomic.Int64
	var measuring, done atomic.Bool
	var errOnce sync.Once
	send := func() (status int, err error) {
		body := s.Body
		if s.Seq != "" {
			body = strings.ReplaceAll(body, s.Seq, strconv.FormatInt(seq.Add(1), 10))
		}
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(s.Method, s.Base+s.Path, rd)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", s.Auth)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != s.Want && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
			errOnce.Do(func() {
				fmt.Fprintf(os.Stderr, "loadgen: aggressor %s %s: status %d (want %d): %.300s\n", s.Method, s.Path, resp.StatusCode, s.Want, b)
			})
		}
		return resp.StatusCode, err
	}
	type tally struct {
		lat                         []time.Duration
		refused429, refused503, bad int
	}
	tallies := make([]tally, s.Conns)
	var wg sync.WaitGroup
	for w := range s.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := &tallies[w]
			for !done.Load() {
				counted := measuring.Load()
				t0 := time.Now()
				status, err := send()
				if !counted {
					if err != nil {
						time.Sleep(10 * time.Millisecond) // no busy loop on a refused connection
					}
					continue
				}
				switch {
				case err != nil:
					errOnce.Do(func() { fmt.Fprintf(os.Stderr, "loadgen: aggressor %s %s: %v\n", s.Method, s.Path, err) })
					t.bad++
					time.Sleep(10 * time.Millisecond)
				case status == s.Want:
					t.lat = append(t.lat, time.Since(t0))
				case status == http.StatusTooManyRequests:
					t.refused429++
				case status == http.StatusServiceUnavailable:
					t.refused503++
				default:
					t.bad++
				}
			}
		}()
	}
	limit := time.NewTimer(s.Limit)
	defer limit.Stop()
	select {
	case <-time.After(s.Warmup):
	case <-stop:
	case <-limit.C:
	}
	cpu0, srv0, all0 := selfCPU(), procCPU(s.ServerPID), machineCPU()
	start := time.Now()
	measuring.Store(true)
	select {
	case <-stop:
	case <-limit.C:
	}
	measuring.Store(false)
	elapsed := time.Since(start)
	r := cpuResult(elapsed, cpu0, srv0, all0, s.ServerPID)
	done.Store(true)
	wg.Wait()
	var n429, n503 int
	for _, t := range tallies {
		r.lat = append(r.lat, t.lat...)
		r.errors += t.bad
		n429 += t.refused429
		n503 += t.refused503
	}
	slices.Sort(r.lat)
	r.extra = fmt.Sprintf("refused_429=%d refused_503=%d", n429, n503)
	if s.Tier != "" {
		r.extra += " tier=" + s.Tier
	}
	return r
}

// cpuResult is a result of elapsed with the CPU used since the snapshots.
func cpuResult(elapsed, cpu0, srv0, all0 time.Duration, serverPID int) result {
	r := result{elapsed: elapsed, serverCPU: -1, machineCPU: -1}
	secs := max(elapsed.Seconds(), 1e-9)
	r.clientCPU = (selfCPU() - cpu0).Seconds() / secs
	if srv1 := procCPU(serverPID); srv0 >= 0 && srv1 >= 0 {
		r.serverCPU = (srv1 - srv0).Seconds() / secs
	}
	if all1 := machineCPU(); all0 >= 0 && all1 >= 0 {
		r.machineCPU = (all1 - all0).Seconds() / secs
	}
	return r
}

// aggressor is a running aggressor process.
type aggressor struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

// startAggressor starts this program again as the aggressor process with
// spec and returns once it floods.
func startAggressor(spec floodSpec) (*aggressor, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	line, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	// At the lowest priority (nice 19), when nice is there: the aggressor
	// stands in for a client on another machine. On the bench's 2-core
	// machine its own CPU (half a core for a GET flood) would otherwise be
	// taken from the server and the victim's load generator, which no
	// server-side fairness can prevent; its flood still keeps the server's
	// share for it full (the aggressor rows report what it was served).
	cmd := exec.Command(exe)
	if nice, err := exec.LookPath("nice"); err == nil {
		cmd = exec.Command(nice, "-n", "19", exe)
	}
	cmd.Env = append(os.Environ(), floodEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	a := &aggressor{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	if _, err := stdin.Write(append(line, '\n')); err != nil {
		a.kill()
		return nil, err
	}
	if !a.out.Scan() || a.out.Text() != "FLOODING" {
		a.kill()
		return nil, fmt.Errorf("the aggressor process did not start flooding (%q)", a.out.Text())
	}
	return a, nil
}

func (a *aggressor) kill() {
	a.stdin.Close()
	a.cmd.Process.Kill()
	a.cmd.Wait()
}

// stop tells the aggressor to stop and returns its RESULT line.
func (a *aggressor) stop() (string, error) {
	a.stdin.Close()
	var line string
	for a.out.Scan() {
		if strings.HasPrefix(a.out.Text(), "RESULT ") {
			line = a.out.Text()
		}
	}
	err := a.cmd.Wait()
	if err == nil && line == "" {
		err = errors.New("the aggressor process printed no RESULT line")
	}
	return line, err
}

// parseResult reads a RESULT line into its fields (phase, conns, …).
func parseResult(line string) (map[string]string, error) {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "RESULT" {
		return nil, fmt.Errorf("not a RESULT line: %q", line)
	}
	m := map[string]string{}
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("bad field %q in %q", kv, line)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("field %q twice in %q", k, line)
		}
		m[k] = v
	}
	if m["phase"] == "" {
		return nil, fmt.Errorf("no phase in %q", line)
	}
	return m, nil
}

// schedule is when the i-th request (from 0) of an open loop of rate
// requests a second that started at start is due.
func schedule(start time.Time, rate float64, i int) time.Time {
	return start.Add(time.Duration(float64(i) * float64(time.Second) / rate))
}

// openLoop sends ops in turn on a fixed schedule, rate requests a second
// of each (the i-th request, ops[i%len(ops)], is due at start +
// i/(rate×len(ops))), for warmup and then d, whatever the answers take:
// each request is sent at its time on its own goroutine. A request's
// latency runs from the time it was due to the end of its answer, so that
// time the dispatcher was late (the process starved of CPU, say) counts
// too. Only requests due after the warm-up are recorded, each op in its
// result; the CPU figures are those of the recorded span. A request due
// while maxInFlight requests of this loop wait is not sent (an error), as
// is one whose transport fails.
func openLoop(ctx context.Context, rate float64, warmup, d time.Duration, serverPID int, ops ...func(context.Context) (bool, error)) ([]result, error) {
	if rate <= 0 || len(ops) == 0 || d <= 0 {
		return nil, errors.New("open loop: need a rate, an op and a duration")
	}
	total := rate * float64(len(ops))
	warmN := int(total * warmup.Seconds())
	n := warmN + int(total*d.Seconds())
	lat := make([]time.Duration, n)
	ok := make([]bool, n)
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	var errOnce sync.Once
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
	var cpu0, srv0, all0 time.Duration
	var measured time.Time
	start := time.Now()
	for i := range n {
		due := schedule(start, total, i)
		if i == warmN {
			cpu0, srv0, all0, measured = selfCPU(), procCPU(serverPID), machineCPU(), due
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				wg.Wait()
				return nil, ctx.Err()
			}
		}
		select {
		case sem <- struct{}{}:
		default:
			errOnce.Do(func() {
				fmt.Fprintf(os.Stderr, "loadgen: open loop: %d requests waiting, next ones not sent\n", maxInFlight)
			})
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			good, err := ops[i%len(ops)](ctx)
			lat[i] = time.Since(due)
			if err != nil {
				errOnce.Do(func() { fmt.Fprintf(os.Stderr, "loadgen: open loop: %v\n", err) })
			}
			ok[i] = good && err == nil
		}()
	}
	wg.Wait()
	if measured.IsZero() {
		measured = schedule(start, total, warmN)
		cpu0, srv0, all0 = selfCPU(), procCPU(serverPID), machineCPU()
	}
	r := cpuResult(time.Since(measured), cpu0, srv0, all0, serverPID)
	rs := make([]result, len(ops))
	for j := range rs {
		rs[j] = r
	}
	for i := warmN; i < n; i++ {
		j := i % len(ops)
		if ok[i] {
			rs[j].lat = append(rs[j].lat, lat[i])
		} else {
			rs[j].errors++
		}
	}
	for j := range rs {
		slices.Sort(rs[j].lat)
	}
	return rs, nil
}

// noisyPath is one of the aggressor's floods.
type noisyPath struct {
	name string // phase name part: noisy_<name>_…
	spec floodSpec
	// same names the victim's path that is this flood's own
	// ("get", "authz"), which is held to samePathTarget.
	same string
	note string // more fields for the aggressor's line
	// informational phases have no target (target=none on the victim's
	// lines).
	informational bool
}

// noisyPhases runs the noisy-neighbour phases (see the top of this file).
func (l *loader) noisyPhases(ctx context.Context, o options, out io.Writer) error {
	setupStart := time.Now()
	// The aggressor is in -noisy-limited-tier (the built-in basic's rate),
	// as a tenant of a serious deployment is; the victim in the default
	// tier, without a rate, so that its own load is never refused.
	victim, aggr := o.prefix+"-victim", o.prefix+"-aggressor"
	if err := l.createTenant(ctx, victim, ""); err != nil {
		return err
	}
	if err := l.createTenant(ctx, aggr, o.noisyLimitedTier); err != nil {
		return err
	}
	for _, id := range []string{victim, aggr} {
		if err := l.writePolicies(ctx, id); err != nil {
			return err
		}
	}
	vt, err := l.tenantLoader(ctx, victim)
	if err != nil {
		return err
	}
	at, err := l.tenantLoader(ctx, aggr)
	if err != nil {
		return err
	}
	// The victim's own connections, as another tenant's clients would have.
	vtr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, DisableCompression: true, IdleConnTimeout: 90 * time.Second}
	defer vtr.CloseIdleConnections()
	v := &loader{client: &http.Client{Transport: vtr, Timeout: 30 * time.Second}, base: l.base, auth: vt.auth, serverPID: l.serverPID}

	vPath, aPath := "/v1/tenants/"+url.PathEscape(victim), "/v1/tenants/"+url.PathEscape(aggr)
	allowBatch, denyBatch := authzBatch("u0", "read"), authzBatch("u9", "delete")
	if err := checkBatch(ctx, v, vPath+"/authorize/batch", allowBatch, "allow"); err != nil {
		return fmt.Errorf("victim: %w", err)
	}
	if err := checkBatch(ctx, at, aPath+"/authorize/batch", denyBatch, "deny"); err != nil {
		return fmt.Errorf("aggressor: %w", err)
	}
	if o.noisyLimitedTier != "" {
		// The batch of 100 decisions spent the aggressor's burst of its
		// tier (50/s, 100 by default): let it fill before the setup goes on.
		time.Sleep(2500 * time.Millisecond)
	}
	victimOps := []func(context.Context) (bool, error){
		func(ctx context.Context) (bool, error) { return v.do(ctx, http.MethodGet, vPath, nil, http.StatusOK) },
		func(ctx context.Context) (bool, error) {
			return v.do(ctx, http.MethodPost, vPath+"/authorize/batch", allowBatch, http.StatusOK)
		},
	}
	victimNames := []string{"get", "authz"}

	spec := func(auth, method, path, body string, want int) floodSpec {
		return floodSpec{Base: l.base, Conns: o.conns, Warmup: o.warmup, Limit: o.warmup + o.noisyDuration + time.Minute,
			ServerPID: l.serverPID, Auth: auth, Method: method, Path: path, Body: body, Want: want, Tier: o.noisyLimitedTier}
	}
	paths := []noisyPath{{name: "get", same: "get", spec: spec(at.auth, http.MethodGet, aPath, "", http.StatusOK)}}
	if o.noisyLimitedTier != "" {
		// The same flood from a tenant of the default tier, which has no
		// rate here: what the bound on a tenant's requests in flight
		// alone gives. Informational: a tier without a rate is the
		// operator's choice to let its tenants use the node.
		free := o.prefix + "-unlimited"
		if err := l.createTenant(ctx, free, ""); err != nil {
			return err
		}
		ft, err := l.tenantLoader(ctx, free)
		if err != nil {
			return err
		}
		p := noisyPath{name: "get_unlimited", same: "get", informational: true,
			spec: spec(ft.auth, http.MethodGet, "/v1/tenants/"+url.PathEscape(free), "", http.StatusOK)}
		p.spec.Tier = ""
		paths = append(paths, p)
	}
	paths = append(paths, noisyPath{name: "authz_batch", same: "authz",
		spec: spec(at.auth, http.MethodPost, aPath+"/authorize/batch", string(denyBatch), http.StatusOK)})

	// User creation needs a tenant admin: a user of the admins group,
	// signed in through the hosted login page.
	admin, err := l.signInAdmin(ctx, aggr)
	if err != nil {
		return fmt.Errorf("aggressor admin sign-in: %w", err)
	}
	userBody := `{"email":"u{seq}@` + aggr + `.example","password":"loadgen aggressor password"}`
	al := &loader{client: l.client, base: l.base, auth: admin}
	if ok, err := al.do(ctx, http.MethodPost, aPath+"/users", []byte(strings.ReplaceAll(userBody, "{seq}", "check")), http.StatusCreated); err != nil || !ok {
		return errors.Join(err, errors.New("the aggressor's admin could not create a user (see above)"))
	}
	p := noisyPath{name: "user_create", spec: spec(admin, http.MethodPost, aPath+"/users", userBody, http.StatusCreated)}
	p.spec.Seq = "{seq}"
	paths = append(paths, p)

	if o.noisyFunction != "" {
		name := "loadgen-spin-" + o.prefix
		if err := l.publishFunction(ctx, name, o.noisyFunction); err != nil {
			return err
		}
		event := fmt.Sprintf(`{"iterations":%d}`, o.noisySpin)
		path := "/v1/functions/" + name + "/invoke"
		t0 := time.Now()
		if ok, err := at.do(ctx, http.MethodPost, path, []byte(event), http.StatusOK); err != nil || !ok {
			return errors.Join(err, errors.New("invoking the spin function failed (see above)"))
		}
		cold := time.Since(t0)
		t0 = time.Now()
		at.do(ctx, http.MethodPost, path, []byte(event), http.StatusOK)
		warm := time.Since(t0)
		fmt.Fprintf(os.Stderr, "loadgen: noisy: spin function %s, %d iterations: cold %v, warm %v\n", name, o.noisySpin,
			cold.Round(time.Millisecond), warm.Round(time.Millisecond))
		paths = append(paths, noisyPath{name: "function", spec: spec(at.auth, http.MethodPost, path, event, http.StatusOK),
			note: fmt.Sprintf("iterations=%d alone_invoke_us=%d", o.noisySpin, warm.Microseconds())})
	}

	fmt.Fprintf(os.Stderr, "loadgen: noisy: setup took %v\n", time.Since(setupStart).Round(time.Millisecond))
	settle := func() { time.Sleep(500 * time.Millisecond) } // the last flood's queued work drains
	alone, err := openLoop(ctx, o.noisyRate, o.warmup, o.noisyDuration, l.serverPID, victimOps...)
	if err != nil {
		return err
	}
	for j, r := range alone {
		r.extra = fmt.Sprintf("rate=%g", o.noisyRate)
		r.print(out, "noisy_alone_victim_"+victimNames[j], 1)
	}
	for _, p := range paths {
		settle()
		p.spec.Phase = "noisy_" + p.name + "_aggressor"
		a, err := startAggressor(p.spec)
		if err != nil {
			return fmt.Errorf("noisy %s: %w", p.name, err)
		}
		rs, err := openLoop(ctx, o.noisyRate, o.warmup, o.noisyDuration, l.serverPID, victimOps...)
		line, aerr := a.stop()
		if err != nil || aerr != nil {
			return fmt.Errorf("noisy %s: %w", p.name, errors.Join(err, aerr))
		}
		for j, r := range rs {
			target := otherPathTarget
			if victimNames[j] == p.same {
				target = samePathTarget
			}
			base := percentile(alone[j].lat, 99)
			ratio := -1.0
			if base > 0 {
				ratio = float64(percentile(r.lat, 99)) / float64(base)
			}
			tgt := strconv.FormatFloat(target, 'g', -1, 64)
			if p.informational {
				tgt = "none"
			}
			r.extra = fmt.Sprintf("rate=%g alone_p99_us=%d p99_ratio=%.2f target=%s", o.noisyRate, base.Microseconds(), ratio, tgt)
			r.print(out, "noisy_"+p.name+"_victim_"+victimNames[j], 1)
		}
		if _, err := parseResult(line); err != nil {
			return fmt.Errorf("noisy %s: %w", p.name, err)
		}
		if p.note != "" {
			line += " " + p.note
		}
		fmt.Fprintln(out, line)
	}
	return nil
}

// createTenant creates tenant id (in tier, or the default one) with the
// operator token.
func (l *loader) createTenant(ctx context.Context, id, tier string) error {
	body, _ := json.Marshal(map[string]string{"id": id, "name": "Load " + id, "tier": tier})
	ok, err := l.do(ctx, http.MethodPost, "/v1/tenants", body, http.StatusCreated)
	if err != nil || !ok {
		return errors.Join(err, fmt.Errorf("creating tenant %s failed (see above)", id))
	}
	return nil
}

// writePolicies writes the 50 policies of authzPolicy into tenant tid's
// store with the operator token.
func (l *loader) writePolicies(ctx context.Context, tid string) error {
	path := "/v1/tenants/" + url.PathEscape(tid) + "/policies"
	for i := range 50 {
		body, _ := json.Marshal(map[string]string{"statement": authzPolicy(i)})
		ok, err := l.do(ctx, http.MethodPost, path, body, http.StatusCreated)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("writing a policy failed (see above)")
		}
	}
	return nil
}

// authzBatch is a batch of authz.MaxBatch (100) copies of authzRequest.
func authzBatch(user, action string) []byte {
	one := authzRequest(user, action)
	var b bytes.Buffer
	b.WriteString(`{"requests":[`)
	for i := range 100 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(one)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// checkBatch checks that every decision of a batch is want.
func checkBatch(ctx context.Context, tl *loader, path string, body []byte, want string) error {
	b, ok, err := tl.request(ctx, http.MethodPost, path, body, http.StatusOK)
	if err != nil || !ok {
		return errors.Join(err, errors.New("a batch authorize failed (see above)"))
	}
	var res struct {
		Results []struct {
			Decision string `json:"decision"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &res); err != nil || len(res.Results) != 100 {
		return fmt.Errorf("batch answer with %d results: %.300s", len(res.Results), b)
	}
	for _, d := range res.Results {
		if d.Decision != want {
			return fmt.Errorf("batch decision %q, want %q", d.Decision, want)
		}
	}
	return nil
}

// publishFunction publishes the wasm module at file as a per-tenant
// function with the operator token.
func (l *loader) publishFunction(ctx context.Context, name, file string) error {
	module, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="config"`)
	h.Set("Content-Type", "application/json")
	pw, _ := mw.CreatePart(h)
	json.NewEncoder(pw).Encode(map[string]string{"name": name, "tenancy_mode": "per_tenant"})
	fw, _ := mw.CreateFormFile("module", "spin.wasm")
	fw.Write(module)
	mw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base+"/v1/functions", &body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", l.auth)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	// Publishing compiles the module before it answers: a setup step, not
	// a measured one, that takes more than the load's 30 s request
	// timeout on a slow machine under the race detector.
	slow := &loader{client: &http.Client{Transport: l.client.Transport, Timeout: 5 * time.Minute}}
	if _, ok, err := slow.send(req, http.StatusCreated); err != nil || !ok {
		return errors.Join(err, errors.New("publishing the spin function failed (see above)"))
	}
	return nil
}

const loginRedirect = "http://127.0.0.1:9/callback" // never reached: the sign-in stops at its redirect

var (
	loginHidden = regexp.MustCompile(`name="(authRequestID|csrf)" value="([^"]*)"`)
	loginAction = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
)

// signInAdmin creates an admin (a user in the admins group) of tenant tid
// and a public platform app with the operator token, signs the admin in
// through the hosted login page as a browser would (authorization code
// with PKCE, the login form with its CSRF cookie and field, the tenant as
// the organization code) and returns "Bearer <the admin's access token>".
func (l *loader) signInAdmin(ctx context.Context, tid string) (string, error) {
	email, password := "admin@"+tid+".example", "loadgen admin "+strconv.FormatInt(time.Now().UnixNano(), 36)
	body, _ := json.Marshal(map[string]any{"email": email, "password": password, "groups": []string{"admins"}})
	if ok, err := l.do(ctx, http.MethodPost, "/v1/tenants/"+url.PathEscape(tid)+"/users", body, http.StatusCreated); err != nil || !ok {
		return "", errors.Join(err, errors.New("creating the admin failed (see above)"))
	}
	body, _ = json.Marshal(map[string]any{"name": "loadgen login", "public": true, "redirect_uris": []string{loginRedirect},
		"scopes": []string{"bulkhead:api"}, "grant_types": []string{"authorization_code"}})
	b, ok, err := l.request(ctx, http.MethodPost, "/v1/clients", body, http.StatusCreated)
	if err != nil || !ok {
		return "", errors.Join(err, errors.New("registering the login app failed (see above)"))
	}
	var app struct {
		ID string `json:"client_id"`
	}
	if err := json.Unmarshal(b, &app); err != nil || app.ID == "" {
		return "", fmt.Errorf("register app: unexpected answer %.300s", b)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Transport: l.client.Transport, Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), loginRedirect) {
				return http.ErrUseLastResponse // the app's callback: not served, read its code
			}
			return nil
		}}
	conf := oauth2.Config{ClientID: app.ID, RedirectURL: loginRedirect, Scopes: []string{"openid", "bulkhead:api"},
		Endpoint: oauth2.Endpoint{AuthURL: l.base + "/authorize", TokenURL: l.base + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, conf.AuthCodeURL("loadgen", oauth2.S256ChallengeOption(verifier)), nil)
	if err != nil {
		return "", err
	}
	resp, err := browser.Do(req)
	if err != nil {
		return "", err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	action := loginAction.FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || action == nil {
		return "", fmt.Errorf("authorize: status %d, no login form: %.300s", resp.StatusCode, page)
	}
	target, err := resp.Request.URL.Parse(html.UnescapeString(string(action[1])))
	if err != nil {
		return "", err
	}
	fields := url.Values{"email": {email}, "password": {password}, "tenant": {tid}}
	for _, m := range loginHidden.FindAllSubmatch(page, -1) {
		fields.Set(string(m[1]), html.UnescapeString(string(m[2])))
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, target.String(), strings.NewReader(fields.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = browser.Do(req) // follows the redirects up to the callback
	if err != nil {
		return "", err
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), loginRedirect) {
		return "", fmt.Errorf("login: status %d, location %q: %.300s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	q := loc.Query()
	if e := q.Get("error"); e != "" || q.Get("code") == "" || q.Get("state") != "loadgen" {
		return "", fmt.Errorf("login: callback %s", loc)
	}
	tok, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: l.client.Transport}), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return "", err
	}
	if tok.AccessToken == "" {
		return "", errors.New("code exchange: no access token")
	}
	return "Bearer " + tok.AccessToken, nil
}
