package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/gateway"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// TestSmuggling: requests whose length is ambiguous are refused before
// they reach anything.
func TestSmuggling(t *testing.T) {
	e := newEnv(t)
	host := "acme." + appDomain
	for name, raw := range map[string]string{
		"bad TE":             "POST / HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
		"TE twice":           "POST / HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
		"two CL":             "POST / HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"space before colon": "GET / HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding : chunked\r\n\r\n",
		"two hosts":          "GET / HTTP/1.1\r\nHost: " + host + "\r\nHost: globex." + appDomain + "\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			line := rawRequest(t, e.addr, raw)
			if !strings.HasPrefix(line, "HTTP/1.1 400") && !strings.HasPrefix(line, "HTTP/1.1 501") {
				t.Fatalf("got %q", line)
			}
		})
	}
	if n := e.pool.count.Load() + e.silo.count.Load(); n != 0 {
		t.Fatalf("%d smuggled requests reached an upstream", n)
	}
}

// TestAmbiguousFraming: what Go's server would read one way although a
// sender must not send it, and another intermediary may read another way
// (Content-Length beside chunked, RFC 9112 §6.3; obs-fold, §5.2;
// Transfer-Encoding in HTTP/1.0), is refused with 400 problem+json before
// net/http parses it, and the connection is closed.
func TestAmbiguousFraming(t *testing.T) {
	e := newEnv(t)
	host := "acme." + appDomain
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: globex." + appDomain + "\r\n\r\n"
	body := "0\r\n\r\n" + smuggled
	for name, raw := range map[string]string{
		"CL and TE": "POST /first HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: " + strconv.Itoa(len(body)) +
			"\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
		"TE and CL":        "POST /first HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" + body,
		"obs-fold":         "GET /folded HTTP/1.1\r\nHost: " + host + "\r\nX-A: a\r\n b\r\n\r\n",
		"folded TE":        "POST /folded HTTP/1.1\r\nHost: " + host + "\r\nX-A: a\r\n\tTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
		"TE in HTTP/1.0":   "POST /old HTTP/1.0\r\nHost: " + host + "\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
		"CL twice, equal":  "POST /cl HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
		"LF line ends":     "POST /lf HTTP/1.1\nHost: " + host + "\nContent-Length: 3\nTransfer-Encoding: chunked\n\n" + body,
		"forged refusal":   "GET / HTTP/1.1\r\nHost: " + host + "\r\nX-Bulkhead-Framing-Refused: 1\r\n\r\n",
		"CL and TE, upper": "POST /first HTTP/1.1\r\nHOST: " + host + "\r\nCONTENT-LENGTH: 5\r\nTRANSFER-ENCODING: CHUNKED\r\n\r\n" + body,
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, raw)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/problem+json" ||
				!strings.Contains(string(b), `"ambiguous_framing"`) {
				t.Fatalf("got %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("the connection stays open after a refusal: %v", err)
			}
		})
	}
	if n := e.pool.count.Load() + e.silo.count.Load(); n != 0 {
		t.Fatalf("%d refused requests reached an upstream", n)
	}
}

// TestFramingKeepAlive: the listener follows each request's body framing
// on a kept-alive connection, so a refused request is found wherever it
// comes, the requests before it are answered first, and bytes inside a
// body are never taken for a request.
func TestFramingKeepAlive(t *testing.T) {
	e := newEnv(t)
	host := "acme." + appDomain
	bad := "POST /bad HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	// Chunk data that looks like a refused request is data.
	inChunk := "GET /x HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
	chunked := "POST /chunked HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: chunked\r\n\r\n" +
		strconv.FormatInt(int64(len(inChunk)), 16) + ";ext=1\r\n" + inChunk + "\r\n0\r\nX-Trailer: t\r\n\r\n"
	withCL := "POST /cl HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: " + strconv.Itoa(len(bad)) + "\r\n\r\n" + bad
	get := "GET /get HTTP/1.1\r\nHost: " + host + "\r\n\r\n"

	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// Pipelined, in one write: three good requests, then a bad one.
	io.WriteString(c, chunked+withCL+get+bad+get)
	br := bufio.NewReader(c)
	for i, want := range []int{200, 200, 200, 400} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want == 200 && resp.Header.Get("X-Upstream") != "pool" {
			t.Errorf("answer %d did not come from the upstream: %v %q", i, resp.Header, b)
		}
		if resp.StatusCode != want {
			t.Fatalf("answer %d: %d, want %d: %s", i, resp.StatusCode, want, b)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("the request after the refused one was answered: %v", err)
	}
	if n := e.pool.count.Load(); n != 3 {
		t.Errorf("the upstream saw %d requests, want 3", n)
	}
	if s := e.pool.seen(); s.path != "/get" {
		t.Errorf("the last request the upstream saw: %s", s.path)
	}
}

