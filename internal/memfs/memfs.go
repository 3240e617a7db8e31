// Package memfs is the file system a function's environment sees at /tmp:
// files and directories held in the node's memory, under a byte quota,
// with nothing of the host behind them.
//
// It exists because a host directory mounted into a guest is only as
// closed as the host's path resolution: a guest that makes a symbolic
// link (`/tmp/l -> ../../../root.key`) and reads it gets whatever the link
// names, and a rename or hard link can move host files in or out. Here
// every name resolves inside one tree of Go values, so no sequence of
// guest calls can name a host file, another environment's file, or the
// node's data directory:
//
//   - symbolic and hard links are refused (EPERM): the tree has files and
//     directories only, so there is nothing to follow;
//   - names are resolved component by component from the root; ".." and
//     empty components are refused (wazero cleans paths first, and this
//     package does not rely on it);
//   - renames move entries within the tree, never out of it;
//   - each FS charges its files' capacity and a fixed cost per entry to its
//     own quota and to a node-wide Budget; a write, truncate, create or
//     mkdir that would pass either fails with ENOSPC (see Full).
//
// An FS serves one environment. Closing it returns its bytes to the Budget.
package memfs

import (
	"io"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// EntryCost is what one file or directory costs against a quota before
// its contents: it bounds how many entries a quota holds (their names and
// bookkeeping live in memory too).
const EntryCost = 512

// MaxNameLen is the longest name of one entry, as on common file systems.
const MaxNameLen = 255

// Budget is the node-wide bound shared by every FS of a node.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// NewBudget returns a Budget of limit bytes.
func NewBudget(limit int64) *Budget { return &Budget{limit: limit} }

// Used reports the bytes charged to b now.
func (b *Budget) Used() int64 { return b.used.Load() }

func (b *Budget) reserve(n int64) bool {
	for {
		cur := b.used.Load()
		if cur+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

func (b *Budget) release(n int64) { b.used.Add(-n) }

// FS is one environment's in-memory file system. It implements wazero's
// experimental sys.FS.
type FS struct {
	mu      sync.Mutex
	root    *node
	limit   int64
	used    int64
	budget  *Budget
	now     func() int64
	nextIno uint64
	closed  bool
	full    atomic.Bool // the last refusal was for lack of space
}

// New returns an empty FS holding at most limit bytes (contents and
// EntryCost per entry), also charged to budget. now gives timestamps in
// nanoseconds since the epoch.
func New(limit int64, budget *Budget, now func() int64) *FS {
	f := &FS{limit: limit, budget: budget, now: now, nextIno: 1}
	f.root = f.newNode(fs.ModeDir | 0o700)
	return f
}

// Used reports the bytes f holds against its quota.
func (f *FS) Used() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.used
}

// Full reports, and forgets, whether the last refused operation was
// refused for lack of space. wazero's errno set has no ENOSPC, so such a
// refusal is returned as EIO and the caller (the engine's WASI hook)
// rewrites it to ENOSPC for the guest.
func (f *FS) Full() bool { return f.full.Swap(false) }

// Close drops every file and returns f's bytes to the node's budget.
// Open files answer EBADF afterwards.
func (f *FS) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	f.budget.release(f.used)
	f.used = 0
	f.root = nil
}

type node struct {
	ino      uint64
	mode     fs.FileMode
	data     []byte           // a file's contents; len is the size
	children map[string]*node // a directory's entries
	linked   bool             // reachable from the root
	opens    int              // open files
	atim     int64
	mtim     int64
	ctim     int64
}

func (n *node) isDir() bool { return n.mode.IsDir() }

func (f *FS) newNode(mode fs.FileMode) *node {
	t := f.now()
	n := &node{ino: f.nextIno, mode: mode, linked: true, atim: t, mtim: t, ctim: t}
	f.nextIno++
	if mode.IsDir() {
		n.children = map[string]*node{}
	}
	return n
}

// charge takes delta bytes (negative to give back) from f's quota and the
// budget. Called with f.mu held.
func (f *FS) charge(delta int64) bool {
	if delta <= 0 {
		f.used += delta
		f.budget.release(-delta)
		return true
	}
	if f.used+delta > f.limit || !f.budget.reserve(delta) {
		f.full.Store(true)
		return false
	}
	f.used += delta
	return true
}

// cost is what n holds against the quota.
func (n *node) cost() int64 { return EntryCost + int64(cap(n.data)) }

// forget gives back n's bytes once it is neither linked nor open.
// Called with f.mu held.
func (f *FS) forget(n *node) {
	if n.linked || n.opens > 0 {
		return
	}
	f.charge(-n.cost())
	n.data = nil
}

// split turns a path relative to the root into its components, refusing
// what could step out of the tree.
func split(p string) ([]string, experimentalsys.Errno) {
	p = strings.TrimSuffix(p, "/")
	if p == "" || p == "." {
		return nil, 0
	}
	parts := strings.Split(p, "/")
	for _, c := range parts {
		switch {
		case c == "" || c == "." || c == "..":
			return nil, experimentalsys.EPERM
		case len(c) > MaxNameLen:
			return nil, experimentalsys.ENAMETOOLONG
		case strings.IndexByte(c, 0) >= 0:
			return nil, experimentalsys.EINVAL
		}
	}
	return parts, 0
}

// lookup resolves p to a node. Called with f.mu held.
func (f *FS) lookup(p string) (*node, experimentalsys.Errno) {
	if f.closed {
		return nil, experimentalsys.EBADF
	}
	parts, errno := split(p)
	if errno != 0 {
		return nil, errno
	}
	n := f.root
	for _, c := range parts {
		if !n.isDir() {
			return nil, experimentalsys.ENOTDIR
		}
		next, ok := n.children[c]
		if !ok {
			return nil, experimentalsys.ENOENT
		}
		n = next
	}
	if strings.HasSuffix(p, "/") && !n.isDir() {
		return nil, experimentalsys.ENOTDIR
	}
	return n, 0
}

// parent resolves the directory holding p's last component and returns
// it with that name. The root has no parent (EPERM). Called with f.mu held.
func (f *FS) parent(p string) (*node, string, experimentalsys.Errno) {
	if f.closed {
		return nil, "", experimentalsys.EBADF
	}
	parts, errno := split(p)
	if errno != 0 {
		return nil, "", errno
	}
	if len(parts) == 0 {
		return nil, "", experimentalsys.EPERM
	}
	dir := f.root
	for _, c := range parts[:len(parts)-1] {
		next, ok := dir.children[c]
		if !ok {
			return nil, "", experimentalsys.ENOENT
		}
		if !next.isDir() {
			return nil, "", experimentalsys.ENOTDIR
		}
		dir = next
	}
	return dir, parts[len(parts)-1], 0
}

func (f *FS) stat(n *node) sys.Stat_t {
	st := sys.Stat_t{Ino: n.ino, Mode: n.mode, Nlink: 1, Size: int64(len(n.data)), Atim: n.atim, Mtim: n.mtim, Ctim: n.ctim}
	if n.isDir() {
		st.Nlink = 2
		st.Size = 0
	}
	if !n.linked {
		st.Nlink = 0
	}
	return st
}

// OpenFile implements sys.FS.
func (f *FS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	access := flag & (experimentalsys.O_RDONLY | experimentalsys.O_RDWR | experimentalsys.O_WRONLY)
	writable := access == experimentalsys.O_RDWR || access == experimentalsys.O_WRONLY
	n, errno := f.lookup(p)
	switch {
	case errno == experimentalsys.ENOENT && flag&experimentalsys.O_CREAT != 0:
		if flag&experimentalsys.O_DIRECTORY != 0 {
			return nil, experimentalsys.EINVAL
		}
		dir, name, errno := f.parent(p)
		if errno != 0 {
			return nil, errno
		}
		if strings.HasSuffix(p, "/") {
			return nil, experimentalsys.EISDIR
		}
		if !f.charge(EntryCost) {
			return nil, experimentalsys.EIO // ENOSPC, see Full
		}
		n = f.newNode(perm.Perm())
		dir.children[name] = n
		dir.mtim, dir.ctim = n.mtim, n.mtim
	case errno != 0:
		return nil, errno
	case flag&experimentalsys.O_CREAT != 0 && flag&experimentalsys.O_EXCL != 0:
		return nil, experimentalsys.EEXIST
	case n.isDir() && writable:
		return nil, experimentalsys.EISDIR
	case !n.isDir() && flag&experimentalsys.O_DIRECTORY != 0:
		return nil, experimentalsys.ENOTDIR
	case flag&experimentalsys.O_TRUNC != 0 && !n.isDir() && writable:
		f.resize(n, 0)
		n.mtim = f.now()
		n.ctim = n.mtim
	}
	n.opens++
	return &file{fs: f, n: n, readable: access != experimentalsys.O_WRONLY, writable: writable,
		append: flag&experimentalsys.O_APPEND != 0}, 0
}

// Lstat implements sys.FS; there are no links, so it is Stat.
func (f *FS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) { return f.Stat(p) }

// Stat implements sys.FS.
func (f *FS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, errno := f.lookup(p)
	if errno != 0 {
		return sys.Stat_t{}, errno
	}
	return f.stat(n), 0
}

// Mkdir implements sys.FS.
func (f *FS) Mkdir(p string, perm fs.FileMode) experimentalsys.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir, name, errno := f.parent(p)
	if errno == experimentalsys.EPERM && strings.Trim(p, "/.") == "" {
		return experimentalsys.EEXIST // the root
	}
	if errno != 0 {
		return errno
	}
	if _, ok := dir.children[name]; ok {
		return experimentalsys.EEXIST
	}
	if !f.charge(EntryCost) {
		return experimentalsys.EIO // ENOSPC, see Full
	}
	n := f.newNode(fs.ModeDir | perm.Perm())
	dir.children[name] = n
	dir.mtim, dir.ctim = n.mtim, n.mtim
	return 0
}

