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
