CREATE TABLE posture_findings (
	id          TEXT PRIMARY KEY,
	tenant_id   TEXT NOT NULL,
	check_code  TEXT NOT NULL,
	severity    TEXT NOT NULL,
	rank        INTEGER NOT NULL,
	object      TEXT NOT NULL,
	detail      TEXT NOT NULL,
	first_seen  BIGINT NOT NULL,
	last_seen   BIGINT NOT NULL,
	resolved_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX posture_findings_open ON posture_findings(tenant_id, resolved_at, rank, id);
CREATE TABLE posture_scans (
	id            INTEGER PRIMARY KEY,
	scanned_at    BIGINT NOT NULL,
	claimed_until BIGINT NOT NULL
);
INSERT INTO posture_scans (id, scanned_at, claimed_until) VALUES (1, 0, 0);
