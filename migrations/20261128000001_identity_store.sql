-- The identity store. Portable between SQLite and PostgreSQL: times are Unix microseconds,
-- booleans are 0/1, SCIM resources are JSON text. Every row belongs to one tenant (one
-- IdentityProvider, "namespace/name"); every lookup is scoped by tenant.
CREATE TABLE scim_users (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    user_name_lower TEXT NOT NULL,
    external_id TEXT,
    active BIGINT NOT NULL,
    resource TEXT NOT NULL,
    password_hash TEXT,
    scim_managed BIGINT NOT NULL,
    version BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    modified_us BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE UNIQUE INDEX scim_users_user_name ON scim_users (tenant, user_name_lower);
CREATE INDEX scim_users_external_id ON scim_users (tenant, external_id);
CREATE INDEX scim_users_order ON scim_users (tenant, created_us, id);

CREATE TABLE scim_groups (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    display_name_lower TEXT NOT NULL,
    external_id TEXT,
    resource TEXT NOT NULL,
    scim_managed BIGINT NOT NULL,
    version BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    modified_us BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX scim_groups_display_name ON scim_groups (tenant, display_name_lower);
CREATE INDEX scim_groups_external_id ON scim_groups (tenant, external_id);
CREATE INDEX scim_groups_order ON scim_groups (tenant, created_us, id);

CREATE TABLE scim_memberships (
    tenant TEXT NOT NULL,
    group_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (tenant, group_id, user_id)
);
CREATE INDEX scim_memberships_user ON scim_memberships (tenant, user_id);

-- Consumed SAML assertion IDs, kept until their NotOnOrAfter plus skew.
CREATE TABLE saml_replay_cache (
    tenant TEXT NOT NULL,
    assertion_id TEXT NOT NULL,
    expires_us BIGINT NOT NULL,
    PRIMARY KEY (tenant, assertion_id)
);
CREATE INDEX saml_replay_cache_expiry ON saml_replay_cache (expires_us);

-- Per-login state (AuthnRequest IDs bound to a browser), consumed once.
CREATE TABLE saml_login_state (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    data TEXT NOT NULL,
    expires_us BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX saml_login_state_expiry ON saml_login_state (expires_us);
