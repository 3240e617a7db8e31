package migrate

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

func TestLockKey(t *testing.T) {
	sum := sha256.Sum256([]byte("bulkhead.app-migrations"))
	if got := int64(binary.BigEndian.Uint64(sum[:8])); got != lockKey {
		t.Fatalf("lockKey = %d, want %d", lockKey, got)
	}
}

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"002_items.sql":  {Data: []byte("CREATE TABLE items (id int);")},
		"001_init.sql":   {Data: []byte("CREATE TABLE a (id int);\n")},
		"README.md":      {Data: []byte("not a migration")},
		"sub/003_x.sql":  {Data: []byte("ignored: in a directory")},
		"010_later.sql":  {Data: []byte("SELECT 1")},
		"009_before.sql": {Data: []byte("SELECT 1")},
	}
	files, err := Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	if got, want := strings.Join(names, " "), "001_init.sql 002_items.sql 009_before.sql 010_later.sql"; got != want {
		t.Fatalf("Load order = %s, want %s", got, want)
	}
	sum := sha256.Sum256([]byte("CREATE TABLE a (id int);\n"))
	if files[0].Checksum != hex.EncodeToString(sum[:]) {
		t.Fatalf("checksum = %s", files[0].Checksum)
	}
	if err := checkFiles(files); err != nil {
		t.Fatalf("checkFiles(Load()) = %v", err)
	}
	tampered := append([]File(nil), files...)
	tampered[1].SQL += "DROP TABLE a;"
	if err := checkFiles(tampered); !errs.Is(err, "invalid_migration") {
		t.Fatalf("checkFiles with SQL that is not the checksum's = %v, want invalid_migration", err)
	}
}

// TestLoadRefuses is what a mistaken or hostile file set gets: a clear
// error before anything runs anywhere.
func TestLoadRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, file, sql, want string
	}{
		{"no number", "init.sql", "SELECT 1", "NNN_name.sql"},
		{"space in name", "001_a b.sql", "SELECT 1", "NNN_name.sql"},
		{"quote in name", "001_a'b.sql", "SELECT 1", "NNN_name.sql"},
		{"commit", "001_x.sql", "CREATE TABLE a (id int);\nCOMMIT;\nDROP TABLE b;", "line 2"},
		{"begin", "001_x.sql", "begin;\nCREATE TABLE a (id int);", "begin or end"},
		{"end", "001_x.sql", "SELECT 1;\n  end ;", "begin or end"},
		{"rollback", "001_x.sql", "SELECT 1; ROLLBACK", "roll it back"},
		{"start transaction", "001_x.sql", "START TRANSACTION", "begin or end"},
		{"prepare transaction", "001_x.sql", "PREPARE TRANSACTION 'x'", "prepare"},
		{"commit after comment", "001_x.sql", "/* a /* nested */ comment */ COMMIT", "begin or end"},
		{"commit after string", "001_x.sql", "SELECT 'it''s;'; COMMIT", "begin or end"},
		{"commit after E string", "001_x.sql", "SELECT E'\\';'; COMMIT", "begin or end"},
		{"commit after dollar body", "001_x.sql", "DO $b$ BEGIN PERFORM 1; END $b$; COMMIT", "begin or end"},
		{"commit after atomic body", "001_x.sql",
			"CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; END;\nCOMMIT;", "line 2"},
		{"set role", "001_x.sql", "SET ROLE postgres;", "role"},
		{"set session authorization", "001_x.sql", "SET SESSION AUTHORIZATION postgres;", "role"},
		{"set local role", "001_x.sql", "SET SESSION ROLE postgres;", "role"},
		{"reset role", "001_x.sql", "RESET ROLE;", "role"},
		{"reset all", "001_x.sql", "RESET ALL;", "search_path"},
		{"set search_path", "001_x.sql", "SET search_path TO public;\nCREATE TABLE t (id int);", "line 1: a file may not change the search_path"},
		{"set local search_path", "001_x.sql", "SET LOCAL search_path = public", "search_path"},
		{"set session search_path", "001_x.sql", "set session search_path = public", "search_path"},
		{"open string", "001_x.sql", "SELECT 1;\nSELECT 'abc", "line 2: string constant not closed"},
		{"open comment", "001_x.sql", "/* abc", "comment not closed"},
		{"open dollar", "001_x.sql", "SELECT $q$ abc", "not closed"},
		{"open identifier", "001_x.sql", `SELECT "abc`, "identifier not closed"},
		{"not utf-8", "001_x.sql", "SELECT '\xff'", "UTF-8"},
		{"NUL", "001_x.sql", "SELECT 1;\x00", "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(fstest.MapFS{tc.file: {Data: []byte(tc.sql)}})
			if !errs.Is(err, "invalid_migration") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load(%q) = %v, want invalid_migration with %q", tc.sql, err, tc.want)
			}
		})
	}
	if _, err := Load(fstest.MapFS{"10_b.sql": {Data: []byte("SELECT 1")}, "9_a.sql": {Data: []byte("SELECT 1")}}); !errs.Is(err, "invalid_migration") {
		t.Fatalf("10_b.sql sorted before 9_a.sql: %v, want invalid_migration", err)
	}
	if _, err := Load(fstest.MapFS{"001_b.sql": {Data: []byte("SELECT 1")}, "01_a.sql": {Data: []byte("SELECT 1")}}); !errs.Is(err, "invalid_migration") {
		t.Fatalf("two files numbered 1: %v, want invalid_migration", err)
	}
	if _, err := Load(fstest.MapFS{"README": {Data: []byte("x")}}); !errs.Is(err, "invalid_migration") {
		t.Fatalf("no files: %v, want invalid_migration", err)
	}
}

// TestLoadAccepts is what the scanner must not mistake for a statement
// that begins or ends a transaction.
func TestLoadAccepts(t *testing.T) {
	for _, sql := range []string{
		"CREATE TABLE t (id int); -- COMMIT;\nSELECT 1",
		"SELECT 'COMMIT; BEGIN'",
		`CREATE TABLE "commit" (id int); SELECT * FROM "commit"`,
		"CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$;",
		"CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END; SELECT g();",
		"CREATE PROCEDURE p() BEGIN ATOMIC SELECT 1; END",
		"SET LOCAL ROLE someone; SELECT 1",
		"SET statement_timeout = 0; SET LOCAL lock_timeout = '1s'",
		"SELECT $1::int",
		"SELECT 1; ROLLBACK TO SAVEPOINT s",
		"SELECT E'\\'' || 'end'",
		"SELECT a$b$c FROM t",
	} {
		if _, err := Load(fstest.MapFS{"001_x.sql": {Data: []byte(sql)}}); err != nil {
			t.Errorf("Load(%q) = %v", sql, err)
		}
	}
}

func FuzzSplit(f *testing.F) {
	f.Add("SELECT 'a''b'; /* c /* d */ */ COMMIT; $x$ e $x$ E'\\'' \"q\"\"r\"")
	f.Fuzz(func(t *testing.T, sql string) {
		split(sql) // must not panic or loop
	})
}
