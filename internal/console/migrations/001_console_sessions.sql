CREATE TABLE console_sessions (
	id             TEXT PRIMARY KEY,
	tenant_id      TEXT NOT NULL,
	issuer_tenant  TEXT NOT NULL,
	kind           TEXT NOT NULL,
	subject        TEXT NOT NULL,
	email          TEXT NOT NULL,
	access_sealed  TEXT NOT NULL,
	refresh_sealed TEXT NOT NULL,
	id_sealed      TEXT NOT NULL,
	access_expires BIGINT NOT NULL,
	csrf           TEXT NOT NULL,
	auth_time      BIGINT NOT NULL,
	created_at     BIGINT NOT NULL,
	last_seen      BIGINT NOT NULL,
	expires_at     BIGINT NOT NULL
);
CREATE INDEX console_sessions_subject ON console_sessions(subject);
CREATE INDEX console_sessions_expires ON console_sessions(expires_at);
