-- Where the OpenID provider tells a client that a browser session it
-- signed in with has ended (OpenID Connect Back-Channel Logout 1.0).
ALTER TABLE oauth_clients ADD COLUMN backchannel_logout_uri TEXT NOT NULL DEFAULT '';
