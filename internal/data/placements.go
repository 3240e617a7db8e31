package data

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// StepName is the name of the onboarding and offboarding steps.
const StepName = "data-placement"

// placement is a placement row: the wire placement and what it keeps
// besides.
type placement struct {
	api.DataPlacement
	dropAfter time.Time
}

const placementColumns = `tenant_id, model, cluster, database_name, schema_name, role_name, status, version, drop_after, updated_at`

func scanPlacement(row interface{ Scan(...any) error }) (placement, error) {
	var p placement
	var dropAfter, updated int64
	err := row.Scan(&p.TenantID, &p.Model, &p.Cluster, &p.Database, &p.Schema, &p.Role, &p.Status, &p.Version, &dropAfter, &updated)
	if err != nil {
		return p, err
	}
	p.UpdatedAt = time.UnixMicro(updated).UTC()
	if dropAfter != 0 {
		p.dropAfter = time.UnixMicro(dropAfter).UTC()
	}
	return p, nil
}

// readPlacement reads the placement of tx's tenant.
func readPlacement(ctx context.Context, tx *storage.Tx) (placement, bool, error) {
	p, err := scanPlacement(tx.QueryRow(ctx, `SELECT `+placementColumns+` FROM data_placements WHERE tenant_id = ?`, tx.TenantID()))
	if errors.Is(err, sql.ErrNoRows) {
		return placement{}, false, nil
	}
	if err != nil {
		return placement{}, false, fmt.Errorf("data: read placement: %w", err)
	}
	return p, true, nil
}

func noPlacement(id tenant.ID) error {
	return errs.E(errs.NotFound, "no_placement",
		"tenant %q has no data placement (no cluster was registered when it was onboarded)", id)
}

// Placement returns where tenant id's application data lives. It is
// cached on this node until the placement changes on any node.
func (s *Service) Placement(ctx context.Context, id tenant.ID) (api.DataPlacement, error) {
	if p, ok := s.cache.Get(id); ok {
		return p, nil
	}
	gen := s.cache.Generation()
	var p placement
	var found bool
	err := s.db.View(ctx, storage.TenantScope(id), func(tx *storage.Tx) error {
		var err error
		p, found, err = readPlacement(ctx, tx)
		return err
	})
	if err != nil {
		return api.DataPlacement{}, err
	}
	if !found {
		return api.DataPlacement{}, noPlacement(id)
	}
	s.cache.Put(id, p.DataPlacement, gen)
	return p.DataPlacement, nil
}

// OnboardingStep places the tenant on the default cluster, by its tier's
// isolation; with no cluster registered it places nothing (the
// application has no database of Bulkhead's to place it in).
func (s *Service) OnboardingStep() tenants.Step {
	return tenants.Step{Name: StepName, Run: s.place}
}

// OffboardingStep takes the application's access to the tenant's data
// away at once and retains the data until the sweeper drops it.
func (s *Service) OffboardingStep() tenants.Step {
	return tenants.Step{Name: StepName, Run: s.retain}
}

func (s *Service) place(ctx context.Context, tx *storage.Tx, t tenants.Tenant) error {
	have, found, err := readPlacement(ctx, tx)
	if err != nil {
		return err
	}
	if found {
		if have.Status == Retained || have.Status == Dropping {
			return errs.E(errs.Conflict, "placement_retained",
				"tenant %q has a retained data placement on cluster %s (dropped after %s); it cannot be placed again before",
				t.ID, have.Cluster, have.dropAfter.Format(time.RFC3339))
		}
		return nil
	}
	c, ok, err := s.loadCluster(ctx, "")
	if err != nil || !ok {
		return err
	}
	// Against the cluster's removal: read it again under its lock.
	if err := tx.Lock(ctx, clusterLock(c.Name)); err != nil {
		return err
	}
	if c, ok, err = s.loadCluster(ctx, c.Name); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("data: cluster removed while placing tenant %s; retrying", t.ID)
	}
	now := s.now()
	p := placement{DataPlacement: api.DataPlacement{TenantID: string(t.ID), Model: string(t.Isolation), Cluster: c.Name,
		Database: c.database, Schema: "public", Status: Ready, Version: 1, UpdatedAt: now}}
	var object any // NULL in pool
	sealed := ""
	switch p.Model {
	case Pool:
	case Bridge, Silo:
		name := Name(c.Prefix, t.ID)
		if err := s.claimName(ctx, tx, c, t.ID, name); err != nil {
			return err
		}
		password := newPassword()
		if err := s.provision(ctx, c, p.Model, t.ID, name, password); err != nil {
			return err
		}
		p.Role, object = name, name
		if p.Model == Bridge {
			p.Schema = name
		} else {
			p.Database = name
		}
		b, err := s.sealer.Wrap([]byte(password), roleBinding(t.ID, c.Name, name))
		if err != nil {
			return fmt.Errorf("data: seal role password: %w", err)
		}
		sealed = base64.StdEncoding.EncodeToString(b)
		if err := s.migratePlacement(ctx, c, p.DataPlacement); err != nil {
			return err
		}
		// Files registered since are the runner's: wake it once the
		// placement is ready (it migrates ready placements only).
		tx.AfterCommit(s.wakeRunner)
		if s.opts.Provisioned != nil {
			if err := s.runProvisioned(ctx, c, p.DataPlacement); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("data: tenant %s has isolation %q, which places nothing", t.ID, p.Model)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO data_placements (tenant_id, model, cluster, database_name, schema_name, role_name,
		object_name, role_password, status, version, drop_after, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
		p.TenantID, p.Model, p.Cluster, p.Database, p.Schema, p.Role, object, sealed, p.Status, p.Version,
		now.UnixMicro(), now.UnixMicro()); err != nil {
		if storage.IsUniqueViolation(err) {
			return nameTaken(c.Name, p.Role)
		}
		return fmt.Errorf("data: record placement: %w", err)
	}
	return s.changed(ctx, tx, c, "data.placement_ready", p.placementDetail())
}

func (p placement) placementDetail() map[string]string {
	d := map[string]string{"model": p.Model, "cluster": p.Cluster, "database": p.Database, "schema": p.Schema}
	if p.Role != "" {
		d["role"] = p.Role
	}
	return d
}

// changed audits a placement change in the tenant's chain, drops it from
// every node's cache, and once tx commits tells the SDKs on the cluster.
func (s *Service) changed(ctx context.Context, tx *storage.Tx, c cluster, action string, detail map[string]string) error {
	if err := s.audit.AppendTx(ctx, tx, audit.Event{TenantID: tx.TenantID(), Principal: "system", Action: action,
		Target: tx.TenantID(), Detail: detail}); err != nil {
		return err
	}
	tid := tx.TenantID()
	after := context.WithoutCancel(ctx)
	tx.AfterCommit(func() { s.notifyCluster(after, c, tid) })
	return s.inval.Changed(ctx, tx, tid)
}

// notifyCluster NOTIFYs PlacementChannel on the cluster's shared database.
// It is best effort, after the commit: an SDK that misses it still sees
// the change when its cached placement ages out.
func (s *Service) notifyCluster(ctx context.Context, c cluster, tid string) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := dial(ctx, c.Name, adminDSN, c.adminDSN, "")
	if err == nil {
		_, err = conn.Exec(ctx, `SELECT pg_notify($1, $2)`, PlacementChannel, tid)
		conn.Close(ctx)
	}
	if err != nil {
		s.log.WarnContext(ctx, "notify the cluster of a placement change", "cluster", c.Name, "tenant_id", tid, "err", err)
	}
}

