CREATE TABLE audit_events (
	id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	chain      TEXT NOT NULL,
	seq        BIGINT NOT NULL,
	time       BIGINT NOT NULL,
	principal  TEXT NOT NULL,
	action     TEXT NOT NULL,
	target     TEXT NOT NULL,
	outcome    TEXT NOT NULL,
	request_id TEXT NOT NULL,
	source_ip  TEXT NOT NULL,
	detail     TEXT NOT NULL,
	prev_hash  TEXT NOT NULL,
	hash       TEXT NOT NULL,
	UNIQUE (chain, seq)
);
CREATE INDEX audit_events_action ON audit_events(action, id);
CREATE TABLE audit_heads (
	chain TEXT PRIMARY KEY,
	seq   BIGINT NOT NULL,
	hash  TEXT NOT NULL
);

-- chain is the tenant id ('' for the platform's own chain). Events are
-- append-only for Bulkhead itself: no policy allows UPDATE or DELETE, so
-- even a bug in a platform-scoped transaction cannot rewrite history. (The
-- table owner can still switch the policies off: that is what the hash
-- chain and `bulkhead audit verify` are for.)
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON audit_events FOR SELECT
	USING (chain <> '' AND chain = current_setting('bulkhead.tenant_id', true));
CREATE POLICY tenant_append ON audit_events FOR INSERT
	WITH CHECK (chain <> '' AND chain = current_setting('bulkhead.tenant_id', true));
CREATE POLICY platform_read ON audit_events FOR SELECT
	USING (current_setting('bulkhead.platform', true) = 'on');
CREATE POLICY platform_append ON audit_events FOR INSERT
	WITH CHECK (current_setting('bulkhead.platform', true) = 'on');

-- Heads move forward (INSERT, UPDATE) but are never deleted.
ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON audit_heads FOR SELECT
	USING (chain <> '' AND chain = current_setting('bulkhead.tenant_id', true));
CREATE POLICY tenant_append ON audit_heads FOR INSERT
	WITH CHECK (chain <> '' AND chain = current_setting('bulkhead.tenant_id', true));
CREATE POLICY tenant_advance ON audit_heads FOR UPDATE
	USING (chain <> '' AND chain = current_setting('bulkhead.tenant_id', true));
CREATE POLICY platform_read ON audit_heads FOR SELECT
	USING (current_setting('bulkhead.platform', true) = 'on');
CREATE POLICY platform_append ON audit_heads FOR INSERT
	WITH CHECK (current_setting('bulkhead.platform', true) = 'on');
CREATE POLICY platform_advance ON audit_heads FOR UPDATE
	USING (current_setting('bulkhead.platform', true) = 'on');
