-- Functions are the platform's (the operator deploys them); their
-- environments are per tenant in memory, not rows.
CREATE TABLE functions (
	name       TEXT PRIMARY KEY,
	version    INTEGER NOT NULL,
	digest     TEXT NOT NULL,
	config     TEXT NOT NULL, -- JSON: tenancy mode and limits
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

-- Module bytes by SHA-256, so every node can load a function.
CREATE TABLE function_modules (
	digest     TEXT PRIMARY KEY,
	module     BYTEA NOT NULL,
	created_at BIGINT NOT NULL
);
