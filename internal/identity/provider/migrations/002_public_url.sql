-- The public URL (the platform issuer) every node of this database serves
-- under, recorded at the first start: tokens carry it, so a node started
-- with another refuses to start (see Provider.CheckPublicURL). One row.
CREATE TABLE oidc_public_url (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	url        TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL  -- when bulkhead init --new-public-url last changed it
);
