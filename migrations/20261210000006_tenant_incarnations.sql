-- Which incarnation of an IdentityProvider (its metadata.uid) a tenant's rows belong to. A
-- tenant ("namespace/name") is bound to one UID; when an IdentityProvider of another UID is
-- served under the same name, the old rows are purged first.
CREATE TABLE sso_tenants (
    tenant TEXT NOT NULL PRIMARY KEY,
    uid TEXT NOT NULL,
    bound_us BIGINT NOT NULL
);
-- Tenants stored before this migration: their UID is not known (empty) until the server sees
-- their IdentityProvider (whose rows they then are) or finds it deleted (and purges them).
INSERT INTO sso_tenants (tenant, uid, bound_us)
SELECT tenant, '', 0 FROM (
    SELECT tenant FROM scim_users
    UNION SELECT tenant FROM scim_groups
    UNION SELECT tenant FROM sso_sessions
) AS stored;
-- UIDs of IdentityProviders whose data was purged: a UID never comes back, so a server that
-- still sees the configuration of one (a stale cache) never binds its tenant to it again.
CREATE TABLE sso_retired_incarnations (
    uid TEXT NOT NULL PRIMARY KEY,
    tenant TEXT NOT NULL,
    retired_us BIGINT NOT NULL
);
