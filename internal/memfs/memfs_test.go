package memfs_test

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/memfs"
	fsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

const (
	rdonly    = fsys.O_RDONLY
	wronly    = fsys.O_WRONLY
	rdwr      = fsys.O_RDWR
	creat     = fsys.O_CREAT
	excl      = fsys.O_EXCL
	trunc     = fsys.O_TRUNC
	appendFl  = fsys.O_APPEND
	directory = fsys.O_DIRECTORY

	large = 1 << 30 // a limit no test reaches
)

// anyErrno in a table means "some non-zero errno": the exact one is not
// part of the contract.
const anyErrno fsys.Errno = math.MaxUint16

// clock returns a now func whose every call is one nanosecond later.
func clock() func() int64 {
	var t atomic.Int64
	return func() int64 { return t.Add(1) }
}

// newFS returns an FS of limit bytes under a Budget of its own; the FS
// is closed when the test ends.
func newFS(t testing.TB, limit int64) (*memfs.FS, *memfs.Budget) {
	t.Helper()
	b := memfs.NewBudget(large)
	f := memfs.New(limit, b, clock())
	t.Cleanup(f.Close)
	return f, b
}

func wantErrno(t testing.TB, what string, got, want fsys.Errno) {
	t.Helper()
	switch {
	case want == anyErrno && got == 0:
		t.Errorf("%s: succeeded, want an error", what)
	case want != anyErrno && got != want:
		t.Errorf("%s: errno %q, want %q", what, got, want)
	}
}

func openFile(t testing.TB, f *memfs.FS, p string, flag fsys.Oflag) fsys.File {
	t.Helper()
	h, errno := f.OpenFile(p, flag, 0o644)
	if errno != 0 {
		t.Fatalf("OpenFile(%q, %#x): %v", p, flag, errno)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func writeFile(t testing.TB, f *memfs.FS, p, data string) {
	t.Helper()
	h, errno := f.OpenFile(p, creat|wronly|trunc, 0o644)
	if errno != 0 {
		t.Fatalf("OpenFile(%q): %v", p, errno)
	}
	defer h.Close()
	if n, errno := h.Write([]byte(data)); errno != 0 || n != len(data) {
		t.Fatalf("Write to %q: %d, %v; want %d, success", p, n, errno, len(data))
	}
}

// contents reads all of h with Pread, leaving its offset alone.
func contents(t testing.TB, h fsys.File) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, 1000)
	for {
		n, errno := h.Pread(buf, int64(len(out)))
		if errno != 0 {
			t.Fatalf("Pread at %d: %v", len(out), errno)
		}
		if n == 0 {
			return out
		}
		out = append(out, buf[:n]...)
	}
}

func readFile(t testing.TB, f *memfs.FS, p string) string {
	t.Helper()
	h, errno := f.OpenFile(p, rdonly, 0)
	if errno != 0 {
		t.Fatalf("OpenFile(%q): %v", p, errno)
	}
	defer h.Close()
	return string(contents(t, h))
}

func mkdir(t testing.TB, f *memfs.FS, p string) {
	t.Helper()
	if errno := f.Mkdir(p, 0o755); errno != 0 {
		t.Fatalf("Mkdir(%q): %v", p, errno)
	}
}

func stat(t testing.TB, f *memfs.FS, p string) sys.Stat_t {
	t.Helper()
	st, errno := f.Stat(p)
	if errno != 0 {
		t.Fatalf("Stat(%q): %v", p, errno)
	}
	return st
}

// listing reads a directory to its end with Readdir(-1).
func listing(t testing.TB, f *memfs.FS, p string) []fsys.Dirent {
	t.Helper()
	h, errno := f.OpenFile(p, rdonly|directory, 0)
	if errno != 0 {
		t.Fatalf("OpenFile(%q, O_DIRECTORY): %v", p, errno)
	}
	defer h.Close()
	ents, errno := h.Readdir(-1)
	if errno != 0 {
		t.Fatalf("Readdir of %q: %v", p, errno)
	}
	return ents
}

// tree describes everything under the root of f as sorted
// space-separated entries: "dir/" for a directory, "file=contents" for a
// file.
func tree(t testing.TB, f *memfs.FS) string {
	t.Helper()
	var out []string
	var walk func(dir string)
	walk = func(dir string) {
		for _, e := range listing(t, f, dir) {
			p := e.Name
			if dir != "." {
				p = dir + "/" + e.Name
			}
			if e.IsDir() {
				out = append(out, p+"/")
				walk(p)
			} else {
				out = append(out, p+"="+readFile(t, f, p))
			}
		}
	}
	walk(".")
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestOpenFile(t *testing.T) {
	tests := []struct {
		name  string
		path  string
		flag  fsys.Oflag
		errno fsys.Errno
		dir   bool   // the opened file is a directory
		data  string // what the opened file holds, when a file
	}{
		{name: "missing", path: "nope", flag: rdonly, errno: fsys.ENOENT},
		{name: "missing write", path: "nope", flag: rdwr, errno: fsys.ENOENT},
		{name: "create", path: "new", flag: creat | wronly},
		{name: "create nested", path: "d/new", flag: creat | rdwr},
		{name: "create existing keeps data", path: "f", flag: creat | rdwr, data: "hello"},
		{name: "create exclusive", path: "new", flag: creat | excl | rdwr},
		{name: "exclusive on file", path: "f", flag: creat | excl | wronly, errno: fsys.EEXIST},
		{name: "exclusive on dir", path: "d", flag: creat | excl, errno: fsys.EEXIST},
		{name: "truncate write-only", path: "f", flag: wronly | trunc},
		{name: "truncate read-write", path: "f", flag: rdwr | trunc},
		{name: "truncate create", path: "f", flag: creat | rdwr | trunc},
		{name: "read-only", path: "f", flag: rdonly, data: "hello"},
		{name: "append", path: "f", flag: wronly | appendFl, data: "hello"},
		{name: "directory flag on file", path: "f", flag: rdonly | directory, errno: fsys.ENOTDIR},
		{name: "directory flag on dir", path: "d", flag: rdonly | directory, dir: true},
		{name: "dir read-only", path: "d", flag: rdonly, dir: true},
		{name: "dir write-only", path: "d", flag: wronly, errno: fsys.EISDIR},
		{name: "dir read-write", path: "d", flag: rdwr, errno: fsys.EISDIR},
		{name: "dir create write", path: "d", flag: creat | wronly, errno: fsys.EISDIR},
		{name: "dir truncate", path: "d", flag: rdwr | trunc, errno: fsys.EISDIR},
		{name: "root dot", path: ".", flag: rdonly | directory, dir: true},
		{name: "root empty", path: "", flag: rdonly, dir: true},
		{name: "root write", path: ".", flag: rdwr, errno: fsys.EISDIR},
		{name: "create with directory flag", path: "newdir", flag: creat | directory, errno: fsys.EINVAL},
		{name: "create trailing slash", path: "new/", flag: creat | wronly, errno: fsys.EISDIR},
		{name: "create in missing dir", path: "nodir/x", flag: creat | wronly, errno: fsys.ENOENT},
		{name: "create under a file", path: "f/x", flag: creat | wronly, errno: fsys.ENOTDIR},
		{name: "file trailing slash", path: "f/", flag: rdonly, errno: fsys.ENOTDIR},
		{name: "dir trailing slash", path: "d/", flag: rdonly, dir: true},
		{name: "nested file", path: "d/g", flag: rdonly, data: "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := newFS(t, large)
			writeFile(t, f, "f", "hello")
			mkdir(t, f, "d")
			writeFile(t, f, "d/g", "abc")
			before, used := tree(t, f), f.Used()

			h, errno := f.OpenFile(tt.path, tt.flag, 0o600)
			if errno != tt.errno {
				t.Fatalf("OpenFile(%q, %#x): errno %q, want %q", tt.path, tt.flag, errno, tt.errno)
			}
			if errno != 0 {
				if h != nil {
					t.Errorf("OpenFile returned a file with errno %v", errno)
				}
				if after := tree(t, f); after != before || f.Used() != used {
					t.Errorf("a refused open changed the FS: %q (%d bytes), was %q (%d bytes)", after, f.Used(), before, used)
				}
				return
			}
			defer h.Close()
			if isDir, _ := h.IsDir(); isDir != tt.dir {
				t.Errorf("IsDir() = %v, want %v", isDir, tt.dir)
			}
			st, errno := h.Stat()
			if errno != 0 {
				t.Fatalf("Stat: %v", errno)
			}
			if pst := stat(t, f, tt.path); pst.Ino != st.Ino {
				t.Errorf("the file's inode %d is not the path's %d", st.Ino, pst.Ino)
			}
			if tt.dir {
				if !st.Mode.IsDir() {
					t.Errorf("mode %v, want a directory", st.Mode)
				}
				return
			}
			if !st.Mode.IsRegular() {
				t.Errorf("mode %v, want a regular file", st.Mode)
			}
			if got := readFile(t, f, tt.path); got != tt.data || st.Size != int64(len(tt.data)) {
				t.Errorf("file holds %q (size %d), want %q", got, st.Size, tt.data)
			}
		})
	}
}

func TestCreateSetsPermissions(t *testing.T) {
	f, _ := newFS(t, large)
	h, errno := f.OpenFile("f", creat|wronly, fs.ModeDir|fs.ModeSetuid|0o640)
	if errno != 0 {
		t.Fatal(errno)
	}
	h.Close()
	if st := stat(t, f, "f"); st.Mode != 0o640 {
		t.Errorf("mode %v, want -rw-r----- (a regular file, type bits ignored)", st.Mode)
	}
}

func TestAccessModes(t *testing.T) {
	f, _ := newFS(t, large)
	writeFile(t, f, "f", "hello")
	mkdir(t, f, "d")
	ro := openFile(t, f, "f", rdonly)
	wo := openFile(t, f, "f", wronly)
	rw := openFile(t, f, "f", rdwr)
	dir := openFile(t, f, "d", rdonly)
	buf := make([]byte, 8)
	errOf := func(_ int, errno fsys.Errno) fsys.Errno { return errno }
	tests := []struct {
		name string
		call func() fsys.Errno
		want fsys.Errno
	}{
		{"write to read-only", func() fsys.Errno { return errOf(ro.Write([]byte("x"))) }, fsys.EBADF},
		{"pwrite to read-only", func() fsys.Errno { return errOf(ro.Pwrite([]byte("x"), 0)) }, fsys.EBADF},
		{"truncate read-only", func() fsys.Errno { return ro.Truncate(0) }, fsys.EBADF},
		{"read from write-only", func() fsys.Errno { return errOf(wo.Read(buf)) }, fsys.EBADF},
		{"pread from write-only", func() fsys.Errno { return errOf(wo.Pread(buf, 0)) }, fsys.EBADF},
		{"read read-only", func() fsys.Errno { return errOf(ro.Read(buf)) }, 0},
		{"read read-write", func() fsys.Errno { return errOf(rw.Pread(buf, 0)) }, 0},
		{"read a directory", func() fsys.Errno { return errOf(dir.Read(buf)) }, fsys.EISDIR},
		{"pread a directory", func() fsys.Errno { return errOf(dir.Pread(buf, 0)) }, fsys.EISDIR},
		{"write a directory", func() fsys.Errno { return errOf(dir.Write([]byte("x"))) }, anyErrno},
		{"pwrite a directory", func() fsys.Errno { return errOf(dir.Pwrite([]byte("x"), 0)) }, anyErrno},
		{"truncate a directory", func() fsys.Errno { return dir.Truncate(0) }, anyErrno},
		{"readdir a file", func() fsys.Errno { _, errno := ro.Readdir(-1); return errno }, fsys.EBADF},
	}
	for _, tt := range tests {
		wantErrno(t, tt.name, tt.call(), tt.want)
	}
	if got := readFile(t, f, "f"); got != "hello" {
		t.Errorf("after refused writes the file holds %q, want %q", got, "hello")
	}
	if n, errno := wo.Write([]byte("J")); n != 1 || errno != 0 {
		t.Errorf("Write to write-only: %d, %v", n, errno)
	}
	if n, errno := rw.Pwrite([]byte("Y"), 4); n != 1 || errno != 0 {
		t.Errorf("Pwrite to read-write: %d, %v", n, errno)
	}
	if got := readFile(t, f, "f"); got != "JellY" {
		t.Errorf("file holds %q, want %q", got, "JellY")
	}
}

