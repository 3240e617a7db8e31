CREATE TABLE audit_events (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	chain      TEXT NOT NULL,
	seq        BIGINT NOT NULL,
	time       BIGINT NOT NULL,
	principal  TEXT NOT NULL,
	action     TEXT NOT NULL,
	target     TEXT NOT NULL,
	outcome    TEXT NOT NULL,
	request_id TEXT NOT NULL,
	source_ip  TEXT NOT NULL,
	detail     TEXT NOT NULL,
	prev_hash  TEXT NOT NULL,
	hash       TEXT NOT NULL,
	UNIQUE (chain, seq)
);
CREATE INDEX audit_events_action ON audit_events(action, id);
CREATE TABLE audit_heads (
	chain TEXT PRIMARY KEY,
	seq   BIGINT NOT NULL,
	hash  TEXT NOT NULL
);
