CREATE TABLE identity_configs (
	tenant_id           TEXT PRIMARY KEY,
	password_min_length INTEGER NOT NULL,
	access_token_ttl    BIGINT NOT NULL DEFAULT 0,
	refresh_token_ttl   BIGINT NOT NULL DEFAULT 0,
	created_at          BIGINT NOT NULL,
	updated_at          BIGINT NOT NULL
);
CREATE TABLE users (
	id                       TEXT PRIMARY KEY,
	tenant_id                TEXT NOT NULL,
	email                    TEXT NOT NULL,
	email_key                TEXT NOT NULL,
	status                   TEXT NOT NULL,
	attributes               TEXT NOT NULL DEFAULT '{}',
	password_hash            TEXT NOT NULL DEFAULT '',
	password_change_required BOOLEAN NOT NULL DEFAULT false,
	password_changed_at      BIGINT NOT NULL DEFAULT 0,
	created_at               BIGINT NOT NULL,
	updated_at               BIGINT NOT NULL,
	UNIQUE (tenant_id, email_key)
);
CREATE INDEX users_tenant ON users(tenant_id, id);
CREATE TABLE user_groups (
	id          TEXT PRIMARY KEY,
	tenant_id   TEXT NOT NULL,
	name        TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	created_at  BIGINT NOT NULL,
	UNIQUE (tenant_id, name)
);
CREATE TABLE group_members (
	tenant_id TEXT NOT NULL,
	group_id  TEXT NOT NULL REFERENCES user_groups(id) ON DELETE CASCADE,
	user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	added_at  BIGINT NOT NULL,
	PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members(user_id);