// Chmod implements sys.FS. Permissions are recorded, not enforced: every
// entry belongs to the one guest.
func (f *FS) Chmod(p string, perm fs.FileMode) experimentalsys.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, errno := f.lookup(p)
	if errno != 0 {
		return errno
	}
	n.mode = n.mode.Type() | perm.Perm()
	n.ctim = f.now()
	return 0
}

// Rename implements sys.FS, with POSIX rename's rules for what may
// replace what.
func (f *FS) Rename(from, to string) experimentalsys.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	fdir, fname, errno := f.parent(from)
	if errno != 0 {
		return errno
	}
	src, ok := fdir.children[fname]
	if !ok {
		return experimentalsys.ENOENT
	}
	if strings.HasSuffix(from, "/") && !src.isDir() {
		return experimentalsys.ENOTDIR
	}
	tdir, tname, errno := f.parent(to)
	if errno != 0 {
		return errno
	}
	if strings.HasSuffix(to, "/") && !src.isDir() {
		return experimentalsys.ENOTDIR // whether or not "to" exists
	}
	dst, ok := tdir.children[tname]
	if ok && dst == src {
		return 0 // before the check below, which would see src in "to"
	}
	if src.isDir() {
		// A directory cannot move inside itself.
		for _, d := range f.ancestors(to) {
			if d == src {
				return experimentalsys.EINVAL
			}
		}
	}
	if ok {
		switch {
		case src.isDir() && !dst.isDir():
			return experimentalsys.ENOTDIR
		case !src.isDir() && dst.isDir():
			return experimentalsys.EISDIR
		case dst.isDir() && len(dst.children) > 0:
			return experimentalsys.ENOTEMPTY
		}
		f.unlink(tdir, tname, dst)
	}
	delete(fdir.children, fname)
	tdir.children[tname] = src
	t := f.now()
	src.ctim, fdir.mtim, fdir.ctim, tdir.mtim, tdir.ctim = t, t, t, t, t
	return 0
}

