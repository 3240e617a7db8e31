package gateway

import (
	"context"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// Admitter applies usage plans: asked once a request's tenant is known
// and before it is forwarded, told of each response. The usage-plans part
// implements it; AdmitAll is the default.
type Admitter interface {
	Admit(ctx context.Context, id tenant.ID, tier string) (Decision, error)
	// Record is called after the response; it must not block the
	// request for long (queue, don't write).
	Record(ctx context.Context, u Usage)
}

// Decision is an Admitter's answer.
type Decision struct {
	Allow bool
	// Code and Detail explain a refusal (429 problem+json), RetryAfter
	// when the client may try again.
	Code       string
	Detail     string
	RetryAfter time.Duration
}

func (d Decision) refusal() error {
	code, detail := d.Code, d.Detail
	if code == "" {
		code = "usage_limited"
	}
	if detail == "" {
		detail = "the tenant's usage plan refuses this request now"
	}
	e := errs.E(errs.Busy, code, "%s", detail)
	e.RetryAfter = d.RetryAfter
	return e
}

// Usage is one forwarded request, as the Admitter is told of it.
type Usage struct {
	Tenant tenant.ID
	Tier   string
	Route  string
	Status int   // the status the client got; 0 if nothing was written
	Bytes  int64 // response body bytes
}

// AdmitAll admits every request and records nothing.
type AdmitAll struct{}

// Admit implements Admitter.
func (AdmitAll) Admit(context.Context, tenant.ID, string) (Decision, error) {
	return Decision{Allow: true}, nil
}

// Record implements Admitter.
func (AdmitAll) Record(context.Context, Usage) {}
