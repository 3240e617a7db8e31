// Package api holds the request and response bodies of Bulkhead's HTTP API,
// written once for both sides: the server (internal/httpapi and the
// services it calls) encodes and decodes them, and the Go client
// (sdk/client) sends and receives them. A test keeps them in step with the
// OpenAPI document the server serves.
//
// The package imports only the standard library, so that code outside the
// module can use it. Field order is part of the contract: the server writes
// a body's fields in the order they are declared here.
package api

import "fmt"

// Problem is an RFC 9457 problem detail, the body of every error answer,
// with Bulkhead's extensions: a stable Code, the offending Field of a bad
// request, and the RequestID that the server logged the failure under.
type Problem struct {
	Type      string `json:"type"` // urn:bulkhead:problem:<code>
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Code      string `json:"code"`
	Field     string `json:"field,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// ViolatedPolicies, on a 429 of the edge gateway, names the
	// RateLimit-Policy items the request went over ("rate", "quota"):
	// the extension member of the RateLimit fields draft's quota problem.
	ViolatedPolicies []string `json:"violated-policies,omitempty"`
}

// Error makes a problem an error, as clients return it.
func (p *Problem) Error() string {
	s := fmt.Sprintf("%d %s", p.Status, p.Code)
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// List is a collection the API returns whole, without pages.
type List[T any] struct {
	Items []T `json:"items"`
}
