-- The notes of every tenant. The same file runs in the pool (the shared
-- database's public schema, where Bulkhead's migrations add and FORCE the
-- row-level security policy bulkhead_tenant on tenant_id), in each bridge
-- schema and in each silo database. tenant_id is filled in from the
-- transaction's app.tenant_id, which sdk/tenantdb sets in every model, so
-- the application's SQL never names a tenant.
CREATE TABLE notes (
	tenant_id text NOT NULL DEFAULT current_setting('app.tenant_id'),
	id text NOT NULL,
	author text NOT NULL, -- "client:<id>" or "user:<id>", from the verified token
	body bytea NOT NULL,  -- sdk/envelope EncryptField, bound to {tenant, notes, id, body}
	created_at timestamptz NOT NULL DEFAULT now(),
	-- The key begins with tenant_id: in the pool a note id is unique per
	-- tenant only, and the row-level security filter uses the index.
	PRIMARY KEY (tenant_id, id)
);
-- The list, newest first, per tenant.
CREATE INDEX notes_tenant_created ON notes (tenant_id, created_at DESC, id);
