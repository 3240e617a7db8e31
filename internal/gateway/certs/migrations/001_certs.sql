CREATE TABLE cert_store (
	key      TEXT PRIMARY KEY,
	value    TEXT NOT NULL,
	size     BIGINT NOT NULL,
	modified BIGINT NOT NULL
);
CREATE TABLE cert_locks (
	name    TEXT PRIMARY KEY,
	owner   TEXT NOT NULL,
	expires BIGINT NOT NULL
);
