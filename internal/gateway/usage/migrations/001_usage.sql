CREATE TABLE gateway_usage_plans (
	tenant_id    TEXT PRIMARY KEY,
	rps          DOUBLE PRECISION NOT NULL,
	burst        INTEGER NOT NULL,
	quota        BIGINT NOT NULL,
	quota_period TEXT NOT NULL,
	updated_at   BIGINT NOT NULL
);
CREATE TABLE gateway_quota_counters (
	tenant_id    TEXT NOT NULL,
	period_start BIGINT NOT NULL,
	count        BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, period_start)
);
CREATE TABLE gateway_usage (
	tenant_id  TEXT NOT NULL,
	hour       BIGINT NOT NULL,
	requests   BIGINT NOT NULL,
	bytes_in   BIGINT NOT NULL,
	bytes_out  BIGINT NOT NULL,
	status_2xx BIGINT NOT NULL,
	status_3xx BIGINT NOT NULL,
	status_4xx BIGINT NOT NULL,
	status_5xx BIGINT NOT NULL,
	lat_5ms BIGINT NOT NULL,
	lat_10ms BIGINT NOT NULL,
	lat_25ms BIGINT NOT NULL,
	lat_50ms BIGINT NOT NULL,
	lat_100ms BIGINT NOT NULL,
	lat_250ms BIGINT NOT NULL,
	lat_500ms BIGINT NOT NULL,
	lat_1s BIGINT NOT NULL,
	lat_2500ms BIGINT NOT NULL,
	lat_5s BIGINT NOT NULL,
	lat_inf BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, hour)
);