func TestReadWriteSeek(t *testing.T) {
	f, _ := newFS(t, large)
	h := openFile(t, f, "f", creat|rdwr)
	step := func(what string, gotN int, errno fsys.Errno, wantN int) {
		t.Helper()
		if errno != 0 || gotN != wantN {
			t.Fatalf("%s: %d, %v; want %d, success", what, gotN, errno, wantN)
		}
	}
	seek := func(off int64, whence int, want int64) {
		t.Helper()
		got, errno := h.Seek(off, whence)
		if errno != 0 || got != want {
			t.Fatalf("Seek(%d, %d): %d, %v; want %d, success", off, whence, got, errno, want)
		}
	}
	n, errno := h.Write([]byte("hello world"))
	step("Write", n, errno, 11)
	seek(0, io.SeekCurrent, 11)
	buf := make([]byte, 5)
	n, errno = h.Read(buf)
	step("Read at EOF", n, errno, 0)
	seek(0, io.SeekStart, 0)
	n, errno = h.Read(buf)
	step("Read", n, errno, 5)
	if string(buf) != "hello" {
		t.Errorf("Read %q, want %q", buf, "hello")
	}
	seek(1, io.SeekCurrent, 6)
	n, errno = h.Read(buf)
	step("Read", n, errno, 5)
	if string(buf) != "world" {
		t.Errorf("Read %q, want %q", buf, "world")
	}
	seek(-5, io.SeekEnd, 6)
	n, errno = h.Write([]byte("W"))
	step("Write mid-file", n, errno, 1)
	seek(0, io.SeekCurrent, 7)

	// Pread and Pwrite leave the offset alone.
	n, errno = h.Pwrite([]byte("H"), 0)
	step("Pwrite", n, errno, 1)
	n, errno = h.Pread(buf[:3], 8)
	step("Pread", n, errno, 3)
	if string(buf[:3]) != "rld" {
		t.Errorf("Pread %q, want %q", buf[:3], "rld")
	}
	n, errno = h.Pread(buf, 9)
	step("Pread short", n, errno, 2)
	n, errno = h.Pread(buf, 11)
	step("Pread at EOF", n, errno, 0)
	n, errno = h.Pread(buf, 1<<62)
	step("Pread far past EOF", n, errno, 0)
	seek(0, io.SeekCurrent, 7)
	if got := string(contents(t, h)); got != "Hello World" {
		t.Errorf("file holds %q, want %q", got, "Hello World")
	}

	for _, bad := range []struct {
		off    int64
		whence int
	}{{-1, io.SeekStart}, {-12, io.SeekEnd}, {-8, io.SeekCurrent}, {0, 3}, {0, -1}, {math.MaxInt64, io.SeekCurrent}, {math.MinInt64, io.SeekEnd}} {
		_, errno := h.Seek(bad.off, bad.whence)
		wantErrno(t, fmt.Sprintf("Seek(%d, %d)", bad.off, bad.whence), errno, fsys.EINVAL)
	}
	seek(0, io.SeekCurrent, 7) // unmoved by the refused seeks
	_, errno = h.Pread(buf, -1)
	wantErrno(t, "Pread at -1", errno, fsys.EINVAL)
	_, errno = h.Pwrite(buf, -1)
	wantErrno(t, "Pwrite at -1", errno, fsys.EINVAL)
	wantErrno(t, "Truncate to -1", h.Truncate(-1), fsys.EINVAL)
	n, errno = h.Write(nil)
	step("empty Write", n, errno, 0)
	seek(0, io.SeekCurrent, 7)
	if st, _ := h.Stat(); st.Size != 11 {
		t.Errorf("size %d, want 11", st.Size)
	}
}

func TestAppend(t *testing.T) {
	f, _ := newFS(t, large)
	writeFile(t, f, "f", "abc")
	h := openFile(t, f, "f", rdwr|appendFl)
	if !h.IsAppend() {
		t.Error("IsAppend() = false on an O_APPEND file")
	}
	if _, errno := h.Seek(1, io.SeekStart); errno != 0 {
		t.Fatal(errno)
	}
	if n, errno := h.Write([]byte("de")); n != 2 || errno != 0 {
		t.Fatalf("Write: %d, %v", n, errno)
	}
	if off, _ := h.Seek(0, io.SeekCurrent); off != 5 {
		t.Errorf("offset after an append %d, want 5", off)
	}
	if got := readFile(t, f, "f"); got != "abcde" {
		t.Errorf("file holds %q, want %q", got, "abcde")
	}

	// An empty or refused write moves nothing, as write(2) on Linux.
	if _, errno := h.Seek(1, io.SeekStart); errno != 0 {
		t.Fatal(errno)
	}
	if n, errno := h.Write(nil); n != 0 || errno != 0 {
		t.Errorf("empty Write: %d, %v", n, errno)
	}
	if off, _ := h.Seek(0, io.SeekCurrent); off != 1 {
		t.Errorf("offset after an empty append %d, want 1 (unmoved)", off)
	}
	ro := openFile(t, f, "f", rdonly|appendFl)
	if _, errno := ro.Write([]byte("x")); errno != fsys.EBADF {
		t.Errorf("Write to a read-only append file: %v, want EBADF", errno)
	}
	if off, _ := ro.Seek(0, io.SeekCurrent); off != 0 {
		t.Errorf("offset after a refused append %d, want 0 (unmoved)", off)
	}

	if errno := h.SetAppend(false); errno != 0 || h.IsAppend() {
		t.Fatalf("SetAppend(false): %v, IsAppend() = %v", errno, h.IsAppend())
	}
	if n, errno := h.Write([]byte("B")); n != 1 || errno != 0 {
		t.Fatalf("Write: %d, %v", n, errno)
	}
	if got := readFile(t, f, "f"); got != "aBcde" {
		t.Errorf("file holds %q, want %q", got, "aBcde")
	}
}

func TestSparseWritesReadZeros(t *testing.T) {
	f, _ := newFS(t, large)
	h := openFile(t, f, "f", creat|rdwr)
	if _, errno := h.Pwrite([]byte("x"), 100); errno != 0 {
		t.Fatal(errno)
	}
	if _, errno := h.Seek(300, io.SeekStart); errno != 0 {
		t.Fatal(errno)
	}
	if _, errno := h.Write([]byte("y")); errno != 0 {
		t.Fatal(errno)
	}
	want := make([]byte, 301)
	want[100], want[300] = 'x', 'y'
	if got := contents(t, h); !bytes.Equal(got, want) {
		t.Errorf("file holds %q, want zeros but for x at 100 and y at 300", got)
	}
}

// TestShrinkThenGrowReadsZeros checks that bytes cut off by a shrink do
// not come back when the file grows again, whichever way it shrinks and
// grows.
func TestShrinkThenGrowReadsZeros(t *testing.T) {
	const size = 1000
	shrinks := map[string]func(h fsys.File, to int64) fsys.Errno{
		"Truncate": func(h fsys.File, to int64) fsys.Errno { return h.Truncate(to) },
	}
	grows := map[string]func(h fsys.File) fsys.Errno{
		"Truncate": func(h fsys.File) fsys.Errno { return h.Truncate(size) },
		"Pwrite": func(h fsys.File) fsys.Errno {
			_, errno := h.Pwrite([]byte{0}, size-1)
			return errno
		},
		"Seek and Write": func(h fsys.File) fsys.Errno {
			if _, errno := h.Seek(size-1, io.SeekStart); errno != 0 {
				return errno
			}
			_, errno := h.Write([]byte{0})
			return errno
		},
	}
	for _, to := range []int64{0, 1, 10, 249, 250, 251, 600, 999} {
		for sname, shrink := range shrinks {
			for gname, grow := range grows {
				t.Run(fmt.Sprintf("%s to %d, %s", sname, to, gname), func(t *testing.T) {
					f, _ := newFS(t, large)
					h := openFile(t, f, "f", creat|rdwr)
					if _, errno := h.Write(bytes.Repeat([]byte{'A'}, size)); errno != 0 {
						t.Fatal(errno)
					}
					if errno := shrink(h, to); errno != 0 {
						t.Fatalf("shrink: %v", errno)
					}
					if errno := grow(h); errno != 0 {
						t.Fatalf("grow: %v", errno)
					}
					got := contents(t, h)
					want := append(bytes.Repeat([]byte{'A'}, int(to)), make([]byte, size-int(to))...)
					if !bytes.Equal(got, want) {
						i := 0
						for i < len(got) && i < len(want) && got[i] == want[i] {
							i++
						}
						t.Errorf("file of %d bytes differs from %d A's and zeros at byte %d", len(got), to, i)
					}
				})
			}
		}
	}
	t.Run("O_TRUNC then grow", func(t *testing.T) {
		f, _ := newFS(t, large)
		writeFile(t, f, "f", strings.Repeat("A", size))
		h := openFile(t, f, "f", rdwr|trunc)
		if errno := h.Truncate(size); errno != 0 {
			t.Fatal(errno)
		}
		if got := contents(t, h); !bytes.Equal(got, make([]byte, size)) {
			t.Errorf("after O_TRUNC and Truncate(%d) the file holds non-zero bytes", size)
		}
	})
}

func TestReaddir(t *testing.T) {
	f, _ := newFS(t, large)
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("f%d", i)
		writeFile(t, f, name, name)
		want = append(want, name)
	}
	for i := range 3 {
		name := fmt.Sprintf("d%d", i)
		mkdir(t, f, name)
		want = append(want, name)
	}
	writeFile(t, f, "d0/inner", "not at the root")
	slices.Sort(want)

	dir := openFile(t, f, ".", rdonly|directory)
	readAll := func(page int) []string {
		t.Helper()
		var names []string
		for range 20 {
			ents, errno := dir.Readdir(page)
			if errno != 0 {
				t.Fatalf("Readdir(%d): %v", page, errno)
			}
			if page > 0 && len(ents) > page {
				t.Fatalf("Readdir(%d) returned %d entries", page, len(ents))
			}
			for _, e := range ents {
				names = append(names, e.Name)
				st := stat(t, f, e.Name)
				if e.Ino != st.Ino || e.Type != st.Mode.Type() {
					t.Errorf("entry %v, but Stat says ino %d, type %v", &e, st.Ino, st.Mode.Type())
				}
			}
			if page <= 0 || len(ents) < page {
				slices.Sort(names)
				return names
			}
		}
		t.Fatalf("Readdir(%d) never reached the end", page)
		return nil
	}
	for _, page := range []int{3, 1, 10, 11, -1, 0} {
		if _, errno := dir.Seek(0, io.SeekStart); errno != 0 {
			t.Fatalf("Seek(0) to rewind: %v", errno)
		}
		if got := readAll(page); !slices.Equal(got, want) {
			t.Errorf("Readdir in pages of %d: %q, want %q", page, got, want)
		}
		if ents, errno := dir.Readdir(3); len(ents) != 0 || errno != 0 {
			t.Errorf("Readdir past the end: %d entries, %v", len(ents), errno)
		}
	}

	for _, bad := range []struct {
		off    int64
		whence int
	}{{1, io.SeekStart}, {0, io.SeekCurrent}, {0, io.SeekEnd}, {-1, io.SeekStart}} {
		_, errno := dir.Seek(bad.off, bad.whence)
		wantErrno(t, fmt.Sprintf("Seek(%d, %d) on a directory", bad.off, bad.whence), errno, fsys.EINVAL)
	}

	// Entries removed during a listing are not returned.
	if _, errno := dir.Seek(0, io.SeekStart); errno != 0 {
		t.Fatal(errno)
	}
	first, errno := dir.Readdir(2)
	if errno != 0 || len(first) != 2 {
		t.Fatalf("Readdir(2): %d entries, %v", len(first), errno)
	}
	for _, name := range want {
		if name == first[0].Name || name == first[1].Name {
			continue
		}
		if errno := f.Unlink(name); errno == fsys.EISDIR {
			if errno := f.Unlink(name + "/inner"); errno != 0 && errno != fsys.ENOENT {
				t.Fatalf("Unlink(%q): %v", name+"/inner", errno)
			}
			if errno := f.Rmdir(name); errno != 0 {
				t.Fatalf("Rmdir(%q): %v", name, errno)
			}
		} else if errno != 0 {
			t.Fatalf("Unlink(%q): %v", name, errno)
		}
	}
	if rest, errno := dir.Readdir(-1); len(rest) != 0 || errno != 0 {
		t.Errorf("Readdir after removing the rest: %v, %v; want nothing", rest, errno)
	}

	mkdir(t, f, "empty")
	if ents := listing(t, f, "empty"); len(ents) != 0 {
		t.Errorf("an empty directory lists %v", ents)
	}
}

