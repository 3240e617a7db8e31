CREATE TABLE tenants (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	tier       TEXT NOT NULL,
	isolation  TEXT NOT NULL,
	status     TEXT NOT NULL,
	config     TEXT NOT NULL DEFAULT '{}',
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE TABLE tenant_domains (
	domain    TEXT PRIMARY KEY,
	tenant_id TEXT NOT NULL REFERENCES tenants(id)
);
CREATE INDEX tenant_domains_tenant ON tenant_domains(tenant_id);
CREATE TABLE tenant_idempotency (
	key          TEXT PRIMARY KEY,
	tenant_id    TEXT NOT NULL REFERENCES tenants(id),
	request_hash TEXT NOT NULL,
	created_at   BIGINT NOT NULL
);
CREATE TABLE workflows (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL REFERENCES tenants(id),
	kind       TEXT NOT NULL,
	status     TEXT NOT NULL,
	attempts   INTEGER NOT NULL DEFAULT 0,
	last_error TEXT NOT NULL DEFAULT '',
	input      TEXT NOT NULL DEFAULT '{}',
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
CREATE INDEX workflows_status ON workflows(status);
CREATE INDEX workflows_tenant ON workflows(tenant_id);
CREATE TABLE workflow_steps (
	workflow_id  TEXT NOT NULL REFERENCES workflows(id),
	tenant_id    TEXT NOT NULL REFERENCES tenants(id),
	step         TEXT NOT NULL,
	completed_at BIGINT NOT NULL,
	PRIMARY KEY (workflow_id, step)
);

-- Row-level security: a tenant-scoped transaction sees only its tenant's rows,
-- a platform-scoped one sees all, a transaction with no scope sees none.
-- FORCE makes the table owner subject too.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON tenants USING (id = current_setting('bulkhead.tenant_id', true));
CREATE POLICY platform_scope ON tenants USING (current_setting('bulkhead.platform', true) = 'on');

ALTER TABLE tenant_domains ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_domains FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON tenant_domains USING (tenant_id = current_setting('bulkhead.tenant_id', true));
CREATE POLICY platform_scope ON tenant_domains USING (current_setting('bulkhead.platform', true) = 'on');

ALTER TABLE tenant_idempotency ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_idempotency FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_scope ON tenant_idempotency USING (current_setting('bulkhead.platform', true) = 'on');

ALTER TABLE workflows ENABLE ROW LEVEL SECURITY;
ALTER TABLE workflows FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON workflows USING (tenant_id = current_setting('bulkhead.tenant_id', true));
CREATE POLICY platform_scope ON workflows USING (current_setting('bulkhead.platform', true) = 'on');

ALTER TABLE workflow_steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE workflow_steps FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON workflow_steps USING (tenant_id = current_setting('bulkhead.tenant_id', true));
CREATE POLICY platform_scope ON workflow_steps USING (current_setting('bulkhead.platform', true) = 'on');
