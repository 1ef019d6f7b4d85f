//! Sessions: started at sign-in, read on every forward-auth request, extended and ended. The
//! session ID is a secret that only the sealed cookie holds; the store keeps its SHA-256.
//! Expired sessions go with [`Store::purge_expired`]; Single Logout's view of sessions is in
//! `single_logout`.

use jiff::Timestamp;
// Dynamic SQL here is assembled only from constant fragments and numbered placeholders;
// values are always bound, hence `AssertSqlSafe`.
use sqlx::{AssertSqlSafe, Row};

use super::health::Access;
use super::{Store, StoreError, User, from_micros, micros, session_hash};
use crate::tenant::TenantKey;

impl Store {
    /// Starts a session of `user_id` until `expires`; returns the session ID (a secret: it
    /// goes only into the sealed cookie; the store keeps its SHA-256).
    pub async fn create_session(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        user_id: &str,
        expires: Timestamp,
    ) -> Result<String, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            let mut raw = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
            let sid = hex::encode(raw);
            sqlx::query("INSERT INTO sso_sessions (tenant, id_sha256, user_id, created_us, expires_us) VALUES ($1, $2, $3, $4, $5)")
                .bind(tenant)
                .bind(session_hash(&sid))
                .bind(user_id)
                .bind(micros(Timestamp::now()))
                .bind(micros(expires))
                .execute(&self.pool)
                .await?;
            Ok(sid)
        })
        .await
    }

    /// The user of a live session, when the session ends, and the display names of the user's
    /// groups (sorted, without duplicates), in one round trip: the forward-auth hot path.
    /// `None` when the session is unknown, ended, or its user was deleted.
    pub async fn session(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        sid: &str,
    ) -> Result<Option<(User, Timestamp, Vec<String>)>, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Read, async move {
            let columns: Vec<String> = Self::USER_COLUMNS
                .split(", ")
                .map(|c| format!("u.{c} AS {c}"))
                .collect();
            let sql = format!(
                "SELECT {}, s.expires_us AS session_expires_us, g.display_name AS group_name \
                 FROM sso_sessions s JOIN scim_users u ON u.tenant = s.tenant AND u.id = s.user_id \
                 LEFT JOIN scim_memberships m ON m.tenant = u.tenant AND m.user_id = u.id \
                 LEFT JOIN scim_groups g ON g.tenant = m.tenant AND g.id = m.group_id \
                 WHERE s.tenant = $1 AND s.id_sha256 = $2 AND s.expires_us > $3",
                columns.join(", ")
            );
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(tenant)
                .bind(session_hash(sid))
                .bind(micros(Timestamp::now()))
                .fetch_all(&self.pool)
                .await?;
            let Some(first) = rows.first() else {
                return Ok(None);
            };
            let user = Self::user_from_row(first)?;
            let expires = from_micros(first.try_get("session_expires_us")?);
            let mut groups: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<Option<String>, _>("group_name"))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .flatten()
                .collect();
            groups.sort();
            groups.dedup();
            Ok(Some((user, expires, groups)))
        })
        .await
    }

    /// Moves the end of a session to `expires`.
    pub async fn extend_session(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        sid: &str,
        expires: Timestamp,
    ) -> Result<(), StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            // Never revives an ended session, and never past the longest session from its start.
            let longest = crate::session::LONGEST_SESSION.as_micros() as i64;
            sqlx::query(
                "UPDATE sso_sessions SET expires_us = CASE WHEN $3 < created_us + $5 THEN $3 ELSE created_us + $5 END \
                 WHERE tenant = $1 AND id_sha256 = $2 AND expires_us > $4",
            )
            .bind(tenant)
            .bind(session_hash(sid))
            .bind(micros(expires))
            .bind(micros(Timestamp::now()))
            .bind(longest)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    /// Ends a session (sign-out) and every OIDC grant made in it, so that no refresh token
    /// outlives the sign-out; false when there was no session.
    pub async fn delete_session(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        sid: &str,
    ) -> Result<bool, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            let hash = session_hash(sid);
            sqlx::query(
                "UPDATE oidc_families SET revoked_us = $3 \
                 WHERE tenant = $1 AND session_sha256 = $2 AND revoked_us IS NULL",
            )
            .bind(tenant)
            .bind(&hash)
            .bind(micros(Timestamp::now()))
            .execute(&self.pool)
            .await?;
            Ok(
                sqlx::query("DELETE FROM sso_sessions WHERE tenant = $1 AND id_sha256 = $2")
                    .bind(tenant)
                    .bind(&hash)
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    > 0,
            )
        })
        .await
    }

    /// When a live session started (its sign-in: an ID token's `auth_time`); `None` when the
    /// session is unknown or ended.
    pub async fn session_started(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        sid: &str,
    ) -> Result<Option<Timestamp>, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Read, async move {
            let row = sqlx::query(
                "SELECT created_us FROM sso_sessions WHERE tenant = $1 AND id_sha256 = $2 AND expires_us > $3",
            )
            .bind(tenant)
            .bind(session_hash(sid))
            .bind(micros(Timestamp::now()))
            .fetch_optional(&self.pool)
            .await?;
            Ok(match row {
                Some(r) => Some(from_micros(r.try_get("created_us")?)),
                None => None,
            })
        })
        .await
    }
}
