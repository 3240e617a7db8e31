-- The public URL (the platform issuer) every node of this database serves
-- under, recorded at the first start: tokens carry it, so a node started
-- with another refuses to start (see Provider.CheckPublicURL). One row.
CREATE TABLE oidc_public_url (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	url        TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL  -- when bulkhead init --new-public-url last changed it
);

-- The platform's alone: no tenant scope sees it.
ALTER TABLE oidc_public_url ENABLE ROW LEVEL SECURITY;
ALTER TABLE oidc_public_url FORCE ROW LEVEL SECURITY;
CREATE POLICY platform_scope ON oidc_public_url USING (current_setting('bulkhead.platform', true) = 'on');
