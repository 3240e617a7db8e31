CREATE TABLE user_totp (
	user_id          TEXT PRIMARY KEY,
	tenant_id        TEXT NOT NULL,
	secret_wrapped   BYTEA NOT NULL,
	confirmed        BOOLEAN NOT NULL,
	recovery_hashes  TEXT NOT NULL,
	last_step        BIGINT NOT NULL DEFAULT 0,
	created_at       BIGINT NOT NULL
);
CREATE INDEX user_totp_tenant ON user_totp(tenant_id);

CREATE TABLE tenant_idps (
	tenant_id      TEXT PRIMARY KEY,
	issuer         TEXT NOT NULL,
	client_id      TEXT NOT NULL,
	secret_wrapped BYTEA NOT NULL,
	created_at     BIGINT NOT NULL
);
