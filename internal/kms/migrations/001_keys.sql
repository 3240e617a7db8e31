-- Tenant master keys. Material lives in kms_key_versions, wrapped by the root key.
CREATE TABLE kms_keys (
	tenant_id         TEXT NOT NULL,
	id                TEXT NOT NULL,
	description       TEXT NOT NULL,
	state             TEXT NOT NULL,   -- enabled, pending_import, pending_deletion, destroyed
	origin            TEXT NOT NULL,   -- bulkhead, external (imported material)
	primary_version   INTEGER NOT NULL,
	rotation_period_s BIGINT NOT NULL, -- 0: no automatic rotation
	next_rotation_at  BIGINT NOT NULL,
	deletion_at       BIGINT NOT NULL, -- when pending_deletion: when the material is destroyed
	created_at        BIGINT NOT NULL,
	updated_at        BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX kms_keys_id ON kms_keys(id);
CREATE INDEX kms_keys_deletion ON kms_keys(state, deletion_at);

CREATE TABLE kms_key_versions (
	tenant_id    TEXT NOT NULL,
	key_id       TEXT NOT NULL,
	version      INTEGER NOT NULL,
	material     TEXT NOT NULL,   -- base64 of the root-key-wrapped material; '' once destroyed
	valid_to     BIGINT NOT NULL, -- imported material may expire (0: never)
	created_at   BIGINT NOT NULL,
	destroyed_at BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, key_id, version)
);

CREATE TABLE kms_aliases (
	tenant_id  TEXT NOT NULL,
	alias      TEXT NOT NULL,
	key_id     TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, alias)
);

-- RSA key pairs for importing key material (BYOK), one per import request.
CREATE TABLE kms_import_tokens (
	tenant_id   TEXT NOT NULL,
	id          TEXT NOT NULL,
	key_id      TEXT NOT NULL,
	private_key TEXT NOT NULL, -- base64 of the root-key-wrapped PKCS #8 key
	expires_at  BIGINT NOT NULL,
	created_at  BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
