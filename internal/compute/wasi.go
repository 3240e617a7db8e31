package compute

import (
	"context"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/bulkhead-dev/bulkhead/internal/memfs"
)

// WASI error numbers (wasi_snapshot_preview1's errno enumeration).
const (
	wasiEIO    = 29
	wasiENOSPC = 51
)

// writers are the WASI calls that can grow a /tmp and so meet its quota.
var writers = map[string]bool{
	"fd_write": true, "fd_pwrite": true, "fd_allocate": true, "fd_filestat_set_size": true,
	"path_open": true, "path_create_directory": true,
}

// instantiateWASI adds WASI to rt, with a hook that tells a guest ENOSPC
// when its /tmp is full. wazero's file system interface has no ENOSPC (it
// maps unknown errors to EIO), so memfs answers EIO and notes why; the
// hook, called after each of the writers above returns to the guest,
// rewrites that EIO into ENOSPC. The environment's FS rides in the
// invocation's context (withFS).
func instantiateWASI(ctx context.Context, rt wazero.Runtime) error {
	ctx = experimental.WithFunctionListenerFactory(ctx, experimental.FunctionListenerFactoryFunc(
		func(def api.FunctionDefinition) experimental.FunctionListener {
			if !writers[def.Name()] {
				return nil
			}
			return noSpace{}
		}))
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return fmt.Errorf("compute: wasi: %w", err)
	}
	return nil
}

type fsKey struct{}

// withFS carries an environment's FS to the WASI hook.
func withFS(ctx context.Context, fs *memfs.FS) context.Context {
	return context.WithValue(ctx, fsKey{}, fs)
}

// noSpace rewrites a full /tmp's EIO into ENOSPC.
type noSpace struct{}

func (noSpace) Before(context.Context, api.Module, api.FunctionDefinition, []uint64, experimental.StackIterator) {
}

func (noSpace) After(ctx context.Context, _ api.Module, _ api.FunctionDefinition, results []uint64) {
	fs, _ := ctx.Value(fsKey{}).(*memfs.FS)
	if fs == nil || len(results) == 0 {
		return
	}
	if full := fs.Full(); full && results[0] == wasiEIO {
		results[0] = wasiENOSPC
	}
}

func (noSpace) Abort(context.Context, api.Module, api.FunctionDefinition, error) {}
