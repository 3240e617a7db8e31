package api

import "time"

// Posture finding severities, most severe first.
const (
	SeverityCritical = "critical"
	SeverityHigh     = "high"
	SeverityMedium   = "medium"
	SeverityLow      = "low"
)

// PostureFinding is one risky setting of a Bulkhead deployment, found by a
// posture scan: what it is about, why it matters and how to fix it. Its
// ID is stable for the same check on the same object, so a finding that
// persists across scans keeps its id and FirstSeen.
type PostureFinding struct {
	ID       string `json:"id"`
	Check    string `json:"check"`
	Severity string `json:"severity"`
	// TenantID is the tenant the finding is about ("" for the platform's
	// own settings).
	TenantID string `json:"tenant_id,omitempty"`
	// Object names what has the defect: "user:usr_…", "key:key_…",
	// "policy:pol_…", "role:bulkhead", …
	Object     string    `json:"object"`
	Title      string    `json:"title"`
	Detail     string    `json:"detail,omitempty"`
	Why        string    `json:"why"`
	Fix        string    `json:"fix"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
}

// PosturePage is a page of findings, most severe first.
type PosturePage struct {
	Items      []PostureFinding `json:"items"`
	NextCursor string           `json:"next_cursor"`
	// Counts are the open findings by severity (of the whole list, not
	// the page).
	Counts map[string]int `json:"counts"`
	// ScannedAt is when the last scan ended (zero before the first).
	ScannedAt time.Time `json:"scanned_at,omitzero"`
}

// PostureScan is the result of a scan.
type PostureScan struct {
	Tenants  int            `json:"tenants"`
	Open     map[string]int `json:"open"` // open findings by severity
	Opened   int            `json:"opened"`
	Resolved int            `json:"resolved"`
	// Failed names the checks that could not run (they keep their
	// findings of the last scan).
	Failed    []string  `json:"failed"`
	ScannedAt time.Time `json:"scanned_at"`
}
