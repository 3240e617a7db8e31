package app_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulkhead-dev/bulkhead/internal/app"
	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/storage/storagetest"
)

// TestServingRoleCannotRewriteTheAuditTrail is the hostile test of the
// role split on PostgreSQL. With the serving role's credential, connected
// straight to the database (no Bulkhead in the way) and in the platform
// scope, an attacker can neither switch row-level security off, nor touch
// the policies, nor change, remove or truncate audit events, nor record a
// migration: each statement is refused with permission denied. The trail
// verifies afterwards, and a node refuses the owner's credential as its
// serving connection.
func TestServingRoleCannotRewriteTheAuditTrail(t *testing.T) {
	ctx := context.Background()
	serving, owner := storagetest.PostgresDSNs(t)
	dataDir := t.TempDir()
	a, err := app.Open(ctx, app.Config{DataDir: dataDir, Database: serving, MigrationDatabase: owner, Notices: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, tid := range []string{"", "tenant-a"} {
		if err := a.Audit.Append(ctx, audit.Event{TenantID: tid, Principal: "operator", Action: "test.kept"}); err != nil {
			t.Fatal(err)
		}
	}

	u, err := url.Parse(owner)
	if err != nil {
		t.Fatal(err)
	}
	ownerRole := u.User.Username()
	attacker, err := sql.Open("pgx", serving)
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	for _, q := range []string{
		`ALTER TABLE audit_events DISABLE ROW LEVEL SECURITY`,
		`ALTER TABLE audit_events NO FORCE ROW LEVEL SECURITY`,
		`ALTER TABLE audit_heads DISABLE ROW LEVEL SECURITY`,
		`ALTER TABLE audit_heads NO FORCE ROW LEVEL SECURITY`,
		`DROP POLICY platform_read ON audit_events`,
		`ALTER POLICY platform_append ON audit_events WITH CHECK (true)`,
		`CREATE POLICY rewrite ON audit_events FOR UPDATE USING (true)`,
		`UPDATE audit_events SET action = 'rewritten'`,
		`DELETE FROM audit_events`,
		`TRUNCATE audit_events`,
		`UPDATE audit_heads SET chain = 'tenant-b'`,
		`DELETE FROM audit_heads`,
		`TRUNCATE audit_heads`,
		`DROP TABLE audit_events`,
		`ALTER TABLE audit_events RENAME TO audit_events_old`,
		`ALTER TABLE audit_events DISABLE TRIGGER ALL`,
		`CREATE TABLE audit_events_copy (LIKE audit_events)`,
		`INSERT INTO schema_migrations (component, version, name, applied_at) VALUES ('audit', 99, '099_x.sql', 0)`,
		`UPDATE schema_migrations SET applied_at = 0`,
		`DELETE FROM schema_migrations`,
		`TRUNCATE schema_migrations`,
		`ALTER TABLE tenants DISABLE ROW LEVEL SECURITY`,
		`DROP POLICY tenant_scope ON tenants`,
		`TRUNCATE tenants`,
		`SET ROLE ` + ownerRole,
	} {
		tx, err := attacker.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tx.ExecContext(ctx, `SELECT set_config('bulkhead.platform', 'on', true)`)
		if err == nil {
			_, err = tx.ExecContext(ctx, q)
		}
		tx.Rollback()
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s as the serving role: err = %v; want permission denied (42501)", q, err)
		}
	}
	rep, err := a.Audit.VerifyAllTenants(ctx)
	if err != nil || !rep.OK || rep.Events != 2 {
		t.Errorf("verify after the attempts: %+v %v; want both events intact", rep, err)
	}

	// The owner's credential does not serve, with or without a migration connection.
	_, err = app.Open(ctx, app.Config{DataDir: dataDir, Database: owner, Notices: io.Discard})
	if !errors.Is(err, storage.ErrRoleTooPowerful) || !strings.Contains(err.Error(), "bulkhead migrate") {
		t.Errorf("Open serving as the owner role: err = %v; want ErrRoleTooPowerful naming bulkhead migrate", err)
	}
	_, err = app.Open(ctx, app.Config{DataDir: dataDir, Database: owner, MigrationDatabase: owner, Notices: io.Discard})
	if !errors.Is(err, storage.ErrRoleTooPowerful) {
		t.Errorf("Open migrating and serving as the owner role: err = %v; want ErrRoleTooPowerful", err)
	}
	// The serving role serves a migrated database without the owner's credential.
	b, err := app.Open(ctx, app.Config{DataDir: dataDir, Database: serving, Notices: io.Discard})
	if err != nil {
		t.Fatalf("Open serving a migrated database: %v", err)
	}
	b.Close()
}

// TestOpenRefusesAnUnmigratedDatabase: without a migration connection, a
// node does not serve from a PostgreSQL database nobody has migrated.
func TestOpenRefusesAnUnmigratedDatabase(t *testing.T) {
	serving, _ := storagetest.PostgresDSNs(t)
	_, err := app.Open(context.Background(), app.Config{DataDir: t.TempDir(), Database: serving, Notices: io.Discard})
	if !errors.Is(err, storage.ErrNotMigrated) || !strings.Contains(err.Error(), "bulkhead migrate") {
		t.Fatalf("Open on an unmigrated database: err = %v; want ErrNotMigrated naming bulkhead migrate", err)
	}
}
