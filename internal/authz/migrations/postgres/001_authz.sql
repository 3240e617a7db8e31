-- One policy store per tenant (created at onboarding).
CREATE TABLE authz_stores (
	tenant_id      TEXT PRIMARY KEY,
	schema_text    TEXT NOT NULL,  -- '' when the store has no schema
	schema_format  TEXT NOT NULL,  -- 'cedar' or 'json' ('' without a schema)
	schema_at      BIGINT NOT NULL, -- when the schema was put (0 without one)
	log_allows     BOOLEAN NOT NULL,
	principal_type TEXT NOT NULL,
	group_type     TEXT NOT NULL,
	created_at     BIGINT NOT NULL,
	updated_at     BIGINT NOT NULL
);

CREATE TABLE authz_templates (
	tenant_id   TEXT NOT NULL,
	id          TEXT NOT NULL,
	statement   TEXT NOT NULL,
	description TEXT NOT NULL,
	created_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, id)
);

-- Static policies (template_id '') and template-linked policies.
-- tenant_id '' holds the global policies, applied to every tenant.
CREATE TABLE authz_policies (
	tenant_id      TEXT NOT NULL,
	id             TEXT NOT NULL,
	statement      TEXT NOT NULL,
	description    TEXT NOT NULL,
	template_id    TEXT NOT NULL,
	principal_type TEXT NOT NULL,
	principal_id   TEXT NOT NULL,
	resource_type  TEXT NOT NULL,
	resource_id    TEXT NOT NULL,
	created_at     BIGINT NOT NULL,
	updated_at     BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, id)
);
CREATE INDEX authz_policies_template ON authz_policies(tenant_id, template_id);
