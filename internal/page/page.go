// Package page is the cursor pagination every list in Bulkhead shares:
// items ordered by id, fetched limit+1 at a time, with an opaque cursor
// naming the last id of the page.
package page

import (
	"encoding/base64"
	"regexp"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

// DefaultLimit and MaxLimit bound a page.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Bounds checks a requested limit (0 means DefaultLimit) and cursor ("" is
// the first page) and returns the limit and the id to list after.
func Bounds(limit int, cursor string) (int, string, error) {
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 1 || limit > MaxLimit {
		return 0, "", errs.Field("limit", "invalid_limit", "limit must be between 1 and %d", MaxLimit)
	}
	if cursor == "" {
		return limit, "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || !idPattern.Match(b) {
		return 0, "", errs.Field("cursor", "invalid_cursor", "cursor is not one this server issued")
	}
	return limit, string(b), nil
}

// Trim cuts items (fetched with LIMIT limit+1) to limit and returns the
// cursor of the next page, "" on the last page.
func Trim[T any](items []T, limit int, id func(T) string) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, base64.RawURLEncoding.EncodeToString([]byte(id(items[limit-1])))
}

// idPattern matches every id a list is ordered by (tenant ids, usr_…, pol_…).
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{3,64}$`)
