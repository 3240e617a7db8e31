package provider

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/bulkhead-dev/bulkhead/internal/audit"
	"github.com/bulkhead-dev/bulkhead/internal/errs"
	"github.com/bulkhead-dev/bulkhead/internal/ids"
	"github.com/bulkhead-dev/bulkhead/internal/signing"
	"github.com/bulkhead-dev/bulkhead/internal/storage"
	"github.com/bulkhead-dev/bulkhead/internal/tenant"
	"github.com/bulkhead-dev/bulkhead/sdk/api"
)

// Browser sessions (single sign-on). A sign-in on the login page starts a
// session of that browser at that issuer: a cookie holding a random
// secret, whose SHA-256 keys the session's row. Until the session's idle
// or absolute timeout, the tenant's other applications sign the browser
// in without the login page — unless the client asks otherwise:
// prompt=login, a max_age the session's sign-in is older than, or
// acr_values wanting a second factor the session did not give. With
// prompt=none a browser without a usable session gets login_required at
// the client. Operators never get a session: they always sign in.
//
// end_session ends the browser's session and tells every application it
// signed in to that has a back-channel logout URI (backchannel.go); the
// session's refresh tokens are revoked.

// Session timeouts: a browser idle for SessionIdle, or signed in
// SessionAbsolute ago, signs in again.
const (
	SessionIdle     = 2 * time.Hour
	SessionAbsolute = 12 * time.Hour
)

// ssoCookie is the session cookie's name at an issuer.
func ssoCookie(issuer signing.Issuer) string {
	if issuer.Tenant == "" {
		return "bulkhead_sso"
	}
	return "bulkhead_sso_" + string(issuer.Tenant)
}

// browserSession is a live session's row.
type browserSession struct {
	id, sid  string
	tid      tenant.ID
	userID   string
	amr      []string
	authTime time.Time
}

// startSession starts the browser's session at issuer for a sign-in just
// done (auth request id, of user userID of tenant tid, authenticated by
// amr at now), replacing the browser's previous session there, and
// records it on the auth request.
func (p *Provider) startSession(w http.ResponseWriter, r *http.Request, issuer signing.Issuer, a *authRequest, tid tenant.ID, userID string,
	amr []string, now time.Time) {
	id := a.ID
	ctx := r.Context()
	if old, err := p.session(ctx, r, issuer); err == nil {
		p.endSession(ctx, issuer, old, "replaced")
	}
	secret := ids.Secret("bss")
	sid := ids.New("sid")
	err := p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO oidc_browser_sessions (id, sid, issuer_tenant, tenant_id, user_id, amr, auth_time, created_at, last_seen, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, hashToken(secret), sid, string(issuer.Tenant), string(tid), userID, strings.Join(amr, " "),
			now.UnixMicro(), now.UnixMicro(), now.UnixMicro(), now.Add(SessionAbsolute).UnixMicro()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE oidc_auth_requests SET sid = ?, amr = ? WHERE id = ? AND issuer_tenant = ?`,
			sid, strings.Join(amr, " "), id, string(issuer.Tenant)); err != nil {
			return err
		}
		return noteSessionClient(ctx, tx, sid, tid, a.ClientID)
	})
	if err != nil {
		// The sign-in stands; only single sign-on is lost.
		p.cfg.Logger.ErrorContext(ctx, "start a browser session", "err", err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie(issuer), Value: secret, Path: p.cookiePath(), HttpOnly: true,
		Secure: p.base.Scheme == "https", SameSite: http.SameSiteLaxMode, MaxAge: int(SessionAbsolute / time.Second)})
}

var errNoBrowserSession = errors.New("provider: no browser session")

// session returns the browser's live session at issuer.
func (p *Provider) session(ctx context.Context, r *http.Request, issuer signing.Issuer) (browserSession, error) {
	c, err := r.Cookie(ssoCookie(issuer))
	if err != nil || !ids.HasPrefix(c.Value, "bss") || len(c.Value) > 64 {
		return browserSession{}, errNoBrowserSession
	}
	s := browserSession{id: hashToken(c.Value)}
	var issuerTenant, tid, amr string
	var authTime, seen, expires int64
	err = p.cfg.DB.View(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT sid, issuer_tenant, tenant_id, user_id, amr, auth_time, last_seen, expires_at
			FROM oidc_browser_sessions WHERE id = ?`, s.id).Scan(&s.sid, &issuerTenant, &tid, &s.userID, &amr, &authTime, &seen, &expires)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return browserSession{}, errNoBrowserSession
	}
	if err != nil {
		return browserSession{}, fmt.Errorf("provider: read browser session: %w", err)
	}
	now := p.clock().Now()
	if issuerTenant != string(issuer.Tenant) || now.UnixMicro() >= expires || now.Sub(time.UnixMicro(seen)) >= SessionIdle {
		return browserSession{}, errNoBrowserSession
	}
	s.tid, s.amr, s.authTime = tenant.ID(tid), strings.Fields(amr), time.UnixMicro(authTime).UTC()
	return s, nil
}

