package gateway_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/gateway"
)

// TestSlowBodyTimesOut: a client that sends its headers and then trickles
// (or withholds) its body gets 408 problem+json once the body timeout has
// passed, and the connection is closed, rather than holding a connection
// to the gateway and to the application for as long as it likes.
func TestSlowBodyTimesOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newEnvWith(t, func(c *gateway.Config) { c.BodyTimeout = timeout })
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: acme."+appDomain+"\r\nContent-Length: 100\r\n\r\nabc")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct {
		Code   string `json:"code"`
		Status int    `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestTimeout || p.Code != "request_timeout" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		t.Errorf("slow body: %d %s %+v", resp.StatusCode, resp.Header.Get("Content-Type"), p)
	}
	if took := time.Since(start); took < timeout {
		t.Errorf("answered after %s, before the timeout", took)
	}
	// The rest of the answer (a chunked one ends with its last chunk),
	// then the connection's end: nothing else may follow.
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("the connection stays open after a slow body: %v", err)
	}
}

// TestBodyTimeoutSparesStreams: the timeout bounds the request body only.
// A request whose body arrived in time, and a request without a body,
// may stream their answers for longer.
func TestBodyTimeoutSparesStreams(t *testing.T) {
	const timeout = 200 * time.Millisecond
	e := newEnvWith(t, func(c *gateway.Config) { c.BodyTimeout = timeout })
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for range 3 {
			io.WriteString(w, "data: tick\n\n")
			http.NewResponseController(w).Flush()
			<-time.After(timeout) // a stream that outlives the body timeout
		}
	}))
	defer app.Close()
	e.setRoutes(t, gateway.Route{ID: "rt", Host: "*." + appDomain, PathPrefix: "/", Upstream: app.URL})
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader("payload")
		}
		req, err := http.NewRequest(method, e.url+"/events", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "acme." + appDomain
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || strings.Count(string(b), "tick") != 3 {
			t.Errorf("%s stream: %d %q %v", method, resp.StatusCode, b, err)
		}
	}
}
