package connect

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
)

type connRow struct {
	Connection
	fingerprint   string
	webhookSecret string // KMS ciphertext, base64
}

const connColumns = `id, name, upstream_url, placement_type, placement_name, allowed_methods, allowed_paths, sensitivity,
	webhook_url, webhook_secret, token_fingerprint, token_version, created_at, updated_at`

func scanConn(tid string, row interface{ Scan(...any) error }) (connRow, error) {
	var c connRow
	var ms, ps string
	var created, updated int64
	err := row.Scan(&c.ID, &c.Name, &c.UpstreamURL, &c.Placement.Type, &c.Placement.Name, &ms, &ps, &c.Alerts.Sensitivity,
		&c.Alerts.WebhookURL, &c.webhookSecret, &c.fingerprint, &c.TokenVersion, &created, &updated)
	if err != nil {
		return c, err
	}
	c.TenantID = tenant.ID(tid)
	if err := json.Unmarshal([]byte(ms), &c.AllowedMethods); err != nil {
		return c, fmt.Errorf("connect: stored methods: %w", err)
	}
	if err := json.Unmarshal([]byte(ps), &c.AllowedPaths); err != nil {
		return c, fmt.Errorf("connect: stored paths: %w", err)
	}
	c.CreatedAt, c.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return c, nil
}

// readConn reads connection id of tx's tenant, locking it on PostgreSQL
// when lock is set.
func readConn(ctx context.Context, tx *storage.Tx, id string, lock bool) (connRow, error) {
	if !ids.Valid(id, connectionPrefix) {
		return connRow{}, notFound(id)
	}
	q := `SELECT ` + connColumns + ` FROM connect_connections WHERE tenant_id = ? AND id = ?`
	if lock && tx.Dialect() == storage.Postgres {
		q += ` FOR UPDATE`
	}
	c, err := scanConn(tx.TenantID(), tx.QueryRow(ctx, q, tx.TenantID(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return connRow{}, notFound(id)
	}
	if err != nil {
		return connRow{}, fmt.Errorf("connect: read connection: %w", err)
	}
	return c, nil
}

type grantRow struct {
	Grant
	partAHash string
	partB     string // KMS ciphertext, base64
	lastUsed  int64  // µs; 0: not used since it was made or since use was recorded (see noteUse)
}

const grantColumns = `id, connection_id, name, status, auto_suspend, suspended_reason, created_at, updated_at, rotated_at, part_a_hash, part_b,
	last_used_at`

func scanGrant(row interface{ Scan(...any) error }) (grantRow, error) {
	var g grantRow
	var auto int
	var created, updated, rotated int64
	if err := row.Scan(&g.ID, &g.ConnectionID, &g.Name, &g.Status, &auto, &g.SuspendedReason, &created, &updated, &rotated,
		&g.partAHash, &g.partB, &g.lastUsed); err != nil {
		return g, err
	}
	g.AutoSuspend = auto != 0
	g.CreatedAt, g.UpdatedAt = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	if rotated != 0 {
		t := time.UnixMicro(rotated).UTC()
		g.RotatedAt = &t
	}
	return g, nil
}

func readGrant(ctx context.Context, tx *storage.Tx, connID, id string) (grantRow, error) {
	if !ids.Valid(id, grantPrefix) {
		return grantRow{}, grantNotFound(id)
	}
	g, err := scanGrant(tx.QueryRow(ctx, `SELECT `+grantColumns+` FROM connect_grants WHERE tenant_id = ? AND connection_id = ? AND id = ?`,
		tx.TenantID(), connID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return grantRow{}, grantNotFound(id)
	}
	if err != nil {
		return grantRow{}, fmt.Errorf("connect: read grant: %w", err)
	}
	return g, nil
}

func listGrants(ctx context.Context, tx *storage.Tx, connID string) ([]grantRow, error) {
	rows, err := tx.Query(ctx, `SELECT `+grantColumns+` FROM connect_grants WHERE tenant_id = ? AND connection_id = ? ORDER BY id`,
		tx.TenantID(), connID)
	if err != nil {
		return nil, fmt.Errorf("connect: list grants: %w", err)
	}
	defer rows.Close()
	var out []grantRow
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, fmt.Errorf("connect: list grants: %w", err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func insertGrant(ctx context.Context, tx *storage.Tx, g Grant, hash, sealedB string) error {
	_, err := tx.Exec(ctx, `INSERT INTO connect_grants (tenant_id, id, connection_id, name, status, auto_suspend, part_a_hash, part_b,
		suspended_reason, created_at, updated_at, rotated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, 0)`,
		tx.TenantID(), g.ID, g.ConnectionID, g.Name, g.Status, boolInt(g.AutoSuspend), hash, sealedB,
		g.CreatedAt.UnixMicro(), g.UpdatedAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("connect: insert grant: %w", err)
	}
	return nil
}

// insertConn writes c as a new row.
func insertConn(ctx context.Context, tx *storage.Tx, c connRow) error {
	msJSON, _ := json.Marshal(c.AllowedMethods)
	psJSON, _ := json.Marshal(c.AllowedPaths)
	if _, err := tx.Exec(ctx, `INSERT INTO connect_connections (tenant_id, `+connColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tx.TenantID(), c.ID, c.Name, c.UpstreamURL, c.Placement.Type, c.Placement.Name, string(msJSON), string(psJSON),
		c.Alerts.Sensitivity, c.Alerts.WebhookURL, c.webhookSecret, c.fingerprint, c.TokenVersion,
		c.CreatedAt.UnixMicro(), c.UpdatedAt.UnixMicro()); err != nil {
		if storage.IsUniqueViolation(err) {
			return connectionExists(c.Name)
		}
		return fmt.Errorf("connect: insert connection: %w", err)
	}
	return nil
}

// updateConn writes c over its row.
func updateConn(ctx context.Context, tx *storage.Tx, c connRow) error {
	msJSON, _ := json.Marshal(c.AllowedMethods)
	psJSON, _ := json.Marshal(c.AllowedPaths)
	if _, err := tx.Exec(ctx, `UPDATE connect_connections SET name = ?, upstream_url = ?, placement_type = ?, placement_name = ?,
		allowed_methods = ?, allowed_paths = ?, sensitivity = ?, webhook_url = ?, webhook_secret = ?, token_fingerprint = ?,
		token_version = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
		c.Name, c.UpstreamURL, c.Placement.Type, c.Placement.Name, string(msJSON), string(psJSON), c.Alerts.Sensitivity,
		c.Alerts.WebhookURL, c.webhookSecret, c.fingerprint, c.TokenVersion, c.UpdatedAt.UnixMicro(), tx.TenantID(), c.ID); err != nil {
		if storage.IsUniqueViolation(err) {
			return connectionExists(c.Name)
		}
		return fmt.Errorf("connect: update connection: %w", err)
	}
	return nil
}
