package posture

import (
	"context"
	"fmt"

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
// as bypass row-level security: superuser, BYPASSRLS, owning the tables
// (an owner is bound by RLS only because it is FORCEd, and may drop it),
// or the right to create objects in their schema. On SQLite it finds
// nothing (one process owns the file).
func ServingRoleCheck(db *storage.DB) Check {
	return Check{
		Code: "serving_role_privileges", Severity: api.SeverityCritical,
		Title: "The database role Bulkhead serves as can get around row-level security",
		Why: "Row-level security is one of the four layers that keep tenants apart: a serving role that is a superuser, " +
			"has BYPASSRLS, owns the tables or may create objects in their schema can read or change every tenant's rows " +
			"through one bug or one injected statement.",
		Fix: "Serve as a role that owns nothing (scripts/pg-setup makes one: bulkhead), migrate as the owner " +
			"(--migration-database), and REVOKE CREATE ON SCHEMA from the serving role.",
		Platform: func(ctx context.Context) ([]Hit, error) {
			if db.Dialect() != storage.Postgres {
				return nil, nil
			}
			var hits []Hit
			err := db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
				var name string
				var super, bypass, create bool
				var owned int
				if err := tx.QueryRow(ctx, `SELECT current_user, r.rolsuper, r.rolbypassrls,
					has_schema_privilege(current_user, current_schema(), 'CREATE'),
					(SELECT COUNT(*) FROM pg_tables t WHERE t.tableowner = current_user AND t.schemaname = current_schema())
					FROM pg_roles r WHERE r.rolname = current_user`).Scan(&name, &super, &bypass, &create, &owned); err != nil {
					return err
				}
				object := "role:" + name
				switch {
				case super:
					hits = append(hits, Hit{Object: object, Detail: "the role is a superuser: row-level security does not bind it"})
				case bypass:
					hits = append(hits, Hit{Object: object, Detail: "the role has BYPASSRLS"})
				case owned > 0:
					hits = append(hits, Hit{Object: object, Detail: fmt.Sprintf("the role owns %d of Bulkhead's tables", owned)})
				case create:
					hits = append(hits, Hit{Object: object, Severity: api.SeverityHigh,
						Detail: "the role may create objects (functions, tables) in Bulkhead's schema"})
				}
				return nil
			})
			return hits, err
		},
	}
}
