//! Sign-in groups: groups that sign-in creates from the IdP's group claims, and whose
//! memberships it makes equal to the claims at every sign-in. Memberships in SCIM groups are
//! the IdP's SCIM client's, and left alone.

use jiff::Timestamp;
use sqlx::Row;

use super::health::Access;
use super::{GroupInput, Store, StoreError, micros};
use crate::tenant::TenantKey;

impl Store {
    /// Makes the user's memberships in sign-in groups (groups not managed by SCIM) exactly
    /// `names`, creating missing sign-in groups. Memberships in SCIM groups are left alone:
    /// the IdP's SCIM client owns those.
    pub async fn set_sign_in_groups(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        user_id: &str,
        names: &[String],
    ) -> Result<(), StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            // The usual case, a returning user whose groups did not change, is one read: the
            // names of the user's sign-in groups (unique per tenant, ignoring case).
            let mut seen = std::collections::HashSet::new();
            let unique: Vec<&String> = names
                .iter()
                .filter(|n| seen.insert(crate::case::fold(n)))
                .collect();
            let current_names: std::collections::HashSet<String> =
                Self::sign_in_memberships(&self.pool, tenant, user_id)
                    .await?
                    .into_iter()
                    .map(|(_, name)| name)
                    .collect();
            if current_names == seen {
                return Ok(());
            }
            let mut wanted: Vec<String> = Vec::new();
            for name in unique {
                wanted.push(self.sign_in_group(tenant, name).await?);
            }
            let now = micros(Timestamp::now());
            let mut tx = self.pool.begin().await?;
            // Write first: it takes SQLite's write lock (a read-then-write transaction would fail
            // with SQLITE_BUSY when another writer went first) and locks the user's row on
            // PostgreSQL, so concurrent sign-ins of one user apply one after the other.
            sqlx::query("UPDATE scim_users SET version = version WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            let current: Vec<String> = Self::sign_in_memberships(&mut *tx, tenant, user_id)
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            for gone in current.iter().filter(|g| !wanted.contains(g)) {
                sqlx::query(
                    "DELETE FROM scim_memberships WHERE tenant = $1 AND group_id = $2 AND user_id = $3",
                )
                .bind(tenant)
                .bind(gone)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                Self::touch_group(&mut tx, tenant, gone, now).await?;
            }
            for new in wanted.iter().filter(|g| !current.contains(g)) {
                Self::insert_members(
                    &mut tx,
                    tenant,
                    new,
                    std::slice::from_ref(&user_id.to_owned()),
                )
                .await?;
                Self::touch_group(&mut tx, tenant, new, now).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// The sign-in (not SCIM) groups `user_id` is a member of: (ID, lower-cased name).
    async fn sign_in_memberships<'e, E>(
        executor: E,
        tenant: &str,
        user_id: &str,
    ) -> Result<Vec<(String, String)>, StoreError>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        sqlx::query(
            "SELECT m.group_id AS group_id, g.display_name_lower AS name FROM scim_memberships m \
             JOIN scim_groups g ON g.tenant = m.tenant AND g.id = m.group_id \
             WHERE m.tenant = $1 AND m.user_id = $2 AND g.scim_managed = 0",
        )
        .bind(tenant)
        .bind(user_id)
        .fetch_all(executor)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("group_id")?, r.try_get("name")?)))
        .collect()
    }

    async fn touch_group(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: &str,
        id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE scim_groups SET version = version + 1, modified_us = $3 WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The ID of the sign-in group called `name` (ignoring case), created when missing.
    async fn sign_in_group(&self, tenant: &str, name: &str) -> Result<String, StoreError> {
        let find = || async {
            Ok::<_, StoreError>(
                sqlx::query("SELECT id FROM scim_groups WHERE tenant = $1 AND display_name_lower = $2 AND scim_managed = 0")
                    .bind(tenant)
                    .bind(crate::case::fold(name))
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| r.try_get::<String, _>("id"))
                    .transpose()?,
            )
        };
        if let Some(id) = find().await? {
            return Ok(id);
        }
        let input = GroupInput {
            display_name: name.to_owned(),
            external_id: None,
            resource: serde_json::json!({}),
            scim_managed: false,
        };
        match self.create_group(tenant, input, &[]).await {
            Ok(g) => Ok(g.id),
            // Another sign-in created it at the same moment.
            Err(StoreError::Database(e))
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                find().await?.ok_or(StoreError::NotFound)
            }
            Err(e) => Err(e),
        }
    }
}
