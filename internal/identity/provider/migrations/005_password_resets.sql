CREATE TABLE oidc_password_resets (
	id            TEXT PRIMARY KEY,
	issuer_tenant TEXT NOT NULL,
	tenant_id     TEXT NOT NULL,
	user_id       TEXT NOT NULL,
	created_at    BIGINT NOT NULL,
	expires_at    BIGINT NOT NULL,
	used_at       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX oidc_password_resets_user ON oidc_password_resets(tenant_id, user_id);
