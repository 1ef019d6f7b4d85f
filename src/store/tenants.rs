//! Tenants and their incarnations: a tenant (`namespace/name`) belongs to one IdentityProvider
//! UID (`metadata.uid`). An IdentityProvider deleted and re-created under the same name has
//! another UID: its predecessor's users, groups, sessions, replay cache and OpenID Provider
//! state (codes, grant families, refresh tokens) are purged before anything of the new one is
//! stored, and a deleted IdentityProvider's tenant is purged.

use jiff::Timestamp;
use sqlx::{AssertSqlSafe, Row};

use super::health::Access;
use super::{Store, StoreError, micros};
use crate::tenant::TenantKey;

/// The tables holding a tenant's data, as purged: memberships before the groups and users
/// they join. The OpenID Provider's rows are purged with the rest, but not counted in
/// [`Purged`].
const TENANT_TABLES: [&str; 10] = [
    "scim_memberships",
    "scim_user_emails",
    "scim_groups",
    "scim_users",
    "sso_sessions",
    "saml_replay_cache",
    "oidc_authorization_codes",
    "oidc_refresh_tokens",
    "oidc_families",
    "oidc_device_authorizations",
];

/// What a purge removed, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Users (SCIM and just-in-time).
    pub users: u64,
    /// Groups (SCIM and sign-in).
    pub groups: u64,
    /// Group memberships.
    pub memberships: u64,
    /// Sessions.
    pub sessions: u64,
    /// Consumed assertion and request IDs.
    pub replay_cache: u64,
}

/// What binding a tenant to an IdentityProvider UID did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    /// The tenant already belonged to this UID.
    Unchanged,
    /// The first UID seen for the tenant: rows stored before UIDs were recorded (by a release
    /// before this one) belong to it.
    Adopted,
    /// The tenant belonged to another UID (an IdentityProvider since deleted): its rows were
    /// purged, and that UID is retired.
    Replaced {
        /// The UID the rows belonged to.
        previous_uid: String,
        /// What was purged.
        purged: Purged,
    },
    /// The UID is retired (its IdentityProvider was deleted and its data purged): a stale
    /// configuration, never bound again.
    Retired,
}

/// A tenant the store holds something of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTenant {
    /// `namespace/name`.
    pub tenant: String,
    /// The UID its rows belong to; none for rows stored by a release before UIDs were
    /// recorded that no served IdentityProvider has adopted yet.
    pub uid: Option<String>,
}

