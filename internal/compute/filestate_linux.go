package compute

import (
	"io/fs"
	"syscall"
)

// stateOf is what codeCache compares to know a file is unchanged: the
// change time moves with every write and cannot be set by the writer.
func stateOf(info fs.FileInfo) fileState {
	st := fileState{size: info.Size(), ctime: info.ModTime().UnixNano()}
	if s, ok := info.Sys().(*syscall.Stat_t); ok {
		st.ino = s.Ino
		st.ctime = s.Ctim.Sec*1e9 + s.Ctim.Nsec
	}
	return st
}
