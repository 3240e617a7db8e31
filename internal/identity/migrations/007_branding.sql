CREATE TABLE tenant_branding (
	tenant_id     TEXT PRIMARY KEY,
	display_name  TEXT NOT NULL,
	logo          TEXT NOT NULL,
	primary_color TEXT NOT NULL,
	support_url   TEXT NOT NULL,
	updated_at    BIGINT NOT NULL
);
