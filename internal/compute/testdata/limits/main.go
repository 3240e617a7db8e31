//go:build wasip1

// Command limits misbehaves on demand: an event of "spin" loops forever,
// "hog" allocates until the memory limit stops it; any other event is
// answered with the number of calls this environment has served.
package main

import (
	"strconv"

	"github.com/bulkhead-dev/bulkhead/examples/functions/guest"
)

var (
	keep  [][]byte
	calls int
	sink  int
)

func init() {
	guest.Serve(func(ctx guest.Context, event []byte) ([]byte, error) {
		calls++
		switch string(event) {
		case "spin":
			for {
				sink++
			}
		case "hog":
			for {
				b := make([]byte, 1<<20)
				b[0] = 1
				keep = append(keep, b)
			}
		}
		return []byte(strconv.Itoa(calls)), nil
	})
}

func main() {}
