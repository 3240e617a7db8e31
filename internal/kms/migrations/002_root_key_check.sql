-- A check value of the root key, recorded at the database's first start:
-- HKDF-SHA256 of the root key under a fixed label (see kms.OpenRootKey),
-- never the key. A node whose key does not match refuses to start instead
-- of failing every unwrap. One row.
CREATE TABLE kms_root_key (
	id          INTEGER PRIMARY KEY CHECK (id = 1),
	check_value TEXT NOT NULL,   -- base64 of the 32-byte derived value
	created_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL  -- when bulkhead init --new-root-key last replaced it
);
