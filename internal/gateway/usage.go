package gateway

import (
	"context"

	"github.com/bulkhead-dev/bulkhead/internal/gateway/usage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// Admitter applies usage plans: asked after the tenant is resolved and
// before anything is forwarded, told of each response. *usage.Service is
// the one a node runs; its types are the hook's, so the plans' decision
// (with its RateLimit fields) reaches the client as the plans wrote it.
type Admitter interface {
	Admit(ctx context.Context, id tenant.ID, tier string) (usage.Decision, error)
	// Record is called after the response; it must not block the
	// request for long (queue, don't write).
	Record(ctx context.Context, u usage.Usage)
}

// AdmitAll admits every request and records nothing.
type AdmitAll struct{}

// Admit implements Admitter.
func (AdmitAll) Admit(context.Context, tenant.ID, string) (usage.Decision, error) {
	return usage.Decision{Allowed: true}, nil
}

// Record implements Admitter.
func (AdmitAll) Record(context.Context, usage.Usage) {}
