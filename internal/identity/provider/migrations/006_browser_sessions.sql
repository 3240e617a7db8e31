-- Browser sessions (single sign-on): a browser signed in to an issuer is
-- not asked again by the tenant's other applications until the session's
-- idle or absolute timeout. Keyed by the SHA-256 of the cookie's secret;
-- sid is the public id the ID tokens and logout tokens carry.
CREATE TABLE oidc_browser_sessions (
	id            TEXT PRIMARY KEY,
	sid           TEXT NOT NULL UNIQUE,
	issuer_tenant TEXT NOT NULL,
	tenant_id     TEXT NOT NULL,
	user_id       TEXT NOT NULL,
	amr           TEXT NOT NULL,
	auth_time     BIGINT NOT NULL,
	created_at    BIGINT NOT NULL,
	last_seen     BIGINT NOT NULL,
	expires_at    BIGINT NOT NULL
);
CREATE INDEX oidc_browser_sessions_user ON oidc_browser_sessions(tenant_id, user_id);
-- The applications a session signed in to: told at its end (back-channel logout).
CREATE TABLE oidc_session_clients (
	sid       TEXT NOT NULL,
	tenant_id TEXT NOT NULL,
	client_id TEXT NOT NULL,
	PRIMARY KEY (sid, client_id)
);
ALTER TABLE oidc_auth_requests ADD COLUMN sid TEXT NOT NULL DEFAULT '';
ALTER TABLE oidc_auth_requests ADD COLUMN amr TEXT NOT NULL DEFAULT '';
ALTER TABLE oidc_refresh_tokens ADD COLUMN sid TEXT NOT NULL DEFAULT '';
