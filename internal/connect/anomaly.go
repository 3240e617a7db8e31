package connect

import (
	"math"
	"strconv"
	"sync"
	"time"
)

// AnomalyOptions tune the per-grant baselines.
type AnomalyOptions struct {
	// Window is the span over which a grant's requests, bytes sent back
	// and distinct paths are counted (default 1 minute).
	Window time.Duration
	// Warmup is how many windows a baseline learns from before it raises
	// alerts (default 10).
	Warmup int
	// Alpha is the weight of the newest window in the exponentially
	// weighted mean and variance (default 0.2).
	Alpha float64
	// LearningPeriod is how long after a grant's creation its source
	// networks are learned without an alert (default 24h).
	LearningPeriod time.Duration
	// MaxGrants bounds the baselines kept in memory (default 100,000).
	MaxGrants int
}

// Alert kinds.
const (
	AlertRequestRate   = "request_rate"   // far more requests in a window than the baseline
	AlertBytesOut      = "bytes_out"      // far more data sent back (downloads) than the baseline
	AlertDistinctPaths = "distinct_paths" // far more distinct paths (enumeration) than the baseline
	AlertNewNetwork    = "new_network"    // a source network the grant was never used from
)

// finding is one measure outside its baseline.
type finding struct {
	kind             string
	observed, limit  float64
	baseline, stddev float64
}

func (f finding) detail() map[string]string {
	return map[string]string{"observed": fmtFloat(f.observed), "limit": fmtFloat(f.limit), "baseline_mean": fmtFloat(f.baseline),
		"baseline_stddev": fmtFloat(f.stddev)}
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// detector keeps, per grant and in memory, an exponentially weighted mean
// and variance of three measures per window: requests, bytes sent back to
// the integration and distinct paths. A measure of the current window
// that goes above mean + sensitivity × max(stddev, mean/2, 1) raises an
// alert at once (not at the window's end, so that a burst is caught while
// it runs), at most once per window and measure. Each node keeps its own
// baselines of the traffic it serves; a restart learns them again.
type detector struct {
	opts AnomalyOptions
	mu   sync.Mutex
	m    map[string]*baseline
}

type ewma struct{ mean, variance float64 }

func (e *ewma) fold(v, alpha float64, first bool) {
	if first {
		e.mean, e.variance = v, 0
		return
	}
	d := v - e.mean
	e.mean += alpha * d
	e.variance = (1 - alpha) * (e.variance + alpha*d*d)
}

func (e ewma) limit(k float64) float64 {
	return e.mean + k*max(math.Sqrt(e.variance), e.mean/2, 1)
}

type baseline struct {
	start   time.Time // of the current window
	windows int       // completed windows folded in
	reqs    float64
	bytes   float64
	paths   map[string]struct{}
	stats   [3]ewma // requests, bytes, distinct paths
	alerted map[string]bool
}

// maxPathsPerWindow bounds the distinct paths remembered per window.
const maxPathsPerWindow = 10000

func newDetector(o AnomalyOptions) *detector {
	if o.Window <= 0 {
		o.Window = time.Minute
	}
	if o.Warmup <= 0 {
		o.Warmup = 10
	}
	if o.Alpha <= 0 || o.Alpha >= 1 {
		o.Alpha = 0.2
	}
	if o.LearningPeriod <= 0 {
		o.LearningPeriod = 24 * time.Hour
	}
	if o.MaxGrants <= 0 {
		o.MaxGrants = 100000
	}
	return &detector{opts: o, m: map[string]*baseline{}}
}

// get returns grant's baseline, rolled forward to now.
func (d *detector) get(grant string, now time.Time) *baseline {
	b := d.m[grant]
	if b == nil {
		if len(d.m) >= d.opts.MaxGrants {
			for k := range d.m { // forget an arbitrary one: memory stays bounded
				delete(d.m, k)
				break
			}
		}
		b = &baseline{start: now, paths: map[string]struct{}{}, alerted: map[string]bool{}}
		d.m[grant] = b
	}
	if now.Sub(b.start) < d.opts.Window {
		return b
	}
	// Fold the finished window, then the empty ones after it (at most
	// enough of them to forget the past).
	n := int(now.Sub(b.start) / d.opts.Window)
	vals := [3]float64{b.reqs, b.bytes, float64(len(b.paths))}
	for i := 0; i < min(n, 100); i++ {
		for j := range b.stats {
			b.stats[j].fold(vals[j], d.opts.Alpha, b.windows == 0)
		}
		b.windows++
		vals = [3]float64{}
	}
	b.start = b.start.Add(time.Duration(n) * d.opts.Window)
	b.reqs, b.bytes = 0, 0
	clear(b.paths)
	clear(b.alerted)
	return b
}

// check reports measure i of b if it is over its limit and not reported
// in this window yet.
func (d *detector) check(b *baseline, i int, kind string, v, k float64) []finding {
	if b.windows < d.opts.Warmup || b.alerted[kind] {
		return nil
	}
	lim := b.stats[i].limit(k)
	if v <= lim {
		return nil
	}
	b.alerted[kind] = true
	return []finding{{kind: kind, observed: v, limit: lim, baseline: b.stats[i].mean, stddev: math.Sqrt(b.stats[i].variance)}}
}

// request counts a request of grant to path and returns what it pushed
// over its baseline.
func (d *detector) request(grant, path string, k float64, now time.Time) []finding {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.get(grant, now)
	b.reqs++
	if len(b.paths) < maxPathsPerWindow {
		b.paths[path] = struct{}{}
	}
	return append(d.check(b, 0, AlertRequestRate, b.reqs, k), d.check(b, 2, AlertDistinctPaths, float64(len(b.paths)), k)...)
}

// response counts bytes sent back to grant's integration.
func (d *detector) response(grant string, n int64, k float64, now time.Time) []finding {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.get(grant, now)
	b.bytes += float64(n)
	return d.check(b, 1, AlertBytesOut, b.bytes, k)
}

// drop forgets grant's baseline.
func (d *detector) drop(grant string) {
	d.mu.Lock()
	delete(d.m, grant)
	d.mu.Unlock()
}
