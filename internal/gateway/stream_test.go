package gateway_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/gateway"
)

// TestWebSocket: an Upgrade passes through and the connection then carries
// bytes both ways.
func TestWebSocket(t *testing.T) {
	e := newEnv(t)
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || r.Header.Get(gateway.AssertionHeader) == "" {
			http.Error(w, "no upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, brw) // echo
	}))
	defer echo.Close()
	e.setRoutes(t, gateway.Route{ID: "rt", Host: "*." + appDomain, PathPrefix: "/", Upstream: echo.URL})
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: acme."+appDomain+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	for _, msg := range []string{"hello", "tenant"} {
		io.WriteString(c, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
			t.Fatalf("echo %q: %q %v", msg, got, err)
		}
	}
}

// TestStreaming: a response without a length reaches the client as it is
// written, not when it ends.
func TestStreaming(t *testing.T) {
	e := newEnv(t)
	next := make(chan struct{})
	stream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-next
		io.WriteString(w, "data: two\n\n")
	}))
	defer stream.Close()
	e.setRoutes(t, gateway.Route{ID: "rt", Host: "*." + appDomain, PathPrefix: "/", Upstream: stream.URL})
	req, _ := http.NewRequest("GET", e.url+"/events", nil)
	req.Host = "acme." + appDomain
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "data: one\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	close(next)
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: two\n\n" {
		t.Fatalf("rest: %q", rest)
	}
}

// selfSigned is a CertSource that makes a certificate for any name and
// remembers which names it was asked for.
type selfSigned struct {
	mu    sync.Mutex
	asked []string
	key   *ecdsa.PrivateKey
}

func (s *selfSigned) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	s.asked = append(s.asked, hello.ServerName)
	s.mu.Unlock()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: hello.ServerName},
		DNSNames: []string{hello.ServerName}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &s.key.PublicKey, s.key)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: s.key}, nil
}

func (s *selfSigned) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.asked...)
}

// TestTLS: HTTP/2 and HTTP/1.1 over TLS (NewTLSListener, as the node
// serves it); the Host must be the connection's server name (421
// otherwise); unknown names never reach the certificate source; HTTP/1.1
// over TLS gets the framing check that plain HTTP gets.
func TestTLS(t *testing.T) {
	e := newEnv(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	certs := &selfSigned{key: key}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := gateway.NewServer(e.gw, nil)
	srv.TLSConfig = e.gw.TLSConfig(certs)
	tl := gateway.NewTLSListener(ln, srv.TLSConfig, gateway.MaxHeaderBytes, 5*time.Second)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(tl) }()
	defer func() {
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	base := "https://" + ln.Addr().String()
	// Clients that connect and never start a handshake hold no one up,
	// nor the server's Close (the deferred one above).
	for range 3 {
		idle, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer idle.Close()
	}
	client := func(sni string, h2 bool) *http.Client {
		tr := &http.Transport{ForceAttemptHTTP2: h2,
			TLSClientConfig: &tls.Config{ServerName: sni, InsecureSkipVerify: true}} //nolint:gosec // self-signed test certificates
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		return &http.Client{Transport: tr}
	}
	for _, h2 := range []bool{false, true} {
		req, _ := http.NewRequest("GET", base+"/", nil)
		req.Host = "acme." + appDomain
		resp, err := client("acme."+appDomain, h2).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || (resp.ProtoMajor == 2) != h2 || string(b) != "pool acme anonymous" {
			t.Fatalf("h2 %v: %d %s %q", h2, resp.StatusCode, resp.Proto, b)
		}
		req, _ = http.NewRequest("GET", base+"/", nil)
		req.Host = "globex.example"
		resp, err = client("acme.example", h2).Do(req)
		if err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
			t.Fatalf("h2 %v: host and SNI disagree: %v %v", h2, resp, err)
		}
		resp.Body.Close()
	}
	// HTTP/1.1 over TLS: ambiguous framing refused before net/http reads it.
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "acme." + appDomain, InsecureSkipVerify: true, //nolint:gosec // self-signed test certificates
		NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: acme."+appDomain+"\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("CL and TE over TLS: %v %v", resp, err)
	}
	c.Close()
	get := func(sni, host string) (*http.Response, string, error) {
		req, _ := http.NewRequest("GET", base+"/", nil)
		req.Host = host
		resp, err := client(sni, true).Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), nil
	}
	for _, sni := range []string{"nobody." + appDomain, "evil.example", "a.acme." + appDomain, "-x-." + appDomain} {
		if _, _, err := get(sni, sni); err == nil {
			t.Fatalf("%s: a handshake for an unknown name succeeded", sni)
		}
	}
	for _, n := range certs.names() {
		if n != "acme."+appDomain && n != "acme.example" {
			t.Fatalf("the certificate source was asked for %q", n)
		}
	}
	if e.pool.count.Load() != 2 {
		t.Fatalf("the upstream saw %d requests", e.pool.count.Load())
	}
}

// TestEncodingPassesThrough: the gateway asks the application for no
// encoding the client did not ask for, and passes on the one it did.
func TestEncodingPassesThrough(t *testing.T) {
	e := newEnv(t)
	for _, ae := range []string{"", "br"} {
		req, _ := http.NewRequest("GET", e.url+"/", nil)
		req.Host = "acme." + appDomain
		if ae != "" {
			req.Header.Set("Accept-Encoding", ae)
		}
		tr := &http.Transport{DisableCompression: true}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		tr.CloseIdleConnections()
		if got := e.pool.seen().header.Get("Accept-Encoding"); resp.StatusCode != 200 || got != ae {
			t.Errorf("client Accept-Encoding %q: %d, the application saw %q", ae, resp.StatusCode, got)
		}
	}
}
