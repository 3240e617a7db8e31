package console

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/internal/tenants"
)

// A console session is a row keyed by the SHA-256 of a random secret that
// only the browser holds (its cookie). The row keeps the person's access
// and refresh tokens sealed by the root key, bound to the row, so a copy
// of the database alone signs nobody in.

// The kinds of session.
const (
	kindOperator = "operator" // a person of the platform's operator directory
	kindTenant   = "tenant"   // an admin of one tenant
	kindMember   = "member"   // a user of one tenant who is not an admin: their own account only
)

type session struct {
	id            string // hash of the cookie's secret
	TenantID      tenant.ID
	Issuer        string // the silo tenant whose issuer signed the person in ("": the platform's)
	Kind          string
	Subject       string // opr_… or usr_…
	Email         string
	access        string
	refresh       string
	idToken       string // the sign-in's ID token: end_session's id_token_hint at sign-out
	accessExpires time.Time
	CSRF          string
	AuthTime      time.Time // when the person last entered their credentials
	CreatedAt     time.Time
	LastSeen      time.Time
	ExpiresAt     time.Time // the absolute timeout
}

// Operator reports whether the session is an operator's.
func (s *session) Operator() bool { return s.Kind == kindOperator }

// Member reports whether the session is a tenant user's who is not an
// admin: they reach their own account's pages and nothing else.
func (s *session) Member() bool { return s.Kind == kindMember }

func sessionID(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// sealBinding binds a sealed token to its session row and field.
func sealBinding(id, field string) []byte {
	return []byte("bulkhead-console\x00session=" + id + "\x00field=" + field)
}

func (c *Console) seal(id, field, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	b, err := c.cfg.Sealer.Wrap([]byte(v), sealBinding(id, field))
	if err != nil {
		return "", fmt.Errorf("console: seal %s: %w", field, err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

func (c *Console) unseal(id, field, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return "", fmt.Errorf("console: sealed %s unreadable: %w", field, err)
	}
	p, err := c.cfg.Sealer.Unwrap(b, sealBinding(id, field))
	if err != nil {
		return "", fmt.Errorf("console: unseal %s: %w", field, err)
	}
	return string(p), nil
}

// createSession stores s and returns the secret for the browser's cookie.
func (c *Console) createSession(ctx context.Context, s *session) (string, error) {
	secret := ids.Secret("bcs")
	s.id = sessionID(secret)
	s.CSRF = ids.Secret("csrf")
	now := c.now()
	s.CreatedAt, s.LastSeen, s.ExpiresAt = now, now, now.Add(c.cfg.AbsoluteTimeout)
	access, err := c.seal(s.id, "access", s.access)
	if err != nil {
		return "", err
	}
	refresh, err := c.seal(s.id, "refresh", s.refresh)
	if err != nil {
		return "", err
	}
	idToken, err := c.seal(s.id, "id", s.idToken)
	if err != nil {
		return "", err
	}
	err = c.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO console_sessions (id, tenant_id, issuer_tenant, kind, subject, email, access_sealed, refresh_sealed,
			id_sealed, access_expires, csrf, auth_time, created_at, last_seen, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.id, string(s.TenantID), s.Issuer, s.Kind, s.Subject, s.Email, access, refresh, idToken, s.accessExpires.UnixMicro(), s.CSRF,
			s.AuthTime.UnixMicro(), now.UnixMicro(), now.UnixMicro(), s.ExpiresAt.UnixMicro())
		return err
	})
	if err != nil {
		return "", fmt.Errorf("console: store session: %w", err)
	}
	return secret, nil
}

var errNoSession = errors.New("console: no session")

// loadSession reads the session of the browser's cookie, if it is still
// within its idle and absolute timeouts; an expired one is deleted.
func (c *Console) loadSession(ctx context.Context, r *http.Request) (*session, error) {
	ck, err := r.Cookie(c.cookieName)
	if err != nil || len(ck.Value) > 128 || !ids.HasPrefix(ck.Value, "bcs") {
		return nil, errNoSession
	}
	s := &session{id: sessionID(ck.Value)}
	var tid, access, refresh, idToken string
	var accessExp, authTime, created, seen, expires int64
	err = c.cfg.DB.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT tenant_id, issuer_tenant, kind, subject, email, access_sealed, refresh_sealed, id_sealed, access_expires, csrf,
			auth_time, created_at, last_seen, expires_at FROM console_sessions WHERE id = ?`, s.id).
			Scan(&tid, &s.Issuer, &s.Kind, &s.Subject, &s.Email, &access, &refresh, &idToken, &accessExp, &s.CSRF, &authTime, &created, &seen, &expires)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("console: load session: %w", err)
	}
	s.TenantID = tenant.ID(tid)
	s.accessExpires, s.AuthTime = time.UnixMicro(accessExp), time.UnixMicro(authTime)
	s.CreatedAt, s.LastSeen, s.ExpiresAt = time.UnixMicro(created), time.UnixMicro(seen), time.UnixMicro(expires)
	now := c.now()
	if !now.Before(s.ExpiresAt) || now.Sub(s.LastSeen) >= c.cfg.IdleTimeout {
		c.deleteSession(ctx, s.id)
		return nil, errNoSession
	}
	if s.access, err = c.unseal(s.id, "access", access); err != nil {
		return nil, err
	}
	if s.refresh, err = c.unseal(s.id, "refresh", refresh); err != nil {
		return nil, err
	}
	if s.idToken, err = c.unseal(s.id, "id", idToken); err != nil {
		return nil, err
	}
	if now.Sub(s.LastSeen) >= time.Minute {
		// The idle timeout counts from the last request; written at most
		// once a minute, so browsing is not a write per page.
		s.LastSeen = now
		_ = c.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE console_sessions SET last_seen = ? WHERE id = ?`, now.UnixMicro(), s.id)
			return err
		})
	}
	return s, nil
}

