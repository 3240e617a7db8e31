package certs_test

import (
	"context"
	"net"
	"net/http/httptest"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/certs"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/certs/pebbletest"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/domains"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// TestOnDemandDomains: the manager asks the custom domains themselves: a
// pending domain gets no order, the same domain once verified gets its
// certificate, and once released it gets no new one.
func TestOnDemandDomains(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		ca := pebbletest.Start(t)
		db := storagetest.Open(t, dsn, audit.Migrations(), domains.Migrations(), certs.Migrations())
		l := audit.New(db, audit.Options{})
		t.Cleanup(func() { l.Close() })
		var gateway string
		ds := domains.New(domains.Config{DB: db, Audit: l, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, gateway)
		}})
		srv := httptest.NewServer(ds.ChallengeHandler())
		defer srv.Close()
		gateway = srv.Listener.Addr().String()
		node := tlsServer(t, newManager(t, newStorage(t, db, nil), ds, ca.CA))

		if _, err := ds.Create(ctx, "acme", "shop.acme.example", op); err != nil {
			t.Fatal(err)
		}
		if _, err := handshake(t, node, "shop.acme.example"); err == nil || ca.Orders() != 0 {
			t.Fatalf("pending domain: %v, %d orders", err, ca.Orders())
		}
		if _, err := ds.Verify(ctx, "acme", "shop.acme.example", op); err != nil {
			t.Fatal(err)
		}
		cert, err := handshake(t, node, "shop.acme.example")
		wantCert(t, "verified domain", cert, err, "shop.acme.example")
		if n := ca.Orders(); n != 1 {
			t.Errorf("%d orders", n)
		}
		if err := ds.Delete(ctx, "acme", "shop.acme.example", op); err != nil {
			t.Fatal(err)
		}
		if _, err := handshake(t, node, "other.acme.example"); err == nil || ca.Orders() != 1 {
			t.Errorf("unknown name: %v, %d orders", err, ca.Orders())
		}
	})
}
