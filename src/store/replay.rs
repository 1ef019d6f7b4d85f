//! The SAML replay cache: assertion IDs already consumed, kept until they expire and shared
//! by every server replica using the database. Expired entries go with
//! [`Store::purge_expired`].

use jiff::Timestamp;

use super::health::Access;
use super::{Store, StoreError, micros};
use crate::tenant::TenantKey;

impl Store {
    /// Records a consumed assertion ID until `expires`; false when it was already recorded
    /// (a replay). Shared by every server replica using this database.
    pub async fn remember_assertion(
        &self,
        tenant: &(impl TenantKey + ?Sized),
        assertion_id: &str,
        expires: Timestamp,
    ) -> Result<bool, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
        self.guarded(Access::Write, async move {
            // One statement: a new ID is inserted, an expired entry (not purged yet) is taken
            // over, a live one is left alone (zero rows: a replay).
            let result = sqlx::query(
                "INSERT INTO saml_replay_cache (tenant, assertion_id, expires_us) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant, assertion_id) DO UPDATE SET expires_us = excluded.expires_us \
                 WHERE saml_replay_cache.expires_us <= $4",
            )
            .bind(tenant)
            .bind(assertion_id)
            .bind(micros(expires))
            .bind(micros(Timestamp::now()))
            .execute(&self.pool)
            .await?;
            Ok(result.rows_affected() == 1)
        })
        .await
    }
}
