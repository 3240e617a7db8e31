package provider

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
)

// TestUpstreamCacheBounds: the discovery cache keeps at most
// upstreamCacheSize issuers, each for upstreamCacheAge.
func TestUpstreamCacheBounds(t *testing.T) {
	var srv *httptest.Server
	fetches := 0
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches++
		issuer := srv.URL + strings.TrimSuffix(r.URL.Path, "/.well-known/openid-configuration")
		json.NewEncoder(w).Encode(map[string]any{"issuer": issuer, "authorization_endpoint": issuer + "/a", "token_endpoint": issuer + "/t",
			"jwks_uri": issuer + "/k"})
	}))
	defer srv.Close()
	clk := clock.NewFake(time.Now())
	u := newUpstreams(newUpstreamClient(2*time.Second, true), clk.Now)
	ctx := context.Background()
	for i := range upstreamCacheSize + 44 {
		if _, err := u.get(ctx, srv.URL+"/i/x"+strings.Repeat("x", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := u.cache.Len(); n != upstreamCacheSize {
		t.Errorf("cache holds %d issuers, want %d", n, upstreamCacheSize)
	}
	last := srv.URL + "/i/x" + strings.Repeat("x", upstreamCacheSize+43)
	before := fetches
	u.get(ctx, last)
	clk.Advance(upstreamCacheAge - time.Second)
	u.get(ctx, last)
	if fetches != before {
		t.Error("a cached issuer was fetched again within the hour")
	}
	clk.Advance(time.Second)
	u.get(ctx, last)
	if fetches != before+1 {
		t.Error("an issuer cached an hour ago was not fetched again")
	}
}

// TestCappedBody: an answer of exactly the cap is read; one byte more fails
// (rather than being truncated into something that may still parse).
func TestCappedBody(t *testing.T) {
	for _, n := range []int{0, 10, maxExchangeBytes} {
		b := &cappedBody{rc: io.NopCloser(strings.NewReader(strings.Repeat("x", n))), left: maxExchangeBytes}
		if got, err := io.ReadAll(b); err != nil || len(got) != n {
			t.Errorf("%d bytes: read %d, %v", n, len(got), err)
		}
	}
	b := &cappedBody{rc: io.NopCloser(strings.NewReader(strings.Repeat("x", maxExchangeBytes+1))), left: maxExchangeBytes}
	if _, err := io.ReadAll(b); !errors.Is(err, errUpstreamTooLarge) {
		t.Errorf("cap + 1 bytes: %v", err)
	}
	get, _ := http.NewRequest("GET", "https://idp.example/jwks", nil)
	post, _ := http.NewRequest("POST", "https://idp.example/token", nil)
	info, _ := http.NewRequest("GET", "https://idp.example/userinfo", nil)
	info.Header.Set("Authorization", "Bearer x")
	if capOf(get) != maxMetadataBytes || capOf(post) != maxExchangeBytes || capOf(info) != maxExchangeBytes {
		t.Error("caps: discovery and JWKS 512 KiB, token and userinfo 64 KiB")
	}
	// Cleartext is refused before anything is sent, except to loopback when
	// private upstreams are allowed.
	for _, tt := range []struct {
		url     string
		private bool
	}{{"http://idp.example/x", true}, {"http://127.0.0.1:1/x", false}, {"http://10.0.0.1/x", true}} {
		req, _ := http.NewRequest("GET", tt.url, nil)
		if _, err := (&cappedTransport{next: http.DefaultTransport, allowPrivate: tt.private}).RoundTrip(req); !errors.Is(err, errUpstreamCleartext) {
			t.Errorf("%s (private %v): %v", tt.url, tt.private, err)
		}
	}
}
