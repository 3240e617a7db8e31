-- A tier migration across isolation models changes the tenant's issuer:
-- the one it left keeps verifying the tokens it issued until they expire
-- (prior_isolation, until isolation_changed_at plus the longest token
-- lifetime). '' and 0 for a tenant that never moved.
ALTER TABLE tenants ADD COLUMN prior_isolation TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN isolation_changed_at BIGINT NOT NULL DEFAULT 0;