// usable reports whether the session may sign a in without the login
// page, by what a asked for (prompt, max_age, acr_values) and whom it may
// sign in (its client's tenant).
func (p *Provider) usable(s browserSession, a *authRequest) bool {
	if slices.Contains(a.Prompt, oidc.PromptLogin) || slices.Contains(a.Prompt, oidc.PromptSelectAccount) {
		return false
	}
	if a.MaxAge != nil && p.clock().Now().Sub(s.authTime) > time.Duration(*a.MaxAge)*time.Second {
		return false
	}
	if slices.Contains(a.ACRValues, ACRMFA) && acrOf(s.amr) != ACRMFA {
		return false
	}
	return a.tenantID == "" || a.tenantID == s.tid
}

// trySSO finishes a's sign-in from the browser's session if it may, and
// answers prompt=none when it may not. It reports whether it answered.
func (p *Provider) trySSO(w http.ResponseWriter, r *http.Request, issuer signing.Issuer, o *op.Provider, a *authRequest) bool {
	ctx := r.Context()
	none := slices.Contains(a.Prompt, oidc.PromptNone)
	s, err := p.session(ctx, r, issuer)
	if err != nil || operatorRequest(issuer, a) || !p.usable(s, a) || p.sessionUserGone(ctx, issuer, s) {
		if none {
			op.AuthRequestError(w, r, a, oidc.ErrLoginRequired().WithDescription("the user must sign in"), o)
			return true
		}
		return false
	}
	now := p.clock().Now()
	var done bool
	err = p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE oidc_auth_requests SET user_id = ?, tenant_id = ?, auth_time = ?, sid = ?, amr = ?
			WHERE id = ? AND issuer_tenant = ? AND user_id = ''`, s.userID, string(s.tid), s.authTime.UnixMicro(), s.sid, strings.Join(s.amr, " "),
			a.ID, string(issuer.Tenant))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil // the request was used already
		}
		done = true
		if _, err = tx.Exec(ctx, `UPDATE oidc_browser_sessions SET last_seen = ? WHERE id = ?`, now.UnixMicro(), s.id); err != nil {
			return err
		}
		return noteSessionClient(ctx, tx, s.sid, s.tid, a.ClientID)
	})
	if err != nil || !done {
		return false // the login page, as without a session
	}
	p.auditEvent(ctx, s.tid, "login.success", s.userID, audit.Success, map[string]string{"client_id": a.ClientID,
		"source_ip": p.cfg.ClientIP.IP(r), "via": "browser_session", "sid": s.sid})
	p.redirectToCallback(w, r, issuer, o, a.ID)
	return true
}

// sessionUserGone reports whether the session's user can no longer sign
// in (disabled, deleted, or their tenant not active).
func (p *Provider) sessionUserGone(ctx context.Context, issuer signing.Issuer, s browserSession) bool {
	st := &issuerStorage{p: p, issuer: issuer}
	u, err := st.activeUser(ctx, s.tid, s.userID)
	return err != nil || u.PasswordChangedAt.After(s.authTime)
}

// noteSessionClient records, in the sign-in's transaction, that session
// sid signed in to clientID.
func noteSessionClient(ctx context.Context, tx *storage.Tx, sid string, tid tenant.ID, clientID string) error {
	_, err := tx.Exec(ctx, `INSERT INTO oidc_session_clients (sid, tenant_id, client_id) VALUES (?, ?, ?) ON CONFLICT (sid, client_id) DO NOTHING`,
		sid, string(tid), clientID)
	return err
}

// endSession ends session s: its row, its refresh tokens, and a logout
// token to each of its applications that asked for one. why is audited.
func (p *Provider) endSession(ctx context.Context, issuer signing.Issuer, s browserSession, why string) {
	var clients []string
	err := p.cfg.DB.Update(ctx, storage.PlatformScope(), func(tx *storage.Tx) error {
		bySID, err := sessionClients(ctx, tx, `tenant_id = ? AND sid = ?`, string(s.tid), s.sid)
		clients = bySID[s.sid]
		if err != nil {
			return err
		}
		for _, q := range []string{`DELETE FROM oidc_browser_sessions WHERE sid = ?`, `DELETE FROM oidc_session_clients WHERE sid = ?`,
			`UPDATE oidc_refresh_tokens SET status = 'revoked' WHERE sid = ? AND status = 'active'`} {
			if _, err := tx.Exec(ctx, q, s.sid); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		p.cfg.Logger.ErrorContext(ctx, "end a browser session", "err", err)
		return
	}
	p.auditEvent(ctx, s.tid, "login.session_ended", s.userID, audit.Success, map[string]string{"sid": s.sid, "reason": why})
	p.backChannelLogout(ctx, issuer, s, clients)
}

// ending is the browser session an end_session request may end, with
// the answer's writer (for the cookie).
type ending struct {
	s browserSession
	w http.ResponseWriter
}

type endingKey struct{}

// withEnding puts the browser's session at issuer in r's context, for
// TerminateSessionFromRequest: zitadel calls it once the request checks
// out.
func (p *Provider) withEnding(w http.ResponseWriter, r *http.Request, issuer signing.Issuer) *http.Request {
	s, err := p.session(r.Context(), r, issuer)
	if err != nil {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), endingKey{}, &ending{s: s, w: w}))
}

// TerminateSessionFromRequest is zitadel's end_session hook, after it
// checked the request: the client's refresh tokens for the user are
// revoked (TerminateSession) and, when the id_token_hint is of the
// browser's session (its subject, and its sid if it has one), that
// session ends and its applications are told. Without a hint the
// browser's session stays: a third-party page could otherwise sign
// anyone out with a link.
func (s *issuerStorage) TerminateSessionFromRequest(ctx context.Context, req *op.EndSessionRequest) (string, error) {
	if err := s.TerminateSession(ctx, req.UserID, req.ClientID); err != nil {
		return "", err
	}
	e, ok := ctx.Value(endingKey{}).(*ending)
	if h := req.IDTokenHintClaims; ok && h != nil && h.Subject == e.s.userID && (h.SessionID == "" || h.SessionID == e.s.sid) {
		s.p.endSession(ctx, s.issuer, e.s, "end_session")
		http.SetCookie(e.w, &http.Cookie{Name: ssoCookie(s.issuer), Value: "", Path: s.p.cookiePath(), HttpOnly: true,
			Secure: s.p.base.Scheme == "https", SameSite: http.SameSiteLaxMode, MaxAge: -1})
	}
	return req.RedirectURI, nil
}

// sessionClients reads the applications browser sessions signed in to,
// by session id, for the rows of oidc_session_clients matching where.
func sessionClients(ctx context.Context, tx *storage.Tx, where string, args ...any) (map[string][]string, error) {
	rows, err := tx.Query(ctx, `SELECT sid, client_id FROM oidc_session_clients WHERE `+where+` ORDER BY sid, client_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("provider: read sessions' clients: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var sid, c string
		if err := rows.Scan(&sid, &c); err != nil {
			return nil, fmt.Errorf("provider: read sessions' clients: %w", err)
		}
		out[sid] = append(out[sid], c)
	}
	return out, rows.Err()
}

