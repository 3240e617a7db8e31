package signing_test

import (
	"context"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

func kids(keys []jose.JSONWebKey) map[string]bool {
	out := map[string]bool{}
	for _, k := range keys {
		out[k.KeyID] = true
	}
	return out
}

// TestPublished: the node's own token checks read every issuer's keys from
// memory: loaded at start, changed at once by this node's rotations and
// deletions, and made-up issuers are simply unknown.
func TestPublished(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db := storagetest.Open(t, dsn, signing.Migrations())
		root := rootKey(t, 1)
		clk := clock.NewFake(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
		s := newStore(t, db, root, clk, jose.ES256)
		platform, err := s.Active(ctx, signing.Platform)
		if err != nil {
			t.Fatal(err)
		}
		silo, err := s.Active(ctx, signing.Issuer{Tenant: "bigco"})
		if err != nil {
			t.Fatal(err)
		}
		pub := s.Published()
		v0 := pub.Version()
		if keys, ok := pub.IssuerKeys("", platform.ID); !ok || !kids(keys)[platform.ID] || kids(keys)[silo.ID] {
			t.Errorf("platform keys: %v %v", kids(keys), ok)
		}
		if keys, ok := pub.IssuerKeys("bigco", silo.ID); !ok || !kids(keys)[silo.ID] || kids(keys)[platform.ID] {
			t.Errorf("silo keys: %v %v", kids(keys), ok)
		}
		if _, ok := pub.IssuerKeys("made-up", "sig_x"); ok {
			t.Error("a made-up issuer has keys")
		}
		// A rotation is seen at once; the retired key stays published.
		next, err := s.Rotate(ctx, signing.Issuer{Tenant: "bigco"})
		if err != nil {
			t.Fatal(err)
		}
		if pub.Version() == v0 {
			t.Error("the version did not move with a rotation")
		}
		if keys, _ := pub.IssuerKeys("bigco", next.ID); !kids(keys)[next.ID] || !kids(keys)[silo.ID] {
			t.Errorf("after rotation: %v", kids(keys))
		}
		// Past the retired key's publication it is gone.
		clk.Advance(2 * time.Hour)
		if keys, _ := pub.IssuerKeys("bigco", ""); kids(keys)[silo.ID] || !kids(keys)[next.ID] {
			t.Errorf("past publication: %v", kids(keys))
		}
		// A new store (a restarted node) loads them all.
		s2 := newStore(t, db, root, clk, jose.ES256)
		if keys, ok := s2.Published().IssuerKeys("bigco", ""); !ok || !kids(keys)[next.ID] {
			t.Errorf("loaded at start: %v %v", kids(keys), ok)
		}
		// Offboarding: the issuer is gone at once.
		err = db.Update(ctx, storage.TenantScope(tenant.ID("bigco")), func(tx *storage.Tx) error { return s.DeleteIssuer(ctx, tx) })
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := pub.IssuerKeys("bigco", next.ID); ok {
			t.Error("a deleted issuer still has keys")
		}
	})
}

// TestPublishedAcrossNodes: on PostgreSQL another node's new key reaches
// this one by notification, and a token naming a key this node has not
// heard of yet makes it read the database (within a small budget).
func TestPublishedAcrossNodes(t *testing.T) {
	dsn := storagetest.DSN(t, storage.Postgres)
	ctx := context.Background()
	root := rootKey(t, 1)
	db1 := storagetest.Open(t, dsn, signing.Migrations())
	db2 := storagetest.Open(t, dsn, signing.Migrations())
	s1 := newStore(t, db1, root, clock.System{}, jose.ES256)
	s2 := newStore(t, db2, root, clock.System{}, jose.ES256)

	// Not listening: the miss reads the database.
	k, err := s1.Active(ctx, signing.Issuer{Tenant: "newco"})
	if err != nil {
		t.Fatal(err)
	}
	if keys, ok := s2.Published().IssuerKeys("newco", k.ID); !ok || !kids(keys)[k.ID] {
		t.Errorf("a brand-new silo issuer's key on the other node: %v %v", kids(keys), ok)
	}
	// Running: another node's rotation arrives with no token asking for it
	// (by notification, or by the reload while not yet listening).
	runtest.Go(t, s2.Run)
	v := s2.Published().Version()
	k2, err := s1.Rotate(ctx, signing.Issuer{Tenant: "newco"})
	if err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, "the other node's rotation", func() bool {
		keys, _ := s2.Published().IssuerKeys("newco", "")
		return kids(keys)[k2.ID]
	})
	if s2.Published().Version() == v {
		t.Error("the published version did not move with the rotation")
	}
}
