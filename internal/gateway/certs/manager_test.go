package certs_test

import (
	"crypto/x509"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/certs"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/certs/pebbletest"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/domains/dnstest"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// TestOnDemand: a verified domain gets its certificate from the CA at its
// first handshake; an unknown or pending name never reaches the CA; a
// second node on the same database serves the first node's certificate
// without ordering one.
func TestOnDemand(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	ca := pebbletest.Start(t)
	v := &verified{names: map[string]bool{}}

	db1 := storagetest.Open(t, dsn, certs.Migrations())
	node1 := tlsServer(t, newManager(t, newStorage(t, db1, nil), v, ca.CA))

	// Unknown and pending names: the handshake fails, no order.
	for _, name := range []string{"stranger.example", "pending.example", "127.0.0.1", ""} {
		if _, err := handshake(t, node1, name); err == nil {
			t.Errorf("handshake for %q succeeded", name)
		}
	}
	if n := ca.Orders(); n != 0 {
		t.Fatalf("%d orders for names that are no verified domain", n)
	}

	v.set("shop.acme.example")
	cert, err := handshake(t, node1, "shop.acme.example")
	wantCert(t, "first handshake", cert, err, "shop.acme.example")
	if n := ca.Orders(); n != 1 {
		t.Fatalf("%d orders, want 1", n)
	}
	again, err := handshake(t, node1, "shop.acme.example")
	wantCert(t, "second handshake", again, err, "shop.acme.example")
	if !again.Equal(cert) || ca.Orders() != 1 {
		t.Errorf("a second handshake got another certificate (%d orders)", ca.Orders())
	}

	// Node 2 shares the database: it serves the same certificate.
	db2 := storagetest.Open(t, dsn)
	node2 := tlsServer(t, newManager(t, newStorage(t, db2, nil), v, ca.CA))
	shared, err := handshake(t, node2, "shop.acme.example")
	wantCert(t, "node 2", shared, err, "shop.acme.example")
	if !shared.Equal(cert) || ca.Orders() != 1 {
		t.Errorf("node 2 ordered its own certificate (%d orders)", ca.Orders())
	}
}

var op = tenant.Actor{Principal: "operator:test"}

// TestReissue moves every certificate of the first CA to the second, one
// at a time, while handshakes go on: none fails, and afterwards the names
// are served with the second CA's certificates.
func TestReissue(t *testing.T) {
	dsn := storagetest.DSN(t, storage.SQLite)
	first, second := pebbletest.Start(t), pebbletest.Start(t)
	v := &verified{names: map[string]bool{}}
	db := storagetest.Open(t, dsn, certs.Migrations())
	m := newManager(t, newStorage(t, db, nil), v, first.CA, second.CA)
	node := tlsServer(t, m)
	ctx := t.Context()

	names := []string{"a.acme.example", "b.acme.example", "c.globex.example"}
	old := map[string]*x509.Certificate{}
	for _, name := range names {
		v.set(name)
		cert, err := handshake(t, node, name)
		wantCert(t, name, cert, err, name)
		old[name] = cert
	}
	list, err := m.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("list: %+v %v", list, err)
	}
	for _, c := range list {
		if c.CA != first.URL || c.NotAfter.IsZero() {
			t.Errorf("before: %+v", c)
		}
	}

	if _, err := m.Reissue(ctx, second.URL, 0, op); !errs.Is(err, "last_ca") {
		t.Errorf("reissued from the last CA: %v", err)
	}
	if _, err := m.Reissue(ctx, "https://unknown.example/dir", 0, op); !errs.Is(err, "unknown_ca") {
		t.Errorf("reissued from an unknown CA: %v", err)
	}

	// Handshakes all along the reissue.
	stop := make(chan struct{})
	failures := make(chan error, 1000)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := handshake(t, node, names[i%len(names)]); err != nil {
				failures <- err
			}
		}
	}()
	// One at a time, as the CLI does.
	var steps []certs.Reissued
	for {
		r, err := m.Reissue(ctx, first.URL, 1, op)
		if err != nil || len(r.Items) != 1 || r.Items[0].Err != nil {
			t.Fatalf("reissue: %+v %v", r, err)
		}
		steps = append(steps, r)
		if r.Remaining == 0 {
			break
		}
	}
	close(stop)
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Errorf("handshake during the reissue: %v", err)
	}
	if len(steps) != 3 || steps[0].Remaining != 2 || steps[1].Remaining != 1 {
		t.Fatalf("reissue steps: %+v", steps)
	}
	if n := second.Orders(); n != 3 {
		t.Errorf("%d orders from the second CA, want 3", n)
	}
	list, err = m.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("list after: %+v %v", list, err)
	}
	for _, c := range list {
		if c.CA != second.URL {
			t.Errorf("after: %+v", c)
		}
	}
	for _, name := range names {
		cert, err := handshake(t, node, name)
		wantCert(t, name+" after", cert, err, name)
		if cert.Equal(old[name]) || cert.Issuer.CommonName == old[name].Issuer.CommonName {
			t.Errorf("%s still served by %q", name, cert.Issuer.CommonName)
		}
	}
	if n := first.Orders(); n != 3 {
		t.Errorf("%d orders from the first CA, want 3", n)
	}
}

