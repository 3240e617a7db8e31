package certs_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/clock"
	"github.com/bulkhead-dev/bulkhead/internal/gateway/certs"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

var testKey = bytes.Repeat([]byte{7}, 32)

func newStorage(t *testing.T, db *storage.DB, c clock.Clock) *certs.Storage {
	t.Helper()
	s, err := certs.NewStorage(certs.StorageConfig{DB: db, Key: testKey, Clock: c, Lease: time.Minute, Poll: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStorage(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db := storagetest.Open(t, dsn, certs.Migrations())
		s := newStorage(t, db, nil)

		if _, err := s.Load(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("load missing: %v", err)
		}
		if _, err := s.Stat(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat missing: %v", err)
		}
		if _, err := s.List(ctx, "nope", true); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("list missing: %v", err)
		}
		keys := map[string]string{
			"certificates/ca1/a.example/a.example.crt": "crt-a",
			"certificates/ca1/a.example/a.example.key": "key-a",
			"certificates/ca1/b.example/b.example.crt": "crt-b",
			"certificates/ca2/a.example/a.example.crt": "crt-a2",
			"certificates/ca1_x/c.example/c.crt":       "not under ca1", // _ is no wildcard
			"acme/ca1/users/u/u.json":                  "{}",
		}
		for k, v := range keys {
			if err := s.Store(ctx, k, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Store(ctx, "certificates/ca1/a.example/a.example.key", []byte("key-a2")); err != nil {
			t.Fatal(err)
		}
		if v, err := s.Load(ctx, "certificates/ca1/a.example/a.example.key"); err != nil || string(v) != "key-a2" {
			t.Errorf("load: %q %v", v, err)
		}
		got, err := s.List(ctx, "certificates/ca1", false)
		if want := []string{"certificates/ca1/a.example", "certificates/ca1/b.example"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("list: %v %v, want %v", got, err, want)
		}
		got, err = s.List(ctx, "certificates/ca1/", true)
		if want := []string{"certificates/ca1/a.example", "certificates/ca1/a.example/a.example.crt", "certificates/ca1/a.example/a.example.key",
			"certificates/ca1/b.example", "certificates/ca1/b.example/b.example.crt"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("list recursive: %v %v, want %v", got, err, want)
		}
		if ki, err := s.Stat(ctx, "certificates/ca1/a.example/a.example.crt"); err != nil || !ki.IsTerminal || ki.Size != 5 || ki.Modified.IsZero() {
			t.Errorf("stat file: %+v %v", ki, err)
		}
		if ki, err := s.Stat(ctx, "certificates/ca1"); err != nil || ki.IsTerminal {
			t.Errorf("stat dir: %+v %v", ki, err)
		}
		if !s.Exists(ctx, "certificates") || s.Exists(ctx, "certificates/ca") {
			t.Error("exists")
		}
		if err := s.Delete(ctx, "certificates/ca1"); err != nil {
			t.Fatal(err)
		}
		if s.Exists(ctx, "certificates/ca1/a.example/a.example.crt") || !s.Exists(ctx, "certificates/ca1_x/c.example/c.crt") ||
			!s.Exists(ctx, "certificates/ca2/a.example/a.example.crt") {
			t.Error("delete removed the wrong keys")
		}
		if err := s.Delete(ctx, "never-there"); err != nil {
			t.Errorf("delete missing: %v", err)
		}

		// Values are sealed at rest, and bound to their key.
		var raw string
		if err := db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
			return tx.QueryRow(ctx, `SELECT value FROM cert_store WHERE key = ?`, "certificates/ca2/a.example/a.example.crt").Scan(&raw)
		}); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains([]byte(raw), []byte("crt-a2")) {
			t.Error("value stored in the clear")
		}
		if err := db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE cert_store SET value = ? WHERE key = ?`, raw, "acme/ca1/users/u/u.json")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(ctx, "acme/ca1/users/u/u.json"); err == nil {
			t.Error("a value moved to another key opens")
		}
		other, _ := certs.NewStorage(certs.StorageConfig{DB: db, Key: bytes.Repeat([]byte{8}, 32)})
		if _, err := other.Load(ctx, "certificates/ca2/a.example/a.example.crt"); err == nil {
			t.Error("a value opens under another key")
		}
	})
}

// TestLocks: two nodes' storages on one database exclude each other; a
// dead holder's lease runs out; only the holder unlocks or renews.
func TestLocks(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		db1 := storagetest.Open(t, dsn, certs.Migrations())
		db2 := storagetest.Open(t, dsn)
		n1, n2 := newStorage(t, db1, clk), newStorage(t, db2, clk)

		if ok, err := n1.TryLock(ctx, "issue_cert_a.example"); !ok || err != nil {
			t.Fatalf("lock: %v %v", ok, err)
		}
		if ok, err := n2.TryLock(ctx, "issue_cert_a.example"); ok || err != nil {
			t.Fatalf("second holder: %v %v", ok, err)
		}
		if ok, _ := n1.TryLock(ctx, "issue_cert_a.example"); ok {
			t.Fatal("the same storage took a held lock twice")
		}
		if err := n2.Unlock(ctx, "issue_cert_a.example"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := n2.TryLock(ctx, "issue_cert_a.example"); ok {
			t.Fatal("another node's Unlock released the lock")
		}
		if err := n2.RenewLockLease(ctx, "issue_cert_a.example", time.Hour); err == nil {
			t.Error("another node renewed the lease")
		}
		if err := n1.RenewLockLease(ctx, "issue_cert_a.example", 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute + time.Second) // past the first lease, within the renewed one
		if ok, _ := n2.TryLock(ctx, "issue_cert_a.example"); ok {
			t.Fatal("took a renewed lease")
		}
		clk.Advance(time.Minute) // n1 "died": its lease runs out
		if ok, err := n2.TryLock(ctx, "issue_cert_a.example"); !ok || err != nil {
			t.Fatalf("take over an expired lease: %v %v", ok, err)
		}
		if err := n2.Unlock(ctx, "issue_cert_a.example"); err != nil {
			t.Fatal(err)
		}

		// Lock waits for the holder to let go, then serialises: never two
		// holders at once.
		s1, s2 := newStorage(t, db1, nil), newStorage(t, db2, nil) // polling on the real clock
		var held, max atomic.Int32
		var wg sync.WaitGroup
		for i, s := range []*certs.Storage{s1, s2, s1, s2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Lock(ctx, "issue_cert_b.example"); err != nil {
					t.Errorf("lock %d: %v", i, err)
					return
				}
				if n := held.Add(1); n > max.Load() {
					max.Store(n)
				}
				held.Add(-1)
				if err := s.Unlock(ctx, "issue_cert_b.example"); err != nil {
					t.Errorf("unlock %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		if max.Load() > 1 {
			t.Errorf("%d holders at once", max.Load())
		}
		// A cancelled wait returns.
		if ok, _ := n1.TryLock(ctx, "held"); !ok {
			t.Fatal("lock held")
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := n2.Lock(cctx, "held"); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled lock: %v", err)
		}
	})
}
