-- The application's own migrations, registered by the operator for each
-- cluster (PUT /v1/clusters/{name}/migrations). A file is written once:
-- rows are only ever added, or deleted with their cluster; the runner
-- applies them, in order of name, to every placement on the cluster.
CREATE TABLE data_app_migrations (
	cluster    TEXT NOT NULL,
	name       TEXT NOT NULL, -- NNN_name.sql
	checksum   TEXT NOT NULL, -- SHA-256 of sql, hex
	sql        TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (cluster, name)
);
