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

-- chain is the tenant id ('' for the platform's own chain).
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON audit_events USING (chain <> '' AND chain = current_setting('bulkhead.tenant_id', true));
CREATE POLICY platform_scope ON audit_events USING (current_setting('bulkhead.platform', true) = 'on');

ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON audit_heads USING (chain <> '' AND chain = current_setting('bulkhead.tenant_id', true));
CREATE POLICY platform_scope ON audit_heads USING (current_setting('bulkhead.platform', true) = 'on');