func TestMkdirRmdir(t *testing.T) {
	tests := []struct {
		name  string
		op    string // mkdir or rmdir
		path  string
		errno fsys.Errno
		after string // tree afterwards, when the call succeeds
	}{
		{"mkdir", "mkdir", "n", 0, "d/ d/sub/ d/x=X e/ f=F n/"},
		{"mkdir nested", "mkdir", "d/n", 0, "d/ d/n/ d/sub/ d/x=X e/ f=F"},
		{"mkdir trailing slash", "mkdir", "n/", 0, "d/ d/sub/ d/x=X e/ f=F n/"},
		{"mkdir existing dir", "mkdir", "d", fsys.EEXIST, ""},
		{"mkdir existing file", "mkdir", "f", fsys.EEXIST, ""},
		{"mkdir root", "mkdir", ".", fsys.EEXIST, ""},
		{"mkdir root empty", "mkdir", "", fsys.EEXIST, ""},
		{"mkdir under file", "mkdir", "f/n", fsys.ENOTDIR, ""},
		{"mkdir under missing", "mkdir", "m/n", fsys.ENOENT, ""},
		{"rmdir empty", "rmdir", "e", 0, "d/ d/sub/ d/x=X f=F"},
		{"rmdir nested", "rmdir", "d/sub", 0, "d/ d/x=X e/ f=F"},
		{"rmdir trailing slash", "rmdir", "e/", 0, "d/ d/sub/ d/x=X f=F"},
		{"rmdir not empty", "rmdir", "d", fsys.ENOTEMPTY, ""},
		{"rmdir file", "rmdir", "f", fsys.ENOTDIR, ""},
		{"rmdir file trailing slash", "rmdir", "f/", fsys.ENOTDIR, ""},
		{"rmdir missing", "rmdir", "m", fsys.ENOENT, ""},
		{"rmdir under file", "rmdir", "f/x", fsys.ENOTDIR, ""},
		{"rmdir root", "rmdir", ".", anyErrno, ""},
		{"rmdir root empty", "rmdir", "", anyErrno, ""},
		{"rmdir root slash", "rmdir", "/", anyErrno, ""},
	}
	const before = "d/ d/sub/ d/x=X e/ f=F"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := newFS(t, large)
			mkdir(t, f, "d")
			mkdir(t, f, "d/sub")
			writeFile(t, f, "d/x", "X")
			mkdir(t, f, "e")
			writeFile(t, f, "f", "F")
			if got := tree(t, f); got != before {
				t.Fatalf("setup made %q", got)
			}
			used := f.Used()
			var errno fsys.Errno
			if tt.op == "mkdir" {
				errno = f.Mkdir(tt.path, 0o750)
			} else {
				errno = f.Rmdir(tt.path)
			}
			wantErrno(t, fmt.Sprintf("%s(%q)", tt.op, tt.path), errno, tt.errno)
			after := tt.after
			if tt.errno != 0 {
				after = before
			}
			if got := tree(t, f); got != after {
				t.Errorf("tree %q, want %q", got, after)
			}
			switch {
			case errno != 0 && f.Used() != used:
				t.Errorf("Used() %d after a refusal, was %d", f.Used(), used)
			case errno == 0 && tt.op == "mkdir" && f.Used() != used+memfs.EntryCost:
				t.Errorf("Used() %d after mkdir, want %d", f.Used(), used+memfs.EntryCost)
			case errno == 0 && tt.op == "rmdir" && f.Used() != used-memfs.EntryCost:
				t.Errorf("Used() %d after rmdir, want %d", f.Used(), used-memfs.EntryCost)
			}
			if errno == 0 && tt.op == "mkdir" {
				if st := stat(t, f, tt.path); st.Mode != fs.ModeDir|0o750 {
					t.Errorf("new directory's mode %v, want %v", st.Mode, fs.ModeDir|0o750)
				}
			}
		})
	}
}

func TestUnlink(t *testing.T) {
	tests := []struct {
		path  string
		errno fsys.Errno
		after string
	}{
		{"f", 0, "d/ d/x=X"},
		{"d/x", 0, "d/ f=F"},
		{"d", fsys.EISDIR, ""},
		{"d/", fsys.EISDIR, ""},
		{"f/", fsys.ENOTDIR, ""},
		{"m", fsys.ENOENT, ""},
		{"m/x", fsys.ENOENT, ""},
		{"f/x", fsys.ENOTDIR, ""},
		{".", anyErrno, ""},
		{"", anyErrno, ""},
	}
	const before = "d/ d/x=X f=F"
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			f, _ := newFS(t, large)
			mkdir(t, f, "d")
			writeFile(t, f, "d/x", "X")
			writeFile(t, f, "f", "F")
			used := f.Used()
			errno := f.Unlink(tt.path)
			wantErrno(t, fmt.Sprintf("Unlink(%q)", tt.path), errno, tt.errno)
			after := tt.after
			if tt.errno != 0 {
				after = before
			}
			if got := tree(t, f); got != after {
				t.Errorf("tree %q, want %q", got, after)
			}
			if errno != 0 && f.Used() != used {
				t.Errorf("Used() %d after a refusal, was %d", f.Used(), used)
			}
			if errno == 0 && f.Used() >= used-memfs.EntryCost {
				t.Errorf("Used() %d after an unlink, was %d", f.Used(), used)
			}
		})
	}
}

func TestRename(t *testing.T) {
	const before = "d/ e/ e/sub/ e/x=X f=F g=G"
	tests := []struct {
		name     string
		from, to string
		errno    fsys.Errno
		after    string // tree afterwards, when the call succeeds
	}{
		{"file over file", "f", "g", 0, "d/ e/ e/sub/ e/x=X g=F"},
		{"file to a new name", "f", "h", 0, "d/ e/ e/sub/ e/x=X g=G h=F"},
		{"file into a dir", "f", "d/f", 0, "d/ d/f=F e/ e/sub/ e/x=X g=G"},
		{"file out of a dir", "e/x", "x", 0, "d/ e/ e/sub/ f=F g=G x=X"},
		{"dir over empty dir", "e", "d", 0, "d/ d/sub/ d/x=X f=F g=G"},
		{"dir to a new name", "d", "n", 0, "e/ e/sub/ e/x=X f=F g=G n/"},
		{"dir with trailing slashes", "d/", "n/", 0, "e/ e/sub/ e/x=X f=F g=G n/"},
		{"dir up a level", "e/sub", "sub", 0, "d/ e/ e/x=X f=F g=G sub/"},
		{"dir over non-empty dir", "d", "e", fsys.ENOTEMPTY, ""},
		{"dir over its non-empty parent", "e/sub", "e", fsys.ENOTEMPTY, ""},
		{"file over dir", "f", "d", fsys.EISDIR, ""},
		{"dir over file", "d", "f", fsys.ENOTDIR, ""},
		{"dir into its subdirectory", "e", "e/sub/y", fsys.EINVAL, ""},
		{"dir into itself", "e", "e/y", fsys.EINVAL, ""},
		{"dir over its own subdirectory", "e", "e/sub", fsys.EINVAL, ""},
		{"file to itself", "f", "f", 0, before},
		{"dir to itself", "e", "e", 0, before},
		{"dir to itself with a slash", "e", "e/", 0, before},
		{"missing source", "m", "n", fsys.ENOENT, ""},
		{"missing target dir", "f", "m/n", fsys.ENOENT, ""},
		{"target under a file", "f", "g/n", fsys.ENOTDIR, ""},
		{"source under a file", "f/x", "n", fsys.ENOTDIR, ""},
		{"file source with a slash", "f/", "n", fsys.ENOTDIR, ""},
		{"file over file with a slash", "f", "g/", fsys.ENOTDIR, ""},
		{"file to a new name with a slash", "f", "n/", fsys.ENOTDIR, ""},
		{"file to itself with a slash", "f", "f/", fsys.ENOTDIR, ""},
		{"file over dir with a slash", "f", "d/", fsys.ENOTDIR, ""},
		{"root", ".", "n", anyErrno, ""},
		{"empty source", "", "n", anyErrno, ""},
		{"over root", "f", ".", anyErrno, ""},
		{"over root empty", "d", "", anyErrno, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := newFS(t, large)
			mkdir(t, f, "d")
			mkdir(t, f, "e")
			mkdir(t, f, "e/sub")
			writeFile(t, f, "e/x", "X")
			writeFile(t, f, "f", "F")
			writeFile(t, f, "g", "G")
			if got := tree(t, f); got != before {
				t.Fatalf("setup made %q", got)
			}
			errno := f.Rename(tt.from, tt.to)
			wantErrno(t, fmt.Sprintf("Rename(%q, %q)", tt.from, tt.to), errno, tt.errno)
			after := tt.after
			if tt.errno != 0 {
				after = before
			}
			if got := tree(t, f); got != after {
				t.Errorf("tree %q, want %q", got, after)
			}
		})
	}
}

// TestRenameAccounting checks that a file replaced by a rename gives its
// bytes back, once no handle holds it.
func TestRenameAccounting(t *testing.T) {
	f, b := newFS(t, large)
	writeFile(t, f, "f", "source")
	withF := f.Used()
	writeFile(t, f, "g", strings.Repeat("replaced", 100))
	g := openFile(t, f, "g", rdonly)
	if errno := f.Rename("f", "g"); errno != 0 {
		t.Fatal(errno)
	}
	if got := string(contents(t, g)); got != strings.Repeat("replaced", 100) {
		t.Errorf("the open replaced file reads %q", got)
	}
	if f.Used() <= withF {
		t.Errorf("Used() %d while the replaced file is open, want more than %d", f.Used(), withF)
	}
	g.Close()
	if f.Used() != withF || b.Used() != withF {
		t.Errorf("after closing the replaced file Used() %d, Budget %d; want %d", f.Used(), b.Used(), withF)
	}
	mkdir(t, f, "d")
	mkdir(t, f, "e")
	if errno := f.Rename("d", "e"); errno != 0 {
		t.Fatal(errno)
	}
	if f.Used() != withF+memfs.EntryCost {
		t.Errorf("after a dir replaced a dir Used() %d, want %d", f.Used(), withF+memfs.EntryCost)
	}
}

func TestStat(t *testing.T) {
	f, _ := newFS(t, large)
	writeFile(t, f, "f", "hello")
	mkdir(t, f, "d")
	fst, dst, rst := stat(t, f, "f"), stat(t, f, "d"), stat(t, f, ".")
	if fst.Mode != 0o644 || fst.Size != 5 || fst.Nlink != 1 {
		t.Errorf("file: mode %v size %d nlink %d; want -rw-r--r--, 5, 1", fst.Mode, fst.Size, fst.Nlink)
	}
	if dst.Mode != fs.ModeDir|0o755 || dst.Nlink != 2 {
		t.Errorf("dir: mode %v nlink %d; want drwxr-xr-x, 2", dst.Mode, dst.Nlink)
	}
	if !rst.Mode.IsDir() {
		t.Errorf("root: mode %v, want a directory", rst.Mode)
	}
	if fst.Ino == dst.Ino || fst.Ino == rst.Ino || dst.Ino == rst.Ino || fst.Ino == 0 {
		t.Errorf("inodes not distinct: file %d, dir %d, root %d", fst.Ino, dst.Ino, rst.Ino)
	}
	for _, p := range []string{"f", "d", ".", "d/"} {
		st, errno := f.Stat(p)
		lst, lerrno := f.Lstat(p)
		if st != lst || errno != lerrno {
			t.Errorf("Lstat(%q) = %+v, %v; Stat = %+v, %v", p, lst, lerrno, st, errno)
		}
	}
	for _, p := range []string{"m", "f/", "f/x", "d/m"} {
		_, errno := f.Stat(p)
		_, lerrno := f.Lstat(p)
		if errno == 0 || lerrno != errno {
			t.Errorf("Stat(%q) %v, Lstat %v; want the same error", p, errno, lerrno)
		}
	}
	h := openFile(t, f, "f", rdonly)
	if hst, errno := h.Stat(); errno != 0 || hst != fst {
		t.Errorf("File.Stat() = %+v, %v; want %+v", hst, errno, fst)
	}
	if ino, _ := h.Ino(); ino != fst.Ino {
		t.Errorf("Ino() = %d, want %d", ino, fst.Ino)
	}
	if errno := f.Unlink("f"); errno != 0 {
		t.Fatal(errno)
	}
	if hst, errno := h.Stat(); errno != 0 || hst.Nlink != 0 || hst.Size != 5 {
		t.Errorf("File.Stat() after unlink: nlink %d size %d %v; want 0, 5", hst.Nlink, hst.Size, errno)
	}
}

func TestChmod(t *testing.T) {
	f, _ := newFS(t, large)
	writeFile(t, f, "f", "x")
	mkdir(t, f, "d")
	if errno := f.Chmod("f", 0o400); errno != 0 {
		t.Fatal(errno)
	}
	if errno := f.Chmod("d", fs.ModeSymlink|0o500); errno != 0 {
		t.Fatal(errno)
	}
	if st := stat(t, f, "f"); st.Mode != 0o400 {
		t.Errorf("file mode %v, want -r--------", st.Mode)
	}
	if st := stat(t, f, "d"); st.Mode != fs.ModeDir|0o500 {
		t.Errorf("dir mode %v, want dr-x------ (type bits of the argument ignored)", st.Mode)
	}
	wantErrno(t, "Chmod of a missing file", f.Chmod("m", 0o600), fsys.ENOENT)
	wantErrno(t, "Chmod of file/", f.Chmod("f/", 0o600), fsys.ENOTDIR)
	// Permissions are recorded, not enforced.
	h := openFile(t, f, "f", wronly)
	if _, errno := h.Write([]byte("y")); errno != 0 {
		t.Errorf("Write to a 0400 file: %v", errno)
	}
}

func TestUtimens(t *testing.T) {
	f, _ := newFS(t, large)
	writeFile(t, f, "f", "x")
	const a, m = 1_000_000_001, 2_000_000_002
	if errno := f.Utimens("f", a, m); errno != 0 {
		t.Fatal(errno)
	}
	st := stat(t, f, "f")
	if st.Atim != a || st.Mtim != m {
		t.Errorf("atim %d mtim %d, want %d %d", st.Atim, st.Mtim, a, m)
	}
	if errno := f.Utimens("f", fsys.UTIME_OMIT, 7); errno != 0 {
		t.Fatal(errno)
	}
	st2 := stat(t, f, "f")
	if st2.Atim != a || st2.Mtim != 7 {
		t.Errorf("with atim omitted: atim %d mtim %d, want %d 7", st2.Atim, st2.Mtim, a)
	}
	if st2.Ctim <= st.Ctim {
		t.Errorf("ctim %d did not move past %d", st2.Ctim, st.Ctim)
	}
	h := openFile(t, f, "f", rdonly)
	if errno := h.Utimens(9, fsys.UTIME_OMIT); errno != 0 {
		t.Fatal(errno)
	}
	if st3 := stat(t, f, "f"); st3.Atim != 9 || st3.Mtim != 7 {
		t.Errorf("with mtim omitted: atim %d mtim %d, want 9 7", st3.Atim, st3.Mtim)
	}
	if errno := f.Utimens("f", fsys.UTIME_OMIT, fsys.UTIME_OMIT); errno != 0 {
		t.Fatal(errno)
	}
	if st4 := stat(t, f, "f"); st4.Atim != 9 || st4.Mtim != 7 {
		t.Errorf("with both omitted: atim %d mtim %d, want 9 7", st4.Atim, st4.Mtim)
	}
	wantErrno(t, "Utimens of a missing file", f.Utimens("m", 1, 1), fsys.ENOENT)
}

