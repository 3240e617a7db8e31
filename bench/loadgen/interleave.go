package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
)

// A contender is one side of a side-by-side comparison: a name for the
// RESULT line, the processes whose CPU is its own, the loader its
// requests go through and the request itself.
type contender struct {
	name string
	pids []int
	l    *loader
	op   func(context.Context) (bool, error)
}

// interleave measures the contenders in turn, conns connections on one
// contender at a time, for rounds rounds of slot each, so that a change in
// the machine's load falls on every contender alike. It prints one RESULT
// line per contender, phase prefix+name, with target_cpu (cores of the
// contender's processes during its own slots) and cpu_us_per_req (their
// CPU per request).
func interleave(ctx context.Context, out io.Writer, prefix string, conns, rounds int, warmup, slot time.Duration, cs []contender) error {
	for _, c := range cs {
		if warmup > 0 {
			if _, err := c.l.loop(ctx, conns, warmup, []func(context.Context) (bool, error){c.op}); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
		}
	}
	sums := make([]result, len(cs))
	cpu := make([]time.Duration, len(cs))
	for range rounds {
		for i, c := range cs {
			c0 := procsCPU(c.pids)
			rs, err := c.l.loop(ctx, conns, slot, []func(context.Context) (bool, error){c.op})
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			r := rs[0]
			if c1 := procsCPU(c.pids); c0 >= 0 && c1 >= 0 && cpu[i] >= 0 {
				cpu[i] += c1 - c0
			} else {
				cpu[i] = -1
			}
			s := &sums[i]
			s.clientCPU += r.clientCPU * r.elapsed.Seconds()
			s.machineCPU += r.machineCPU * r.elapsed.Seconds()
			s.elapsed += r.elapsed
			s.lat = append(s.lat, r.lat...)
			s.errors += r.errors
		}
	}
	for i, c := range cs {
		s := sums[i]
		slices.Sort(s.lat)
		s.clientCPU /= s.elapsed.Seconds()
		s.machineCPU /= s.elapsed.Seconds()
		s.serverCPU = -1
		s.extra = cpuFields(0, cpu[i], s.elapsed, len(s.lat), c.pids) + " rounds=" + strconv.Itoa(rounds)
		s.print(out, prefix+c.name, conns)
	}
	return nil
}

// cpuFields formats a contender's CPU from c0 to c1 over elapsed and n
// requests: target_cpu (cores) and cpu_us_per_req, or -1 for each when it
// has no process or its CPU could not be read.
func cpuFields(c0, c1, elapsed time.Duration, n int, pids []int) string {
	if len(pids) == 0 || c0 < 0 || c1 < 0 || n == 0 {
		return "target_cpu=-1 cpu_us_per_req=-1"
	}
	d := c1 - c0
	return fmt.Sprintf("target_cpu=%.2f cpu_us_per_req=%.1f", d.Seconds()/elapsed.Seconds(), float64(d.Microseconds())/float64(n))
}
