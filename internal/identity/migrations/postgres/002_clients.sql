CREATE TABLE oauth_clients (
	id            TEXT PRIMARY KEY,
	tenant_id     TEXT NOT NULL,
	name          TEXT NOT NULL,
	grant_types   TEXT NOT NULL,
	redirect_uris TEXT NOT NULL,
	scopes        TEXT NOT NULL,
	public        BOOLEAN NOT NULL,
	secret_hash   TEXT NOT NULL,
	created_at    BIGINT NOT NULL
);
CREATE INDEX oauth_clients_tenant ON oauth_clients(tenant_id, id);

-- tenant_id is the tenant a client belongs to, '' for platform clients.
ALTER TABLE oauth_clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE oauth_clients FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON oauth_clients USING (tenant_id <> '' AND tenant_id = current_setting('bulkhead.tenant_id', true));
CREATE POLICY platform_scope ON oauth_clients USING (current_setting('bulkhead.platform', true) = 'on');
