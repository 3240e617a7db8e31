package kms_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/kms"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// newRootKey returns a valid root key, base64, as BULKHEAD_ROOT_KEY takes it.
func newRootKey() string {
	var b [kms.RootKeySize]byte
	rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

func readKeyFile(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, kms.RootKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func recordedCheck(t *testing.T, db *storage.DB) string {
	t.Helper()
	var v string
	err := db.View(context.Background(), storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(context.Background(), `SELECT check_value FROM kms_root_key`).Scan(&v)
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// noKeyMaterial fails if err's text holds any of the keys (base64, as in
// the key file and BULKHEAD_ROOT_KEY) or the recorded check value.
func noKeyMaterial(t *testing.T, what string, err error, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("%s: the error shows key material: %v", what, err)
		}
	}
}

// TestRootKeyCheck: the first start records a check value of the root key
// (not the key); later starts with the key deleted, or with another valid
// key in the file or in BULKHEAD_ROOT_KEY, are refused without a key being
// made, and saying what to restore; only an explicit replacement changes
// the database's key.
func TestRootKeyCheck(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db := storagetest.Open(t, dsn, kms.Migrations(), signing.Migrations())
		dir := t.TempDir()
		open := func(env string, replace bool) (*kms.RootKey, kms.RootKeyOpened, error) {
			t.Helper()
			return kms.OpenRootKey(ctx, db, kms.RootKeyOptions{Dir: dir, Env: env, Replace: replace,
				Samples: []kms.WrappedSample{signing.WrappedSample}})
		}
		keyPath := filepath.Join(dir, kms.RootKeyFile)

		// First start: a key is made, and its check value recorded.
		k, o, err := open("", false)
		if err != nil || !o.Created || o.Replaced {
			t.Fatalf("first start: %+v %v; want a key created", o, err)
		}
		k.Zero()
		key := readKeyFile(t, dir)
		check := recordedCheck(t, db)
		if raw, err := base64.StdEncoding.DecodeString(check); err != nil || len(raw) != 32 || check == key {
			t.Fatalf("recorded check value %q: want 32 bytes that are not the key (%v)", check, err)
		}
		// Later starts take the key and make nothing.
		if k, o, err = open("", false); err != nil || o.Created {
			t.Fatalf("second start: %+v %v", o, err)
		}
		k.Zero()
		if k, _, err = open(key, false); err != nil {
			t.Fatalf("the same key in BULKHEAD_ROOT_KEY: %v", err)
		}
		k.Zero()

		// The key file deleted: refused, and no key is made.
		if err := os.Remove(keyPath); err != nil {
			t.Fatal(err)
		}
		_, _, err = open("", false)
		if !errors.Is(err, kms.ErrRootKeyMissing) || !strings.Contains(err.Error(), "Restore") || !strings.Contains(err.Error(), keyPath) ||
			!strings.Contains(err.Error(), "--new-root-key") {
			t.Fatalf("no key file: %v; want ErrRootKeyMissing saying what to restore", err)
		}
		noKeyMaterial(t, "no key file", err, key, check)
		if _, err := os.Stat(keyPath); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a start without the key made a key file (%v)", err)
		}

		// Another valid key, in the file or in BULKHEAD_ROOT_KEY: refused.
		other := newRootKey()
		if err := os.WriteFile(keyPath, []byte(other+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err = open("", false)
		if !errors.Is(err, kms.ErrRootKeyMismatch) || !strings.Contains(err.Error(), keyPath) || !strings.Contains(err.Error(), "--new-root-key") {
			t.Fatalf("another key in the file: %v; want ErrRootKeyMismatch", err)
		}
		noKeyMaterial(t, "another key in the file", err, key, other, check)
		if readKeyFile(t, dir) != other {
			t.Fatal("a refused start changed the key file")
		}
		if err := os.WriteFile(keyPath, []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err = open(other, false)
		if !errors.Is(err, kms.ErrRootKeyMismatch) || !strings.Contains(err.Error(), "BULKHEAD_ROOT_KEY") {
			t.Fatalf("another key in BULKHEAD_ROOT_KEY: %v; want ErrRootKeyMismatch", err)
		}
		noKeyMaterial(t, "another key in BULKHEAD_ROOT_KEY", err, key, other, check)
		if recordedCheck(t, db) != check {
			t.Fatal("a refused start changed the recorded check value")
		}

		// The deliberate replacement: the other key becomes the database's.
		k, o, err = open(other, true)
		if err != nil || !o.Replaced || o.Created {
			t.Fatalf("replace with BULKHEAD_ROOT_KEY: %+v %v", o, err)
		}
		k.Zero()
		if _, _, err := open("", false); !errors.Is(err, kms.ErrRootKeyMismatch) {
			t.Fatalf("the old key after the replacement: %v; want ErrRootKeyMismatch", err)
		}
		if k, _, err = open(other, false); err != nil {
			t.Fatalf("the new key after the replacement: %v", err)
		}
		k.Zero()
		// Replacing with the key the database already has changes nothing.
		if _, o, err = open(other, true); err != nil || o.Replaced || o.Created {
			t.Fatalf("replace with the same key: %+v %v", o, err)
		}
		// A replacement without any key makes one.
		if err := os.Remove(keyPath); err != nil {
			t.Fatal(err)
		}
		if k, o, err = open("", true); err != nil || !o.Replaced || !o.Created {
			t.Fatalf("replace without a key: %+v %v; want a new key made", o, err)
		}
		k.Zero()
		if k, _, err = open("", false); err != nil {
			t.Fatalf("the new key file after the replacement: %v", err)
		}
		k.Zero()
	})
}

// TestRootKeyCheckOfAnOlderDatabase: a database from before check values,
// holding keys wrapped under a root key, takes only that key (which it
// then records), and never makes one.
func TestRootKeyCheckOfAnOlderDatabase(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db := storagetest.Open(t, dsn, kms.Migrations(), signing.Migrations())
		key := newRootKey()
		rk, _, err := kms.LoadRootKey(t.TempDir(), key)
		if err != nil {
			t.Fatal(err)
		}
		store, err := signing.NewStore(db, rk, signing.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Active(ctx, signing.Platform); err != nil { // stores a wrapped signing key
			t.Fatal(err)
		}
		dir := t.TempDir()
		open := func(env string) error {
			k, _, err := kms.OpenRootKey(ctx, db, kms.RootKeyOptions{Dir: dir, Env: env, Samples: []kms.WrappedSample{signing.WrappedSample}})
			if err == nil {
				k.Zero()
			}
			return err
		}
		if err := open(""); !errors.Is(err, kms.ErrRootKeyMissing) {
			t.Fatalf("no key: %v; want ErrRootKeyMissing", err)
		}
		if _, err := os.Stat(filepath.Join(dir, kms.RootKeyFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("a key was made for a database that holds wrapped keys")
		}
		other := newRootKey()
		if err := open(other); !errors.Is(err, kms.ErrRootKeyMismatch) {
			t.Fatalf("another key: %v; want ErrRootKeyMismatch", err)
		}
		if err := open(key); err != nil {
			t.Fatalf("the key the material is wrapped under: %v", err)
		}
		recordedCheck(t, db) // recorded now
		if err := open(other); !errors.Is(err, kms.ErrRootKeyMismatch) {
			t.Fatalf("another key once the check is recorded: %v", err)
		}
	})
}

// TestRootKeyCheckNodesStartingTogether: nodes that start at once on a new
// database, each with a key of its own (from BULKHEAD_ROOT_KEY) or none,
// record one key; every other node is refused, and none is left with a key
// file it made.
func TestRootKeyCheckNodesStartingTogether(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		storagetest.Open(t, dsn, kms.Migrations(), signing.Migrations())
		const n = 6
		var wg sync.WaitGroup
		errs := make([]error, n)
		dirs := make([]string, n)
		for i := range n {
			dirs[i] = t.TempDir()
			wg.Add(1)
			go func() {
				defer wg.Done()
				db, err := storage.Open(context.Background(), dsn) // a node's own connections
				if err != nil {
					errs[i] = err
					return
				}
				defer db.Close()
				env := ""
				if i%2 == 0 {
					env = newRootKey()
				}
				k, _, err := kms.OpenRootKey(context.Background(), db, kms.RootKeyOptions{Dir: dirs[i], Env: env})
				if err == nil {
					k.Zero()
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		ok := 0
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, kms.ErrRootKeyMismatch) && !errors.Is(err, kms.ErrRootKeyMissing):
				t.Errorf("node %d: %v; want success, ErrRootKeyMismatch or ErrRootKeyMissing", i, err)
			default:
				if _, serr := os.Stat(filepath.Join(dirs[i], kms.RootKeyFile)); !errors.Is(serr, os.ErrNotExist) {
					t.Errorf("node %d was refused but kept the key file it made", i)
				}
			}
		}
		if ok != 1 {
			t.Errorf("%d nodes started; want exactly one", ok)
		}
	})
}
