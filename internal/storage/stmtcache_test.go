package storage

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func openTestSQLite(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(context.Background(), PlatformScope(), func(tx *Tx) error {
		_, err := tx.Exec(context.Background(), `CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return db
}

// cached reports whether c holds a prepared statement for q.
func (c *stmtCache) cached(q string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stmts[q] != nil
}

func (c *stmtCache) await(t *testing.T, q string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !c.cached(q) {
		if time.Now().After(deadline) {
			t.Fatalf("%q was never prepared", q)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStatementsArePreparedOnce: a query is prepared in the background
// after its first run and answers the same from then on, in write and
// read transactions alike, and after the table it reads changed shape.
func TestStatementsArePreparedOnce(t *testing.T) {
	db := openTestSQLite(t)
	ctx := context.Background()
	const put, get = `INSERT INTO kv (k, v) VALUES (?, ?)`, `SELECT v FROM kv WHERE k = ?`
	for i := range 20 {
		if err := db.Update(ctx, PlatformScope(), func(tx *Tx) error {
			_, err := tx.Exec(ctx, put, fmt.Sprint("k", i), fmt.Sprint("v", i))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			db.writeStmts.await(t, put)
		}
	}
	for i := range 20 {
		var v string
		if err := db.View(ctx, PlatformScope(), func(tx *Tx) error {
			return tx.QueryRow(ctx, get, fmt.Sprint("k", i)).Scan(&v)
		}); err != nil || v != fmt.Sprint("v", i) {
			t.Fatalf("k%d = %q, %v", i, v, err)
		}
		if i == 0 {
			db.readStmts.await(t, get)
		}
	}
	if db.writeStmts.cached(get) || db.readStmts.cached(put) {
		t.Fatal("a statement was prepared on a pool that never ran it")
	}
	// The table changes shape under the prepared statement: SQLite
	// prepares it again itself.
	const all = `SELECT * FROM kv WHERE k = 'k1'`
	cols := func() int {
		var n int
		if err := db.View(ctx, PlatformScope(), func(tx *Tx) error {
			rows, err := tx.Query(ctx, all)
			if err != nil {
				return err
			}
			defer rows.Close()
			c, err := rows.Columns()
			n = len(c)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	cols()
	db.readStmts.await(t, all)
	if err := db.Update(ctx, PlatformScope(), func(tx *Tx) error {
		_, err := tx.Exec(ctx, `ALTER TABLE kv ADD COLUMN extra TEXT`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := cols(); n != 3 {
		t.Fatalf("after ALTER TABLE the prepared SELECT * gives %d columns, want 3", n)
	}
}

// TestPreparingNeverWaitsForTheWriter: the writer pool has one
// connection; a write transaction that runs many new statements holds it
// while each of them asks to be prepared. The prepares wait for the
// connection in the background, not the transaction for them.
func TestPreparingNeverWaitsForTheWriter(t *testing.T) {
	db := openTestSQLite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var qs []string
	for i := range 50 {
		qs = append(qs, fmt.Sprintf(`INSERT INTO kv (k, v) VALUES ('w%d', ?)`, i))
	}
	if err := db.Update(ctx, PlatformScope(), func(tx *Tx) error {
		for _, q := range qs {
			if _, err := tx.Exec(ctx, q, "x"); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("a write transaction of new statements: %v", err)
	}
	for _, q := range qs {
		db.writeStmts.await(t, q)
	}
}

// TestScriptsAndFailuresRunUnprepared: a script of several statements
// and a statement that cannot be prepared outside its transaction run as
// they are, every time.
func TestScriptsAndFailuresRunUnprepared(t *testing.T) {
	db := openTestSQLite(t)
	ctx := context.Background()
	const script = `INSERT INTO kv (k, v) VALUES ('a', '1'); INSERT INTO kv (k, v) VALUES ('b', '2')`
	const onTemp = `INSERT INTO tmp_x (v) VALUES (?)`
	for i := range 3 {
		if err := db.Update(ctx, PlatformScope(), func(tx *Tx) error {
			if _, err := tx.Exec(ctx, `DELETE FROM kv`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, script); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `CREATE TEMP TABLE tmp_x (v TEXT)`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, onTemp, "x"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DROP TABLE tmp_x`)
			return err
		}); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		var n int
		if err := db.View(ctx, PlatformScope(), func(tx *Tx) error {
			return tx.QueryRow(ctx, `SELECT COUNT(*) FROM kv`).Scan(&n)
		}); err != nil || n != 2 {
			t.Fatalf("round %d: the script left %d rows, %v", i, n, err)
		}
		time.Sleep(20 * time.Millisecond) // the background prepares
	}
	if db.writeStmts.cached(script) {
		t.Fatal("a script was kept prepared")
	}
}

// TestCloseWaitsForPrepares: closing the database while prepares are
// under way neither hangs nor leaves a statement behind.
func TestCloseWaitsForPrepares(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 20 {
		db.View(ctx, PlatformScope(), func(tx *Tx) error {
			var n int
			return tx.QueryRow(ctx, fmt.Sprintf(`SELECT %d`, i)).Scan(&n)
		})
	}
	done := make(chan error, 1)
	go func() { done <- db.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Close hung on the prepares")
	}
	if n := len(db.readStmts.stmts); n != 0 {
		t.Fatalf("%d statements left after Close", n)
	}
}

// TestBusyPoolIsAskedAgain: a prepare that timed out waiting for the
// writer (a long transaction held it) is no verdict on the statement: the
// next use asks again, and it is prepared then.
func TestBusyPoolIsAskedAgain(t *testing.T) {
	db := openTestSQLite(t)
	db.writeStmts.timeout = 50 * time.Millisecond
	ctx := context.Background()
	const q = `INSERT INTO kv (k, v) VALUES (?, 'x')`
	if err := db.Update(ctx, PlatformScope(), func(tx *Tx) error {
		if _, err := tx.Exec(ctx, q, "a"); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond) // the prepare times out meanwhile
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.writeStmts.wg.Wait()
	if db.writeStmts.cached(q) {
		t.Fatal("prepared while the writer was held")
	}
	if err := db.Update(ctx, PlatformScope(), func(tx *Tx) error {
		_, err := tx.Exec(ctx, q, "b")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	db.writeStmts.await(t, q)
}
