package storage

import (
	"context"
	"fmt"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
)

// WithinQuota refuses a new row of table for the transaction's tenant when
// the tenant already has limit of them: every kind of object a tenant can
// create is bounded, so one tenant cannot fill the database (or the
// caches that hold its objects) for all. what names the objects in the
// refusal (409 quota_exceeded). table must be a constant of the caller's.
// Concurrent creations may pass the count together; the bound holds
// within a few objects, which is what it is for.
func (tx *Tx) WithinQuota(ctx context.Context, table string, limit int, what string) error {
	if strings.ContainsAny(table, " ;'\"()") {
		return fmt.Errorf("storage: quota: bad table name %q", table)
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM `+table+` WHERE tenant_id = ?`, tx.TenantID()).Scan(&n); err != nil {
		return fmt.Errorf("storage: count %s: %w", table, err)
	}
	if n >= limit {
		return errs.E(errs.Conflict, "quota_exceeded", "a tenant has at most %d %s; delete some first", limit, what)
	}
	return nil
}