func TestLinksRefused(t *testing.T) {
	f, _ := newFS(t, large)
	writeFile(t, f, "f", "x")
	mkdir(t, f, "d")
	before := tree(t, f)
	wantErrno(t, "Link", f.Link("f", "l"), fsys.EPERM)
	wantErrno(t, "Link of a dir", f.Link("d", "l"), fsys.EPERM)
	wantErrno(t, "Symlink", f.Symlink("../../etc/passwd", "l"), fsys.EPERM)
	wantErrno(t, "Symlink", f.Symlink("f", "d/l"), fsys.EPERM)
	if after := tree(t, f); after != before {
		t.Errorf("tree %q after refused links, was %q", after, before)
	}
	for p, want := range map[string]fsys.Errno{"f": fsys.EINVAL, "d": fsys.EINVAL, "m": fsys.ENOENT, "..": anyErrno} {
		s, errno := f.Readlink(p)
		wantErrno(t, fmt.Sprintf("Readlink(%q)", p), errno, want)
		if s != "" {
			t.Errorf("Readlink(%q) = %q", p, s)
		}
	}
}

// TestBadPaths checks that names with "..", ".", empty or NUL components
// or over-long components are refused by every call, never resolved.
func TestBadPaths(t *testing.T) {
	long := strings.Repeat("n", memfs.MaxNameLen+1)
	paths := []string{
		"..", "../", "../a", "../../etc/passwd", "a/..", "a/../a", "a/../a/b", "a/b/..", "a/b/../..",
		"a/.", "a/./b", "./a", "./a/b", "a//b", "//a", "/a", "/a/b", "a//", "//",
		"a\x00", "a/b\x00", "\x00", "a\x00/b", long, "a/" + long, long + "/b",
	}
	ops := []struct {
		name string
		call func(f *memfs.FS, p string) fsys.Errno
	}{
		{"Stat", func(f *memfs.FS, p string) fsys.Errno { _, errno := f.Stat(p); return errno }},
		{"Lstat", func(f *memfs.FS, p string) fsys.Errno { _, errno := f.Lstat(p); return errno }},
		{"OpenFile", func(f *memfs.FS, p string) fsys.Errno { return openErrno(f.OpenFile(p, rdonly, 0)) }},
		{"OpenFile O_CREAT", func(f *memfs.FS, p string) fsys.Errno { return openErrno(f.OpenFile(p, creat|rdwr, 0o644)) }},
		{"OpenFile O_DIRECTORY", func(f *memfs.FS, p string) fsys.Errno { return openErrno(f.OpenFile(p, directory, 0)) }},
		{"Mkdir", func(f *memfs.FS, p string) fsys.Errno { return f.Mkdir(p, 0o755) }},
		{"Rmdir", func(f *memfs.FS, p string) fsys.Errno { return f.Rmdir(p) }},
		{"Unlink", func(f *memfs.FS, p string) fsys.Errno { return f.Unlink(p) }},
		{"Rename from", func(f *memfs.FS, p string) fsys.Errno { return f.Rename(p, "new") }},
		{"Rename to", func(f *memfs.FS, p string) fsys.Errno { return f.Rename("a/b", p) }},
		{"Rename dir to", func(f *memfs.FS, p string) fsys.Errno { return f.Rename("c", p) }},
		{"Chmod", func(f *memfs.FS, p string) fsys.Errno { return f.Chmod(p, 0o777) }},
		{"Utimens", func(f *memfs.FS, p string) fsys.Errno { return f.Utimens(p, 1, 1) }},
		{"Readlink", func(f *memfs.FS, p string) fsys.Errno { _, errno := f.Readlink(p); return errno }},
	}
	f, _ := newFS(t, large)
	mkdir(t, f, "a")
	writeFile(t, f, "a/b", "B")
	mkdir(t, f, "c")
	before, used := tree(t, f), f.Used()
	for _, p := range paths {
		for _, op := range ops {
			errno := op.call(f, p)
			if errno == 0 {
				t.Errorf("%s(%q) succeeded; want it refused", op.name, p)
			}
			if strings.Contains(p, long) && !strings.Contains(p, "/b") && errno != fsys.ENAMETOOLONG {
				t.Errorf("%s(%q): errno %q, want %q", op.name, p, errno, fsys.ENAMETOOLONG)
			}
		}
	}
	if after := tree(t, f); after != before || f.Used() != used {
		t.Errorf("refused calls changed the FS: %q (%d bytes), was %q (%d bytes)", after, f.Used(), before, used)
	}
}

func openErrno(h fsys.File, errno fsys.Errno) fsys.Errno {
	if h != nil {
		h.Close()
	}
	return errno
}

func TestNameLength(t *testing.T) {
	f, _ := newFS(t, large)
	name := strings.Repeat("n", memfs.MaxNameLen)
	writeFile(t, f, name, "x")
	mkdir(t, f, "d"+name[1:])
	writeFile(t, f, "d"+name[1:]+"/"+name, "y")
	if got := readFile(t, f, "d"+name[1:]+"/"+name); got != "y" {
		t.Errorf("file of a %d-byte name under a dir of one holds %q", len(name), got)
	}
	ents := listing(t, f, ".")
	if len(ents) != 2 {
		t.Errorf("root lists %d entries, want 2", len(ents))
	}
	if errno := f.Rename(name, name+"x"); errno != fsys.ENAMETOOLONG {
		t.Errorf("Rename to a %d-byte name: %v, want ENAMETOOLONG", len(name)+1, errno)
	}
}

// TestUnlinkedOpenFile checks that a removed file stays usable through
// open handles and is charged until the last one closes.
func TestUnlinkedOpenFile(t *testing.T) {
	f, b := newFS(t, large)
	h := openFile(t, f, "f", creat|rdwr)
	h2 := openFile(t, f, "f", rdonly)
	if _, errno := h.Write(bytes.Repeat([]byte("a"), 1000)); errno != 0 {
		t.Fatal(errno)
	}
	used := f.Used()
	if errno := f.Unlink("f"); errno != 0 {
		t.Fatal(errno)
	}
	if _, errno := f.Stat("f"); errno != fsys.ENOENT {
		t.Errorf("Stat of the unlinked path: %v, want ENOENT", errno)
	}
	if f.Used() != used {
		t.Errorf("Used() %d right after the unlink, want %d (still open)", f.Used(), used)
	}
	if _, errno := h.Pwrite([]byte("tail"), 4000); errno != 0 {
		t.Fatalf("Pwrite to the unlinked file: %v", errno)
	}
	if got := contents(t, h2); len(got) != 4004 || string(got[4000:]) != "tail" {
		t.Errorf("the other handle reads %d bytes ending %q", len(got), got[max(0, len(got)-4):])
	}
	if st, _ := h.Stat(); st.Nlink != 0 || st.Size != 4004 {
		t.Errorf("Stat: nlink %d size %d, want 0, 4004", st.Nlink, st.Size)
	}
	grown := f.Used()
	if grown <= used {
		t.Errorf("Used() %d after growing the unlinked file, want more than %d", grown, used)
	}

	// A new file of the same name is another file.
	writeFile(t, f, "f", "new")
	withNew := f.Used()
	if got := string(contents(t, h2)[:4]); got != "aaaa" {
		t.Errorf("the unlinked file reads %q after a new f was made", got)
	}
	h.Close()
	if f.Used() != withNew {
		t.Errorf("Used() %d with one handle still open, want %d", f.Used(), withNew)
	}
	h2.Close()
	if newOnly := withNew - grown; f.Used() != newOnly || b.Used() != newOnly {
		t.Errorf("after the last close Used() %d, Budget %d; want %d (the new f alone)", f.Used(), b.Used(), newOnly)
	}
	if errno := f.Unlink("f"); errno != 0 {
		t.Fatal(errno)
	}
	if f.Used() != 0 || b.Used() != 0 {
		t.Errorf("with nothing left Used() %d, Budget %d; want 0, 0", f.Used(), b.Used())
	}
}

func TestRmdirOpenDir(t *testing.T) {
	f, b := newFS(t, large)
	mkdir(t, f, "d")
	h := openFile(t, f, "d", rdonly)
	if errno := f.Rmdir("d"); errno != 0 {
		t.Fatal(errno)
	}
	if ents, errno := h.Readdir(-1); len(ents) != 0 || errno != 0 {
		t.Errorf("Readdir of a removed dir: %v, %v", ents, errno)
	}
	if f.Used() != memfs.EntryCost {
		t.Errorf("Used() %d with the removed dir open, want %d", f.Used(), memfs.EntryCost)
	}
	h.Close()
	if f.Used() != 0 || b.Used() != 0 {
		t.Errorf("after closing Used() %d, Budget %d; want 0, 0", f.Used(), b.Used())
	}
}

// TestCloseFS checks that closing an FS returns its bytes to the Budget
// and that every later call answers EBADF without panicking.
func TestCloseFS(t *testing.T) {
	b := memfs.NewBudget(large)
	other := memfs.New(large, b, clock())
	defer other.Close()
	writeFile(t, other, "kept", "kept")
	otherUsed := other.Used()

	f := memfs.New(large, b, clock())
	mkdir(t, f, "d")
	writeFile(t, f, "d/f", strings.Repeat("x", 5000))
	file := openFile(t, f, "d/f", rdwr)
	dir := openFile(t, f, "d", rdonly)
	unlinked := openFile(t, f, "gone", creat|rdwr)
	if _, errno := unlinked.Write(make([]byte, 300)); errno != 0 {
		t.Fatal(errno)
	}
	if errno := f.Unlink("gone"); errno != 0 {
		t.Fatal(errno)
	}
	f.Close()
	if f.Used() != 0 || b.Used() != otherUsed {
		t.Errorf("after Close Used() %d, Budget %d; want 0, %d", f.Used(), b.Used(), otherUsed)
	}
	f.Close() // twice is harmless

	buf := make([]byte, 10)
	errOf := func(_ int, errno fsys.Errno) fsys.Errno { return errno }
	calls := map[string]func() fsys.Errno{
		"OpenFile":        func() fsys.Errno { return openErrno(f.OpenFile("d/f", rdonly, 0)) },
		"OpenFile create": func() fsys.Errno { return openErrno(f.OpenFile("n", creat|rdwr, 0o644)) },
		"OpenFile root":   func() fsys.Errno { return openErrno(f.OpenFile(".", rdonly, 0)) },
		"Stat":            func() fsys.Errno { _, errno := f.Stat("d"); return errno },
		"Lstat":           func() fsys.Errno { _, errno := f.Lstat("."); return errno },
		"Mkdir":           func() fsys.Errno { return f.Mkdir("n", 0o755) },
		"Mkdir root":      func() fsys.Errno { return f.Mkdir(".", 0o755) },
		"Rmdir":           func() fsys.Errno { return f.Rmdir("d") },
		"Unlink":          func() fsys.Errno { return f.Unlink("d/f") },
		"Rename":          func() fsys.Errno { return f.Rename("d", "e") },
		"Chmod":           func() fsys.Errno { return f.Chmod("d", 0o700) },
		"Utimens":         func() fsys.Errno { return f.Utimens("d", 1, 1) },
		"Readlink":        func() fsys.Errno { _, errno := f.Readlink("d"); return errno },
		"Read":            func() fsys.Errno { return errOf(file.Read(buf)) },
		"Pread":           func() fsys.Errno { return errOf(file.Pread(buf, 0)) },
		"Write":           func() fsys.Errno { return errOf(file.Write(buf)) },
		"Pwrite":          func() fsys.Errno { return errOf(file.Pwrite(buf, 0)) },
		"Truncate":        func() fsys.Errno { return file.Truncate(1 << 20) },
		"Seek":            func() fsys.Errno { _, errno := file.Seek(0, io.SeekStart); return errno },
		"File.Stat":       func() fsys.Errno { _, errno := file.Stat(); return errno },
		"File.Utimens":    func() fsys.Errno { return file.Utimens(1, 1) },
		"Readdir":         func() fsys.Errno { _, errno := dir.Readdir(-1); return errno },
		"dir Seek":        func() fsys.Errno { _, errno := dir.Seek(0, io.SeekStart); return errno },
		"unlinked Write":  func() fsys.Errno { return errOf(unlinked.Write(buf)) },
	}
	for name, call := range calls {
		wantErrno(t, name+" after Close", call(), fsys.EBADF)
	}
	for _, h := range []fsys.File{file, dir, unlinked} {
		if errno := h.Close(); errno != 0 {
			t.Errorf("Close of a file after the FS closed: %v", errno)
		}
	}
	if f.Full() {
		t.Error("Full() after calls on a closed FS")
	}
	if f.Used() != 0 || b.Used() != otherUsed {
		t.Errorf("at the end Used() %d, Budget %d; want 0, %d", f.Used(), b.Used(), otherUsed)
	}
	other.Close()
	if b.Used() != 0 {
		t.Errorf("Budget.Used() %d with every FS closed", b.Used())
	}
}

