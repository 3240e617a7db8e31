-- The platform's operators: people who operate Bulkhead (not a tenant's
-- users; see Directory.CreateOperator). Platform rows: no tenant scope
-- sees them. Written per dialect for the boolean and binary columns.
CREATE TABLE operators (
	id                       TEXT PRIMARY KEY,
	email                    TEXT NOT NULL,
	email_key                TEXT NOT NULL UNIQUE,
	name                     TEXT NOT NULL,
	status                   TEXT NOT NULL,
	password_hash            TEXT NOT NULL,
	password_change_required INTEGER NOT NULL DEFAULT 0,
	password_changed_at      BIGINT NOT NULL DEFAULT 0,
	created_at               BIGINT NOT NULL,
	updated_at               BIGINT NOT NULL
);
-- An operator's TOTP factor, required of every operator: the secret
-- wrapped by the root key bound to the operator, confirmed by the first
-- valid code at sign-in.
CREATE TABLE operator_totp (
	operator_id      TEXT PRIMARY KEY,
	secret_wrapped   BLOB NOT NULL,
	confirmed        INTEGER NOT NULL,
	recovery_hashes  TEXT NOT NULL,
	last_step        BIGINT NOT NULL DEFAULT 0,
	created_at       BIGINT NOT NULL
);
