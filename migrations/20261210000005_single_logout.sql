-- SAML Single Logout: a session remembers whom the IdP signed in (the SHA-256 of the NameID)
-- and the IdP's SessionIndex, so that a LogoutRequest from the IdP ends exactly those
-- sessions on every server replica. Sessions from before this migration have neither.
ALTER TABLE sso_sessions ADD COLUMN name_id_sha256 TEXT;
ALTER TABLE sso_sessions ADD COLUMN session_index TEXT;
CREATE INDEX sso_sessions_name_id ON sso_sessions (tenant, name_id_sha256);
