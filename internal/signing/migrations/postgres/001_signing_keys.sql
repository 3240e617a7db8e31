CREATE TABLE signing_keys (
	kid             TEXT PRIMARY KEY,
	tenant_id       TEXT NOT NULL,
	alg             TEXT NOT NULL,
	public_jwk      TEXT NOT NULL,
	private_wrapped BYTEA NOT NULL,
	created_at      BIGINT NOT NULL,
	retired_at      BIGINT NOT NULL DEFAULT 0,
	published_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX signing_keys_tenant ON signing_keys(tenant_id, created_at);

-- tenant_id is the silo tenant whose issuer the key signs for, '' for the
-- platform issuer.
ALTER TABLE signing_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE signing_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON signing_keys USING (tenant_id <> '' AND tenant_id = current_setting('bulkhead.tenant_id', true));
CREATE POLICY platform_scope ON signing_keys USING (current_setting('bulkhead.platform', true) = 'on');