// saveTokens stores a session's tokens after a refresh or a fresh sign-in
// (reauthenticated: authTime is then the new sign-in's).
func (c *Console) saveTokens(ctx context.Context, s *session) error {
	access, err := c.seal(s.id, "access", s.access)
	if err != nil {
		return err
	}
	refresh, err := c.seal(s.id, "refresh", s.refresh)
	if err != nil {
		return err
	}
	idToken, err := c.seal(s.id, "id", s.idToken)
	if err != nil {
		return err
	}
	return c.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE console_sessions SET access_sealed = ?, refresh_sealed = ?, id_sealed = ?, access_expires = ?, auth_time = ?
			WHERE id = ?`, access, refresh, idToken, s.accessExpires.UnixMicro(), s.AuthTime.UnixMicro(), s.id)
		return err
	})
}

func (c *Console) deleteSession(ctx context.Context, id string) {
	_ = c.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE id = ?`, id)
		return err
	})
}

// Purge deletes sessions past their absolute timeout or idle for longer
// than the idle timeout.
func (c *Console) Purge(ctx context.Context) (int64, error) {
	now := c.now()
	var n int64
	err := c.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= ? OR last_seen <= ?`,
			now.UnixMicro(), now.Add(-c.cfg.IdleTimeout).UnixMicro())
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

// Run purges expired sessions every interval until ctx ends.
func (c *Console) Run(ctx context.Context) error {
	t, tick := c.cfg.Clock.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			if _, err := c.Purge(ctx); err != nil && ctx.Err() == nil {
				c.cfg.Logger.WarnContext(ctx, "purge console sessions", "err", err)
			}
		}
	}
}

// OffboardingStep ends the console sessions of a tenant's admins when the
// tenant leaves (their tokens stop with it anyway; the rows go too).
func (c *Console) OffboardingStep() tenants.Step {
	return tenants.Step{Name: "console-sessions", Run: func(ctx context.Context, tx *storage.Tx, _ tenants.Tenant) error {
		if _, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE tenant_id = ?`, tx.TenantID()); err != nil {
			return fmt.Errorf("console: offboarding: %w", err)
		}
		return nil
	}}
}
