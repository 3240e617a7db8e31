package posture

import (
	"context"
	"fmt"
	"strings"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// AuditChainCheck finds a tenant's (or the platform's) audit chain that
// does not verify: an event altered or removed, a head that does not
// match. tenants lists the tenants whose chains must exist.
func AuditChainCheck(log *audit.Log, tenants func(ctx context.Context) ([]tenant.ID, error)) Check {
	return Check{
		Code: "audit_chain_broken", Severity: api.SeverityCritical,
		Title: "An audit chain does not verify",
		Why: "The audit trail is tamper-evident only while it verifies: a broken chain means an event was altered or " +
			"removed in the database, by someone with write access to it, and the trail from there on proves nothing.",
		Fix: "Run bulkhead audit verify, restore the chain's rows from a backup, and find out who had write access to the " +
			"database (the serving role cannot alter the audit tables on PostgreSQL).",
		Platform: func(ctx context.Context) ([]Hit, error) {
			ids, err := tenants(ctx)
			if err != nil {
				return nil, err
			}
			expected := make([]string, len(ids))
			for i, id := range ids {
				expected[i] = string(id)
			}
			rep, err := log.VerifyAllTenants(ctx, expected...)
			if err != nil || rep.Broken == nil {
				return nil, err
			}
			// Verification stops at the first break: one finding a scan,
			// the next after that chain is repaired.
			b := rep.Broken
			return []Hit{{TenantID: tenant.ID(b.TenantID), Object: "audit_chain",
				Detail: fmt.Sprintf("at event %d: %s", b.Seq, b.Reason)}}, nil
		},
	}
}

// ServingRoleCheck finds what lets the PostgreSQL role Bulkhead serves
// as get around row-level security (storage.DB.ServingPowers): what the
// start refused, granted since. On SQLite it finds nothing (one process
// owns the file).
func ServingRoleCheck(db *storage.DB) Check {
	return Check{
		Code: "serving_role_privileges", Severity: api.SeverityCritical,
		Title: "The database role Bulkhead serves as can get around row-level security",
		Why: "Row-level security is one of the four layers that keep tenants apart: a serving role that is (or may become) " +
			"a superuser, bypasses RLS, owns the database, the schema or a table, or may create objects in the schema can " +
			"read or change every tenant's rows through one bug or one injected statement.",
		Fix: "Serve as a role that owns nothing and holds only what bulkhead migrate --grant-to gives it: undo the GRANT or " +
			"ALTER … OWNER that gave it more (REVOKE CREATE ON SCHEMA …, REASSIGN OWNED BY <serving> TO <owner>).",
		Platform: func(ctx context.Context) ([]Hit, error) {
			role, found, err := db.ServingPowers(ctx)
			if err != nil || len(found) == 0 {
				return nil, err
			}
			return []Hit{{Object: "role:" + role, Detail: "the role " + strings.Join(found, "; ")}}, nil
		},
	}
}
