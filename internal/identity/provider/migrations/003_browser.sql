-- The browser that started an authorization request: a hash of its
-- binding cookie. Login, federation callback and the authorize callback
-- refuse any other browser.
ALTER TABLE oidc_auth_requests ADD COLUMN browser TEXT NOT NULL DEFAULT '';
