// Package errs defines the error type that Bulkhead's services return for
// failures a caller can act on. Each error carries a Kind, which the HTTP
// layer maps to a status code in one place, and a stable Code string that
// clients can match on.
package errs

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Kind classifies an error for transport mapping.
type Kind int

// The kinds of error a service reports.
const (
	Internal         Kind = iota // a bug or an unexpected failure; details are not shown to clients
	Invalid                      // the request is malformed or fails validation
	NotFound                     // the object does not exist, or the caller may not learn that it does
	Conflict                     // the object exists or is in a state that forbids the change
	Unauthenticated              // no valid credential
	Forbidden                    // a valid credential that may not do this
	TooLarge                     // the request body or a field is over its limit
	Unavailable                  // a dependency is down; retry later
	MethodNotAllowed             // the resource exists but not with this method
	Busy                         // a limit on concurrent work was reached; retry shortly
	BadGateway                   // an upstream (a proxied API) failed or may not be reached
	GatewayTimeout               // an upstream did not answer in time
	HeadersTooLarge              // the request's header fields are over their limit
	RequestTimeout               // the client took too long to send its request
)

// Error is a service error with a stable code.
type Error struct {
	Kind   Kind
	Code   string // stable, snake_case, e.g. "tenant_not_found"
	Field  string // the offending field, when there is one
	Detail string // human-readable; never contains secrets
	Err    error  // the cause, if any; not shown to clients
	// RetryAfter, on a Busy or Unavailable error, is when the caller may
	// try again (the Retry-After header); 0 means a second.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	msg := e.Code
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// E returns an *Error of the given kind and code with a formatted detail.
func E(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Field returns an Invalid error that names the offending field.
func Field(field, code, format string, args ...any) *Error {
	return &Error{Kind: Invalid, Code: code, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// Is reports whether err's chain holds an *Error with the given code.
func Is(err error, code string) bool {
	e, ok := As(err)
	return ok && e.Code == code
}

// Clip shortens s, a caller's input quoted in an error's detail or an
// audit record, to at most n bytes (on a UTF-8 boundary) and marks the cut
// with "…".
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
