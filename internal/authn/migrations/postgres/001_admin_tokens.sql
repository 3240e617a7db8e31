CREATE TABLE admin_tokens (
	id         TEXT PRIMARY KEY,
	hash       TEXT NOT NULL UNIQUE,
	created_at BIGINT NOT NULL
);
ALTER TABLE admin_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE admin_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_scope ON admin_tokens USING (current_setting('bulkhead.platform', true) = 'on');