// Session is a browser session as the API shows it.
type Session = api.Session

// UserSessions lists the live browser sessions of user userID of tenant
// tid, newest first.
func (p *Provider) UserSessions(ctx context.Context, tid tenant.ID, userID string) ([]Session, error) {
	now := p.clock().Now()
	out := []Session{}
	err := p.cfg.DB.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		rows, err := tx.Query(ctx, `SELECT sid, amr, auth_time, last_seen, expires_at FROM oidc_browser_sessions
			WHERE tenant_id = ? AND user_id = ? AND expires_at > ? AND last_seen > ? ORDER BY created_at DESC LIMIT 100`,
			tx.TenantID(), userID, now.UnixMicro(), now.Add(-SessionIdle).UnixMicro())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s Session
			var amr string
			var authTime, seen, expires int64
			if err := rows.Scan(&s.ID, &amr, &authTime, &seen, &expires); err != nil {
				return err
			}
			s.TenantID, s.UserID, s.AMR = string(tid), userID, strings.Fields(amr)
			s.ACR = acrOf(s.AMR)
			s.AuthTime, s.LastSeen, s.ExpiresAt = time.UnixMicro(authTime).UTC(), time.UnixMicro(seen).UTC(), time.UnixMicro(expires).UTC()
			out = append(out, s)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		// Every listed session's applications in one query.
		bySID, err := sessionClients(ctx, tx, `tenant_id = ? AND sid IN (SELECT sid FROM oidc_browser_sessions WHERE tenant_id = ? AND user_id = ?)`,
			tx.TenantID(), tx.TenantID(), userID)
		for i := range out {
			out[i].Clients = append([]string{}, bySID[out[i].ID]...)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("provider: list sessions: %w", err)
	}
	return out, nil
}

// EndUserSession ends browser session sid of user userID of tenant tid
// (404 session_not_found for any other's): its refresh tokens are revoked
// and its applications told, as at end_session. by is audited.
func (p *Provider) EndUserSession(ctx context.Context, tid tenant.ID, userID, sid, by string) error {
	s := browserSession{sid: sid, tid: tid, userID: userID}
	var issuerTenant string
	err := p.cfg.DB.View(ctx, storage.TenantScope(tid), func(tx *storage.Tx) error {
		return tx.QueryRow(ctx, `SELECT id, issuer_tenant FROM oidc_browser_sessions WHERE tenant_id = ? AND user_id = ? AND sid = ?`,
			tx.TenantID(), userID, sid).Scan(&s.id, &issuerTenant)
	})
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !ids.Valid(sid, "sid")) {
		return errs.E(errs.NotFound, "session_not_found", "no such session")
	}
	if err != nil {
		return fmt.Errorf("provider: read session: %w", err)
	}
	p.endSession(ctx, signing.Issuer{Tenant: tenant.ID(issuerTenant)}, s, "ended by "+by)
	return nil
}
