package identity_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/runtest"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// TestPasswordHashingBounded: 200 concurrent password hashes (user
// creations) and checks keep the node's memory bounded: a few hash at a
// time, a short queue waits, the rest are refused at once with 503
// password_hashing_busy and Retry-After, and nothing is half written.
func TestPasswordHashingBounded(t *testing.T) {
	dsn := storagetest.DSN(t, storage.SQLite)
	db := storagetest.Open(t, dsn, audit.Migrations(), tenants.Migrations(), identity.Migrations())
	l := audit.New(db, audit.Options{})
	t.Cleanup(func() { l.Close() })
	reg := tenants.NewRegistry(db, l, tenants.Options{})
	// 8 MiB per hash: 200 at once would need 1.6 GiB.
	argon := identity.Argon2Params{Memory: 8 << 10, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16}
	dir := identity.NewDirectory(db, l, identity.Options{Argon2: argon, HashWorkers: 2, HashQueue: 8})
	reg.AddOnboardingStep(dir.OnboardingStep())
	ctx := context.Background()
	runtest.Go(t, func(ctx context.Context) error { return reg.Run(ctx, 50*time.Millisecond) })
	if _, _, err := reg.Create(ctx, tenants.CreateRequest{ID: "acme"}, "", op); err != nil {
		t.Fatal(err)
	}
	runtest.Eventually(t, "acme active", func() bool {
		tn, _ := reg.Get(ctx, "acme")
		return tn.Status == tenants.Active
	})

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			default:
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	var created, busy, other atomic.Int64
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				_, err = dir.CreateUser(ctx, "acme", identity.CreateUserRequest{Email: fmt.Sprintf("u%03d@acme.example", i),
					Password: "correct horse battery staple"}, op)
			} else {
				_, err = dir.Authenticate(ctx, "acme", fmt.Sprintf("u%03d@acme.example", i-1), "correct horse battery staple")
			}
			e, _ := errs.As(err)
			switch {
			case err == nil:
				created.Add(1)
			case e != nil && e.Code == "password_hashing_busy":
				if e.RetryAfter <= 0 {
					t.Error("busy without Retry-After")
				}
				busy.Add(1)
			case e != nil && e.Code == "invalid_credentials":
				// checked before its user existed
			default:
				other.Add(1)
				t.Errorf("unexpected: %v", err)
			}
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	grew := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("created or signed in %d, busy %d; heap grew by at most %d MiB", created.Load(), busy.Load(), grew>>20)
	if busy.Load() == 0 {
		t.Error("200 concurrent hashes were all accepted: the queue is not bounded")
	}
	// 2 workers × 8 MiB plus what the rest of the work holds; unbounded
	// hashing would hold about 1.6 GiB.
	if grew > 200<<20 {
		t.Errorf("heap grew by %d MiB under 200 concurrent hashes", grew>>20)
	}
	// Refused creations wrote nothing: every user in the directory can sign in.
	users, err := dir.ListUsers(ctx, "acme", identity.ListOptions{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users.Items {
		if !u.PasswordSet {
			t.Errorf("user %s has no password", u.Email)
		}
	}
}
