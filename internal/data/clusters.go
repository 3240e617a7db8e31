package data

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/inval"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// cluster is a registered cluster with its DSNs unsealed: it lives only as
// long as the work that needs them.
type cluster struct {
	api.DataCluster
	isDefault     bool
	dsn, adminDSN string
	database      string // the shared database
	servingRole   string // the serving DSN's user
}

// dsnBinding binds a sealed DSN to its cluster and to which DSN it is, so
// that sealed bytes copied to another row or column do not unseal.
func dsnBinding(cluster, which string) []byte {
	return []byte("bulkhead-data-cluster\x00cluster=" + cluster + "\x00which=" + which)
}

func clusterNotFound(name string) error {
	return errs.E(errs.NotFound, "cluster_not_found", "cluster %q not found", errs.Clip(name, 40))
}

// CreateCluster registers a cluster after checking, by connecting with
// both DSNs, that the serving role cannot bypass row-level security or
// reach a tenant's role without SET ROLE, and that the admin role can
// provision. The first cluster is the default; Default moves the default
// to this one.
func (s *Service) CreateCluster(ctx context.Context, in api.CreateDataCluster, actor tenant.Actor) (api.DataCluster, error) {
	if err := validClusterName("name", in.Name); err != nil {
		return api.DataCluster{}, err
	}
	if in.Prefix == "" {
		in.Prefix = DefaultPrefix
	}
	if err := validPrefix(in.Prefix); err != nil {
		return api.DataCluster{}, err
	}
	serving, err := parseDSN(servingDSN, in.DSN)
	if err != nil {
		return api.DataCluster{}, err
	}
	if _, err := parseDSN(adminDSN, in.AdminDSN); err != nil {
		return api.DataCluster{}, err
	}
	if err := checkCluster(ctx, in); err != nil {
		return api.DataCluster{}, err
	}
	out := api.DataCluster{Name: in.Name, Host: hostOf(serving), Prefix: in.Prefix, CreatedAt: s.now()}
	sealed := map[string]string{}
	for which, dsn := range map[string]string{servingDSN: in.DSN, adminDSN: in.AdminDSN} {
		b, err := s.sealer.Wrap([]byte(dsn), dsnBinding(in.Name, which))
		if err != nil {
			return api.DataCluster{}, fmt.Errorf("data: seal %s: %w", which, err)
		}
		sealed[which] = base64.StdEncoding.EncodeToString(b)
	}
	err = s.inval.Write(ctx, "", actor, func(tx *storage.Tx) (inval.Change, error) {
		var others int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM data_clusters`).Scan(&others); err != nil {
			return inval.Change{}, fmt.Errorf("data: count clusters: %w", err)
		}
		isDefault := in.Default || others == 0
		if isDefault {
			if _, err := tx.Exec(ctx, `UPDATE data_clusters SET is_default = 0`); err != nil {
				return inval.Change{}, fmt.Errorf("data: move default: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO data_clusters (name, host, prefix, is_default, dsn, admin_dsn, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, out.Name, out.Host, out.Prefix, boolInt(isDefault), sealed[servingDSN], sealed[adminDSN],
			out.CreatedAt.UnixMicro()); err != nil {
			if storage.IsUniqueViolation(err) {
				return inval.Change{}, &errs.Error{Kind: errs.Conflict, Code: "cluster_exists", Field: "name",
					Detail: fmt.Sprintf("a cluster named %q is registered", out.Name)}
			}
			return inval.Change{}, fmt.Errorf("data: insert cluster: %w", err)
		}
		return inval.Change{Action: "data.cluster_created", Target: out.Name,
			Detail: map[string]string{"host": out.Host, "prefix": out.Prefix, "default": strconv.FormatBool(isDefault)}}, nil
	})
	return out, err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkCluster connects with both DSNs and refuses a cluster whose roles
// would not keep tenants apart, or could not provision.
func checkCluster(ctx context.Context, in api.CreateDataCluster) error {
	conn, err := dial(ctx, in.Name, servingDSN, in.DSN, "")
	if err != nil {
		return err
	}
	serving, err := currentRole(ctx, conn)
	var servingDB string
	if err == nil {
		err = conn.QueryRow(ctx, `SELECT current_database()`).Scan(&servingDB)
	}
	conn.Close(ctx)
	if err != nil {
		return unreachable(in.Name, servingDSN, "it cannot read its own role")
	}
	var unsafe []string
	for _, c := range []struct {
		bad  bool
		what string
	}{
		{serving.super, "is a superuser (row-level security does not bind it)"},
		{serving.bypassRLS, "has BYPASSRLS (row-level security does not bind it)"},
		{serving.inherit, "is INHERIT (it would use every tenant role's privileges without SET ROLE; make it NOINHERIT)"},
		{serving.createRole, "has CREATEROLE (it could grant itself any tenant's role)"},
		{serving.setRole, "is set by the DSN's options over the role that logs in (the role that logs in is the one granted tenants' roles; set none)"},
	} {
		if c.bad {
			unsafe = append(unsafe, c.what)
		}
	}
	if len(unsafe) > 0 {
		return &errs.Error{Kind: errs.Invalid, Code: "unsafe_serving_role", Field: servingDSN,
			Detail: fmt.Sprintf("the serving role %q %s", serving.name, strings.Join(unsafe, "; "))}
	}

	admin, err := dial(ctx, in.Name, adminDSN, in.AdminDSN, "")
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	facts, err := currentRole(ctx, admin)
	var adminDB string
	var owns bool
	if err == nil {
		err = admin.QueryRow(ctx, `SELECT current_database(), pg_catalog.pg_get_userbyid(datdba) = current_user
			FROM pg_database WHERE datname = current_database()`).Scan(&adminDB, &owns)
	}
	if err != nil {
		return unreachable(in.Name, adminDSN, "it cannot read its own role")
	}
	if facts.name == serving.name {
		return &errs.Error{Kind: errs.Invalid, Code: "unsafe_serving_role", Field: servingDSN,
			Detail: "the serving role and the admin role are the same role; the serving role must own nothing"}
	}
	var lacks []string
	if !facts.createDB {
		lacks = append(lacks, "CREATEDB")
	}
	if !facts.createRole {
		lacks = append(lacks, "CREATEROLE")
	}
	if !owns {
		lacks = append(lacks, "ownership of the shared database")
	}
	if len(lacks) > 0 {
		return &errs.Error{Kind: errs.Invalid, Code: "admin_role_lacks_privileges", Field: adminDSN,
			Detail: fmt.Sprintf("the admin role %q lacks %s", facts.name, strings.Join(lacks, ", "))}
	}
	if adminDB != servingDB {
		return &errs.Error{Kind: errs.Invalid, Code: "cluster_database_mismatch", Field: adminDSN,
			Detail: "the admin DSN and the serving DSN must name the same (shared) database"}
	}
	return nil
}

const clusterColumns = `name, host, prefix, is_default, created_at`

func scanCluster(row interface{ Scan(...any) error }) (api.DataCluster, bool, error) {
	var c api.DataCluster
	var def int
	var created int64
	if err := row.Scan(&c.Name, &c.Host, &c.Prefix, &def, &created); err != nil {
		return c, false, err
	}
	c.CreatedAt = time.UnixMicro(created).UTC()
	return c, def == 1, nil
}

// ListClusters returns every cluster and the default's name.
func (s *Service) ListClusters(ctx context.Context) (api.DataClusterList, error) {
	out := api.DataClusterList{Clusters: []api.DataCluster{}}
	err := s.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+clusterColumns+` FROM data_clusters ORDER BY name`)
		if err != nil {
			return fmt.Errorf("data: list clusters: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			c, def, err := scanCluster(rows)
			if err != nil {
				return fmt.Errorf("data: list clusters: %w", err)
			}
			if def {
				out.Default = c.Name
			}
			out.Clusters = append(out.Clusters, c)
		}
		return rows.Err()
	})
	return out, err
}

// GetCluster returns one cluster.
func (s *Service) GetCluster(ctx context.Context, name string) (api.DataCluster, error) {
	if validClusterName("name", name) != nil {
		return api.DataCluster{}, clusterNotFound(name)
	}
	var c api.DataCluster
	err := s.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		var err error
		c, _, err = scanCluster(tx.QueryRow(ctx, `SELECT `+clusterColumns+` FROM data_clusters WHERE name = ?`, name))
		if errors.Is(err, sql.ErrNoRows) {
			return clusterNotFound(name)
		}
		return err
	})
	return c, err
}

// RemoveCluster unregisters a cluster that holds no placement (not even a
// retained one): cluster_in_use otherwise. Nothing on the cluster changes.
// If it was the default, no cluster is until another is made the default.
func (s *Service) RemoveCluster(ctx context.Context, name string, actor tenant.Actor) error {
	if validClusterName("name", name) != nil {
		return clusterNotFound(name)
	}
	return s.inval.Write(ctx, "", actor, func(tx *storage.Tx) (inval.Change, error) {
		// Against an onboarding placing a tenant on it (see place).
		if err := tx.Lock(ctx, clusterLock(name)); err != nil {
			return inval.Change{}, err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM data_placements WHERE cluster = ?`, name).Scan(&n); err != nil {
			return inval.Change{}, fmt.Errorf("data: count placements: %w", err)
		}
		if n > 0 {
			return inval.Change{}, errs.E(errs.Conflict, "cluster_in_use",
				"cluster %q holds %d tenant placement(s), retained ones included; it can be removed once they are dropped", name, n)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM data_app_migrations WHERE cluster = ?`, name); err != nil {
			return inval.Change{}, fmt.Errorf("data: remove the cluster's migrations: %w", err)
		}
		res, err := tx.Exec(ctx, `DELETE FROM data_clusters WHERE name = ?`, name)
		if err != nil {
			return inval.Change{}, fmt.Errorf("data: remove cluster: %w", err)
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return inval.Change{}, clusterNotFound(name)
		}
		tx.AfterCommit(func() {
			s.mu.Lock()
			delete(s.runs, name)
			s.mu.Unlock()
		})
		return inval.Change{Action: "data.cluster_removed", Target: name}, nil
	})
}

// clusterLock names the lock that serializes a cluster's removal with the
// placements made on it.
func clusterLock(name string) string { return "data-cluster:" + name }

// loadCluster reads and unseals a cluster: the named one, or the default
// when name is empty (ok is false when there is none).
func (s *Service) loadCluster(ctx context.Context, name string) (c cluster, ok bool, err error) {
	err = s.db.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		q, args := `SELECT `+clusterColumns+`, dsn, admin_dsn FROM data_clusters WHERE is_default = 1`, []any{}
		if name != "" {
			q, args = `SELECT `+clusterColumns+`, dsn, admin_dsn FROM data_clusters WHERE name = ?`, []any{name}
		}
		var dsn, admin string
		var def int
		var created int64
		err := tx.QueryRow(ctx, q, args...).Scan(&c.Name, &c.Host, &c.Prefix, &def, &created, &dsn, &admin)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("data: read cluster: %w", err)
		}
		c.isDefault, c.CreatedAt, ok = def == 1, time.UnixMicro(created).UTC(), true
		if c.dsn, err = s.unseal(c.Name, servingDSN, dsn); err != nil {
			return err
		}
		c.adminDSN, err = s.unseal(c.Name, adminDSN, admin)
		return err
	})
	if err != nil || !ok {
		return cluster{}, ok, err
	}
	u, err := parseDSN(servingDSN, c.dsn)
	if err != nil {
		return cluster{}, false, fmt.Errorf("data: cluster %s: its stored DSN no longer parses", c.Name)
	}
	c.database, c.servingRole = strings.TrimPrefix(u.Path, "/"), u.User.Username()
	return c, true, nil
}

func (s *Service) unseal(cluster, which, sealed string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err == nil {
		b, err = s.sealer.Unwrap(b, dsnBinding(cluster, which))
	}
	if err != nil {
		return "", fmt.Errorf("data: cluster %s: its %s does not unseal under this root key: %w", cluster, which, err)
	}
	defer clear(b)
	return string(b), nil
}
