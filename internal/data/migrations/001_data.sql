-- The application's PostgreSQL clusters, registered by the operator. Both
-- DSNs are sealed under the root key (base64 of kms.RootKey.Wrap, bound to
-- the cluster's name and to which DSN it is); neither is ever returned.
CREATE TABLE data_clusters (
	name          TEXT PRIMARY KEY,
	host          TEXT NOT NULL, -- server and database of the serving DSN, no user or password
	prefix        TEXT NOT NULL,
	is_default    INTEGER NOT NULL, -- 1 for the cluster new tenants are placed on
	dsn           TEXT NOT NULL,
	admin_dsn     TEXT NOT NULL,
	created_at    BIGINT NOT NULL
);

-- Where each tenant's application data lives. object_name is the schema
-- (bridge) or database (silo) and role made for the tenant, NULL in pool:
-- unique per cluster, so that no two tenants are ever given one.
CREATE TABLE data_placements (
	tenant_id     TEXT PRIMARY KEY,
	model         TEXT NOT NULL, -- pool, bridge, silo
	cluster       TEXT NOT NULL,
	database_name TEXT NOT NULL,
	schema_name   TEXT NOT NULL,
	role_name     TEXT NOT NULL, -- '' in pool
	object_name   TEXT,
	role_password TEXT NOT NULL, -- sealed (base64), '' in pool; never returned
	status        TEXT NOT NULL, -- provisioning, ready, retained, dropping
	version       BIGINT NOT NULL,
	drop_after    BIGINT NOT NULL, -- retained: when the sweeper drops it (unix µs); else 0
	created_at    BIGINT NOT NULL,
	updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX data_placements_object ON data_placements(cluster, object_name);
CREATE INDEX data_placements_status ON data_placements(status, drop_after);