impl Store {
    /// Binds `tenant` to the IdentityProvider UID `uid` before it is served: the first UID
    /// seen adopts the tenant's rows; another UID than the bound one purges them first. Safe
    /// to run from several replicas at once: one of them purges, the others see it done.
    pub async fn bind_tenant(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        uid: &str,
    ) -> Result<Binding, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            // The usual case, an incarnation bound already, is one read.
            let bound: Option<String> =
                sqlx::query("SELECT uid FROM sso_tenants WHERE tenant = $1")
                    .bind(tenant)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| r.try_get("uid"))
                    .transpose()?;
            if bound.as_deref() == Some(uid) {
                return Ok(Binding::Unchanged);
            }
            let now = micros(Timestamp::now());
            let mut tx = self.pool.begin().await?;
            // Write first: takes SQLite's write lock, and the tenant's row lock on PostgreSQL,
            // so that concurrent binders of one tenant go one after the other.
            let inserted = sqlx::query(
                "INSERT INTO sso_tenants (tenant, uid, bound_us) VALUES ($1, $2, $3) ON CONFLICT (tenant) DO NOTHING",
            )
            .bind(tenant)
            .bind(uid)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            sqlx::query("UPDATE sso_tenants SET bound_us = bound_us WHERE tenant = $1")
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
            let retired = sqlx::query("SELECT uid FROM sso_retired_incarnations WHERE uid = $1")
                .bind(uid)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if retired {
                tx.rollback().await?;
                return Ok(Binding::Retired);
            }
            if inserted {
                tx.commit().await?;
                return Ok(Binding::Adopted);
            }
            let previous_uid: String = sqlx::query("SELECT uid FROM sso_tenants WHERE tenant = $1")
                .bind(tenant)
                .fetch_one(&mut *tx)
                .await?
                .try_get("uid")?;
            if previous_uid == uid {
                tx.commit().await?;
                return Ok(Binding::Unchanged);
            }
            if previous_uid.is_empty() {
                Self::rebind(&mut tx, tenant, uid, now).await?;
                tx.commit().await?;
                return Ok(Binding::Adopted);
            }
            let purged = Self::purge_rows(&mut tx, tenant).await?;
            Self::retire(&mut tx, tenant, &previous_uid, now).await?;
            Self::rebind(&mut tx, tenant, uid, now).await?;
            tx.commit().await?;
            Ok(Binding::Replaced {
                previous_uid,
                purged,
            })
        })
        .await
    }

    /// Purges `tenant`, whose IdentityProvider of UID `uid` (none: rows stored by a release
    /// before UIDs were recorded) is gone for good, and retires the UID. Nothing happens, and
    /// `None` is returned, when the tenant is not bound to `uid` (another incarnation took it,
    /// or it holds nothing).
    pub async fn purge_tenant(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        uid: Option<&str>,
    ) -> Result<Option<Purged>, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            let now = micros(Timestamp::now());
            let mut tx = self.pool.begin().await?;
            // Write first (locks, as in bind_tenant), then look.
            sqlx::query("UPDATE sso_tenants SET bound_us = bound_us WHERE tenant = $1")
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
            let bound: Option<String> =
                sqlx::query("SELECT uid FROM sso_tenants WHERE tenant = $1")
                    .bind(tenant)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|r| r.try_get("uid"))
                    .transpose()?;
            if bound.is_none() || bound.as_deref() != Some(uid.unwrap_or("")) {
                tx.rollback().await?;
                return Ok(None);
            }
            let purged = Self::purge_rows(&mut tx, tenant).await?;
            if let Some(uid) = uid {
                Self::retire(&mut tx, tenant, uid, now).await?;
            }
            sqlx::query("DELETE FROM sso_tenants WHERE tenant = $1")
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(purged))
        })
        .await
    }

    /// Every tenant the store holds, with the UID it is bound to.
    pub async fn stored_tenants(&self) -> Result<Vec<StoredTenant>, StoreError> {
        self.guarded(Access::Read, async move {
            sqlx::query("SELECT tenant, uid FROM sso_tenants ORDER BY tenant")
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| {
                    let uid: String = r.try_get("uid")?;
                    Ok(StoredTenant {
                        tenant: r.try_get("tenant")?,
                        uid: (!uid.is_empty()).then_some(uid),
                    })
                })
                .collect()
        })
        .await
    }

    /// Deletes every row of `tenant` in `tx`; returns what went.
    pub(super) async fn purge_rows(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: &str,
    ) -> Result<Purged, StoreError> {
        let mut purged = Purged::default();
        for table in TENANT_TABLES {
            let n = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE tenant = $1"
            )))
            .bind(tenant)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            match table {
                "scim_memberships" => purged.memberships = n,
                "scim_groups" => purged.groups = n,
                "scim_users" => purged.users = n,
                "sso_sessions" => purged.sessions = n,
                "saml_replay_cache" => purged.replay_cache = n,
                _ => {}
            }
        }
        Ok(purged)
    }

    /// Records that `tenant` now belongs to IdentityProvider UID `uid`.
    async fn rebind(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: &str,
        uid: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE sso_tenants SET uid = $2, bound_us = $3 WHERE tenant = $1")
            .bind(tenant)
            .bind(uid)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn retire(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: &str,
        uid: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sso_retired_incarnations (uid, tenant, retired_us) VALUES ($1, $2, $3) ON CONFLICT (uid) DO NOTHING",
        )
        .bind(uid)
        .bind(tenant)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