// TestQuota checks refusals at one FS's limit: EIO, Full once, nothing
// changed.
func TestQuota(t *testing.T) {
	const limit = memfs.EntryCost + 100
	f, b := newFS(t, limit)
	h := openFile(t, f, "f", creat|rdwr)
	if n, errno := h.Pwrite(bytes.Repeat([]byte("a"), 100), 0); n != 100 || errno != 0 {
		t.Fatalf("Pwrite of 100 bytes within the quota: %d, %v", n, errno)
	}
	if f.Full() {
		t.Error("Full() after a write that fit")
	}
	if f.Used() != limit || b.Used() != limit {
		t.Fatalf("Used() %d, Budget %d; want %d, %d", f.Used(), b.Used(), limit, limit)
	}
	refusals := map[string]func() fsys.Errno{
		"Pwrite past the quota": func() fsys.Errno { _, errno := h.Pwrite([]byte("b"), 100); return errno },
		"Write past the quota": func() fsys.Errno {
			if _, errno := h.Seek(0, io.SeekEnd); errno != 0 {
				return errno
			}
			_, errno := h.Write([]byte("b"))
			return errno
		},
		"Truncate past the quota": func() fsys.Errno { return h.Truncate(101) },
		"Mkdir":                   func() fsys.Errno { return f.Mkdir("d", 0o755) },
		"OpenFile O_CREAT":        func() fsys.Errno { return openErrno(f.OpenFile("g", creat|wronly, 0o644)) },
	}
	for name, call := range refusals {
		wantErrno(t, name, call(), fsys.EIO)
		if !f.Full() {
			t.Errorf("%s: Full() = false after the refusal", name)
		}
		if f.Full() {
			t.Errorf("%s: Full() = true a second time", name)
		}
		if f.Used() != limit {
			t.Errorf("%s: Used() %d, want %d", name, f.Used(), limit)
		}
	}
	if got := contents(t, h); !bytes.Equal(got, bytes.Repeat([]byte("a"), 100)) {
		t.Errorf("after refusals the file holds %d bytes %q", len(got), got)
	}
	if names := tree(t, f); names != "f="+strings.Repeat("a", 100) {
		t.Errorf("tree %q after refusals", names)
	}

	// Shrinking and growing back within what was charged is no refusal.
	if errno := h.Truncate(50); errno != 0 {
		t.Fatal(errno)
	}
	if errno := h.Truncate(100); errno != 0 {
		t.Fatalf("Truncate back to 100: %v", errno)
	}
	if f.Full() {
		t.Error("Full() after successful truncates")
	}
	want := append(bytes.Repeat([]byte("a"), 50), make([]byte, 50)...)
	if got := contents(t, h); !bytes.Equal(got, want) {
		t.Errorf("after Truncate(50), Truncate(100) the file holds %q", got)
	}
	if errno := h.Truncate(0); errno != 0 {
		t.Fatal(errno)
	}
	if f.Used() != memfs.EntryCost {
		t.Errorf("Used() %d after Truncate(0), want %d (the capacity given back)", f.Used(), memfs.EntryCost)
	}
	h.Close()
	if errno := f.Unlink("f"); errno != 0 {
		t.Fatal(errno)
	}
	if f.Used() != 0 || b.Used() != 0 {
		t.Errorf("empty FS: Used() %d, Budget %d", f.Used(), b.Used())
	}
	mkdir(t, f, "d")
}

// TestBudget checks refusals at the node's Budget, shared by two FSes
// whose own limits are far away.
func TestBudget(t *testing.T) {
	const budget = 4096
	b := memfs.NewBudget(budget)
	x := memfs.New(1<<20, b, clock())
	y := memfs.New(1<<20, b, clock())
	defer x.Close()
	defer y.Close()
	sum := func(when string) {
		t.Helper()
		if x.Used()+y.Used() != b.Used() || b.Used() > budget {
			t.Errorf("%s: Used() %d + %d, Budget.Used() %d (limit %d)", when, x.Used(), y.Used(), b.Used(), budget)
		}
	}
	hx := openFile(t, x, "f", creat|rdwr)
	if _, errno := hx.Write(make([]byte, 3000)); errno != 0 {
		t.Fatalf("Write of 3000 bytes under a %d budget: %v", budget, errno)
	}
	if x.Full() {
		t.Error("Full() after a write that fit (only the extra capacity did not)")
	}
	sum("after x's write")
	hy := openFile(t, y, "f", creat|rdwr)
	sum("after y's create")
	_, errno := hy.Write(make([]byte, 1000))
	wantErrno(t, "Write past the Budget", errno, fsys.EIO)
	if !y.Full() || y.Full() {
		t.Error("y.Full() not true exactly once after the refusal")
	}
	if x.Full() {
		t.Error("x.Full() after y's refusal")
	}
	wantErrno(t, "Mkdir past the Budget", y.Mkdir("d", 0o755), fsys.EIO)
	y.Full()
	if st, _ := hy.Stat(); st.Size != 0 {
		t.Errorf("refused write left size %d", st.Size)
	}
	sum("after refusals")
	x.Close()
	sum("after x closed")
	if _, errno := hy.Write(make([]byte, 1000)); errno != 0 {
		t.Errorf("Write once x gave its bytes back: %v", errno)
	}
	sum("after y's write")
	hy.Close()
	y.Close()
	if b.Used() != 0 {
		t.Errorf("Budget.Used() %d with every FS closed", b.Used())
	}
}

// TestHugeSizes checks that offsets and sizes far past the quota are
// refused before anything is allocated.
func TestHugeSizes(t *testing.T) {
	const limit = 1 << 20
	b := memfs.NewBudget(1 << 16) // smaller than the FS's own limit
	f := memfs.New(limit, b, clock())
	defer f.Close()
	h := openFile(t, f, "f", creat|rdwr)
	if _, errno := h.Write([]byte("abc")); errno != 0 {
		t.Fatal(errno)
	}
	used := f.Used()
	buf := []byte("xyz")
	tests := map[string]func() fsys.Errno{
		"Pwrite at 1<<62":         func() fsys.Errno { _, errno := h.Pwrite(buf, 1<<62); return errno },
		"Pwrite at MaxInt64":      func() fsys.Errno { _, errno := h.Pwrite(buf, math.MaxInt64); return errno },
		"Pwrite ending past int":  func() fsys.Errno { _, errno := h.Pwrite(buf, math.MaxInt64-1); return errno },
		"Pwrite at the limit":     func() fsys.Errno { _, errno := h.Pwrite(buf, limit); return errno },
		"Pwrite past the Budget":  func() fsys.Errno { _, errno := h.Pwrite(buf, limit/2); return errno },
		"Truncate to 1<<62":       func() fsys.Errno { return h.Truncate(1 << 62) },
		"Truncate to MaxInt64":    func() fsys.Errno { return h.Truncate(math.MaxInt64) },
		"Truncate past the limit": func() fsys.Errno { return h.Truncate(limit + 1) },
		"Truncate past the Budget": func() fsys.Errno {
			return h.Truncate(limit / 2)
		},
		"Write after a far Seek": func() fsys.Errno {
			if _, errno := h.Seek(1<<62, io.SeekStart); errno != 0 {
				return errno
			}
			_, errno := h.Write(buf)
			return errno
		},
	}
	for name, call := range tests {
		var errno fsys.Errno
		allocs := testing.AllocsPerRun(5, func() { errno = call() })
		wantErrno(t, name, errno, fsys.EIO)
		if allocs > 0 {
			t.Errorf("%s: %v allocations", name, allocs)
		}
		if !f.Full() {
			t.Errorf("%s: Full() = false", name)
		}
		if f.Used() != used || b.Used() != used {
			t.Errorf("%s: Used() %d, Budget %d; want %d", name, f.Used(), b.Used(), used)
		}
		if st, _ := h.Stat(); st.Size != 3 {
			t.Errorf("%s: size %d, want 3", name, st.Size)
		}
	}
}

// TestBudgetSum drives several FSes on one Budget and checks that the
// Budget is always the sum of their Used().
func TestBudgetSum(t *testing.T) {
	const n = 5
	b := memfs.NewBudget(40 << 10)
	rng := rand.New(rand.NewPCG(1, 2))
	var fss [n]*memfs.FS
	var files [n][]fsys.File
	for i := range fss {
		fss[i] = memfs.New(int64(8+i)<<10, b, clock())
	}
	check := func(step int) {
		t.Helper()
		var sum int64
		for i, f := range fss {
			u := f.Used()
			if u < 0 || u > int64(8+i)<<10 {
				t.Fatalf("step %d: FS %d Used() %d out of [0, %d]", step, i, u, int64(8+i)<<10)
			}
			sum += u
		}
		if sum != b.Used() {
			t.Fatalf("step %d: sum of Used() %d, Budget.Used() %d", step, sum, b.Used())
		}
	}
	for step := range 2000 {
		i := rng.IntN(n)
		f := fss[i]
		name := fmt.Sprintf("f%d", rng.IntN(6))
		switch rng.IntN(6) {
		case 0:
			if h, errno := f.OpenFile(name, creat|rdwr, 0o644); errno == 0 {
				files[i] = append(files[i], h)
			}
		case 1, 2:
			if len(files[i]) > 0 {
				h := files[i][rng.IntN(len(files[i]))]
				h.Pwrite(make([]byte, rng.IntN(3000)), int64(rng.IntN(4000)))
			}
		case 3:
			if len(files[i]) > 0 {
				files[i][rng.IntN(len(files[i]))].Truncate(int64(rng.IntN(6000)))
			}
		case 4:
			f.Unlink(name)
		case 5:
			if k := len(files[i]); k > 0 {
				j := rng.IntN(k)
				files[i][j].Close()
				files[i] = slices.Delete(files[i], j, j+1)
			}
		}
		f.Full()
		check(step)
	}
	for i, f := range fss {
		f.Close()
		for _, h := range files[i] {
			h.Close()
		}
		check(-1)
	}
	if b.Used() != 0 {
		t.Errorf("Budget.Used() %d after every FS closed", b.Used())
	}
}

// TestConcurrent runs FSes on one Budget from several goroutines, and
// several handles of one FS at once, for the race detector.
func TestConcurrent(t *testing.T) {
	b := memfs.NewBudget(64 << 10)
	shared := memfs.New(32<<10, b, clock())
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			own := memfs.New(16<<10, b, clock())
			defer own.Close()
			for _, f := range []*memfs.FS{own, shared} {
				name := fmt.Sprintf("g%d", g)
				for i := range 100 {
					h, errno := f.OpenFile(name, creat|rdwr, 0o644)
					if errno != 0 {
						f.Full()
						continue
					}
					h.Pwrite(make([]byte, 100*i), int64(i))
					h.Truncate(int64(i * 7))
					h.Stat()
					f.Stat(name)
					f.Full()
					h.Close()
					if i%10 == 0 {
						f.Unlink(name)
					}
				}
			}
		})
	}
	wg.Wait()
	if shared.Used() != b.Used() {
		t.Errorf("Budget.Used() %d, the one open FS's Used() %d", b.Used(), shared.Used())
	}
	shared.Close()
	if b.Used() != 0 {
		t.Errorf("Budget.Used() %d after every FS closed", b.Used())
	}
}

// The fuzz target's operations, one byte each, followed by their
// arguments (see fuzzer.step).
const (
	opOpen = iota
	opWrite
	opPwrite
	opTruncate
	opRead
	opPread
	opSeek
	opReaddir
	opMkdir
	opRmdir
	opUnlink
	opRename
	opCloseFile
	opStat
	opChmod
	opUtimens
	opLinks
	opFstat
	opSetAppend
	opCloseFS
	numOps
)

// The fuzz target's two FSes share a Budget smaller than the sum of
// their limits, so both the quota and the Budget refuse.
var fuzzLimits = [2]int64{8*memfs.EntryCost + 4096, 6*memfs.EntryCost + 2048}

const (
	fuzzBudget     = 12 << 10
	fuzzMaxHandles = 8
	fuzzMaxOps     = 300
)

// fuzzComponents are the path components the fuzz target draws from: a
// few names, the components that must never resolve, and names at and
// past MaxNameLen.
var fuzzComponents = []string{
	"a", "b", "c", "d", "..", ".", "",
	strings.Repeat("m", memfs.MaxNameLen), strings.Repeat("l", memfs.MaxNameLen+1), "n\x00",
}

// fuzzInput hands out the fuzz input a byte at a time, zeros past its end.
type fuzzInput struct {
	b []byte
	i int
}

func (in *fuzzInput) more() bool { return in.i < len(in.b) }

func (in *fuzzInput) next() byte {
	if in.i >= len(in.b) {
		return 0
	}
	c := in.b[in.i]
	in.i++
	return c
}

// path is a header byte (low 2 bits: components, 0 for a root spelling;
// bit 2: a trailing slash; bit 3: a leading slash) and a byte per
// component.
func (in *fuzzInput) path() string {
	h := in.next()
	n := int(h & 3)
	if n == 0 {
		return [...]string{"", ".", "/", "./"}[h>>2&3]
	}
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fuzzComponents[int(in.next())%len(fuzzComponents)]
	}
	p := strings.Join(parts, "/")
	if h&4 != 0 {
		p += "/"
	}
	if h&8 != 0 {
		p = "/" + p
	}
	return p
}

// offset is mostly small, sometimes at the limits, huge or negative.
func (in *fuzzInput) offset() int64 {
	switch in.next() % 8 {
	case 0, 1, 2:
		return int64(in.next())
	case 3:
		return int64(in.next()) * 64
	case 4:
		return int64(in.next())<<8 | int64(in.next())
	case 5:
		return [...]int64{fuzzLimits[0] - 1, fuzzLimits[0], fuzzLimits[0] + 1, fuzzLimits[1], fuzzBudget}[in.next()%5]
	case 6:
		return [...]int64{1 << 62, 1<<62 - 1, math.MaxInt64, math.MaxInt64 - 3, 1 << 40, math.MinInt64}[in.next()%6]
	default:
		return -int64(in.next()) - 1
	}
}