func TestOversizedHeaders(t *testing.T) {
	e := newEnv(t)
	line := rawRequest(t, e.addr, "GET / HTTP/1.1\r\nHost: acme."+appDomain+"\r\nX-Big: "+strings.Repeat("a", gateway.MaxHeaderBytes+8192)+"\r\n\r\n")
	if !strings.HasPrefix(line, "HTTP/1.1 431") {
		t.Fatalf("got %q", line)
	}
}

// TestSlowloris: a client that never finishes its headers is cut off, and
// other tenants are served meanwhile.
func TestSlowloris(t *testing.T) {
	e := newEnv(t)
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: acme."+appDomain+"\r\nX-Slow: ")
	if a := e.do(t, "GET", "globex."+appDomain, "/", "", nil); a.status != 200 {
		t.Fatalf("another tenant: %d", a.status)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(c) // ends when the server closes the connection
	if len(b) != 0 && !strings.HasPrefix(string(b), "HTTP/1.1 408") {
		t.Fatalf("got %q", b)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the slow connection was not closed")
	}
}

// TestUpstreamFailures: an upstream that hangs gets 504, one that resets
// 502, both as problem+json; other tenants are served meanwhile; nothing
// leaks.
func TestUpstreamFailures(t *testing.T) {
	before := goleak.IgnoreCurrent()
	e := newEnv(t)
	hang := make(chan struct{})
	hanging := newRawUpstream(t, func(c net.Conn, _ int) { <-hang; c.Close() })
	resetting := newRawUpstream(t, func(c net.Conn, _ int) {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	e.setRoutes(t,
		gateway.Route{ID: "rt_hang", Host: "*." + appDomain, PathPrefix: "/hang", Upstream: hanging.url, Timeout: gateway.Duration(300 * time.Millisecond)},
		gateway.Route{ID: "rt_reset", Host: "*." + appDomain, PathPrefix: "/reset", Upstream: resetting.url},
		gateway.Route{ID: "rt_app", Host: "*." + appDomain, PathPrefix: "/", Upstream: e.pool.URL, Silo: map[tenant.ID]string{"globex": e.silo.URL}})
	a := e.do(t, "GET", "acme."+appDomain, "/hang", "", nil)
	if a.status != 504 || !strings.Contains(a.body, `"upstream_timeout"`) || a.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("hanging upstream: %d %s", a.status, a.body)
	}
	a = e.do(t, "POST", "acme."+appDomain, "/reset", "", nil)
	if a.status != 502 || !strings.Contains(a.body, `"upstream_unavailable"`) {
		t.Fatalf("resetting upstream: %d %s", a.status, a.body)
	}
	if a := e.do(t, "GET", "globex."+appDomain, "/", "", nil); a.status != 200 {
		t.Fatalf("another tenant: %d", a.status)
	}
	close(hang)
	hanging.close()
	resetting.close()
	e.gw.Close()
	http.DefaultClient.CloseIdleConnections()
	goleak.VerifyNone(t, before, goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"), goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

// TestRetriesOnlyIdempotent: a connection the upstream drops is retried
// for a GET, never for a POST.
func TestRetriesOnlyIdempotent(t *testing.T) {
	e := newEnv(t)
	var n atomic.Int64
	flaky := newRawUpstream(t, func(c net.Conn, i int) {
		defer c.Close()
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		if n.Add(1)%2 == 1 {
			return // drop the connection without an answer
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	})
	e.setRoutes(t, gateway.Route{ID: "rt", Host: "*." + appDomain, PathPrefix: "/", Upstream: flaky.url})
	if a := e.do(t, "GET", "acme."+appDomain, "/", "", nil); a.status != 200 || a.body != "ok" || n.Load() != 2 {
		t.Fatalf("GET: %d %q after %d attempts", a.status, a.body, n.Load())
	}
	n.Store(0)
	req, _ := http.NewRequest("POST", e.url+"/", strings.NewReader("x"))
	req.Host = "acme." + appDomain
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 || n.Load() != 1 {
		t.Fatalf("POST: %d after %d attempts", resp.StatusCode, n.Load())
	}
}

// rawUpstream answers each connection with handle.
type rawUpstream struct {
	ln   net.Listener
	url  string
	done chan struct{}
}

func newRawUpstream(t *testing.T, handle func(c net.Conn, i int)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, url: "http://" + ln.Addr().String(), done: make(chan struct{})}
	go func() {
		defer close(u.done)
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c, i)
		}
	}()
	t.Cleanup(u.close)
	return u
}

func (u *rawUpstream) close() {
	u.ln.Close()
	<-u.done
}

// TestFramingByteByByte: a pipeline sent one byte at a time is framed as
// when it comes at once.
func TestFramingByteByByte(t *testing.T) {
	e := newEnv(t)
	host := "acme." + appDomain
	raw := "POST /chunked HTTP/1.1\r\nHost: " + host + "\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
		"POST /cl HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 2\r\n\r\nhi" +
		"POST /bad HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		for i := range len(raw) {
			if _, err := io.WriteString(c, raw[i:i+1]); err != nil {
				return
			}
		}
	}()
	br := bufio.NewReader(c)
	for i, want := range []int{200, 200, 400} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("answer %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
	if n := e.pool.count.Load(); n != 2 {
		t.Errorf("the upstream saw %d requests, want 2", n)
	}
}

// TestRefusedUpgradeClosesConnection: the listener stops checking after an
// upgrade request (a 101 turns the connection into another protocol), so
// when the answer is not 101 the connection is closed rather than left to
// carry unchecked requests.
func TestRefusedUpgradeClosesConnection(t *testing.T) {
	e := newEnv(t)
	host := "acme." + appDomain
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: "+host+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"+
		"POST /smuggled HTTP/1.1\r\nHost: "+host+"\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		t.Fatalf("the test upstream switched protocols")
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("the connection stays open after a refused upgrade: %v", err)
	}
	if s := e.pool.seen(); s.path == "/smuggled" {
		t.Error("a request after a refused upgrade reached the upstream")
	}
}