// ancestors lists the directories on the way to p (the root first),
// as far as they exist. Called with f.mu held.
func (f *FS) ancestors(p string) []*node {
	parts, _ := split(p)
	out := []*node{f.root}
	n := f.root
	for _, c := range parts {
		next, ok := n.children[c]
		if !ok || !next.isDir() {
			break
		}
		out = append(out, next)
		n = next
	}
	return out
}

// unlink removes entry name (node n) from dir. Called with f.mu held.
func (f *FS) unlink(dir *node, name string, n *node) {
	delete(dir.children, name)
	n.linked = false
	t := f.now()
	n.ctim, dir.mtim, dir.ctim = t, t, t
	f.forget(n)
}

// Rmdir implements sys.FS.
func (f *FS) Rmdir(p string) experimentalsys.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir, name, errno := f.parent(p)
	if errno != 0 {
		return errno
	}
	n, ok := dir.children[name]
	switch {
	case !ok:
		return experimentalsys.ENOENT
	case !n.isDir():
		return experimentalsys.ENOTDIR
	case len(n.children) > 0:
		return experimentalsys.ENOTEMPTY
	}
	f.unlink(dir, name, n)
	return 0
}

// Unlink implements sys.FS.
func (f *FS) Unlink(p string) experimentalsys.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir, name, errno := f.parent(p)
	if errno != 0 {
		return errno
	}
	n, ok := dir.children[name]
	switch {
	case !ok:
		return experimentalsys.ENOENT
	case n.isDir():
		return experimentalsys.EISDIR
	case strings.HasSuffix(p, "/"):
		return experimentalsys.ENOTDIR
	}
	f.unlink(dir, name, n)
	return 0
}