// data is a length byte (up to 95 bytes, or large steps up to ~10 KB)
// and a pattern byte.
func (in *fuzzInput) data() []byte {
	l := int(in.next())
	if l < 192 {
		l %= 96
	} else {
		l = (l - 192) * 160
	}
	seed := in.next()
	buf := make([]byte, l)
	for i := range buf {
		buf[i] = seed + byte(i)
	}
	return buf
}

func (in *fuzzInput) oflag() fsys.Oflag {
	b := in.next()
	flag := fsys.Oflag(b & 3)
	for bit, f := range [...]fsys.Oflag{fsys.O_APPEND, fsys.O_CREAT, fsys.O_DIRECTORY, fsys.O_EXCL, fsys.O_TRUNC} {
		if b&(4<<bit) != 0 {
			flag |= f
		}
	}
	return flag
}

type fileKey struct {
	fs  int
	ino uint64
}

type fuzzHandle struct {
	fs                 int
	f                  fsys.File
	ino                uint64
	dir                bool
	readable, writable bool
	append             bool
	off                int64           // a file's offset, as it should be
	seen               map[string]bool // a directory's names since the last rewind
	dirDone            bool            // Readdir reached the end since the last rewind
}

func (h *fuzzHandle) key() fileKey { return fileKey{h.fs, h.ino} }

// fuzzer runs one fuzz input against two FSes, keeping a model of every
// file's contents and every handle's offset.
type fuzzer struct {
	t       *testing.T
	in      fuzzInput
	budget  *memfs.Budget
	fss     [2]*memfs.FS
	closed  [2]bool
	handles []*fuzzHandle
	shadow  map[fileKey][]byte // every file's contents, by inode
	reshape bool               // the last operation may have changed a tree's shape
	log     []string
}

func (z *fuzzer) logf(format string, args ...any) {
	z.log = append(z.log, fmt.Sprintf(format, args...))
}

func (z *fuzzer) fail(format string, args ...any) {
	z.t.Helper()
	log := z.log[max(0, len(z.log)-40):]
	z.t.Fatalf("%s\nlast operations:\n  %s", fmt.Sprintf(format, args...), strings.Join(log, "\n  "))
}

// validPath reports whether p may resolve: a root spelling, or names
// with no "", ".", ".." components, none too long and no NUL, and at
// most one trailing slash.
func validPath(p string) bool {
	q := strings.TrimSuffix(p, "/")
	if isRoot(p) {
		return true
	}
	for c := range strings.SplitSeq(q, "/") {
		if c == "" || c == "." || c == ".." || len(c) > memfs.MaxNameLen || strings.IndexByte(c, 0) >= 0 {
			return false
		}
	}
	return true
}

// parentOf is the directory holding p's last component.
func parentOf(p string) string {
	q := strings.TrimSuffix(p, "/")
	if i := strings.LastIndexByte(q, '/'); i >= 0 {
		return q[:i]
	}
	return "."
}

func (z *fuzzer) dirExists(i int, p string) bool {
	st, errno := z.fss[i].Stat(p)
	return errno == 0 && st.Mode.IsDir()
}

func isRoot(p string) bool {
	q := strings.TrimSuffix(p, "/")
	return q == "" || q == "."
}

func validName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= memfs.MaxNameLen && !strings.ContainsAny(name, "/\x00")
}

// expect checks errno against want (anyErrno: some error) and, for
// calls on an FS, the rules every call follows: a closed FS answers
// EBADF, a path that must not resolve is refused.
func (z *fuzzer) expect(what string, errno, want fsys.Errno) {
	z.t.Helper()
	switch {
	case want == anyErrno && errno == 0:
		z.fail("%s: succeeded, want an error", what)
	case want != anyErrno && errno != want:
		z.fail("%s: errno %q, want %q", what, errno, want)
	}
}

// expectPaths checks the rules of a call naming paths on FS i.
func (z *fuzzer) expectPaths(what string, i int, errno fsys.Errno, paths ...string) {
	z.t.Helper()
	if z.closed[i] {
		z.expect(what+" on a closed FS", errno, fsys.EBADF)
		return
	}
	for _, p := range paths {
		if !validPath(p) && errno == 0 {
			z.fail("%s: succeeded with path %q, which must not resolve", what, p)
		}
	}
}

// checkFull reads both FSes' Full flags: set exactly when the call on
// FS i answered EIO, and forgotten once read.
func (z *fuzzer) checkFull(i int, errno fsys.Errno) {
	z.t.Helper()
	for j, f := range z.fss {
		full := f.Full()
		if f.Full() {
			z.fail("FS %d: Full() true twice in a row", j)
		}
		if want := j == i && errno == fsys.EIO; full != want {
			z.fail("FS %d: Full() = %v after errno %q on FS %d", j, full, errno, i)
		}
	}
}

func (z *fuzzer) pickHandle() *fuzzHandle {
	b := z.in.next()
	if len(z.handles) == 0 {
		return nil
	}
	return z.handles[int(b)%len(z.handles)]
}

func (z *fuzzer) closeHandle(k int) {
	z.t.Helper()
	h := z.handles[k]
	if errno := h.f.Close(); errno != 0 {
		z.fail("Close: %v", errno)
	}
	if errno := h.f.Close(); errno != 0 {
		z.fail("second Close: %v", errno)
	}
	z.handles = slices.Delete(z.handles, k, k+1)
}

func (z *fuzzer) step() {
	z.t.Helper()
	op := z.in.next() % numOps
	switch op {
	case opOpen:
		z.open()
	case opWrite, opPwrite:
		z.write(op == opPwrite)
	case opTruncate:
		z.truncate()
	case opRead, opPread:
		z.read(op == opPread)
	case opSeek:
		z.seek()
	case opReaddir:
		z.readdir()
	case opMkdir, opRmdir, opUnlink:
		z.dirop(op)
	case opRename:
		z.rename()
	case opCloseFile:
		if len(z.handles) > 0 {
			k := int(z.in.next()) % len(z.handles)
			z.logf("close file %d", k)
			z.closeHandle(k)
		}
	case opStat:
		z.stat()
	case opChmod:
		z.chmod()
	case opUtimens:
		z.utimens()
	case opLinks:
		z.links()
	case opFstat:
		z.fstat()
	case opSetAppend:
		if h := z.pickHandle(); h != nil {
			on := z.in.next()&1 == 1
			z.logf("set append %v", on)
			if errno := h.f.SetAppend(on); errno != 0 {
				z.fail("SetAppend: %v", errno)
			}
			h.append = on
			if h.f.IsAppend() != on {
				z.fail("IsAppend() = %v after SetAppend(%v)", !on, on)
			}
		}
	case opCloseFS:
		i := int(z.in.next() & 1)
		if z.in.next()%8 == 0 {
			z.logf("close FS %d", i)
			z.fss[i].Close()
			z.fss[i].Close()
			z.closed[i] = true
		}
	}
	z.reshape = op == opOpen || op == opMkdir || op == opRmdir || op == opUnlink || op == opRename
	z.checkInvariants()
}

func (z *fuzzer) open() {
	z.t.Helper()
	i, p, flag := int(z.in.next()&1), z.in.path(), z.in.oflag()
	z.logf("open fs%d %q %#x", i, p, flag)
	if len(z.handles) >= fuzzMaxHandles {
		z.closeHandle(0)
	}
	f := z.fss[i]
	pre, preErr := f.Stat(p)
	file, errno := f.OpenFile(p, flag, 0o640)
	z.checkFull(i, errno)
	z.expectPaths("OpenFile", i, errno, p)
	acc := flag & 3
	writable := acc == fsys.O_RDWR || acc == fsys.O_WRONLY
	exclusive := flag&(fsys.O_CREAT|fsys.O_EXCL) == fsys.O_CREAT|fsys.O_EXCL
	if errno != 0 {
		if file != nil {
			z.fail("OpenFile returned a file with errno %v", errno)
		}
		if preErr == 0 && !z.closed[i] && !exclusive && !(writable && pre.Mode.IsDir()) &&
			!(flag&fsys.O_DIRECTORY != 0 && !pre.Mode.IsDir()) {
			z.fail("OpenFile of existing %q: %v", p, errno)
		}
		return
	}
	st, serr := file.Stat()
	isDir, _ := file.IsDir()
	ino, _ := file.Ino()
	switch {
	case serr != 0:
		z.fail("File.Stat of a new handle: %v", serr)
	case isDir != st.Mode.IsDir() || ino != st.Ino:
		z.fail("IsDir() %v, Ino() %d; Stat says %v, %d", isDir, ino, st.Mode, st.Ino)
	case flag&fsys.O_DIRECTORY != 0 && !isDir:
		z.fail("O_DIRECTORY opened a file")
	case writable && isDir:
		z.fail("opened a directory for writing")
	case preErr == 0 && exclusive:
		z.fail("O_CREAT|O_EXCL opened existing %q", p)
	case preErr == 0 && st.Ino != pre.Ino:
		z.fail("opened inode %d, Stat said %d", st.Ino, pre.Ino)
	case preErr != 0 && flag&fsys.O_CREAT == 0:
		z.fail("opened %q, which Stat said was missing (%v)", p, preErr)
	case preErr != 0 && (isDir || strings.HasSuffix(p, "/")):
		z.fail("O_CREAT made %q a directory %v", p, st.Mode)
	case preErr != 0 && st.Mode != 0o640:
		z.fail("created with mode %v, want 0640", st.Mode)
	}
	if preErr != 0 {
		if post, errno := f.Stat(p); errno != 0 || post.Ino != ino {
			z.fail("after O_CREAT Stat(%q) = inode %d, %v; want %d", p, post.Ino, errno, ino)
		}
	}
	h := &fuzzHandle{fs: i, f: file, ino: ino, dir: isDir, readable: acc != fsys.O_WRONLY, writable: writable,
		append: flag&fsys.O_APPEND != 0, seen: map[string]bool{}}
	if !isDir {
		if flag&fsys.O_TRUNC != 0 && writable {
			z.shadow[h.key()] = nil
		}
		if want := int64(len(z.shadow[h.key()])); st.Size != want {
			z.fail("opened file of size %d, want %d", st.Size, want)
		}
	}
	z.handles = append(z.handles, h)
}

// checkHandle compares a handle's offset and size with the model.
func (z *fuzzer) checkHandle(h *fuzzHandle) {
	z.t.Helper()
	if z.closed[h.fs] || h.dir {
		return
	}
	if off, errno := h.f.Seek(0, io.SeekCurrent); errno != 0 || off != h.off {
		z.fail("offset %d, %v; want %d", off, errno, h.off)
	}
	if st, errno := h.f.Stat(); errno != 0 || st.Size != int64(len(z.shadow[h.key()])) {
		z.fail("size %d, %v; want %d", st.Size, errno, len(z.shadow[h.key()]))
	}
}

func (z *fuzzer) write(positioned bool) {
	z.t.Helper()
	h := z.pickHandle()
	if h == nil {
		return
	}
	data := z.in.data()
	cur := z.shadow[h.key()]
	var off int64
	var n int
	var errno fsys.Errno
	if positioned {
		off = z.in.offset()
		z.logf("pwrite %d bytes at %d", len(data), off)
		n, errno = h.f.Pwrite(data, off)
	} else {
		off = h.off
		if h.append {
			off = int64(len(cur))
		}
		z.logf("write %d bytes (at %d)", len(data), off)
		n, errno = h.f.Write(data)
	}
	z.checkFull(h.fs, errno)
	limit := fuzzLimits[h.fs]
	switch {
	case z.closed[h.fs]:
		z.expect("write on a closed FS", errno, fsys.EBADF)
	case h.dir:
		z.expect("write to a directory", errno, anyErrno)
	case !h.writable:
		z.expect("write to a read-only file", errno, fsys.EBADF)
	case off < 0:
		z.expect("write at a negative offset", errno, fsys.EINVAL)
	case len(data) == 0:
		z.expect("empty write", errno, 0)
	case off > limit-int64(len(data)):
		z.expect("write past the limit", errno, fsys.EIO)
	case errno != 0 && errno != fsys.EIO:
		z.fail("write: errno %q, want success or EIO", errno)
	}
	if errno != 0 {
		if n != 0 {
			z.fail("write returned %d bytes with errno %v", n, errno)
		}
		z.checkHandle(h)
		return
	}
	if n != len(data) {
		z.fail("write of %d bytes returned %d", len(data), n)
	}
	if n > 0 {
		if end := int(off) + n; end > len(cur) {
			cur = append(cur, make([]byte, end-len(cur))...)
		}
		copy(cur[off:], data)
		z.shadow[h.key()] = cur
		if !positioned {
			h.off = off + int64(n)
		}
	}
	z.checkHandle(h)
}

