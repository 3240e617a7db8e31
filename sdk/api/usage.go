package api

import "time"

// UsagePlan is a tenant's own gateway usage plan, which replaces its
// tier's: RPS requests per second with bursts of Burst (per gateway node,
// divided by --gateway-nodes), and Quota requests per QuotaPeriod (day or
// month, UTC) across all nodes. A zero RPS or Quota is no limit.
type UsagePlan struct {
	RPS         float64 `json:"rps"`
	Burst       int     `json:"burst"`
	Quota       int64   `json:"quota"`
	QuotaPeriod string  `json:"quota_period,omitempty"`
}

// UsageRecord is a tenant's gateway usage in one hour.
type UsageRecord struct {
	Hour     time.Time `json:"hour"`
	Requests int64     `json:"requests"`
	BytesIn  int64     `json:"bytes_in"`
	BytesOut int64     `json:"bytes_out"`
	// Status counts responses by class: 2xx, 3xx, 4xx, 5xx.
	Status UsageStatus `json:"status"`
	// Latency counts requests per bucket of UsageList.LatencyBoundsMS,
	// with one more bucket at the end for slower ones.
	Latency []int64 `json:"latency"`
}

// UsageStatus counts responses by status class.
type UsageStatus struct {
	S2xx int64 `json:"2xx"`
	S3xx int64 `json:"3xx"`
	S4xx int64 `json:"4xx"`
	S5xx int64 `json:"5xx"`
}

// UsageList is a tenant's hourly usage in a range, oldest first.
type UsageList struct {
	Items []UsageRecord `json:"items"`
	// LatencyBoundsMS are the upper bounds of the latency buckets, in
	// milliseconds.
	LatencyBoundsMS []float64 `json:"latency_bounds_ms"`
}
