//go:build wasip1

// Command noop answers every event with an empty JSON object: the smallest
// Go function, for measuring the platform's own overhead.
package main

import "github.com/bulkhead-dev/bulkhead/examples/functions/guest"

func init() {
	guest.Serve(func(guest.Context, []byte) ([]byte, error) { return []byte("{}"), nil })
}

func main() {}