// TestHTTP01: pebble validates the order for real, fetching the HTTP-01
// challenge from the manager's challenge handler on loopback (the name
// points there through a DNS server on loopback).
func TestHTTP01(t *testing.T) {
	dnsServer := dnstest.Start(t)
	dnsServer.SetA("shop.acme.example", netip.MustParseAddr("127.0.0.1"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ca := pebbletest.StartHTTP01(t, ln.Addr().(*net.TCPAddr).Port, dnsServer.Addr)
	db := storagetest.Open(t, storagetest.DSN(t, storage.SQLite), certs.Migrations())
	v := &verified{names: map[string]bool{"shop.acme.example": true}}
	m := newManager(t, newStorage(t, db, nil), v, ca.CA)
	var fetched atomic.Int32
	challenges := m.HTTPChallengeHandler(http.NotFoundHandler())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			fetched.Add(1)
		}
		challenges.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	cert, err := handshake(t, tlsServer(t, m), "shop.acme.example")
	wantCert(t, "HTTP-01", cert, err, "shop.acme.example")
	if fetched.Load() == 0 {
		t.Error("the CA never fetched the challenge")
	}
}

// TestReissueReachesOtherNodes: two nodes share one PostgreSQL; a
// reissue on the first moves the certificates, and the second, which
// had cached the old CA's, serves the new CA's at once, not at renewal.
func TestReissueReachesOtherNodes(t *testing.T) {
	dsn := storagetest.DSN(t, storage.Postgres)
	first, second := pebbletest.Start(t), pebbletest.Start(t)
	v := &verified{names: map[string]bool{}}
	db1 := storagetest.Open(t, dsn, certs.Migrations())
	db2 := storagetest.Open(t, dsn, certs.Migrations())
	m1 := newManager(t, newStorage(t, db1, nil), v, first.CA, second.CA)
	m2 := newManager(t, newStorage(t, db2, nil), v, first.CA, second.CA)
	node2 := tlsServer(t, m2)
	names := []string{"a.acme.example", "b.globex.example"}
	old := map[string]*x509.Certificate{}
	for _, name := range names {
		v.set(name)
		cert, err := handshake(t, node2, name)
		wantCert(t, name, cert, err, name)
		old[name] = cert
	}
	// The first node lists (and reissues) what the shared storage holds.
	r, err := m1.Reissue(t.Context(), first.URL, 0, op)
	if err != nil || r.Moved != len(names) {
		t.Fatalf("reissue: %+v %v", r, err)
	}
	for _, name := range names {
		runtest.Eventually(t, name+" from the second CA on the other node", func() bool {
			cert, err := handshake(t, node2, name)
			return err == nil && cert.Issuer.CommonName != old[name].Issuer.CommonName
		})
	}
	if n := first.Orders(); n != len(names) {
		t.Errorf("%d orders from the first CA, want %d (the other node ordered again?)", n, len(names))
	}
}
