package usage

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/prometheus/client_golang/prometheus"
)

// Usage is what one proxied request cost, as the gateway reports it.
type Usage struct {
	Tenant   tenant.ID
	Tier     string
	Method   string
	Path     string // the path alone: never the query string, which may hold secrets
	Host     string
	Status   int
	BytesIn  int64
	BytesOut int64
	Latency  time.Duration
	// RequestID ties the access log line to the gateway's request.
	RequestID string
}

// LatencyBounds are the upper bounds of the latency histogram's buckets;
// a last bucket holds what is slower.
var LatencyBounds = [...]time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
	2500 * time.Millisecond, 5 * time.Second}

// latencyColumns are the histogram's columns, bucket by bucket.
var latencyColumns = [len(LatencyBounds) + 1]string{"lat_5ms", "lat_10ms", "lat_25ms", "lat_50ms", "lat_100ms",
	"lat_250ms", "lat_500ms", "lat_1s", "lat_2500ms", "lat_5s", "lat_inf"}

// Record is a tenant's usage in one hour.
type Record struct {
	Hour     time.Time `json:"hour"`
	Requests int64     `json:"requests"`
	BytesIn  int64     `json:"bytes_in"`
	BytesOut int64     `json:"bytes_out"`
	// Status counts responses by class: 2xx, 3xx, 4xx, 5xx (others are
	// counted in requests only).
	Status [4]int64 `json:"status"`
	// Latency counts requests per LatencyBounds bucket, the last one
	// for slower ones.
	Latency [len(LatencyBounds) + 1]int64 `json:"latency"`
}

type recordKey struct {
	tenant tenant.ID
	hour   int64
}

// maxPendingRecords bounds the rows held between flushes: past it, Record
// asks Run to flush early.
const maxPendingRecords = 10_000

// Record counts u in its tenant's hourly row (flushed with the next
// batch), in the metrics and in the access log.
func (s *Service) Record(ctx context.Context, u Usage) {
	now := s.clock.Now()
	hour := now.Truncate(time.Hour)
	s.recMu.Lock()
	k := recordKey{u.Tenant, hour.Unix()}
	r := s.records[k]
	if r == nil {
		r = &Record{Hour: hour}
		s.records[k] = r
	}
	r.Requests++
	r.BytesIn += max(u.BytesIn, 0)
	r.BytesOut += max(u.BytesOut, 0)
	if c := u.Status/100 - 2; c >= 0 && c < 4 {
		r.Status[c]++
	}
	b, _ := slices.BinarySearch(LatencyBounds[:], u.Latency)
	r.Latency[b]++
	full := len(s.records) >= maxPendingRecords
	s.recMu.Unlock()
	if full {
		select {
		case s.full <- struct{}{}:
		default: // a flush is asked for already
		}
	}
	s.metrics.count(s.tierOf(u.Tier), u)
	s.logAccess(ctx, now, u)
}

// logAccess writes u's access log line. The record goes to the handler
// directly: through a Logger, every line paid for runtime.Callers (the
// source position, which is always this function).
func (s *Service) logAccess(ctx context.Context, now time.Time, u Usage) {
	if !s.access.Enabled(ctx, slog.LevelInfo) {
		return
	}
	path, _, _ := strings.Cut(u.Path, "?")
	r := slog.NewRecord(now, slog.LevelInfo, "gateway request", 0)
	r.AddAttrs(slog.String("tenant_id", string(u.Tenant)),
		slog.String("tier", u.Tier), slog.String("method", u.Method), slog.String("host", u.Host),
		slog.String("path", path), slog.Int("status", u.Status), slog.Int64("bytes_in", u.BytesIn),
		slog.Int64("bytes_out", u.BytesOut), slog.Float64("latency_ms", float64(u.Latency)/float64(time.Millisecond)),
		slog.String("request_id", u.RequestID))
	s.access.Handle(ctx, r)
}

