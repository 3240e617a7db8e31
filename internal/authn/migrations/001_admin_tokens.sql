CREATE TABLE admin_tokens (
	id         TEXT PRIMARY KEY,
	hash       TEXT NOT NULL UNIQUE,
	created_at BIGINT NOT NULL
);
