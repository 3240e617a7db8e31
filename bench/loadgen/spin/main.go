//go:build wasip1

// Command spin is the CPU-heavy function of loadgen's noisy-neighbour
// phases: each invocation runs the event's {"iterations":N} rounds of a
// xorshift generator (N at most 1e9; 1 when missing) and answers
// {"iterations":N,"x":…}, so the work cannot be optimized away. It holds
// one core for as long as it runs; nothing inside it yields.
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o spin.wasm ./bench/loadgen/spin
package main

import (
	"encoding/json"

	"github.com/bulkhead-dev/bulkhead/examples/functions/guest"
)

func init() {
	guest.Serve(func(_ guest.Context, event []byte) ([]byte, error) {
		var in struct {
			Iterations int `json:"iterations"`
		}
		_ = json.Unmarshal(event, &in)
		n := min(max(in.Iterations, 1), 1_000_000_000)
		x := uint64(88172645463325252)
		for range n {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
		return json.Marshal(map[string]uint64{"iterations": uint64(n), "x": x})
	})
}

func main() {}
