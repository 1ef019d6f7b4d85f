//! Users, provisioned through SCIM or created just in time at sign-in: creating, reading,
//! replacing, deleting, listing and counting them, and the indexed copy of their email
//! addresses by which sign-in links an IdP's user to a stored one.

use jiff::Timestamp;
use sqlx::any::AnyRow;
// Dynamic SQL here is assembled only from constant fragments and numbered placeholders;
// values are always bound, hence `AssertSqlSafe`.
use sqlx::{AssertSqlSafe, Row};

use super::health::Access;
use super::pages::PageQuery;
use super::{Page, Predicate, Sort, Store, StoreError, from_micros, map_unique, micros, predicate};
use crate::domain::{User, UserInput};
use crate::tenant::TenantKey;

impl Store {
    /// Creates a user; [`StoreError::Conflict`] when the `userName` exists (case-insensitively).
    pub async fn create_user(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        input: UserInput,
    ) -> Result<User, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            let now = Timestamp::now();
            let id = uuid::Uuid::new_v4().to_string();
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO scim_users (tenant, id, user_name, user_name_lower, external_id, active, resource, scim_managed, version, created_us, modified_us) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $9)",
            )
            .bind(tenant)
            .bind(&id)
            .bind(&input.user_name)
            .bind(crate::case::fold(&input.user_name))
            .bind(input.external_id.clone())
            .bind(i64::from(input.active))
            .bind(serde_json::to_string(&input.resource)?)
            .bind(i64::from(input.scim_managed))
            .bind(micros(now))
            .execute(&mut *tx)
            .await
            .map_err(|e| map_unique(e, || format!("userName {}", input.user_name)))?;
            Self::write_emails(&mut tx, tenant, &id, &input.resource).await?;
            tx.commit().await?;
            Ok(User {
                id,
                user_name: input.user_name,
                external_id: input.external_id,
                active: input.active,
                resource: input.resource,
                scim_managed: input.scim_managed,
                version: 1,
                created: from_micros(micros(now)),
                last_modified: from_micros(micros(now)),
            })
        })
        .await
    }

    /// Replaces the indexed copy of a user's email addresses.
    pub(super) async fn write_emails(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: &str,
        user_id: &str,
        resource: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM scim_user_emails WHERE tenant = $1 AND user_id = $2")
            .bind(tenant)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        let emails = resource
            .as_object()
            .and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("emails"))
                    .map(|(_, v)| v)
            })
            .and_then(serde_json::Value::as_array);
        for (position, email) in emails.into_iter().flatten().enumerate() {
            let field = |name: &str| {
                email
                    .as_object()
                    .and_then(|o| {
                        o.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v)
                    })
                    .and_then(serde_json::Value::as_str)
                    .map(crate::case::fold)
            };
            let Some(value) = field("value") else {
                continue;
            };
            sqlx::query("INSERT INTO scim_user_emails (tenant, user_id, position, type_lower, value_lower) VALUES ($1, $2, $3, $4, $5)")
                .bind(tenant)
                .bind(user_id)
                .bind(position as i64)
                .bind(field("type"))
                .bind(value)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    pub(super) const USER_COLUMNS: &'static str = "id, user_name, external_id, active, resource, scim_managed, version, created_us, modified_us";

    pub(super) fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
        Ok(User {
            id: row.try_get("id")?,
            user_name: row.try_get("user_name")?,
            external_id: row.try_get("external_id")?,
            active: row.try_get::<i64, _>("active")? != 0,
            resource: serde_json::from_str(&row.try_get::<String, _>("resource")?)?,
            scim_managed: row.try_get::<i64, _>("scim_managed")? != 0,
            version: row.try_get("version")?,
            created: from_micros(row.try_get("created_us")?),
            last_modified: from_micros(row.try_get("modified_us")?),
        })
    }

    /// The user with `id`.
    pub async fn get_user(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        id: &str,
    ) -> Result<Option<User>, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Read, async move {
            let sql = format!(
                "SELECT {} FROM scim_users WHERE tenant = $1 AND id = $2",
                Self::USER_COLUMNS
            );
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(Self::user_from_row).transpose()
        })
        .await
    }

    /// The user whose `userName` equals `user_name`, ignoring case.
    pub async fn find_user_by_user_name(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        user_name: &str,
    ) -> Result<Option<User>, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Read, async move {
            let sql = format!(
                "SELECT {} FROM scim_users WHERE tenant = $1 AND user_name_lower = $2",
                Self::USER_COLUMNS
            );
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(tenant)
                .bind(crate::case::fold(user_name))
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(Self::user_from_row).transpose()
        })
        .await
    }

    /// Replaces a user. With `expected_version`, fails with [`StoreError::VersionMismatch`]
    /// unless the stored version is that one (optimistic concurrency; no lost updates).
    pub async fn replace_user(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        id: &str,
        expected_version: Option<i64>,
        input: UserInput,
    ) -> Result<User, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            let now = micros(Timestamp::now());
            let mut tx = self.pool.begin().await?;
            let result = sqlx::query(
                "UPDATE scim_users SET user_name = $3, user_name_lower = $4, external_id = $5, active = $6, resource = $7, \
                 version = version + 1, modified_us = $8 \
                 WHERE tenant = $1 AND id = $2 AND ($9 < 0 OR version = $9)",
            )
            .bind(tenant)
            .bind(id)
            .bind(&input.user_name)
            .bind(crate::case::fold(&input.user_name))
            .bind(input.external_id.clone())
            .bind(i64::from(input.active))
            .bind(serde_json::to_string(&input.resource)?)
            .bind(now)
            .bind(expected_version.unwrap_or(-1))
            .execute(&mut *tx)
            .await
            .map_err(|e| map_unique(e, || format!("userName {}", input.user_name)))?;
            if result.rows_affected() == 0 {
                tx.rollback().await?;
                return Err(match self.get_user(tenant, id).await? {
                    None => StoreError::NotFound,
                    Some(u) => StoreError::VersionMismatch { current: u.version },
                });
            }
            Self::write_emails(&mut tx, tenant, id, &input.resource).await?;
            tx.commit().await?;
            self.get_user(tenant, id).await?.ok_or(StoreError::NotFound)
        })
        .await
    }

    /// Deletes a user and their memberships; false when there was none.
    pub async fn delete_user(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        id: &str,
    ) -> Result<bool, StoreError> {
        self.delete_with_dependents(
            "scim_users",
            &[
                "DELETE FROM scim_user_emails WHERE tenant = $1 AND user_id = $2",
                "DELETE FROM scim_memberships WHERE tenant = $1 AND user_id = $2",
                // A deleted user's sessions end with them.
                "DELETE FROM sso_sessions WHERE tenant = $1 AND user_id = $2",
            ],
            &tenant.key(),
            id,
        )
        .await
    }

    /// Users matching `filter`, 1-based `start_index`, at most `count`.
    pub async fn list_users(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        filter: &Predicate,
        start_index: i64,
        count: i64,
    ) -> Result<Page<User>, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.search_users(tenant, filter, None, start_index, count)
            .await
    }

    /// Users matching `filter` in the order of `sort` (creation order without one), 1-based
    /// `start_index`, at most `count`.
    pub async fn search_users(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        filter: &Predicate,
        sort: Option<&Sort>,
        start_index: i64,
        count: i64,
    ) -> Result<Page<User>, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Read, async move {
            let (total, rows) = self
                .page(PageQuery {
                    table: "scim_users",
                    columns: Self::USER_COLUMNS,
                    tenant,
                    filter,
                    order: &predicate::order_by(sort),
                    start_index,
                    count,
                })
                .await?;
            Ok(Page {
                total,
                items: rows
                    .iter()
                    .map(Self::user_from_row)
                    .collect::<Result<_, _>>()?,
            })
        })
        .await
    }

    /// Users with the work email `email`, ignoring case; at most `limit`.
    pub async fn find_users_by_email(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        email: &str,
        limit: i64,
    ) -> Result<Vec<User>, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Read, async move {
            let sql = format!(
                "SELECT {} FROM scim_users WHERE tenant = $1 AND id IN \
                 (SELECT user_id FROM scim_user_emails WHERE tenant = $1 AND value_lower = $2 AND type_lower = 'work') \
                 ORDER BY created_us, id LIMIT $3",
                Self::USER_COLUMNS
            );
            sqlx::query(AssertSqlSafe(sql))
                .bind(tenant)
                .bind(crate::case::fold(email))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(Self::user_from_row)
                .collect()
        })
        .await
    }

    /// Number of users.
    pub async fn count_users(&self, tenant: &(impl TenantKey + ?Sized)) -> Result<i64, StoreError> {
        self.count_rows("scim_users", &tenant.key()).await
    }
}
