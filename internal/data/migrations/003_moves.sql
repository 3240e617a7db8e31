-- Tier migrations that move a tenant's data to another placement, one row
-- per migration's workflow. The target's names and sealed role password
-- are recorded once it is provisioned; at the cutover the placement row
-- takes the target's, and this row keeps the source's, retained until
-- drop_after (rollback by moving back is possible until then), when the
-- sweeper drops it. A move rolled back (a failed verification) or
-- abandoned (an offboarding) keeps its target here until the sweeper
-- drops that instead. Rows are kept once dropped: the history of moves.
CREATE TABLE data_moves (
	workflow_id     TEXT PRIMARY KEY,
	tenant_id       TEXT NOT NULL,
	status          TEXT NOT NULL, -- copying, switched, rolled_back, abandoned, dropped
	cluster         TEXT NOT NULL,
	source_model    TEXT NOT NULL,
	source_database TEXT NOT NULL,
	source_schema   TEXT NOT NULL,
	source_role     TEXT NOT NULL,
	source_object   TEXT,
	source_password TEXT NOT NULL,
	target_model    TEXT NOT NULL,
	target_database TEXT NOT NULL,
	target_schema   TEXT NOT NULL,
	target_role     TEXT NOT NULL,
	target_object   TEXT,
	target_password TEXT NOT NULL,
	rows_total      BIGINT NOT NULL DEFAULT 0,
	rows_copied     BIGINT NOT NULL DEFAULT 0,
	lag             BIGINT NOT NULL DEFAULT 0,
	pause_us        BIGINT NOT NULL DEFAULT 0,
	verified        TEXT NOT NULL DEFAULT '',
	error           TEXT NOT NULL DEFAULT '',
	drop_after      BIGINT NOT NULL DEFAULT 0,
	created_at      BIGINT NOT NULL,
	updated_at      BIGINT NOT NULL
);
CREATE INDEX data_moves_tenant ON data_moves(tenant_id, created_at);
CREATE INDEX data_moves_status ON data_moves(status, drop_after);
