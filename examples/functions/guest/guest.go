//go:build wasip1

// Package guest is the Go side of Bulkhead's function ABI (see
// internal/compute): a function module exports bulkhead_alloc and
// bulkhead_handle; the host copies the invocation context (JSON with
// tenant_id and request_id) and the event into memory the guest allocated
// and calls bulkhead_handle, which returns the response's address and
// length packed into a uint64. A Go function calls Serve once in an init
// function with its handler.
//
// Build a function with:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o fn.wasm ./examples/functions/counter
package guest

import (
	"encoding/json"
	"unsafe"
)

// Context is what the host tells a handler about an invocation.
type Context struct {
	TenantID  string `json:"tenant_id"`
	RequestID string `json:"request_id"`
}

// Handler handles one invocation and returns the response body.
type Handler func(ctx Context, event []byte) ([]byte, error)

var (
	handler Handler
	// pinned keeps buffers the host writes into (and the last response)
	// reachable until the next call.
	pinned [][]byte
	last   []byte
)

// Serve registers the function's handler.
func Serve(h Handler) { handler = h }

//go:wasmexport bulkhead_alloc
func alloc(size uint32) uint32 {
	b := make([]byte, size)
	pinned = append(pinned, b)
	if size == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&b[0])))
}

//go:wasmexport bulkhead_handle
func handle(ctxPtr, ctxLen, evPtr, evLen uint32) uint64 {
	var c Context
	_ = json.Unmarshal(bytesAt(ctxPtr, ctxLen), &c)
	event := append([]byte(nil), bytesAt(evPtr, evLen)...)
	pinned = pinned[:0]
	out, err := handler(c, event)
	if err != nil {
		out, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	last = out
	if len(out) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(&out[0])))<<32 | uint64(len(out))
}

func bytesAt(ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(ptr))), n)
}
