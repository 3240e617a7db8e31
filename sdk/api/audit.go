package api

import "time"

// AuditEvent is one event of an audit chain (a tenant's, or the platform's
// when TenantID is empty).
type AuditEvent struct {
	ID        int64             `json:"id"`
	Time      time.Time         `json:"time"`
	TenantID  string            `json:"tenant_id,omitempty"`
	Seq       int64             `json:"seq"`
	Principal string            `json:"principal"`
	Action    string            `json:"action"`
	Target    string            `json:"target,omitempty"`
	Outcome   string            `json:"outcome"` // success, failure or denied
	RequestID string            `json:"request_id,omitempty"`
	SourceIP  string            `json:"source_ip,omitempty"`
	Detail    map[string]string `json:"detail,omitempty"`
	PrevHash  string            `json:"prev_hash"`
	Hash      string            `json:"hash"`
}

// AuditPage is a page of audit events, newest first.
type AuditPage struct {
	Items      []AuditEvent `json:"items"`
	NextCursor string       `json:"next_cursor"`
}

// VerifyReport is the result of an audit chain verification.
type VerifyReport struct {
	OK     bool        `json:"ok"`
	Chains int         `json:"chains"`
	Events int64       `json:"events"`
	Broken *ChainBreak `json:"broken,omitempty"`
}

// ChainBreak is the first inconsistency a verification found.
type ChainBreak struct {
	TenantID string `json:"tenant_id"`
	Seq      int64  `json:"seq"`
	EventID  int64  `json:"event_id,omitempty"`
	Reason   string `json:"reason"`
}
