-- A federated sign-in whose user has a confirmed TOTP factor (and whose
-- tenant does not take the upstream's sign-in as enough) waits here for
-- the code: the user the upstream identified, not yet signed in.
ALTER TABLE oidc_auth_requests ADD COLUMN pending_user_id TEXT NOT NULL DEFAULT '';