// TestMadeUpHostsFloodBounded: one address sending requests for made-up
// subdomains (a database read each, the answer 404) is, past its bound,
// answered from the cache only: a tenant its users reach (cached) still
// works, anything needing a read gets 429 without one; another address
// is not affected.
func TestMadeUpHostsFloodBounded(t *testing.T) {
	// A clock that stands still: no refill however slow the machine.
	clk := clock.NewFake(time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC))
	e := newEnvWith(t, func(c *gateway.Config) { c.Clock, c.Cache = clk, gateway.StateCache{TTL: time.Hour} })
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}
	t.Cleanup(client.CloseIdleConnections)
	get := func(host string) int {
		req, _ := http.NewRequest("GET", e.url+"/", nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
		return resp.StatusCode
	}
	if code := get("acme." + appDomain); code != http.StatusOK {
		t.Fatalf("acme before the flood: %d", code)
	}
	codes := map[int]int{}
	for i := range 300 {
		codes[get(fmt.Sprintf("nope%d.%s", i, appDomain))]++
	}
	reads := e.dir.gets.Load()
	if codes[http.StatusTooManyRequests] != 200 || codes[http.StatusNotFound] != 100 || reads > 101 {
		t.Fatalf("300 made-up hosts from one address: answers %v, %d tenant reads", codes, reads)
	}
	if code := get(fmt.Sprintf("nope-more.%s", appDomain)); code != http.StatusTooManyRequests {
		t.Errorf("one more made-up host: %d", code)
	}
	if code := get("acme." + appDomain); code != http.StatusOK {
		t.Errorf("the flooding address, for a cached tenant: %d", code)
	}
	if code := get("initech." + appDomain); code != http.StatusTooManyRequests {
		t.Errorf("the flooding address, for a real tenant not cached: %d", code)
	}
	if e.dir.gets.Load() != reads {
		t.Error("a request past the bound read the tenant")
	}
	// Another address (127.0.0.2 is loopback too) reaches its tenant.
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	other := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext}}
	t.Cleanup(other.CloseIdleConnections)
	req, _ := http.NewRequest("GET", e.url+"/", nil)
	req.Host = "acme." + appDomain
	resp, err := other.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("another address for a real tenant: %d", resp.StatusCode)
	}
}
