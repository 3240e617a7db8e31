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
