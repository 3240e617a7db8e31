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

-- The platform's alone: no tenant scope sees it.
ALTER TABLE kms_root_key ENABLE ROW LEVEL SECURITY;
ALTER TABLE kms_root_key FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_scope ON kms_root_key USING (current_setting('bulkhead.platform', true) = 'on');
