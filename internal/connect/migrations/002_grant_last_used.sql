-- When a grant was last used through the proxy, for the posture check
-- grant_idle: written at most once a day per grant (Service.noteUse), so
-- a proxied request gains no write of its own. 0: not since this
-- migration was applied (or the grant was made).
ALTER TABLE connect_grants ADD COLUMN last_used_at BIGINT NOT NULL DEFAULT 0;
