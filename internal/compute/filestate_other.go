//go:build !linux

package compute

import "io/fs"

// stateOf is what codeCache compares to know a file is unchanged. Off
// Linux it has only the size and modification time, which a writer can
// set back; every node Bulkhead documents runs on Linux.
func stateOf(info fs.FileInfo) fileState {
	return fileState{size: info.Size(), ctime: info.ModTime().UnixNano()}
}
