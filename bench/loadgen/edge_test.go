package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestParseEdgeTarget: only name=loopback-URL[,pid…], each name once.
func TestParseEdgeTarget(t *testing.T) {
	var ts edgeTargets
	for _, bad := range []string{"", "gateway", "=http://127.0.0.1:1", "gw=http://example.com", "gw=https://127.0.0.1:1",
		"gw=http://127.0.0.1:1,0", "gw=http://127.0.0.1:1,x", "direct=http://127.0.0.1:1", "a b=http://127.0.0.1:1"} {
		if err := ts.Set(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if err := ts.Set("nginx=http://127.0.0.1:8080/,12,13"); err != nil {
		t.Fatal(err)
	}
	if err := ts.Set("nginx=http://127.0.0.1:8081"); err == nil {
		t.Error("a name used twice was accepted")
	}
	if got := ts[0]; got.base != "http://127.0.0.1:8080" || len(got.pids) != 2 || got.pids[1] != 13 {
		t.Errorf("parsed %+v", got)
	}
}

// TestEdgeRun: a bare reverse proxy compared with the upstream it fronts
// gives one latency and one throughput line each, the proxy's with its
// CPU per request.
func TestEdgeRun(t *testing.T) {
	up, stop, err := serveUpstream("127.0.0.1:0", "up-token")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, up+r.URL.Path, nil)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer rp.Close()
	var ts edgeTargets
	if err := ts.Set("self=" + rp.URL + ",1"); err != nil { // pid 1: any readable process
		t.Fatal(err)
	}
	var out strings.Builder
	o := edgeOptions{duration: 200 * time.Millisecond, rounds: 2, conns: 2, host: "t.edge.test", upstreamURL: up, upstreamToken: "up-token", targets: ts}
	if err := edgeRun(context.Background(), o, &out); err != nil {
		t.Fatal(err)
	}
	for _, phase := range []string{"edge_lat_direct", "edge_lat_self", "edge_direct", "edge_self"} {
		if !strings.Contains(out.String(), "RESULT phase="+phase+" ") {
			t.Errorf("no %s line:\n%s", phase, out.String())
		}
	}
	if !strings.Contains(out.String(), "errors=0") || !strings.Contains(out.String(), "cpu_us_per_req=-1 rounds") {
		t.Errorf("errors, or no CPU figure of the direct side's -1:\n%s", out.String())
	}
	o.upstreamToken = "wrong"
	if err := edgeRun(context.Background(), o, io.Discard); err == nil {
		t.Error("a failing check request was not reported")
	}
}
