-- Connections to third-party SaaS APIs. The upstream token is never stored:
-- each grant keeps Part B (token XOR the grant's pad), encrypted under the
-- tenant's key; the integration holds Part A (the pad).
CREATE TABLE connect_connections (
	tenant_id         TEXT NOT NULL,
	id                TEXT NOT NULL,
	name              TEXT NOT NULL,
	upstream_url      TEXT NOT NULL,
	placement_type    TEXT NOT NULL, -- bearer, header, query
	placement_name    TEXT NOT NULL,
	allowed_methods   TEXT NOT NULL, -- JSON array; [] means all
	allowed_paths     TEXT NOT NULL, -- JSON array of path prefixes under the base; [] means all
	sensitivity       DOUBLE PRECISION NOT NULL,
	webhook_url       TEXT NOT NULL,
	webhook_secret    TEXT NOT NULL, -- KMS ciphertext (base64) of the alert webhook's signing secret, or ''
	token_fingerprint TEXT NOT NULL, -- keyed hash of the upstream token (HMAC-SHA256), to check a token sent again
	token_version     INTEGER NOT NULL,
	created_at        BIGINT NOT NULL,
	updated_at        BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX connect_connections_id ON connect_connections(id);
CREATE UNIQUE INDEX connect_connections_name ON connect_connections(tenant_id, name);

CREATE TABLE connect_grants (
	tenant_id        TEXT NOT NULL,
	id               TEXT NOT NULL,
	connection_id    TEXT NOT NULL,
	name             TEXT NOT NULL,
	status           TEXT NOT NULL, -- active, suspended
	auto_suspend     INTEGER NOT NULL,
	part_a_hash      TEXT NOT NULL, -- keyed hash (HMAC-SHA256) of Part A
	part_b           TEXT NOT NULL, -- KMS ciphertext (base64) of Part B
	suspended_reason TEXT NOT NULL,
	created_at       BIGINT NOT NULL,
	updated_at       BIGINT NOT NULL,
	rotated_at       BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX connect_grants_id ON connect_grants(id);
CREATE INDEX connect_grants_connection ON connect_grants(tenant_id, connection_id);

-- Source networks a grant has been used from (/24 or /48).
CREATE TABLE connect_networks (
	tenant_id  TEXT NOT NULL,
	grant_id   TEXT NOT NULL,
	network    TEXT NOT NULL,
	first_seen BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, grant_id, network)
);

CREATE TABLE connect_alerts (
	tenant_id     TEXT NOT NULL,
	id            TEXT NOT NULL,
	connection_id TEXT NOT NULL,
	grant_id      TEXT NOT NULL,
	kind          TEXT NOT NULL,
	detail        TEXT NOT NULL, -- JSON object of strings
	suspended     INTEGER NOT NULL,
	created_at    BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
