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

ALTER TABLE user_totp ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_totp FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON user_totp USING (tenant_id = current_setting('bulkhead.tenant_id', true));
CREATE POLICY platform_scope ON user_totp USING (current_setting('bulkhead.platform', true) = 'on');

CREATE TABLE tenant_idps (
	tenant_id      TEXT PRIMARY KEY,
	issuer         TEXT NOT NULL,
	client_id      TEXT NOT NULL,
	secret_wrapped BYTEA NOT NULL,
	created_at     BIGINT NOT NULL
);
ALTER TABLE tenant_idps ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_idps FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON tenant_idps USING (tenant_id = current_setting('bulkhead.tenant_id', true));
CREATE POLICY platform_scope ON tenant_idps USING (current_setting('bulkhead.platform', true) = 'on');