func (z *fuzzer) truncate() {
	z.t.Helper()
	h := z.pickHandle()
	if h == nil {
		return
	}
	size := z.in.offset()
	z.logf("truncate to %d", size)
	errno := h.f.Truncate(size)
	z.checkFull(h.fs, errno)
	switch {
	case z.closed[h.fs]:
		z.expect("truncate on a closed FS", errno, fsys.EBADF)
	case h.dir:
		z.expect("truncate of a directory", errno, anyErrno)
	case !h.writable:
		z.expect("truncate of a read-only file", errno, fsys.EBADF)
	case size < 0:
		z.expect("truncate to a negative size", errno, fsys.EINVAL)
	case size > fuzzLimits[h.fs]:
		z.expect("truncate past the limit", errno, fsys.EIO)
	case errno != 0 && errno != fsys.EIO:
		z.fail("truncate: errno %q, want success or EIO", errno)
	}
	if errno == 0 {
		cur := z.shadow[h.key()]
		if int(size) <= len(cur) {
			cur = cur[:size:size]
		} else {
			cur = append(cur, make([]byte, int(size)-len(cur))...)
		}
		z.shadow[h.key()] = cur
	}
	z.checkHandle(h)
}

func (z *fuzzer) read(positioned bool) {
	z.t.Helper()
	h := z.pickHandle()
	if h == nil {
		return
	}
	buf := make([]byte, len(z.in.data()))
	var off int64
	var n int
	var errno fsys.Errno
	if positioned {
		off = z.in.offset()
		z.logf("pread %d bytes at %d", len(buf), off)
		n, errno = h.f.Pread(buf, off)
	} else {
		off = h.off
		z.logf("read %d bytes (at %d)", len(buf), off)
		n, errno = h.f.Read(buf)
	}
	z.checkFull(h.fs, errno)
	switch {
	case z.closed[h.fs]:
		z.expect("read on a closed FS", errno, fsys.EBADF)
	case h.dir:
		z.expect("read of a directory", errno, fsys.EISDIR)
	case !h.readable:
		z.expect("read of a write-only file", errno, fsys.EBADF)
	case off < 0:
		z.expect("read at a negative offset", errno, fsys.EINVAL)
	default:
		z.expect("read", errno, 0)
	}
	if errno != 0 {
		if n != 0 {
			z.fail("read returned %d bytes with errno %v", n, errno)
		}
		z.checkHandle(h)
		return
	}
	cur := z.shadow[h.key()]
	want := 0
	if off < int64(len(cur)) {
		want = min(len(buf), len(cur)-int(off))
	}
	if n != want {
		z.fail("read %d bytes at %d of a %d-byte file into %d, want %d", n, off, len(cur), len(buf), want)
	}
	if n > 0 && !bytes.Equal(buf[:n], cur[off:off+int64(n)]) {
		z.fail("read at %d: %x, want %x", off, buf[:n], cur[off:off+int64(n)])
	}
	if !positioned {
		h.off += int64(n)
	}
	z.checkHandle(h)
}

func (z *fuzzer) seek() {
	z.t.Helper()
	h := z.pickHandle()
	if h == nil {
		return
	}
	off, whence := z.in.offset(), int(z.in.next()%4)
	z.logf("seek %d whence %d", off, whence)
	pos, errno := h.f.Seek(off, whence)
	z.checkFull(h.fs, errno)
	switch {
	case z.closed[h.fs]:
		z.expect("seek on a closed FS", errno, fsys.EBADF)
	case h.dir && (off != 0 || whence != io.SeekStart):
		z.expect("seek of a directory", errno, fsys.EINVAL)
	case h.dir:
		z.expect("rewind of a directory", errno, 0)
		h.seen, h.dirDone = map[string]bool{}, false
	default:
		var base int64
		switch whence {
		case io.SeekCurrent:
			base = h.off
		case io.SeekEnd:
			base = int64(len(z.shadow[h.key()]))
		}
		switch {
		case whence > io.SeekEnd:
			z.expect("seek with a bad whence", errno, fsys.EINVAL)
		case off > 1<<62-base || base+off < 0:
			z.expect(fmt.Sprintf("seek to %d%+d", base, off), errno, fsys.EINVAL)
		default:
			z.expect("seek", errno, 0)
			if pos != base+off {
				z.fail("seek to %d%+d returned %d", base, off, pos)
			}
			h.off = pos
		}
	}
	z.checkHandle(h)
}

func (z *fuzzer) readdir() {
	z.t.Helper()
	h := z.pickHandle()
	if h == nil {
		return
	}
	n := int(z.in.next()%5) - 1
	z.logf("readdir %d", n)
	ents, errno := h.f.Readdir(n)
	z.checkFull(h.fs, errno)
	switch {
	case z.closed[h.fs]:
		z.expect("readdir on a closed FS", errno, fsys.EBADF)
	case !h.dir:
		z.expect("readdir of a file", errno, fsys.EBADF)
	default:
		z.expect("readdir", errno, 0)
	}
	if errno != 0 {
		return
	}
	if n > 0 && len(ents) > n {
		z.fail("Readdir(%d) returned %d entries", n, len(ents))
	}
	if h.dirDone && len(ents) > 0 {
		z.fail("Readdir returned %d entries after the end", len(ents))
	}
	for _, e := range ents {
		if !validName(e.Name) || (e.Type != 0 && e.Type != fs.ModeDir) {
			z.fail("Readdir returned %q of type %v", e.Name, e.Type)
		}
		if h.seen[e.Name] {
			z.fail("Readdir returned %q twice", e.Name)
		}
		h.seen[e.Name] = true
	}
	if n <= 0 || len(ents) < n {
		h.dirDone = true
	}
}

// dirop is Mkdir, Rmdir or Unlink.
func (z *fuzzer) dirop(op byte) {
	z.t.Helper()
	i, p := int(z.in.next()&1), z.in.path()
	f := z.fss[i]
	pre, preErr := f.Stat(p)
	var name string
	var errno fsys.Errno
	switch op {
	case opMkdir:
		name, errno = "Mkdir", f.Mkdir(p, 0o750)
	case opRmdir:
		name, errno = "Rmdir", f.Rmdir(p)
	default:
		name, errno = "Unlink", f.Unlink(p)
	}
	z.logf("%s fs%d %q", name, i, p)
	what := fmt.Sprintf("%s(%q)", name, p)
	z.checkFull(i, errno)
	z.expectPaths(what, i, errno, p)
	if z.closed[i] {
		return
	}
	post, postErr := f.Stat(p)
	switch op {
	case opMkdir:
		switch {
		case isRoot(p) && validPath(p):
			z.expect(what, errno, fsys.EEXIST)
		case preErr == 0:
			z.expect(what+" of an existing entry", errno, fsys.EEXIST)
		case errno == 0 && (preErr != fsys.ENOENT || postErr != 0 || post.Mode != fs.ModeDir|0o750):
			z.fail("%s succeeded: before %v, after %v %v", what, preErr, post.Mode, postErr)
		}
	case opRmdir:
		switch {
		case isRoot(p):
			z.expect(what, errno, anyErrno)
		case preErr == 0 && !pre.Mode.IsDir():
			z.expect(what+" of a file", errno, fsys.ENOTDIR)
		case errno == 0 && (preErr != 0 || postErr != fsys.ENOENT):
			z.fail("%s succeeded: before %v, after %v", what, preErr, postErr)
		}
	default:
		switch {
		case isRoot(p):
			z.expect(what, errno, anyErrno)
		case preErr == 0 && pre.Mode.IsDir():
			z.expect(what+" of a directory", errno, fsys.EISDIR)
		case errno == 0 && (preErr != 0 || postErr != fsys.ENOENT):
			z.fail("%s succeeded: before %v, after %v", what, preErr, postErr)
		}
	}
	if errno != 0 && (preErr != postErr || pre != post) {
		z.fail("%s failed (%v) but changed the entry: %+v %v, then %+v %v", what, errno, pre, preErr, post, postErr)
	}
}

func (z *fuzzer) rename() {
	z.t.Helper()
	i, from, to := int(z.in.next()&1), z.in.path(), z.in.path()
	z.logf("rename fs%d %q %q", i, from, to)
	f := z.fss[i]
	preF, preFErr := f.Stat(from)
	preT, preTErr := f.Stat(to)
	errno := f.Rename(from, to)
	what := fmt.Sprintf("Rename(%q, %q)", from, to)
	z.checkFull(i, errno)
	z.expectPaths(what, i, errno, from, to)
	if z.closed[i] {
		return
	}
	same := preFErr == 0 && preTErr == 0 && preF.Ino == preT.Ino
	switch {
	case !validPath(from) || !validPath(to):
		// Refused, as expectPaths checked; which error is not the point.
	case isRoot(from) || isRoot(to):
		z.expect(what+" of the root", errno, anyErrno)
	case same:
		z.expect(what+" of an entry to itself", errno, 0)
	case preFErr != 0:
		z.expect(what+" of a missing entry", errno, anyErrno)
	case !preF.Mode.IsDir() && strings.HasSuffix(to, "/") && z.dirExists(i, parentOf(to)):
		// Before the type of the target, as on Linux.
		z.expect(what+" of a file to a name with a slash", errno, fsys.ENOTDIR)
	case preTErr == 0 && preF.Mode.IsDir() && !preT.Mode.IsDir():
		z.expect(what+" of a dir over a file", errno, fsys.ENOTDIR)
	case preTErr == 0 && !preF.Mode.IsDir() && preT.Mode.IsDir():
		z.expect(what+" of a file over a dir", errno, fsys.EISDIR)
	}
	postF, postFErr := f.Stat(from)
	postT, postTErr := f.Stat(to)
	if errno != 0 {
		if postF != preF || postFErr != preFErr || postT != preT || postTErr != preTErr {
			z.fail("%s failed (%v) but changed the entries", what, errno)
		}
		return
	}
	if postTErr != 0 || postT.Ino != preF.Ino {
		z.fail("after %s the target is inode %d (%v), want %d", what, postT.Ino, postTErr, preF.Ino)
	}
	if !same && postFErr == 0 {
		z.fail("after %s the source still resolves, to inode %d", what, postF.Ino)
	}
}

func (z *fuzzer) stat() {
	z.t.Helper()
	i, p := int(z.in.next()&1), z.in.path()
	z.logf("stat fs%d %q", i, p)
	f := z.fss[i]
	st, errno := f.Stat(p)
	lst, lerrno := f.Lstat(p)
	target, rerrno := f.Readlink(p)
	z.checkFull(i, errno)
	z.expectPaths(fmt.Sprintf("Stat(%q)", p), i, errno, p)
	if st != lst || errno != lerrno {
		z.fail("Stat(%q) = %+v, %v; Lstat = %+v, %v", p, st, errno, lst, lerrno)
	}
	if rerrno == 0 || target != "" {
		z.fail("Readlink(%q) = %q, %v; want an error", p, target, rerrno)
	}
	if z.closed[i] {
		return
	}
	if isRoot(p) && validPath(p) && (errno != 0 || !st.Mode.IsDir()) {
		z.fail("Stat(%q) of the root: %v %v", p, st.Mode, errno)
	}
	if errno == 0 && !st.Mode.IsDir() && st.Size != int64(len(z.shadow[fileKey{i, st.Ino}])) {
		z.fail("Stat(%q) size %d, want %d", p, st.Size, len(z.shadow[fileKey{i, st.Ino}]))
	}
}

func (z *fuzzer) chmod() {
	z.t.Helper()
	i, p := int(z.in.next()&1), z.in.path()
	perm := fs.FileMode(z.in.next())<<1 | fs.FileMode(z.in.next()&1)
	if z.in.next()&1 == 1 {
		perm |= fs.ModeDir
	}
	z.logf("chmod fs%d %q %v", i, p, perm)
	f := z.fss[i]
	pre, preErr := f.Stat(p)
	errno := f.Chmod(p, perm)
	what := fmt.Sprintf("Chmod(%q)", p)
	z.checkFull(i, errno)
	z.expectPaths(what, i, errno, p)
	if z.closed[i] {
		return
	}
	if preErr == 0 {
		z.expect(what, errno, 0)
	}
	if errno == 0 {
		if post, _ := f.Stat(p); post.Mode != pre.Mode.Type()|perm.Perm() {
			z.fail("%s to %v: mode %v, was %v", what, perm, post.Mode, pre.Mode)
		}
	}
}

func (z *fuzzer) utimens() {
	z.t.Helper()
	times := [...]int64{fsys.UTIME_OMIT, 0, -1, 1_700_000_000_000_000_000}
	viaHandle := z.in.next()&1 == 1
	atim, mtim := times[z.in.next()%4], times[z.in.next()%4]
	var errno fsys.Errno
	var pre, post sys.Stat_t
	var i int
	if viaHandle {
		h := z.pickHandle()
		if h == nil {
			return
		}
		z.logf("futimens %d %d", atim, mtim)
		i = h.fs
		pre, _ = h.f.Stat()
		errno = h.f.Utimens(atim, mtim)
		post, _ = h.f.Stat()
		if z.closed[i] {
			z.expect("File.Utimens on a closed FS", errno, fsys.EBADF)
		}
	} else {
		var p string
		i, p = int(z.in.next()&1), z.in.path()
		z.logf("utimens fs%d %q %d %d", i, p, atim, mtim)
		var preErr fsys.Errno
		pre, preErr = z.fss[i].Stat(p)
		errno = z.fss[i].Utimens(p, atim, mtim)
		post, _ = z.fss[i].Stat(p)
		z.expectPaths(fmt.Sprintf("Utimens(%q)", p), i, errno, p)
		if preErr == 0 {
			z.expect("Utimens", errno, 0)
		}
	}
	z.checkFull(i, errno)
	if errno != 0 {
		return
	}
	wantA, wantM := atim, mtim
	if atim == fsys.UTIME_OMIT {
		wantA = pre.Atim
	}
	if mtim == fsys.UTIME_OMIT {
		wantM = pre.Mtim
	}
	if post.Atim != wantA || post.Mtim != wantM {
		z.fail("Utimens(%d, %d): atim %d mtim %d, want %d %d", atim, mtim, post.Atim, post.Mtim, wantA, wantM)
	}
}