func nameTaken(cluster, name string) error {
	return errs.E(errs.Conflict, "placement_name_taken",
		"the name %s on cluster %s belongs to another tenant's placement or to something Bulkhead did not make", name, cluster)
}

// claimName makes sure no other tenant's placement on c holds name
// (possible only if 40 bits of SHA-256 met, see Name), under a lock that
// another onboarding claiming it waits for.
func (s *Service) claimName(ctx context.Context, tx *storage.Tx, c cluster, id tenant.ID, name string) error {
	if err := tx.Lock(ctx, "data-name:"+c.Name+":"+name); err != nil {
		return err
	}
	var other string
	err := s.db.View(ctx, storage.PlatformScope(), func(ptx *storage.Tx) error {
		return ptx.QueryRow(ctx, `SELECT tenant_id FROM data_placements WHERE cluster = ? AND object_name = ? AND tenant_id <> ?`,
			c.Name, name, string(id)).Scan(&other)
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("data: check name: %w", err)
	}
	return nameTaken(c.Name, name)
}

// roleBinding binds a sealed role password to its tenant, cluster and role.
func roleBinding(id tenant.ID, cluster, role string) []byte {
	return []byte("bulkhead-data-role\x00tenant=" + string(id) + "\x00cluster=" + cluster + "\x00role=" + role)
}

// newPassword is a tenant role's password: 256 random bits.
func newPassword() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// runProvisioned hands the new placement to the Provisioned hook, with an
// admin connection to its database.
func (s *Service) runProvisioned(ctx context.Context, c cluster, p api.DataPlacement) error {
	conn, err := dial(ctx, c.Name, adminDSN, c.adminDSN, p.Database)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := s.opts.Provisioned(ctx, p, conn); err != nil {
		return fmt.Errorf("data: after provisioning %s: %w", p.TenantID, err)
	}
	return nil
}

func (s *Service) retain(ctx context.Context, tx *storage.Tx, _ tenants.Tenant) error {
	if err := abandonMoves(ctx, tx, s.now()); err != nil {
		return err
	}
	p, found, err := readPlacement(ctx, tx)
	if err != nil || !found || p.Status == Retained || p.Status == Dropping {
		return err
	}
	c, ok, err := s.loadCluster(ctx, p.Cluster)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("data: tenant %s is placed on cluster %s, which is not registered", p.TenantID, p.Cluster)
	}
	if p.Model != Pool {
		if err := revokeAccess(ctx, c, p.Model, p.Role); err != nil {
			return err
		}
	}
	dropAfter := s.now().Add(s.opts.Retention)
	if _, err := tx.Exec(ctx, `UPDATE data_placements SET status = ?, drop_after = ?, version = version + 1, updated_at = ?
		WHERE tenant_id = ?`, Retained, dropAfter.UnixMicro(), s.now().UnixMicro(), tx.TenantID()); err != nil {
		return fmt.Errorf("data: retain placement: %w", err)
	}
	detail := p.placementDetail()
	detail["drop_after"] = dropAfter.Format(time.RFC3339)
	return s.changed(ctx, tx, c, "data.placement_retained", detail)
}
