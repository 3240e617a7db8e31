package tenantdb_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
	"github.com/bulkhead-dev/bulkhead/sdk/tenantdb"
)

// connections counts the sessions on database, as the admin sees them.
func (e *env) connections(t *testing.T, database string) string {
	t.Helper()
	return e.cluster.Query(t, "", "SELECT count(*)::text FROM pg_stat_activity WHERE datname = $1", database)[0]
}

// TestSiloEviction: past MaxSiloPools the least recently used silo pool is
// closed (its connections end), except while a transaction holds it: then
// it is closed when that transaction ends.
func TestSiloEviction(t *testing.T) {
	e := newEnv(t)
	var silos []api.DataPlacement
	for _, tid := range []string{"ten-a", "ten-b", "ten-c"} {
		p := e.cluster.Silo(t, tid)
		e.resolver.Set(p)
		silos = append(silos, p)
	}
	db := e.open(t, tenantdb.Config{MaxSiloPools: 2}, "")
	insert(t, db, "ten-a", "a")
	insert(t, db, "ten-b", "b")
	if n := tenantdb.SiloPools(db); n != 2 {
		t.Fatalf("%d silo pools open", n)
	}
	insert(t, db, "ten-c", "c") // evicts a's
	if n := tenantdb.SiloPools(db); n != 2 {
		t.Fatalf("%d silo pools open, want 2", n)
	}
	runtest.Eventually(t, "a's silo connections to close", func() bool { return e.connections(t, silos[0].Database) == "0" })
	if e.connections(t, silos[2].Database) == "0" {
		t.Fatal("c's silo pool has no connection")
	}

	// a's transaction holds its pool while b and c evict it: it goes on,
	// and the pool closes when it ends.
	inTx, evicted, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- db.Tx(as("ten-a"), func(tx pgx.Tx) error {
			close(inTx)
			<-evicted
			var body string
			return tx.QueryRow(context.Background(), "SELECT body FROM notes").Scan(&body)
		})
	}()
	<-inTx
	insert(t, db, "ten-b", "b2")
	insert(t, db, "ten-c", "c2") // a's pool is the least recent now
	close(evicted)
	if err := <-done; err != nil {
		t.Fatalf("a's transaction on its evicted pool: %v", err)
	}
	runtest.Eventually(t, "a's evicted pool to close after its transaction", func() bool {
		return e.connections(t, silos[0].Database) == "0"
	})
}

// TestSiloIdle: Run closes a silo pool unused for SiloIdle.
func TestSiloIdle(t *testing.T) {
	e := newEnv(t)
	p := e.cluster.Silo(t, "ten-a")
	e.resolver.Set(p)
	db := e.open(t, tenantdb.Config{SiloIdle: 50 * time.Millisecond}, "")
	runtest.Go(t, db.Run)
	insert(t, db, "ten-a", "a")
	runtest.Eventually(t, "the idle silo pool to close", func() bool {
		return tenantdb.SiloPools(db) == 0 && e.connections(t, p.Database) == "0"
	})
	insert(t, db, "ten-a", "again") // and it opens again when needed
}
