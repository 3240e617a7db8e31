CREATE TABLE partners (
	id          TEXT PRIMARY KEY,
	name        TEXT NOT NULL,
	auth_method TEXT NOT NULL,
	secret_hash TEXT NOT NULL DEFAULT '',
	jwks_url    TEXT NOT NULL DEFAULT '',
	secret_rotated_at INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL
);
CREATE TABLE partner_trusts (
	id                     TEXT PRIMARY KEY,
	tenant_id              TEXT NOT NULL,
	partner_id             TEXT NOT NULL,
	description            TEXT NOT NULL DEFAULT '',
	scopes                 TEXT NOT NULL,
	policy                 TEXT NOT NULL DEFAULT '',
	max_session_seconds    INTEGER NOT NULL,
	source_networks        TEXT NOT NULL,
	tags                   TEXT NOT NULL,
	partner_tags           TEXT NOT NULL,
	status                 TEXT NOT NULL,
	external_id_hash       TEXT NOT NULL,
	external_id_hint       TEXT NOT NULL,
	external_id_rotated_at INTEGER NOT NULL,
	created_at             INTEGER NOT NULL,
	updated_at             INTEGER NOT NULL,
	UNIQUE (tenant_id, partner_id)
);
CREATE INDEX partner_trusts_partner ON partner_trusts(partner_id);
CREATE TABLE partner_assertions (
	id         TEXT PRIMARY KEY,
	expires_at INTEGER NOT NULL
);
