package data

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing/fstest"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/data/migrate"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// The application's migrations (internal/data/migrate) are registered per
// cluster by the operator and converged by every node: Run's runner
// applies them to the cluster's ready placements whenever it is woken (a
// registration on any node, a placement made ready here, every
// SweepInterval), and a new bridge schema or silo database gets them
// before its placement is recorded ready. The cluster's advisory lock
// makes one node at a time do the work; the others find it running and
// leave it.

// migrationsKey is the inval key that wakes every node's runner: no
// tenant id has a ':', so it never names a tenant's cache entry.
const migrationsKey = "migrations:"

// statusTimeout bounds the reading of every place's ledger for a status:
// past it, the answer is this node's last run.
const statusTimeout = 10 * time.Second

// provisionTimeout bounds the migrating of a new placement, waiting for a
// run that holds the cluster's lock included: the onboarding step fails
// and is retried past it.
const provisionTimeout = 5 * time.Minute

// runState is what this node knows of its last run on a cluster.
type runState struct {
	running bool
	at      time.Time
	err     string
	report  migrate.Report
	done    bool // at, err and report are set
}

// registered is a cluster's registered migrations.
type registered struct {
	files   []migrate.File
	created []time.Time
}

// loadFiles validates the files sent by the operator with migrate.Load,
// so that the rules of a migration are written in one place.
func loadFiles(in []api.DataMigrationFile) ([]migrate.File, error) {
	fsys := fstest.MapFS{}
	for i, f := range in {
		field := fmt.Sprintf("files[%d].name", i)
		if f.Name == "" || strings.ContainsAny(f.Name, "/\\") || !strings.HasSuffix(f.Name, ".sql") {
			return nil, errs.Field(field, "invalid_migration", "migration %q: the name must be NNN_name.sql", errs.Clip(f.Name, 80))
		}
		if _, dup := fsys[f.Name]; dup {
			return nil, errs.Field(field, "invalid_migration", "migration %s is sent twice", f.Name)
		}
		fsys[f.Name] = &fstest.MapFile{Data: []byte(f.SQL)}
	}
	return migrate.Load(fsys)
}

// RegisterMigrations stores the files of in that are new for cluster
// name, after checking that those registered so far come first and
// unchanged, and wakes every node's runner. It answers the status.
func (s *Service) RegisterMigrations(ctx context.Context, name string, in api.RegisterDataMigrations, actor tenant.Actor) (api.DataMigrationStatus, error) {
	if validClusterName("name", name) != nil {
		return api.DataMigrationStatus{}, clusterNotFound(name)
	}
	files, err := loadFiles(in.Files)
	if err != nil {
		return api.DataMigrationStatus{}, err
	}
	err = s.db.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		// Against the cluster's removal, and another registration.
		if err := tx.Lock(ctx, clusterLock(name)); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM data_clusters WHERE name = ?`, name).Scan(&n); err != nil {
			return fmt.Errorf("data: read cluster: %w", err)
		}
		if n == 0 {
			return clusterNotFound(name)
		}
		have, err := readRegistered(ctx, tx, name)
		if err != nil {
			return err
		}
		if err := extends(have.files, files); err != nil {
			return err
		}
		added := files[len(have.files):]
		now := s.now()
		var detail []string
		for _, f := range added {
			if _, err := tx.Exec(ctx, `INSERT INTO data_app_migrations (cluster, name, checksum, sql, created_at) VALUES (?, ?, ?, ?, ?)`,
				name, f.Name, f.Checksum, f.SQL, now.UnixMicro()); err != nil {
				return fmt.Errorf("data: store migration %s: %w", f.Name, err)
			}
			detail = append(detail, f.Name+":"+f.Checksum)
		}
		if len(added) > 0 {
			if err := s.audit.AppendTx(ctx, tx, audit.Event{Principal: actor.Principal, Action: "data.migrations_registered",
				Target: name, RequestID: actor.RequestID, SourceIP: actor.SourceIP,
				Detail: map[string]string{"files": strings.Join(detail, " "), "newest": files[len(files)-1].Name}}); err != nil {
				return err
			}
		}
		// Wakes the runner here after the commit, and on every other node
		// by the commit's notification (even with nothing new: a PUT of the
		// same files asks for a run).
		return s.inval.Changed(ctx, tx, migrationsKey+name)
	})
	if err != nil {
		return api.DataMigrationStatus{}, err
	}
	return s.MigrationStatus(ctx, name)
}

// extends checks that the registered files have come first and unchanged
// in files: a file applied somewhere may not change, vanish or have
// another put before it.
func extends(have, files []migrate.File) error {
	for i, h := range have {
		if i >= len(files) || files[i].Name != h.Name {
			if !slices.ContainsFunc(files, func(f migrate.File) bool { return f.Name == h.Name }) {
				return errs.E(errs.Conflict, "migration_changed",
					"migration %s is registered but not among the files; a registered migration is never removed", h.Name)
			}
			return errs.E(errs.Conflict, "migration_changed",
				"migration %s is new but sorts before %s, which is registered; name it to sort after %s",
				files[i].Name, h.Name, have[len(have)-1].Name)
		}
		if files[i].Checksum != h.Checksum {
			return errs.E(errs.Conflict, "migration_changed",
				"migration %s has changed since it was registered (checksum %.12s…, registered %.12s…); write a new file instead",
				h.Name, files[i].Checksum, h.Checksum)
		}
	}
	return nil
}

// readRegistered returns cluster's registered migrations in order of name.
func readRegistered(ctx context.Context, tx *storage.Tx, cluster string) (registered, error) {
	rows, err := tx.Query(ctx, `SELECT name, checksum, sql, created_at FROM data_app_migrations WHERE cluster = ?`, cluster)
	if err != nil {
		return registered{}, fmt.Errorf("data: read migrations: %w", err)
	}
	defer rows.Close()
	type row struct {
		f       migrate.File
		created int64
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.f.Name, &r.f.Checksum, &r.f.SQL, &r.created); err != nil {
			return registered{}, fmt.Errorf("data: read migrations: %w", err)
		}
		all = append(all, r)
	}
	if err := rows.Err(); err != nil {
		return registered{}, fmt.Errorf("data: read migrations: %w", err)
	}
	// Bytewise, as Load orders them (a database's collation may not be).
	slices.SortFunc(all, func(a, b row) int { return strings.Compare(a.f.Name, b.f.Name) })
	var out registered
	for _, r := range all {
		out.files = append(out.files, r.f)
		out.created = append(out.created, time.UnixMicro(r.created).UTC())
	}
	return out, nil
}

// registeredFiles reads cluster's registered migrations.
func (s *Service) registeredFiles(ctx context.Context, cluster string) (registered, error) {
	var out registered
	err := s.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		var err error
		out, err = readRegistered(ctx, tx, cluster)
		return err
	})
	return out, err
}

// readyTargets returns the ready placements on cluster, as migrate's
// targets.
func (s *Service) readyTargets(ctx context.Context, cluster string) ([]migrate.Target, error) {
	var out []migrate.Target
	err := s.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT tenant_id, model, database_name, schema_name, role_name FROM data_placements
			WHERE cluster = ? AND status = ? ORDER BY tenant_id`, cluster, Ready)
		if err != nil {
			return fmt.Errorf("data: list placements: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var t migrate.Target
			if err := rows.Scan(&t.TenantID, &t.Model, &t.Database, &t.Schema, &t.Role); err != nil {
				return fmt.Errorf("data: list placements: %w", err)
			}
			out = append(out, t)
		}
		return rows.Err()
	})
	return out, err
}

