// Package tenant names the tenant a piece of work is for: the tenant ID,
// the tenant context that authentication puts into a request, and the
// actor of a change. It is a leaf package (the standard library only), in
// the way of OpenBao's helper/namespace, so that logging, storage and every
// service can depend on it without depending on the tenant registry, the
// audit trail or the database (the registry is package tenants).
//
// Services take the tenant as a parameter (tid tenant.ID) rather than
// reading it from the context: the HTTP layer reads the tenant context once,
// checks it against the route, and passes the tenant on explicitly, so a
// service method cannot act for a tenant its caller did not name. The
// context accessors are for the middleware and for logs.
package tenant

import (
	"errors"
	"regexp"
)

// ID is a validated tenant id: [a-z0-9][a-z0-9-]{1,61}[a-z0-9]. Ids are immutable
// and never reused, even after the tenant is deleted.
type ID string

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)

// ErrInvalidID is ParseID's error. Its text is fit to show a client.
var ErrInvalidID = errors.New("a tenant id is 3 to 63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit")

// ParseID validates s as a tenant id.
func ParseID(s string) (ID, error) {
	if !idPattern.MatchString(s) {
		return "", ErrInvalidID
	}
	return ID(s), nil
}

// Actor says who asks for a change, for the audit trail.
type Actor struct {
	Principal string
	RequestID string
	SourceIP  string
}
