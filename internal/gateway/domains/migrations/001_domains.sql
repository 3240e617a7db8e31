CREATE TABLE gateway_domains (
	domain      TEXT PRIMARY KEY,
	tenant_id   TEXT NOT NULL,
	state       TEXT NOT NULL,
	token       TEXT NOT NULL,
	method      TEXT NOT NULL DEFAULT '',
	created_at  BIGINT NOT NULL,
	verified_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX gateway_domains_tenant ON gateway_domains(tenant_id);