// migrateCluster connects to c as its admin role for the length of fn.
func migrateCluster(c cluster, workers int, fn func(migrate.Cluster) error) error {
	conns, err := migrate.NewAdminConns(c.adminDSN, workers)
	if err != nil {
		return unreachable(c.Name, adminDSN, "its DSN does not parse")
	}
	defer conns.Close()
	return fn(migrate.Cluster{Databases: conns, SharedDatabase: c.database, Prefix: c.Prefix, ServingRole: c.servingRole})
}

// wakeRunner asks Run's runner for a pass; a pass already asked for is
// enough.
func (s *Service) wakeRunner() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// runMigrations is Run's runner: a pass over every cluster with
// registered migrations each time it is woken, until ctx ends.
func (s *Service) runMigrations(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			s.migrateAll(ctx)
		}
	}
}

// migrateAll applies each cluster's registered migrations to its ready
// placements. Another node's run on a cluster is left to it; a failure is
// logged and kept for the status, and the next pass tries again.
func (s *Service) migrateAll(ctx context.Context) {
	var clusters []string
	err := s.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT DISTINCT cluster FROM data_app_migrations ORDER BY cluster`)
		if err != nil {
			return fmt.Errorf("data: list clusters with migrations: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				return err
			}
			clusters = append(clusters, c)
		}
		return rows.Err()
	})
	if err != nil {
		if ctx.Err() == nil {
			s.log.ErrorContext(ctx, "migrate the application's clusters", "err", err)
		}
		return
	}
	for _, name := range clusters {
		if ctx.Err() != nil {
			return
		}
		s.migrateOne(ctx, name)
	}
}

// migrateOne runs cluster name's migrations and records the outcome.
func (s *Service) migrateOne(ctx context.Context, name string) {
	s.setRunning(name, true)
	rep, err := s.runCluster(ctx, name)
	if errs.Is(err, "migrations_running") {
		s.setRunning(name, false)
		s.log.DebugContext(ctx, "the application's migrations run on another node", "cluster", name)
		return
	}
	if ctx.Err() != nil {
		s.setRunning(name, false)
		return
	}
	s.mu.Lock()
	st := s.runs[name]
	st.running, st.done, st.at, st.report, st.err = false, true, s.now(), rep, ""
	if err != nil {
		st.err = err.Error()
	}
	s.runs[name] = st
	s.mu.Unlock()
	if err != nil {
		s.log.ErrorContext(ctx, "migrate the application's cluster", "cluster", name, "err", err)
		return
	}
	if rep.Applied > 0 {
		s.log.InfoContext(ctx, "migrated the application's cluster", "cluster", name, "newest", rep.Newest,
			"applied", rep.Applied, "places", len(rep.Places))
	}
}

func (s *Service) setRunning(name string, running bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.runs[name]
	st.running = running
	s.runs[name] = st
}

// runCluster applies cluster name's registered migrations to its ready
// placements.
func (s *Service) runCluster(ctx context.Context, name string) (migrate.Report, error) {
	c, ok, err := s.loadCluster(ctx, name)
	if err != nil || !ok {
		return migrate.Report{}, err // removed: its files went with it
	}
	reg, err := s.registeredFiles(ctx, name)
	if err != nil || len(reg.files) == 0 {
		return migrate.Report{}, err
	}
	targets, err := s.readyTargets(ctx, name)
	if err != nil {
		return migrate.Report{}, err
	}
	var rep migrate.Report
	err = migrateCluster(c, migrate.DefaultWorkers, func(mc migrate.Cluster) error {
		rep, err = migrate.Run(ctx, mc, reg.files, targets, migrate.Options{})
		return err
	})
	return rep, err
}

// migratePlacement applies cluster c's registered migrations to the new
// placement p before it is recorded ready, so that an active tenant never
// has an empty schema or database. It waits for a run that holds the
// cluster's lock, up to provisionTimeout.
func (s *Service) migratePlacement(ctx context.Context, c cluster, p api.DataPlacement) error {
	reg, err := s.registeredFiles(ctx, c.Name)
	if err != nil || len(reg.files) == 0 {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, provisionTimeout)
	defer cancel()
	target := migrate.Target{TenantID: p.TenantID, Model: p.Model, Database: p.Database, Schema: p.Schema, Role: p.Role}
	err = migrateCluster(c, 1, func(mc migrate.Cluster) error {
		_, err := migrate.Run(ctx, mc, reg.files, []migrate.Target{target}, migrate.Options{Workers: 1, Wait: true})
		return err
	})
	if err != nil {
		return fmt.Errorf("data: apply the registered migrations to the placement of %s: %w", p.TenantID, err)
	}
	return nil
}

// MigrationStatus reads how far cluster name's placements are with its
// registered migrations. If the places cannot all be read within
// statusTimeout, it answers this node's last run instead, if there was
// one.
func (s *Service) MigrationStatus(ctx context.Context, name string) (api.DataMigrationStatus, error) {
	if validClusterName("name", name) != nil {
		return api.DataMigrationStatus{}, clusterNotFound(name)
	}
	c, ok, err := s.loadCluster(ctx, name)
	if err != nil {
		return api.DataMigrationStatus{}, err
	}
	if !ok {
		return api.DataMigrationStatus{}, clusterNotFound(name)
	}
	reg, err := s.registeredFiles(ctx, name)
	if err != nil {
		return api.DataMigrationStatus{}, err
	}
	out := api.DataMigrationStatus{Cluster: name, Files: []api.DataMigration{}, Places: []api.DataMigrationPlace{},
		Behind: []string{}, CheckedAt: s.now()}
	for i, f := range reg.files {
		out.Files = append(out.Files, api.DataMigration{Name: f.Name, Checksum: f.Checksum, CreatedAt: reg.created[i]})
	}
	s.mu.Lock()
	last := s.runs[name]
	s.mu.Unlock()
	out.Running = last.running
	if last.done {
		at := last.at
		out.LastRunAt, out.LastRunError = &at, last.err
	}
	if len(reg.files) == 0 {
		return out, nil
	}
	out.Newest = reg.files[len(reg.files)-1].Name
	targets, err := s.readyTargets(ctx, name)
	if err != nil {
		return api.DataMigrationStatus{}, err
	}
	var rep migrate.Report
	err = migrateCluster(c, migrate.DefaultWorkers, func(mc migrate.Cluster) error {
		sctx, cancel := context.WithTimeout(ctx, statusTimeout)
		defer cancel()
		var err error
		if rep, err = migrate.Status(sctx, mc, reg.files, targets, migrate.Options{}); err != nil {
			return err
		}
		running, err := migrate.Running(sctx, mc)
		out.Running = out.Running || running
		return err
	})
	switch {
	case err != nil && ctx.Err() != nil:
		return api.DataMigrationStatus{}, ctx.Err()
	case err != nil && last.done && last.report.Newest != "":
		rep, out.CheckedAt = last.report, last.at
	case err != nil && len(rep.Places) == 0:
		return api.DataMigrationStatus{}, err
	}
	for _, r := range rep.Places {
		p := api.DataMigrationPlace{Model: r.Model, Database: r.Database, Schema: r.Schema, Tenants: r.Tenants,
			Last: r.Last, Pending: r.Pending}
		if p.Tenants == nil {
			p.Tenants = []string{}
		}
		if r.Err != nil {
			p.Error = r.Err.Error()
		}
		out.Places = append(out.Places, p)
		if r.Last != out.Newest {
			out.Behind = append(out.Behind, r.Tenants...)
		}
	}
	slices.Sort(out.Behind)
	out.Behind = slices.Compact(out.Behind)
	return out, nil
}
