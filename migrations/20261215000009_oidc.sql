-- The OpenID Provider's state. Authorization codes, refresh tokens, device codes and user
-- codes are secrets: only their SHA-256 is stored, as for sessions. Single use is recorded
-- (used_us) rather than by deleting, so that a code or token presented again is recognised
-- as reused until it expires.

-- A grant family: started by redeeming an authorization code or an approved device code.
-- Its refresh tokens and access tokens belong to it; revoking it ends all of them. expires_us
-- is the absolute end of the refresh lifetime; session_sha256 is the SHA-256 of the SSO
-- session the user signed in with (for logout).
CREATE TABLE oidc_families (
    tenant TEXT NOT NULL,
    family_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    session_sha256 TEXT,
    scope TEXT NOT NULL,
    nonce TEXT,
    auth_time_us BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    expires_us BIGINT NOT NULL,
    revoked_us BIGINT,
    PRIMARY KEY (tenant, family_id)
);
CREATE INDEX oidc_families_session ON oidc_families (tenant, session_sha256);
CREATE INDEX oidc_families_user ON oidc_families (tenant, user_id);
CREATE INDEX oidc_families_expiry ON oidc_families (expires_us);

-- Authorization codes, with the grant they carry; family_id is the family their redemption
-- started.
CREATE TABLE oidc_authorization_codes (
    tenant TEXT NOT NULL,
    code_sha256 TEXT NOT NULL,
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    session_sha256 TEXT,
    scope TEXT NOT NULL,
    nonce TEXT,
    auth_time_us BIGINT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT,
    created_us BIGINT NOT NULL,
    expires_us BIGINT NOT NULL,
    used_us BIGINT,
    family_id TEXT,
    PRIMARY KEY (tenant, code_sha256)
);
CREATE INDEX oidc_authorization_codes_expiry ON oidc_authorization_codes (expires_us);

-- Refresh tokens; each is used once, for the next one of its family. expires_us is the
-- family's.
CREATE TABLE oidc_refresh_tokens (
    tenant TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    family_id TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    expires_us BIGINT NOT NULL,
    used_us BIGINT,
    PRIMARY KEY (tenant, token_sha256)
);
CREATE INDEX oidc_refresh_tokens_family ON oidc_refresh_tokens (tenant, family_id);
CREATE INDEX oidc_refresh_tokens_expiry ON oidc_refresh_tokens (expires_us);

-- Device authorizations (RFC 8628). status: pending, approved, denied, or used (an approved
-- one whose device code was exchanged, starting family_id). The grant columns are filled on
-- approval; last_poll_us is the last poll answered, for slow_down.
CREATE TABLE oidc_device_authorizations (
    tenant TEXT NOT NULL,
    device_code_sha256 TEXT NOT NULL,
    user_code_sha256 TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    interval_us BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    expires_us BIGINT NOT NULL,
    last_poll_us BIGINT,
    status TEXT NOT NULL,
    user_id TEXT,
    session_sha256 TEXT,
    granted_scope TEXT,
    nonce TEXT,
    auth_time_us BIGINT,
    family_id TEXT,
    PRIMARY KEY (tenant, device_code_sha256)
);
CREATE UNIQUE INDEX oidc_device_authorizations_user_code ON oidc_device_authorizations (tenant, user_code_sha256);
CREATE INDEX oidc_device_authorizations_expiry ON oidc_device_authorizations (expires_us);
