package httpx

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Problem is an RFC 9457 problem detail with Bulkhead's extensions: the
// body (api.Problem, which clients decode) and what goes into headers.
type Problem struct {
	api.Problem
	// RetryAfter is the Retry-After header's seconds on a 429 or 503.
	RetryAfter int `json:"-"`
}

var kindStatus = map[errs.Kind]int{
	errs.Invalid:          http.StatusBadRequest,
	errs.NotFound:         http.StatusNotFound,
	errs.Conflict:         http.StatusConflict,
	errs.Unauthenticated:  http.StatusUnauthorized,
	errs.Forbidden:        http.StatusForbidden,
	errs.TooLarge:         http.StatusBadRequest,
	errs.Unavailable:      http.StatusServiceUnavailable,
	errs.MethodNotAllowed: http.StatusMethodNotAllowed,
	errs.Busy:             http.StatusTooManyRequests,
	errs.Internal:         http.StatusInternalServerError,
	errs.BadGateway:       http.StatusBadGateway,
	errs.GatewayTimeout:   http.StatusGatewayTimeout,
	errs.HeadersTooLarge:  http.StatusRequestHeaderFieldsTooLarge,
	errs.RequestTimeout:   http.StatusRequestTimeout,
}

// ProblemFor maps any error to the problem a client sees. Errors that are
// not *errs.Error are internal: their text is for the log, never sent.
func ProblemFor(err error) Problem {
	e, ok := errs.As(err)
	if !ok || e.Kind == errs.Internal {
		return Problem{Problem: api.Problem{Type: ProblemType("internal"), Title: "Internal Server Error", Status: 500, Code: "internal",
			Detail: "the server failed to handle the request; it has been logged with the request id"}}
	}
	st := kindStatus[e.Kind]
	retry := 0
	if e.RetryAfter > 0 {
		retry = int(math.Ceil(e.RetryAfter.Seconds()))
	}
	return Problem{Problem: api.Problem{Type: ProblemType(e.Code), Title: http.StatusText(st), Status: st, Detail: e.Detail, Code: e.Code,
		Field: e.Field}, RetryAfter: retry}
}

// ProblemType is the type URI of a problem code.
func ProblemType(code string) string { return "urn:bulkhead:problem:" + code }

// WriteProblem writes p as application/problem+json, with the headers its
// status calls for (WWW-Authenticate on 401, Retry-After on 429).
func WriteProblem(w http.ResponseWriter, p Problem) {
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="bulkhead"`)
	}
	switch {
	case p.RetryAfter > 0 && (p.Status == http.StatusTooManyRequests || p.Status == http.StatusServiceUnavailable):
		w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfter))
	case p.Status == http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}
