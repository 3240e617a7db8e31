-- When a client was last granted each of its registered scopes in a
-- token, for the posture check client_scope_unused. Written when tokens
-- are issued, at most once a day per client and scope on each node
-- (Directory.NoteScopeUse), so token issuance gains no write per token.
-- Records are complete from the time this migration was applied.
CREATE TABLE oauth_client_scope_use (
	tenant_id TEXT NOT NULL,
	client_id TEXT NOT NULL,
	scope     TEXT NOT NULL,
	used_at   BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, client_id, scope)
);
