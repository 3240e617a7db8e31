CREATE TABLE oidc_auth_requests (
	id            TEXT PRIMARY KEY,
	issuer_tenant TEXT NOT NULL,
	client_id     TEXT NOT NULL,
	tenant_id     TEXT NOT NULL DEFAULT '',
	user_id       TEXT NOT NULL DEFAULT '',
	request       TEXT NOT NULL,
	csrf          TEXT NOT NULL,
	upstream_state TEXT NOT NULL DEFAULT '',
	code_hash     TEXT NOT NULL DEFAULT '',
	auth_time     BIGINT NOT NULL DEFAULT 0,
	created_at    BIGINT NOT NULL,
	expires_at    BIGINT NOT NULL
);
CREATE INDEX oidc_auth_requests_code ON oidc_auth_requests(code_hash);
CREATE TABLE oidc_refresh_tokens (
	id              TEXT PRIMARY KEY,
	family_id       TEXT NOT NULL,
	issuer_tenant   TEXT NOT NULL,
	tenant_id       TEXT NOT NULL,
	client_id       TEXT NOT NULL,
	user_id         TEXT NOT NULL,
	scopes          TEXT NOT NULL,
	audience        TEXT NOT NULL,
	amr             TEXT NOT NULL,
	auth_time       BIGINT NOT NULL,
	access_token_id TEXT NOT NULL,
	status          TEXT NOT NULL,
	created_at      BIGINT NOT NULL,
	expires_at      BIGINT NOT NULL
);
CREATE INDEX oidc_refresh_tokens_family ON oidc_refresh_tokens(family_id);
CREATE INDEX oidc_refresh_tokens_user ON oidc_refresh_tokens(tenant_id, user_id);
CREATE TABLE oidc_revoked_tokens (
	token_id   TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL,
	expires_at BIGINT NOT NULL
);