func (z *fuzzer) links() {
	z.t.Helper()
	i, from, to := int(z.in.next()&1), z.in.path(), z.in.path()
	z.logf("link fs%d %q %q", i, from, to)
	f := z.fss[i]
	pre, preErr := f.Stat(to)
	z.expect("Link", f.Link(from, to), fsys.EPERM)
	z.expect("Symlink", f.Symlink(from, to), fsys.EPERM)
	z.checkFull(i, 0)
	if post, postErr := f.Stat(to); post != pre || postErr != preErr {
		z.fail("a refused link changed %q", to)
	}
}

func (z *fuzzer) fstat() {
	z.t.Helper()
	h := z.pickHandle()
	if h == nil {
		return
	}
	z.logf("fstat")
	st, errno := h.f.Stat()
	z.checkFull(h.fs, errno)
	if z.closed[h.fs] {
		z.expect("File.Stat on a closed FS", errno, fsys.EBADF)
		return
	}
	z.expect("File.Stat", errno, 0)
	if st.Ino != h.ino || st.Mode.IsDir() != h.dir {
		z.fail("File.Stat: inode %d %v, want %d dir=%v", st.Ino, st.Mode, h.ino, h.dir)
	}
	z.checkHandle(h)
}

// walk lists every entry under FS i's root by Readdir, checking that
// each resolves by its path to the entry listed.
func (z *fuzzer) walk(i int) map[string]sys.Stat_t {
	z.t.Helper()
	f := z.fss[i]
	out := map[string]sys.Stat_t{}
	var visit func(dir string, depth int)
	visit = func(dir string, depth int) {
		if depth > 64 {
			z.fail("FS %d: the tree is deeper than 64 at %q (a cycle?)", i, dir)
		}
		h, errno := f.OpenFile(dir, fsys.O_RDONLY|fsys.O_DIRECTORY, 0)
		if errno != 0 {
			z.fail("FS %d: walk: OpenFile(%q): %v", i, dir, errno)
		}
		ents, errno := h.Readdir(-1)
		if errno != 0 {
			z.fail("FS %d: walk: Readdir(%q): %v", i, dir, errno)
		}
		if errno := h.Close(); errno != 0 {
			z.fail("FS %d: walk: Close: %v", i, errno)
		}
		for _, e := range ents {
			if !validName(e.Name) {
				z.fail("FS %d: %q lists a name %q", i, dir, e.Name)
			}
			p := e.Name
			if dir != "." {
				p = dir + "/" + e.Name
			}
			if _, dup := out[p]; dup {
				z.fail("FS %d: %q listed twice", i, p)
			}
			st, errno := f.Stat(p)
			if errno != 0 || st.Ino != e.Ino || st.Mode.Type() != e.Type {
				z.fail("FS %d: listed %v, but Stat(%q) = inode %d %v, %v", i, &e, p, st.Ino, st.Mode, errno)
			}
			out[p] = st
			if e.IsDir() {
				visit(p, depth+1)
			}
		}
	}
	visit(".", 0)
	return out
}

// fuzzProbes are paths whose resolution the fuzz target checks against
// the walk of the tree.
var fuzzProbes = func() []string {
	names := []string{"a", "b", "c", "d", fuzzComponents[7]}
	probes := slices.Clone(names)
	for _, x := range names {
		for _, y := range names {
			probes = append(probes, x+"/"+y)
			for _, w := range names[:4] {
				probes = append(probes, x+"/"+y+"/"+w)
			}
		}
	}
	return probes
}()

// checkInvariants checks accounting and the shape of the trees after
// every operation.
func (z *fuzzer) checkInvariants() {
	z.t.Helper()
	var sum int64
	for i, f := range z.fss {
		u := f.Used()
		if u < 0 || u > fuzzLimits[i] || (z.closed[i] && u != 0) {
			z.fail("FS %d: Used() %d, limit %d, closed %v", i, u, fuzzLimits[i], z.closed[i])
		}
		sum += u
	}
	if b := z.budget.Used(); b != sum || b > fuzzBudget {
		z.fail("Budget.Used() %d, sum of Used() %d, Budget limit %d", b, sum, fuzzBudget)
	}
	for i, f := range z.fss {
		if z.closed[i] {
			continue
		}
		entries := z.walk(i)
		for _, p := range fuzzProbes {
			if !z.reshape {
				break // the walk alone checks what the last operation could change
			}
			st, errno := f.Stat(p)
			if errno != 0 {
				continue
			}
			if w, ok := entries[p]; !ok || w.Ino != st.Ino {
				z.fail("FS %d: Stat(%q) finds inode %d, which the walk from the root did not", i, p, st.Ino)
			}
		}
		// Every entry, linked or still open, holds EntryCost and its
		// size (its capacity may be more).
		var floor int64
		for p, st := range entries {
			floor += memfs.EntryCost
			if !st.Mode.IsDir() {
				if want := int64(len(z.shadow[fileKey{i, st.Ino}])); st.Size != want {
					z.fail("FS %d: %q size %d, want %d", i, p, st.Size, want)
				}
				floor += st.Size
			}
		}
		open := 0
		counted := map[uint64]bool{}
		for _, h := range z.handles {
			if h.fs != i {
				continue
			}
			open++
			st, errno := h.f.Stat()
			if errno != 0 {
				z.fail("FS %d: File.Stat: %v", i, errno)
			}
			if st.Nlink == 0 && !counted[st.Ino] {
				counted[st.Ino] = true
				floor += memfs.EntryCost + st.Size
			}
		}
		if u := f.Used(); u < floor || (len(entries) == 0 && open == 0 && u != 0) {
			z.fail("FS %d: Used() %d for %d entries and %d open files holding at least %d", i, u, len(entries), open, floor)
		}
	}
}

// finish closes every handle, removes every entry (then an FS must hold
// nothing), closes the FSes and checks the Budget is empty.
func (z *fuzzer) finish() {
	z.t.Helper()
	z.logf("finish")
	for len(z.handles) > 0 {
		z.closeHandle(len(z.handles) - 1)
	}
	for i, f := range z.fss {
		if z.closed[i] {
			continue
		}
		paths := slices.Collect(func(yield func(string) bool) {
			for p := range z.walk(i) {
				if !yield(p) {
					return
				}
			}
		})
		// Deepest first, so directories are empty when removed.
		slices.SortFunc(paths, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
		for _, p := range paths {
			st, _ := f.Stat(p)
			var errno fsys.Errno
			if st.Mode.IsDir() {
				errno = f.Rmdir(p)
			} else {
				errno = f.Unlink(p)
			}
			if errno != 0 {
				z.fail("FS %d: removing %q: %v", i, p, errno)
			}
		}
		if u := f.Used(); u != 0 {
			z.fail("FS %d: Used() %d with no entries and no open files", i, u)
		}
		f.Close()
		if _, errno := f.Stat("."); errno != fsys.EBADF {
			z.fail("FS %d: Stat after Close: %v", i, errno)
		}
	}
	if b := z.budget.Used(); b != 0 {
		z.fail("Budget.Used() %d with every FS closed", b)
	}
}

// fuzzSeeds are operation sequences that reach the interesting corners:
// quota and Budget refusals, unlinked open files, renames of
// directories, bad paths.
func fuzzSeeds() map[string][]byte {
	p := func(comps ...byte) []byte { return append([]byte{byte(len(comps))}, comps...) }
	pSlash := func(comps ...byte) []byte { return append([]byte{byte(len(comps)) | 4}, comps...) }
	const (
		a, b, c, d, dotdot, dot, empty, long255, long256, nul = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
		creatRW                                               = 1 | 8 // O_RDWR|O_CREAT in fuzzInput.oflag
		creatRWTrunc                                          = 1 | 8 | 64
	)
	seq := func(ops ...[]byte) []byte { return slices.Concat(ops...) }
	op := func(code byte, args ...any) []byte {
		out := []byte{code}
		for _, arg := range args {
			switch v := arg.(type) {
			case int:
				out = append(out, byte(v))
			case []byte:
				out = append(out, v...)
			}
		}
		return out
	}
	return map[string][]byte{
		"write_read": seq(
			op(opOpen, 0, p(a), creatRW),
			op(opWrite, 0, 40, 7),
			op(opSeek, 0, 0, 5, 0),
			op(opRead, 0, 20, 0),
			op(opPwrite, 0, 30, 1, 0, 200),
			op(opPread, 0, 90, 0, 0, 150),
			op(opTruncate, 0, 0, 10),
			op(opTruncate, 0, 3, 8),
			op(opRead, 0, 95, 0),
		),
		"quota": seq(
			op(opOpen, 0, p(a), creatRW),
			op(opWrite, 0, 192+40, 1),
			op(opWrite, 0, 192+40, 2),
			op(opPwrite, 0, 10, 3, 5, 1),
			op(opTruncate, 0, 6, 0),
			op(opMkdir, 0, p(b)),
			op(opTruncate, 0, 0, 0),
			op(opMkdir, 0, p(b)),
		),
		"budget": seq( // fs0 fills its quota; fs1, within its own, runs into the Budget
			op(opOpen, 0, p(a), creatRW),
			op(opOpen, 1, p(a), creatRW),
			op(opWrite, 0, 192+45, 1),
			op(opWrite, 1, 192+22, 2),
			op(opWrite, 1, 192+1, 3),
			op(opMkdir, 1, p(b)),
			op(opCloseFS, 0, 0),
			op(opWrite, 1, 192+1, 3),
			op(opMkdir, 1, p(b)),
		),
		"unlinked_open": seq(
			op(opOpen, 0, p(a), creatRW),
			op(opOpen, 0, p(a), 0),
			op(opWrite, 0, 60, 9),
			op(opUnlink, 0, p(a)),
			op(opOpen, 0, p(a), creatRW),
			op(opPwrite, 0, 10, 4, 0, 100),
			op(opRead, 1, 95, 0),
			op(opCloseFile, 0),
			op(opCloseFile, 0),
		),
		"rename_dirs": seq(
			op(opMkdir, 0, p(a)),
			op(opMkdir, 0, p(a, b)),
			op(opMkdir, 0, p(c)),
			op(opOpen, 0, p(a, b, c), creatRW),
			op(opRename, 0, p(a), p(a, b, d)),
			op(opRename, 0, p(a), p(a)),
			op(opRename, 0, p(c), p(a)),
			op(opRename, 0, p(a, b), p(c)),
			op(opRename, 0, p(c, c), pSlash(d)),
			op(opRename, 0, p(c, c), p(d)),
			op(opRmdir, 0, p(a)),
		),
		"bad_paths": seq(
			op(opMkdir, 0, p(a)),
			op(opOpen, 0, p(a, dotdot, a), creatRW),
			op(opStat, 0, p(dot, a)),
			op(opMkdir, 0, p(a, empty, b)),
			op(opOpen, 0, p(long256), creatRW),
			op(opOpen, 0, p(long255), creatRW),
			op(opRename, 0, p(long255), p(a, nul)),
			op(opStat, 0, []byte{8 | 1, a}),
			op(opLinks, 0, p(a), p(b)),
		),
		"readdir": seq(
			op(opMkdir, 0, p(a)),
			op(opOpen, 0, p(a, b), creatRW),
			op(opOpen, 0, p(a, c), creatRW),
			op(opMkdir, 0, p(a, d)),
			op(opOpen, 0, p(a), 0),
			op(opReaddir, 2, 2),
			op(opUnlink, 0, p(a, c)),
			op(opReaddir, 2, 0),
			op(opSeek, 2, 0, 0, 0),
			op(opReaddir, 2, 4),
			op(opReaddir, 2, 4),
		),
		"append_trunc": seq(
			op(opOpen, 1, p(b), creatRWTrunc|4),
			op(opWrite, 0, 30, 5),
			op(opSeek, 0, 0, 0, 0),
			op(opWrite, 0, 0, 0),
			op(opWrite, 0, 10, 6),
			op(opSetAppend, 0, 0),
			op(opWrite, 0, 10, 7),
			op(opOpen, 1, p(b), creatRWTrunc),
			op(opFstat, 0),
			op(opUtimens, 0, 0, 1, 1, p(b)),
			op(opUtimens, 1, 1, 0, 0),
			op(opChmod, 1, p(b), 3, 1, 1),
		),
	}
}

// FuzzOps runs its input as a sequence of operations on two FSes sharing
// a Budget (see fuzzer), checking after each that accounting holds and
// that every name resolves inside its tree.
func FuzzOps(f *testing.F) {
	for _, name := range []string{"write_read", "quota", "rename_dirs", "unlinked_open"} {
		f.Add(fuzzSeeds()[name])
	}
	f.Add([]byte{})
	f.Fuzz(runOps)
}

func runOps(t *testing.T, ops []byte) {
	budget := memfs.NewBudget(fuzzBudget)
	z := &fuzzer{t: t, in: fuzzInput{b: ops}, budget: budget, shadow: map[fileKey][]byte{}}
	for i := range z.fss {
		z.fss[i] = memfs.New(fuzzLimits[i], budget, clock())
	}
	for n := 0; n < fuzzMaxOps && z.in.more(); n++ {
		z.step()
	}
	z.finish()
}
