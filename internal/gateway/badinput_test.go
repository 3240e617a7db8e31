package gateway_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

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

// TestAmbiguousFraming: what Go's server reads unambiguously although a
// sender must not send it (Content-Length beside chunked: chunked wins
// and Content-Length is dropped, RFC 9112 §6.3; obs-fold: unfolded into
// one space, §5.2) reaches the upstream re-framed by the gateway, so the
// two never disagree on where a request ends.
func TestAmbiguousFraming(t *testing.T) {
	e := newEnv(t)
	host := "acme." + appDomain
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: globex." + appDomain + "\r\n\r\n"
	body := "0\r\n\r\n" + smuggled
	line := rawRequest(t, e.addr, "POST /first HTTP/1.1\r\nHost: "+host+"\r\nContent-Length: "+strconv.Itoa(len(body))+
		"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+body)
	if !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("CL and TE: %q", line)
	}
	if s := e.pool.seen(); s.path != "/first" || s.header.Get("Content-Length") != "" {
		t.Fatalf("the upstream saw %s with Content-Length %q", s.path, s.header.Get("Content-Length"))
	}
	if n := e.silo.count.Load(); n != 0 {
		t.Fatal("the smuggled request reached another tenant's upstream")
	}
	line = rawRequest(t, e.addr, "GET /folded HTTP/1.1\r\nHost: "+host+"\r\nX-A: a\r\n b\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(line, "HTTP/1.1 200") && !strings.HasPrefix(line, "HTTP/1.1 400") {
		t.Fatalf("obs-fold: %q", line)
	}
	if s := e.pool.seen(); s.path == "/folded" && strings.ContainsAny(s.header.Get("X-A"), "\r\n") {
		t.Fatalf("a folded header reached the upstream folded: %q", s.header.Get("X-A"))
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