// Link implements sys.FS: hard links are refused.
func (f *FS) Link(_, _ string) experimentalsys.Errno { return experimentalsys.EPERM }

// Symlink implements sys.FS: symbolic links are refused.
func (f *FS) Symlink(_, _ string) experimentalsys.Errno { return experimentalsys.EPERM }

// Readlink implements sys.FS: nothing is a link.
func (f *FS) Readlink(p string) (string, experimentalsys.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, errno := f.lookup(p); errno != 0 {
		return "", errno
	}
	return "", experimentalsys.EINVAL
}

// Utimens implements sys.FS.
func (f *FS) Utimens(p string, atim, mtim int64) experimentalsys.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, errno := f.lookup(p)
	if errno != 0 {
		return errno
	}
	f.utimens(n, atim, mtim)
	return 0
}

func (f *FS) utimens(n *node, atim, mtim int64) {
	if atim != experimentalsys.UTIME_OMIT {
		n.atim = atim
	}
	if mtim != experimentalsys.UTIME_OMIT {
		n.mtim = mtim
	}
	n.ctim = f.now()
}

// resize makes n's contents size bytes long, charging the quota for new
// capacity. Called with f.mu held.
func (f *FS) resize(n *node, size int64) bool {
	cur := int64(len(n.data))
	switch {
	case size <= int64(cap(n.data)):
		if size < cur {
			clear(n.data[size:cur]) // a later growth must read zeros
		}
		n.data = n.data[:size]
		if size < int64(cap(n.data))/4 { // give back what a shrink leaves idle
			old := int64(cap(n.data))
			n.data = append(make([]byte, 0, size), n.data...)
			f.charge(int64(cap(n.data)) - old)
		}
		return true
	}
	// Grow by a quarter more than asked, as far as the quota allows, so
	// that appends do not copy every time.
	want := size + size/4
	if room := f.limit - f.used + int64(cap(n.data)); want > room {
		want = max(size, room)
	}
	if !f.charge(want - int64(cap(n.data))) {
		if want == size || !f.charge(size-int64(cap(n.data))) {
			return false
		}
		f.full.Store(false)
		want = size
	}
	grown := make([]byte, size, want)
	copy(grown, n.data)
	n.data = grown
	return true
}

// file is an open file or directory.
type file = fileOf[int64]

// fileOf is file with its offset type as a parameter, for Seek's sake.
type fileOf[T ~int64] struct {
	experimentalsys.UnimplementedFile
	fs       *FS
	n        *node
	readable bool
	writable bool
	append   bool
	off      int64
	closed   bool
	dirNames []string // the directory's names, read at the first Readdir after a rewind
	dirPos   int
}

func (h *fileOf[T]) check() experimentalsys.Errno {
	if h.closed || h.fs.closed {
		return experimentalsys.EBADF
	}
	return 0
}

func (h *fileOf[T]) Dev() (uint64, experimentalsys.Errno) { return 0, 0 }

func (h *fileOf[T]) Ino() (sys.Inode, experimentalsys.Errno) { return h.n.ino, 0 }

func (h *fileOf[T]) IsDir() (bool, experimentalsys.Errno) { return h.n.isDir(), 0 }

func (h *fileOf[T]) IsAppend() bool { return h.append }

func (h *fileOf[T]) SetAppend(enable bool) experimentalsys.Errno {
	h.append = enable
	return 0
}

func (h *fileOf[T]) Stat() (sys.Stat_t, experimentalsys.Errno) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if errno := h.check(); errno != 0 {
		return sys.Stat_t{}, errno
	}
	return h.fs.stat(h.n), 0
}

func (h *fileOf[T]) Read(buf []byte) (int, experimentalsys.Errno) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	n, errno := h.pread(buf, h.off)
	h.off += int64(n)
	return n, errno
}

func (h *fileOf[T]) Pread(buf []byte, off int64) (int, experimentalsys.Errno) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	return h.pread(buf, off)
}

func (h *fileOf[T]) pread(buf []byte, off int64) (int, experimentalsys.Errno) {
	switch {
	case h.check() != 0:
		return 0, experimentalsys.EBADF
	case h.n.isDir():
		return 0, experimentalsys.EISDIR
	case !h.readable:
		return 0, experimentalsys.EBADF
	case off < 0:
		return 0, experimentalsys.EINVAL
	case off >= int64(len(h.n.data)):
		return 0, 0
	}
	h.n.atim = h.fs.now()
	return copy(buf, h.n.data[off:]), 0
}

