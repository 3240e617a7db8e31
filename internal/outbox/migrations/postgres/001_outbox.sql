CREATE TABLE event_outbox (
	id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	event_id      TEXT NOT NULL UNIQUE,
	tenant_id     TEXT NOT NULL,
	type          TEXT NOT NULL,
	body          TEXT NOT NULL,
	created_at    BIGINT NOT NULL,
	claimed_by    TEXT NOT NULL DEFAULT '',
	claimed_until BIGINT NOT NULL DEFAULT 0,
	published_at  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX event_outbox_pending ON event_outbox(published_at, id);
CREATE TABLE webhooks (
	id         TEXT PRIMARY KEY,
	url        TEXT NOT NULL,
	events     TEXT NOT NULL,
	secret     TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE webhook_deliveries (
	seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id           TEXT NOT NULL UNIQUE,
	webhook_id   TEXT NOT NULL,
	event_id     TEXT NOT NULL,
	type         TEXT NOT NULL,
	status       TEXT NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt BIGINT NOT NULL,
	lease_until  BIGINT NOT NULL DEFAULT 0,
	last_status  INTEGER NOT NULL DEFAULT 0,
	last_error   TEXT NOT NULL DEFAULT '',
	delivered_at BIGINT NOT NULL DEFAULT 0,
	created_at   BIGINT NOT NULL,
	UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt);
CREATE INDEX webhook_deliveries_log ON webhook_deliveries(webhook_id, seq);
