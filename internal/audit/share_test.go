package audit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// TestQueueShare: a tenant flooding its chain (decision records, say)
// holds at most one batch's worth of the shared queue, so another
// tenant's event is written after a batch or two, not after the flood.
func TestQueueShare(t *testing.T) {
	db := storagetest.Open(t, storagetest.DSN(t, storage.SQLite), Migrations())
	l := New(db, Options{MaxBatch: 32})
	t.Cleanup(func() { l.Close() })
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 100 {
				if err := l.Enqueue(ctx, Event{TenantID: "noisy", Principal: "p", Action: "authz.decision"}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // the flood is under way
	maxQueued := 0
	for range 20 {
		maxQueued = max(maxQueued, len(l.reqs))
		time.Sleep(time.Millisecond)
	}
	if maxQueued > 32 {
		t.Errorf("one chain held %d places in the queue; its share is 32", maxQueued)
	}
	start := time.Now()
	if err := l.Append(ctx, Event{TenantID: "quiet", Principal: "p", Action: "user.created"}); err != nil {
		t.Fatal(err)
	}
	t.Logf("the quiet tenant's event was written after %v, with %d of the noisy one's queued", time.Since(start), len(l.reqs))
	wg.Wait()
}
