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