// Seek implements sys.File. wazero's Seek answers its Errno, not error,
// which go vet's stdmethods check (it knows io.Seeker) reports in every
// package that imports this one: the offset's type is spelled T, which is
// only ever int64 (see fileOf).
func (h *fileOf[T]) Seek(off T, whence int) (T, experimentalsys.Errno) {
	offset := int64(off)
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if errno := h.check(); errno != 0 {
		return 0, errno
	}
	if h.n.isDir() {
		if offset != 0 || whence != io.SeekStart {
			return 0, experimentalsys.EINVAL
		}
		h.dirNames, h.dirPos = nil, 0
		return 0, 0
	}
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = h.off
	case io.SeekEnd:
		base = int64(len(h.n.data))
	default:
		return 0, experimentalsys.EINVAL
	}
	if offset > 0 && base > 1<<62-offset || base+offset < 0 {
		return 0, experimentalsys.EINVAL
	}
	h.off = base + offset
	return T(h.off), 0
}

func (h *fileOf[T]) Readdir(n int) ([]experimentalsys.Dirent, experimentalsys.Errno) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if errno := h.check(); errno != 0 {
		return nil, errno
	}
	if !h.n.isDir() {
		return nil, experimentalsys.EBADF
	}
	if h.dirNames == nil {
		h.dirNames = make([]string, 0, len(h.n.children))
		for name := range h.n.children {
			h.dirNames = append(h.dirNames, name)
		}
	}
	var out []experimentalsys.Dirent
	for h.dirPos < len(h.dirNames) && (n <= 0 || len(out) < n) {
		name := h.dirNames[h.dirPos]
		h.dirPos++
		c, ok := h.n.children[name]
		if !ok {
			continue // removed since the listing began
		}
		out = append(out, experimentalsys.Dirent{Ino: c.ino, Name: name, Type: c.mode.Type()})
	}
	return out, 0
}

func (h *fileOf[T]) Write(buf []byte) (int, experimentalsys.Errno) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	off := h.off
	if h.append {
		off = int64(len(h.n.data))
	}
	n, errno := h.pwrite(buf, off)
	if n > 0 { // as write(2), a write that writes nothing moves nothing
		h.off = off + int64(n)
	}
	return n, errno
}

func (h *fileOf[T]) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	return h.pwrite(buf, off)
}

func (h *fileOf[T]) pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	switch {
	case h.check() != 0:
		return 0, experimentalsys.EBADF
	case h.n.isDir():
		return 0, experimentalsys.EISDIR
	case !h.writable:
		return 0, experimentalsys.EBADF
	case off < 0:
		return 0, experimentalsys.EINVAL
	case len(buf) == 0:
		return 0, 0
	}
	end := off + int64(len(buf))
	if end < off || end > h.fs.limit {
		h.fs.full.Store(true)
		return 0, experimentalsys.EIO // ENOSPC, see Full
	}
	if end > int64(len(h.n.data)) && !h.fs.resize(h.n, end) {
		return 0, experimentalsys.EIO // ENOSPC, see Full
	}
	copy(h.n.data[off:], buf)
	h.n.mtim = h.fs.now()
	h.n.ctim = h.n.mtim
	return len(buf), 0
}

func (h *fileOf[T]) Truncate(size int64) experimentalsys.Errno {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	switch {
	case h.check() != 0:
		return experimentalsys.EBADF
	case h.n.isDir():
		return experimentalsys.EISDIR
	case !h.writable:
		return experimentalsys.EBADF
	case size < 0:
		return experimentalsys.EINVAL
	case size > h.fs.limit:
		h.fs.full.Store(true)
		return experimentalsys.EIO // ENOSPC, see Full
	}
	if !h.fs.resize(h.n, size) {
		return experimentalsys.EIO // ENOSPC, see Full
	}
	h.n.mtim = h.fs.now()
	h.n.ctim = h.n.mtim
	return 0
}

func (h *fileOf[T]) Utimens(atim, mtim int64) experimentalsys.Errno {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if errno := h.check(); errno != 0 {
		return errno
	}
	h.fs.utimens(h.n, atim, mtim)
	return 0
}

func (h *fileOf[T]) Close() experimentalsys.Errno {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if h.closed {
		return 0
	}
	h.closed = true
	if !h.fs.closed {
		h.n.opens--
		h.fs.forget(h.n)
	}
	return 0
}

var _ experimentalsys.FS = (*FS)(nil)
