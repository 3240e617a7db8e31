package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Config is a tenant's identity configuration. Zero lifetimes mean the
// provider's defaults.
type Config = api.IdentityConfig

// Duration is a time.Duration written as a Go duration string ("15m").
type Duration = api.Duration

// ConfigPatch changes some of a tenant's identity configuration.
type ConfigPatch = api.IdentityConfigPatch

// Bounds of the configuration.
const (
	MinAccessTokenLifetime  = time.Minute
	MaxAccessTokenLifetime  = 24 * time.Hour
	MinRefreshTokenLifetime = time.Hour
	MaxRefreshTokenLifetime = 90 * 24 * time.Hour
)

func readConfig(ctx context.Context, tx *storage.Tx) (Config, error) {
	c := Config{PasswordMinLength: DefaultPasswordPolicy.MinLength}
	var access, refresh int64
	err := tx.QueryRow(ctx, `SELECT password_min_length, access_token_ttl, refresh_token_ttl FROM identity_configs WHERE tenant_id = ?`,
		tx.TenantID()).Scan(&c.PasswordMinLength, &access, &refresh)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("identity: read config: %w", err)
	}
	c.AccessTokenLifetime, c.RefreshTokenLifetime = Duration(time.Duration(access)*time.Second), Duration(time.Duration(refresh)*time.Second)
	return c, nil
}

// Config returns tenant tid's identity configuration.
func (d *Directory) Config(ctx context.Context, tid tenant.ID) (Config, error) {
	var c Config
	err := d.db.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		var err error
		c, err = readConfig(ctx, tx)
		return err
	})
	return c, err
}

// UpdateConfig changes tenant tid's identity configuration.
func (d *Directory) UpdateConfig(ctx context.Context, tid tenant.ID, p ConfigPatch, actor tenant.Actor) (Config, error) {
	var c Config
	err := d.db.Update(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		if err := tenants.RequireActiveTx(ctx, tx); err != nil {
			return err
		}
		var err error
		if c, err = readConfig(ctx, tx); err != nil {
			return err
		}
		if p.PasswordMinLength != nil {
			if *p.PasswordMinLength < 8 || *p.PasswordMinLength > 128 {
				return errs.Field("password_min_length", "invalid_config", "password_min_length must be between 8 and 128")
			}
			c.PasswordMinLength = *p.PasswordMinLength
		}
		if v := p.AccessTokenLifetime; v != nil {
			if time.Duration(*v) < MinAccessTokenLifetime || time.Duration(*v) > MaxAccessTokenLifetime {
				return errs.Field("access_token_lifetime", "invalid_config", "access_token_lifetime must be between 1m and 24h")
			}
			c.AccessTokenLifetime = *v
		}
		if v := p.RefreshTokenLifetime; v != nil {
			if time.Duration(*v) < MinRefreshTokenLifetime || time.Duration(*v) > MaxRefreshTokenLifetime {
				return errs.Field("refresh_token_lifetime", "invalid_config", "refresh_token_lifetime must be between 1h and 2160h")
			}
			c.RefreshTokenLifetime = *v
		}
		now := d.clock.Now().UnixMicro()
		if _, err := tx.Exec(ctx, `INSERT INTO identity_configs (tenant_id, password_min_length, access_token_ttl, refresh_token_ttl, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id) DO UPDATE SET password_min_length = excluded.password_min_length,
			access_token_ttl = excluded.access_token_ttl, refresh_token_ttl = excluded.refresh_token_ttl, updated_at = excluded.updated_at`,
			tx.TenantID(), c.PasswordMinLength, int64(time.Duration(c.AccessTokenLifetime)/time.Second),
			int64(time.Duration(c.RefreshTokenLifetime)/time.Second), now, now); err != nil {
			return fmt.Errorf("identity: update config: %w", err)
		}
		return d.audit.AppendTx(ctx, tx, d.event(tx, actor, "identity.config_updated", tx.TenantID()))
	})
	return c, err
}
