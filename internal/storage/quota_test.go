package storage_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/identity"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// TestWithinQuota: a tenant's objects are counted in its own scope only,
// and the one past the limit is refused with 409 quota_exceeded.
func TestWithinQuota(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db := storagetest.Open(t, dsn, identity.Migrations())
		for i := range 3 {
			err := db.Update(ctx, storage.TenantScope("acme"), func(tx *storage.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO user_groups (id, tenant_id, name, description, created_at) VALUES (?, ?, ?, '', 0)`,
					fmt.Sprintf("grp_%d", i), tx.TenantID(), fmt.Sprintf("g%d", i))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		check := func(tid string, limit int) error {
			return db.View(ctx, storage.TenantScope(tenant.ID(tid)), func(tx *storage.Tx) error {
				return tx.WithinQuota(ctx, "user_groups", limit, "groups")
			})
		}
		if err := check("acme", 3); !errs.Is(err, "quota_exceeded") {
			t.Errorf("at the limit: %v", err)
		}
		if err := check("acme", 4); err != nil {
			t.Errorf("under the limit: %v", err)
		}
		if err := check("globex", 1); err != nil {
			t.Errorf("another tenant counted acme's: %v", err)
		}
	})
}
