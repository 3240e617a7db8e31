-- Federated users are linked by who their provider says they are — the
-- upstream issuer and subject, which that provider keeps stable and
-- unique — never by an email alone: an email from a provider is linked to
-- an existing account only when the provider vouches for it and the tenant
-- opted in (tenant_idps.link_existing_by_email). An account has at most
-- one subject per issuer, so a second upstream identity can never be
-- attached to an account that already has one there.
CREATE TABLE federated_identities (
	tenant_id  TEXT NOT NULL,
	issuer     TEXT NOT NULL,
	subject    TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, issuer, subject)
);
CREATE UNIQUE INDEX federated_identities_user ON federated_identities(tenant_id, user_id, issuer);

-- The tenant's federation settings, both off by default: link a new
-- upstream identity to an existing account by a verified email; accept
-- the upstream's sign-in in place of the account's own TOTP factor.
ALTER TABLE tenant_idps ADD COLUMN link_existing_by_email BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE tenant_idps ADD COLUMN upstream_mfa_sufficient BOOLEAN NOT NULL DEFAULT FALSE;
