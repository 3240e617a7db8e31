package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

// File is one of the application's migrations.
type File struct {
	Name     string // NNN_name.sql: the ledger's key
	SQL      string
	Checksum string // SHA-256 of SQL, hex: a file applied once may not change
}

// fileName is what a migration's name must be: the number orders the
// files, the rest says what it does.
var fileName = regexp.MustCompile(`^([0-9]+)_[A-Za-z0-9_-]+\.sql$`)

// Load reads the *.sql files at the top of fsys, in lexical order (the
// order they are applied in). Each must be named NNN_name.sql with its
// number higher than the previous file's (pad the numbers to one width:
// 010 sorts after 009, 10 before 9), be UTF-8, close every string and
// comment, and hold no top-level statement that begins or ends a
// transaction, sets the session's role or sets the search_path: every file
// is applied in one transaction together with its ledger row, with the
// search_path set to the place's schema, on connections that go on to
// migrate other places. (A function call such as set_config is not
// looked into.) Anything else in fsys is ignored.
func Load(fsys fs.FS) ([]File, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("migrate: read migrations: %w", err)
	}
	var (
		files []File
		prev  = -1
	)
	for _, e := range entries { // ReadDir sorts by name
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, invalid("migration %q: the name must be NNN_name.sql (digits, '_', then letters, digits, '_' or '-')", e.Name())
		}
		v, err := strconv.Atoi(m[1])
		if err != nil {
			return nil, invalid("migration %q: number out of range", e.Name())
		}
		if n := len(files); n > 0 && v <= prev {
			return nil, invalid("migration %s sorts after %s but its number is not higher; pad the numbers to one width and do not reuse one",
				e.Name(), files[n-1].Name)
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("migrate: read %s: %w", e.Name(), err)
		}
		f, err := newFile(e.Name(), b)
		if err != nil {
			return nil, err
		}
		files, prev = append(files, f), v
	}
	if len(files) == 0 {
		return nil, invalid("no migrations: want NNN_name.sql files")
	}
	return files, nil
}

func newFile(name string, b []byte) (File, error) {
	if !utf8.Valid(b) || strings.IndexByte(string(b), 0) >= 0 {
		return File{}, invalid("migration %s: not UTF-8 text", name)
	}
	sql := string(b)
	stmts, err := split(sql)
	if err != nil {
		return File{}, invalid("migration %s %v", name, err)
	}
	for _, s := range stmts {
		if why := refused(s.words); why != "" {
			return File{}, invalid("migration %s line %d: %s", name, s.line, why)
		}
	}
	return File{Name: name, SQL: sql, Checksum: checksum(sql)}, nil
}

func checksum(sql string) string {
	sum := sha256.Sum256([]byte(sql))
	return hex.EncodeToString(sum[:])
}

// checkFiles makes sure files are what Load returns (named, in order,
// each with the checksum of its SQL, which the ledger records), for a
// caller that made them another way.
func checkFiles(files []File) error {
	if len(files) == 0 {
		return invalid("no migrations")
	}
	for i, f := range files {
		if !fileName.MatchString(f.Name) {
			return invalid("migration %q: the name must be NNN_name.sql", f.Name)
		}
		if i > 0 && f.Name <= files[i-1].Name {
			return invalid("migration %s is not after %s", f.Name, files[i-1].Name)
		}
		g, err := newFile(f.Name, []byte(f.SQL))
		if err != nil {
			return err
		}
		if f.Checksum != g.Checksum {
			return invalid("migration %s: the checksum is not its SQL's (use Load)", f.Name)
		}
	}
	return nil
}

func invalid(format string, args ...any) error {
	return errs.E(errs.Invalid, "invalid_migration", format, args...)
}
