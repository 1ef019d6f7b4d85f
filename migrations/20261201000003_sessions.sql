-- Browser sessions created by a successful SAML sign-in. The cookie carries the session ID
-- sealed with the session keys; only the ID's SHA-256 is stored, so a copy of the database
-- cannot be turned into cookies.
CREATE TABLE sso_sessions (
    tenant TEXT NOT NULL,
    id_sha256 TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    expires_us BIGINT NOT NULL,
    PRIMARY KEY (tenant, id_sha256)
);
CREATE INDEX sso_sessions_user ON sso_sessions (tenant, user_id);
CREATE INDEX sso_sessions_expiry ON sso_sessions (expires_us);

-- Groups created at sign-in (default groups, groups from the SAML groups attribute) are
-- unique by name, so concurrent sign-ins cannot create the same group twice.
CREATE UNIQUE INDEX scim_groups_sign_in_name ON scim_groups (tenant, display_name_lower) WHERE scim_managed = 0;
