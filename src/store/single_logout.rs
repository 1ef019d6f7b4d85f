//! What SAML Single Logout needs from the store: sessions that remember the IdP's NameID and
//! SessionIndex, and ending every session of one NameID (or one SessionIndex of it) at once,
//! for every server replica.

use jiff::Timestamp;

use super::health::Access;
use super::{Store, StoreError, micros, session_hash};
use crate::tenant::TenantKey;

/// Whom the IdP signed in, as a session keeps it for Single Logout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionSubject<'a> {
    /// The NameID value, exactly as the assertion carried it.
    pub name_id: &'a str,
    /// The SessionIndex of the assertion's AuthnStatement, if the IdP sent one.
    pub session_index: Option<&'a str>,
}

/// The SHA-256 of a NameID as stored: the store never keeps the identifier itself for this.
fn name_id_hash(name_id: &str) -> String {
    session_hash(name_id)
}

impl Store {
    /// Starts a session of `user_id` until `expires` that remembers `subject` for Single
    /// Logout; returns the session ID, as [`Store::create_session`].
    pub async fn create_session_of(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        user_id: &str,
        expires: Timestamp,
        subject: Option<SessionSubject<'_>>,
    ) -> Result<String, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            let mut raw = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
            let sid = hex::encode(raw);
            sqlx::query(
                "INSERT INTO sso_sessions (tenant, id_sha256, user_id, created_us, expires_us, name_id_sha256, session_index) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tenant)
            .bind(session_hash(&sid))
            .bind(user_id)
            .bind(micros(Timestamp::now()))
            .bind(micros(expires))
            .bind(subject.map(|s| name_id_hash(s.name_id)))
            .bind(subject.and_then(|s| s.session_index))
            .execute(&self.pool)
            .await?;
            Ok(sid)
        })
        .await
    }

    /// Ends the sessions of `name_id` (only those of `session_index` when given), as an
    /// IdP's LogoutRequest asks; returns how many ended.
    pub async fn end_sessions_of(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        name_id: &str,
        session_index: Option<&str>,
    ) -> Result<u64, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            // The OIDC grants made in those sessions end with them.
            let sessions = match session_index {
                Some(_) => "SELECT id_sha256 FROM sso_sessions WHERE tenant = $1 AND name_id_sha256 = $2 AND session_index = $4",
                None => "SELECT id_sha256 FROM sso_sessions WHERE tenant = $1 AND name_id_sha256 = $2",
            };
            let revoke = format!(
                "UPDATE oidc_families SET revoked_us = $3 WHERE tenant = $1 AND revoked_us IS NULL AND session_sha256 IN ({sessions})"
            );
            let mut revoke = sqlx::query(sqlx::AssertSqlSafe(revoke))
                .bind(tenant)
                .bind(name_id_hash(name_id))
                .bind(micros(jiff::Timestamp::now()));
            if let Some(index) = session_index {
                revoke = revoke.bind(index);
            }
            revoke.execute(&self.pool).await?;
            let query = match session_index {
                Some(index) => sqlx::query(
                    "DELETE FROM sso_sessions WHERE tenant = $1 AND name_id_sha256 = $2 AND session_index = $3",
                )
                .bind(tenant)
                .bind(name_id_hash(name_id))
                .bind(index),
                None => sqlx::query(
                    "DELETE FROM sso_sessions WHERE tenant = $1 AND name_id_sha256 = $2",
                )
                .bind(tenant)
                .bind(name_id_hash(name_id)),
            };
            Ok(query.execute(&self.pool).await?.rows_affected())
        })
        .await
    }
}
