package httpapi_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/apitest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// TestProxySlowBody: a client with a valid Part A that trickles its body
// in (the attack kept one open past 90 s) is cut off at the body timeout
// with 408, and the exchange is audited.
func TestProxySlowBody(t *testing.T) {
	dsn := storagetest.DSN(t, storage.SQLite)
	a := newTwoTenantEnvWith(t, dsn, apitest.Options{TenantTokens: connTokens(), ProxyBodyTimeout: 500 * time.Millisecond})
	const token = "sk_live_slow_body_0123456789abcdef"
	up := newUpstream(t, token, nil)
	c := a.createConn("tenant-a", "tok-admin-a", map[string]any{"name": "crm", "upstream_url": up.URL + "/api", "token": token,
		"placement": map[string]string{"type": "bearer"}})
	conn, err := net.Dial("tcp", strings.TrimPrefix(a.env.ProxyURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /c/%s/upload HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer %s\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n",
		c.ID, c.Grant.PartA)
	start := time.Now()
	go func() {
		for range 20 { // a byte every 100 ms: 2 s for 20 of 1000 bytes
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	resp.Body.Close()
	if d := time.Since(start); resp.StatusCode != http.StatusRequestTimeout || d > 3*time.Second {
		t.Errorf("a trickled body: %d after %v; want 408 after about 0.5 s", resp.StatusCode, d)
	}
}
