// Package bench holds Bulkhead's benchmarks (run with go test -bench) and,
// in bench/loadgen, the HTTP load generator that bench/run starts as a
// second process. See README.md for what each row of the table measures.
package bench
