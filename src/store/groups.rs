//! Groups, SCIM groups and sign-in groups alike: creating, reading (each with its member
//! list), replacing, deleting, listing and counting them.

use std::collections::HashMap;

use jiff::Timestamp;
use sqlx::any::AnyRow;
// Dynamic SQL here is assembled only from constant fragments and numbered placeholders;
// values are always bound, hence `AssertSqlSafe`.
use sqlx::{AssertSqlSafe, Row};

use super::health::Access;
use super::pages::PageQuery;
use super::{Page, Predicate, Sort, Store, StoreError, from_micros, micros, predicate};
use crate::domain::{Group, GroupInput};
use crate::tenant::TenantKey;

impl Store {
    /// Creates a group with `members` (user IDs of the same tenant; unknown IDs are ignored).
    pub async fn create_group(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        input: GroupInput,
        members: &[String],
    ) -> Result<Group, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            let now = micros(Timestamp::now());
            let id = uuid::Uuid::new_v4().to_string();
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO scim_groups (tenant, id, display_name, display_name_lower, external_id, resource, scim_managed, version, created_us, modified_us) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)",
            )
            .bind(tenant)
            .bind(&id)
            .bind(&input.display_name)
            .bind(crate::case::fold(&input.display_name))
            .bind(input.external_id.clone())
            .bind(serde_json::to_string(&input.resource)?)
            .bind(i64::from(input.scim_managed))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Self::insert_members(&mut tx, tenant, &id, members).await?;
            tx.commit().await?;
            self.get_group(tenant, &id)
                .await?
                .ok_or(StoreError::NotFound)
        })
        .await
    }

    const GROUP_COLUMNS: &'static str =
        "id, display_name, external_id, resource, scim_managed, version, created_us, modified_us";

    /// The group in `row` with `members` (user IDs, in order).
    fn group_with_members(row: &AnyRow, members: Vec<String>) -> Result<Group, StoreError> {
        Ok(Group {
            id: row.try_get("id")?,
            display_name: row.try_get("display_name")?,
            external_id: row.try_get("external_id")?,
            resource: serde_json::from_str(&row.try_get::<String, _>("resource")?)?,
            scim_managed: row.try_get::<i64, _>("scim_managed")? != 0,
            members,
            version: row.try_get("version")?,
            created: from_micros(row.try_get("created_us")?),
            last_modified: from_micros(row.try_get("modified_us")?),
        })
    }

    /// The groups in `rows`, in order, with their members read in one query for all of them.
    async fn groups_from_rows(
        &self,
        tenant: &str,
        rows: &[AnyRow],
    ) -> Result<Vec<Group>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids = rows
            .iter()
            .map(|r| r.try_get::<String, _>("id"))
            .collect::<Result<Vec<_>, _>>()?;
        let placeholders: Vec<String> = (2..ids.len() + 2).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT group_id, user_id FROM scim_memberships WHERE tenant = $1 AND group_id IN ({}) ORDER BY group_id, user_id",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(tenant);
        for id in &ids {
            q = q.bind(id);
        }
        let mut members: HashMap<String, Vec<String>> = HashMap::new();
        for r in q.fetch_all(&self.pool).await? {
            members
                .entry(r.try_get("group_id")?)
                .or_default()
                .push(r.try_get("user_id")?);
        }
        rows.iter()
            .zip(&ids)
            .map(|(row, id)| Self::group_with_members(row, members.remove(id).unwrap_or_default()))
            .collect()
    }

    /// The group with `id`, with its members.
    pub async fn get_group(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        id: &str,
    ) -> Result<Option<Group>, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Read, async move {
            let sql = format!(
                "SELECT {} FROM scim_groups WHERE tenant = $1 AND id = $2",
                Self::GROUP_COLUMNS
            );
            match sqlx::query(AssertSqlSafe(sql))
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
            {
                Some(row) => Ok(self.groups_from_rows(tenant, &[row]).await?.pop()),
                None => Ok(None),
            }
        })
        .await
    }

    /// Replaces a group's attributes and, when `members` is given, its whole member list.
    pub async fn replace_group(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        id: &str,
        expected_version: Option<i64>,
        input: GroupInput,
        members: Option<&[String]>,
    ) -> Result<Group, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            let now = micros(Timestamp::now());
            let mut tx = self.pool.begin().await?;
            let result = sqlx::query(
                "UPDATE scim_groups SET display_name = $3, display_name_lower = $4, external_id = $5, resource = $6, version = version + 1, modified_us = $7 \
                 WHERE tenant = $1 AND id = $2 AND ($8 < 0 OR version = $8)",
            )
            .bind(tenant)
            .bind(id)
            .bind(&input.display_name)
            .bind(crate::case::fold(&input.display_name))
            .bind(input.external_id.clone())
            .bind(serde_json::to_string(&input.resource)?)
            .bind(now)
            .bind(expected_version.unwrap_or(-1))
            .execute(&mut *tx)
            .await?;
            if result.rows_affected() == 0 {
                tx.rollback().await?;
                return Err(match self.get_group(tenant, id).await? {
                    None => StoreError::NotFound,
                    Some(g) => StoreError::VersionMismatch { current: g.version },
                });
            }
            if let Some(members) = members {
                sqlx::query("DELETE FROM scim_memberships WHERE tenant = $1 AND group_id = $2")
                    .bind(tenant)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Self::insert_members(&mut tx, tenant, id, members).await?;
            }
            tx.commit().await?;
            self.get_group(tenant, id)
                .await?
                .ok_or(StoreError::NotFound)
        })
        .await
    }

    /// Deletes a group and its memberships; false when there was none.
    pub async fn delete_group(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        id: &str,
    ) -> Result<bool, StoreError> {
        self.delete_with_dependents(
            "scim_groups",
            &["DELETE FROM scim_memberships WHERE tenant = $1 AND group_id = $2"],
            &tenant.key(),
            id,
        )
        .await
    }

    /// Groups matching `filter`, 1-based `start_index`, at most `count`.
    pub async fn list_groups(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        filter: &Predicate,
        start_index: i64,
        count: i64,
    ) -> Result<Page<Group>, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.search_groups(tenant, filter, None, start_index, count)
            .await
    }

    /// Groups matching `filter` in the order of `sort` (creation order without one), 1-based
    /// `start_index`, at most `count`.
    pub async fn search_groups(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        filter: &Predicate,
        sort: Option<&Sort>,
        start_index: i64,
        count: i64,
    ) -> Result<Page<Group>, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Read, async move {
            let (total, rows) = self
                .page(PageQuery {
                    table: "scim_groups",
                    columns: Self::GROUP_COLUMNS,
                    tenant,
                    filter,
                    order: &predicate::order_by(sort),
                    start_index,
                    count,
                })
                .await?;
            let items = self.groups_from_rows(tenant, &rows).await?;
            Ok(Page { total, items })
        })
        .await
    }

    /// Number of groups.
    pub async fn count_groups(
        &self,
        tenant: &(impl TenantKey + ?Sized),
    ) -> Result<i64, StoreError> {
        self.count_rows("scim_groups", &tenant.key()).await
    }
}