// flushRecords adds the rows held since the last flush to the table, in
// one transaction. If it fails they are held again for the next one.
func (s *Service) flushRecords(ctx context.Context) error {
	s.recMu.Lock()
	batch := s.records
	s.records = map[recordKey]*Record{}
	s.recMu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	cols := strings.Join(latencyColumns[:], ", ")
	var sets strings.Builder
	for _, c := range latencyColumns {
		fmt.Fprintf(&sets, ", %s = gateway_usage.%[1]s + excluded.%[1]s", c)
	}
	q := `INSERT INTO gateway_usage (tenant_id, hour, requests, bytes_in, bytes_out, status_2xx, status_3xx, status_4xx, status_5xx, ` +
		cols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?` + strings.Repeat(", ?", len(latencyColumns)) + `)
		ON CONFLICT (tenant_id, hour) DO UPDATE SET requests = gateway_usage.requests + excluded.requests,
		bytes_in = gateway_usage.bytes_in + excluded.bytes_in, bytes_out = gateway_usage.bytes_out + excluded.bytes_out,
		status_2xx = gateway_usage.status_2xx + excluded.status_2xx, status_3xx = gateway_usage.status_3xx + excluded.status_3xx,
		status_4xx = gateway_usage.status_4xx + excluded.status_4xx, status_5xx = gateway_usage.status_5xx + excluded.status_5xx` + sets.String()
	err := s.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		for k, r := range batch {
			args := []any{string(k.tenant), k.hour, r.Requests, r.BytesIn, r.BytesOut, r.Status[0], r.Status[1], r.Status[2], r.Status[3]}
			for _, n := range r.Latency {
				args = append(args, n)
			}
			if _, err := tx.Exec(ctx, q, args...); err != nil {
				return fmt.Errorf("usage: flush usage of %s: %w", k.tenant, err)
			}
		}
		return nil
	})
	if err != nil {
		s.recMu.Lock()
		for k, r := range batch {
			if have := s.records[k]; have != nil {
				have.add(r)
			} else {
				s.records[k] = r
			}
		}
		s.recMu.Unlock()
	}
	return err
}

func (r *Record) add(o *Record) {
	r.Requests += o.Requests
	r.BytesIn += o.BytesIn
	r.BytesOut += o.BytesOut
	for i := range r.Status {
		r.Status[i] += o.Status[i]
	}
	for i := range r.Latency {
		r.Latency[i] += o.Latency[i]
	}
}

// maxUsageRange is the longest range Usage returns at once (hourly rows).
const maxUsageRange = 93 * 24 * time.Hour

// Usage returns tenant tid's hourly records from the hour that holds from
// to the one before to, oldest first (what has been flushed).
func (s *Service) Usage(ctx context.Context, tid tenant.ID, from, to time.Time) ([]Record, error) {
	if !to.After(from) {
		return nil, errs.Field("to", "invalid_range", "to must be after from")
	}
	if to.Sub(from) > maxUsageRange {
		return nil, errs.Field("to", "invalid_range", "the range is at most 93 days")
	}
	out := []Record{}
	err := s.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT hour, requests, bytes_in, bytes_out, status_2xx, status_3xx, status_4xx, status_5xx, `+
			strings.Join(latencyColumns[:], ", ")+` FROM gateway_usage WHERE tenant_id = ? AND hour >= ? AND hour < ? ORDER BY hour`,
			tx.TenantID(), from.Truncate(time.Hour).Unix(), to.Unix())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r Record
			var hour int64
			dest := []any{&hour, &r.Requests, &r.BytesIn, &r.BytesOut, &r.Status[0], &r.Status[1], &r.Status[2], &r.Status[3]}
			for i := range r.Latency {
				dest = append(dest, &r.Latency[i])
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			r.Hour = time.Unix(hour, 0).UTC()
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("usage: read usage of %s: %w", tid, err)
	}
	return out, nil
}

// metrics are the gateway's request metrics. Their tenant label is bounded:
// the TopTenants tenants with the most requests since start get their own,
// the others share "other", so a scrape has at most tiers × (TopTenants+1)
// × classes series. A tenant's series moves to "other" (and back) as the
// ranking changes, so per-tenant rates are approximate at the edges.
type metrics struct {
	s       *Service
	mu      sync.Mutex
	byTier  map[[2]string]float64       // tier, class → requests
	tenants map[tenant.ID]*tenantCounts // every tenant seen
	refusal map[[2]string]float64       // tier, reason → refusals
	descs   [3]*prometheus.Desc
}

type tenantCounts struct {
	tier  string
	class [5]float64 // 2xx, 3xx, 4xx, 5xx, other
}

func (t *tenantCounts) total() float64 {
	var n float64
	for _, c := range t.class {
		n += c
	}
	return n
}

var classNames = [5]string{"2xx", "3xx", "4xx", "5xx", "other"}

func newMetrics(s *Service, reg prometheus.Registerer) *metrics {
	m := &metrics{s: s, byTier: map[[2]string]float64{}, tenants: map[tenant.ID]*tenantCounts{}, refusal: map[[2]string]float64{},
		descs: [3]*prometheus.Desc{
			prometheus.NewDesc("bulkhead_gateway_requests_total", "Proxied requests by tier and status class.", []string{"tier", "class"}, nil),
			prometheus.NewDesc("bulkhead_gateway_tenant_requests_total", "Proxied requests of the busiest tenants; the others are \"other\".",
				[]string{"tier", "tenant", "class"}, nil),
			prometheus.NewDesc("bulkhead_gateway_refused_total", "Requests refused by a usage plan, by tier and reason (rate, quota).",
				[]string{"tier", "reason"}, nil),
		}}
	if reg != nil {
		reg.MustRegister(m)
	}
	return m
}

// maxMetricTenants bounds the tenants the ranking remembers.
const maxMetricTenants = 100_000

func (m *metrics) count(tier string, u Usage) {
	c := u.Status/100 - 2
	if c < 0 || c > 3 {
		c = 4
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byTier[[2]string{tier, classNames[c]}]++
	t := m.tenants[u.Tenant]
	if t == nil {
		if len(m.tenants) >= maxMetricTenants {
			return
		}
		t = &tenantCounts{}
		m.tenants[u.Tenant] = t
	}
	t.tier = tier
	t.class[c]++
}

func (m *metrics) refused(tier, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refusal[[2]string{tier, reason}]++
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range m.byTier {
		ch <- prometheus.MustNewConstMetric(m.descs[0], prometheus.CounterValue, v, k[0], k[1])
	}
	for k, v := range m.refusal {
		ch <- prometheus.MustNewConstMetric(m.descs[2], prometheus.CounterValue, v, k[0], k[1])
	}
	ids := make([]tenant.ID, 0, len(m.tenants))
	for id := range m.tenants {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b tenant.ID) int {
		if d := m.tenants[b].total() - m.tenants[a].total(); d != 0 {
			if d > 0 {
				return 1
			}
			return -1
		}
		return strings.Compare(string(a), string(b))
	})
	other := map[[2]string]float64{}
	for i, id := range ids {
		t := m.tenants[id]
		for c, v := range t.class {
			if v == 0 {
				continue
			}
			if i < m.s.topN {
				ch <- prometheus.MustNewConstMetric(m.descs[1], prometheus.CounterValue, v, t.tier, string(id), classNames[c])
			} else {
				other[[2]string{t.tier, classNames[c]}] += v
			}
		}
	}
	for k, v := range other {
		ch <- prometheus.MustNewConstMetric(m.descs[1], prometheus.CounterValue, v, k[0], "other", k[1])
	}
}
