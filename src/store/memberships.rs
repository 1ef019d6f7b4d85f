//! Memberships, which users belong to which groups: adding and removing members without
//! rewriting the group, checking that member IDs name users, and the groups of users.

use jiff::Timestamp;
// Dynamic SQL here is assembled only from constant fragments and numbered placeholders;
// values are always bound, hence `AssertSqlSafe`.
use sqlx::{AssertSqlSafe, Row};

use super::health::Access;
use super::{Group, Store, StoreError, micros};
use crate::tenant::TenantKey;

impl Store {
    pub(super) async fn insert_members(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: &str,
        group_id: &str,
        members: &[String],
    ) -> Result<(), StoreError> {
        for user_id in members {
            // Only users of the same tenant can be members; duplicates are ignored.
            sqlx::query(
                "INSERT INTO scim_memberships (tenant, group_id, user_id) \
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM scim_users WHERE tenant = $1 AND id = $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(group_id)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Adds and removes members in one transaction, bumping the group's version.
    pub async fn change_members(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<Group, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            let now = micros(Timestamp::now());
            let mut tx = self.pool.begin().await?;
            let result = sqlx::query("UPDATE scim_groups SET version = version + 1, modified_us = $3 WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if result.rows_affected() == 0 {
                tx.rollback().await?;
                return Err(StoreError::NotFound);
            }
            for user_id in remove {
                sqlx::query(
                    "DELETE FROM scim_memberships WHERE tenant = $1 AND group_id = $2 AND user_id = $3",
                )
                .bind(tenant)
                .bind(id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            }
            Self::insert_members(&mut tx, tenant, id, add).await?;
            tx.commit().await?;
            self.get_group(tenant, id)
                .await?
                .ok_or(StoreError::NotFound)
        })
        .await
    }

    /// The IDs among `ids` that name no user of `tenant` (in the order given, without
    /// repeats): what a group's member list must not contain.
    pub async fn missing_users(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        let mut seen = std::collections::HashSet::new();
        let wanted: Vec<&String> = ids.iter().filter(|id| seen.insert(id.as_str())).collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        self.guarded(Access::Read, async move {
            let mut found = std::collections::HashSet::new();
            for chunk in wanted.chunks(500) {
                let placeholders: Vec<String> =
                    (2..chunk.len() + 2).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "SELECT id FROM scim_users WHERE tenant = $1 AND id IN ({})",
                    placeholders.join(", ")
                );
                let mut q = sqlx::query(AssertSqlSafe(sql)).bind(tenant);
                for id in chunk {
                    q = q.bind(id.as_str());
                }
                for row in q.fetch_all(&self.pool).await? {
                    found.insert(row.try_get::<String, _>("id")?);
                }
            }
            Ok(wanted
                .iter()
                .filter(|id| !found.contains(id.as_str()))
                .map(|id| (*id).clone())
                .collect())
        })
        .await
    }

    /// IDs of the groups of each of `user_ids`, in one query (for list pages).
    pub async fn groups_of_users(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        user_ids: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<String>>, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Read, async move {
            let mut out: std::collections::HashMap<String, Vec<String>> =
                std::collections::HashMap::new();
            if user_ids.is_empty() {
                return Ok(out);
            }
            let placeholders: Vec<String> =
                (0..user_ids.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT user_id, group_id FROM scim_memberships WHERE tenant = $1 AND user_id IN ({}) ORDER BY group_id",
                placeholders.join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(tenant);
            for id in user_ids {
                q = q.bind(id.clone());
            }
            for row in q.fetch_all(&self.pool).await? {
                out.entry(row.try_get("user_id")?)
                    .or_default()
                    .push(row.try_get("group_id")?);
            }
            Ok(out)
        })
        .await
    }

    /// IDs of the groups a user belongs to.
    pub async fn groups_of_user(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        user_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Read, async move {
            let rows = sqlx::query("SELECT group_id FROM scim_memberships WHERE tenant = $1 AND user_id = $2 ORDER BY group_id")
                .bind(tenant)
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
            Ok(rows
                .iter()
                .map(|r| r.try_get::<String, _>("group_id"))
                .collect::<Result<_, _>>()?)
        })
        .await
    }
}
