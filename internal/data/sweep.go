package data

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

// Sweep drops the retained placements whose retention has ended, and
// finishes the drops a crash cut off; it returns how many it dropped. Each
// is marked dropping before anything is dropped, so a drop cut off is
// resumed by the next sweep, on any node, and its row is deleted last.
//
// A pool placement has nothing of its own on the cluster: the tenant's
// rows are deleted from every table of the shared database's public
// schema that has a tenant_id column.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	due, err := s.dueTenants(ctx, "retained placements", `SELECT tenant_id FROM data_placements WHERE (status = ? AND drop_after <= ?) OR status = ?
		ORDER BY drop_after`, Retained, s.now().UnixMicro(), Dropping)
	if err != nil {
		return 0, err
	}
	var errs []error
	dropped := 0
	for _, id := range due {
		if ctx.Err() != nil {
			break
		}
		ok, err := s.drop(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", id, err))
		}
		if ok {
			dropped++
		}
	}
	n, err := s.sweepMoves(ctx)
	return dropped + n, errors.Join(append(errs, err)...)
}

// drop drops one tenant's placement if it is still due.
func (s *Service) drop(ctx context.Context, id tenant.ID) (bool, error) {
	var p placement
	due := false
	err := s.db.Update(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
		var found bool
		var err error
		if p, found, err = readPlacement(ctx, tx); err != nil || !found {
			return err
		}
		switch {
		case p.Status == Dropping:
			due = true
		case p.Status == Retained && !p.dropAfter.After(s.now()):
			due = true
			if _, err := tx.Exec(ctx, `UPDATE data_placements SET status = ?, version = version + 1, updated_at = ? WHERE tenant_id = ?`,
				Dropping, s.now().UnixMicro(), tx.TenantID()); err != nil {
				return fmt.Errorf("data: mark placement dropping: %w", err)
			}
			return s.inval.Changed(ctx, tx, tx.TenantID())
		}
		return nil
	})
	if err != nil || !due {
		return false, err
	}
	c, ok, err := s.loadCluster(ctx, p.Cluster)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, fmt.Errorf("data: tenant %s is placed on cluster %s, which is not registered", id, p.Cluster)
	}
	if err := dropOnCluster(ctx, c, p); err != nil {
		return false, err
	}
	err = s.db.Update(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM data_placements WHERE tenant_id = ? AND status = ?`, tx.TenantID(), Dropping)
		if err != nil {
			return fmt.Errorf("data: delete placement: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // another node's sweep got there first
		}
		return s.changed(ctx, tx, c, "data.placement_dropped", p.placementDetail())
	})
	return err == nil, err
}

// dropOnCluster removes what placement p has on cluster c.
func dropOnCluster(ctx context.Context, c cluster, p placement) error {
	conn, err := dial(ctx, c.Name, adminDSN, c.adminDSN, "")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	id := tenant.ID(p.TenantID)
	switch p.Model {
	case Pool:
		return deletePoolRows(ctx, conn, id)
	case Bridge:
		if err := dropIfOurs(ctx, conn, kindSchema, p.Schema, id, `DROP SCHEMA IF EXISTS `+ident(p.Schema)+` CASCADE`); err != nil {
			return err
		}
	case Silo:
		if err := dropIfOurs(ctx, conn, kindDatabase, p.Database, id, `DROP DATABASE IF EXISTS `+ident(p.Database)+` WITH (FORCE)`); err != nil {
			return err
		}
	}
	return dropIfOurs(ctx, conn, kindRole, p.Role, id, `DROP ROLE IF EXISTS `+ident(p.Role))
}

// dropIfOurs runs drop if the object of kind and name bears tenant id's
// mark: what Bulkhead did not make, it never drops.
func dropIfOurs(ctx context.Context, conn *pgx.Conn, kind, name string, id tenant.ID, drop string) error {
	o, err := lookup(ctx, conn, kind, name)
	if err != nil || !o.ours(id) {
		return err
	}
	if _, err := conn.Exec(ctx, drop); err != nil {
		return fmt.Errorf("data: drop %s %s: %w", kind, name, err)
	}
	return nil
}

// deletePoolRows deletes tenant id's rows from every table of the public
// schema with a tenant_id column, as the tenant (row-level security is
// forced on them: the admin role sees only the rows of app.tenant_id). A
// table whose delete fails (a foreign key from a table not yet emptied) is
// tried again after the others, until a pass deletes nothing new.
func deletePoolRows(ctx context.Context, conn *pgx.Conn, id tenant.ID) error {
	rows, err := conn.Query(ctx, `SELECT c.relname FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname`)
	if err != nil {
		return fmt.Errorf("data: list tenant tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("data: list tenant tables: %w", err)
	}
	for len(tables) > 0 {
		var failed []string
		var last error
		for _, t := range tables {
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `SELECT set_config('app.tenant_id', $1, true)`, string(id)); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `DELETE FROM `+ident("public", t)+` WHERE tenant_id = $1`, string(id))
				return err
			})
			if err != nil {
				failed, last = append(failed, t), err
			}
		}
		if len(failed) == len(tables) {
			return fmt.Errorf("data: delete the tenant's pool rows: %w", last)
		}
		tables = failed
	}
	return nil
}

// dueTenants runs query, in the platform scope, for the ids of the
// tenants that have something to sweep (what names it in errors).
func (s *Service) dueTenants(ctx context.Context, what, query string, args ...any) ([]tenant.ID, error) {
	var due []tenant.ID
	err := s.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("data: find %s: %w", what, err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			due = append(due, tenant.ID(id))
		}
		return rows.Err()
	})
	return due, err
}
