package certs_test

import (
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/gateway/certs"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// TestOnDemand: a verified domain gets its certificate from the CA at its
// first handshake; an unknown or pending name never reaches the CA; a
// second node on the same database serves the first node's certificate
// without ordering one.
func TestOnDemand(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	ca := startPebble(t)
	v := &verified{names: map[string]bool{}}

	db1 := storagetest.Open(t, dsn, certs.Migrations())
	node1 := tlsServer(t, newManager(t, newStorage(t, db1, nil), v, ca.ca))

	// Unknown and pending names: the handshake fails, no order.
	for _, name := range []string{"stranger.example", "pending.example", "127.0.0.1", ""} {
		if _, err := handshake(t, node1, name); err == nil {
			t.Errorf("handshake for %q succeeded", name)
		}
	}
	if n := ca.orders.Load(); n != 0 {
		t.Fatalf("%d orders for names that are no verified domain", n)
	}

	v.set("shop.acme.example")
	cert, err := handshake(t, node1, "shop.acme.example")
	wantCert(t, "first handshake", cert, err, "shop.acme.example")
	if n := ca.orders.Load(); n != 1 {
		t.Fatalf("%d orders, want 1", n)
	}
	again, err := handshake(t, node1, "shop.acme.example")
	wantCert(t, "second handshake", again, err, "shop.acme.example")
	if !again.Equal(cert) || ca.orders.Load() != 1 {
		t.Errorf("a second handshake got another certificate (%d orders)", ca.orders.Load())
	}

	// Node 2 shares the database: it serves the same certificate.
	db2 := storagetest.Open(t, dsn)
	node2 := tlsServer(t, newManager(t, newStorage(t, db2, nil), v, ca.ca))
	shared, err := handshake(t, node2, "shop.acme.example")
	wantCert(t, "node 2", shared, err, "shop.acme.example")
	if !shared.Equal(cert) || ca.orders.Load() != 1 {
		t.Errorf("node 2 ordered its own certificate (%d orders)", ca.orders.Load())
	}
}
