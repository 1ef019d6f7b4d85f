//! One-time work that a migration leaves to the server because SQL alone cannot do it: a
//! migration inserts a row into `store_pending_tasks`, and the first server to start after it
//! does the work and deletes the row.

use sqlx::{AnyPool, Row};

use super::{Store, StoreError};

/// Re-derives the indexed email addresses from each user's resource with the current fold
/// ([`crate::case::fold`]): the index keeps only the folded address, so it cannot be re-folded
/// in SQL.
const REFOLD_EMAILS: &str = "refold-emails";

/// Users read per transaction while re-deriving email addresses.
const BATCH: i64 = 500;

impl Store {
    /// Runs the pending one-time tasks (idempotent: several replicas may start at once).
    pub(super) async fn run_pending_tasks(pool: &AnyPool) -> Result<(), StoreError> {
        let tasks: Vec<String> = sqlx::query("SELECT task FROM store_pending_tasks")
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| r.try_get("task"))
            .collect::<Result<_, _>>()?;
        for task in tasks {
            match task.as_str() {
                REFOLD_EMAILS => Self::refold_emails(pool).await?,
                // A task of a newer release: left for it.
                _ => continue,
            }
            sqlx::query("DELETE FROM store_pending_tasks WHERE task = $1")
                .bind(&task)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    async fn refold_emails(pool: &AnyPool) -> Result<(), StoreError> {
        let (mut tenant, mut id) = (String::new(), String::new());
        loop {
            let rows = sqlx::query(
                "SELECT tenant, id, resource FROM scim_users WHERE (tenant, id) > ($1, $2) \
                 ORDER BY tenant, id LIMIT $3",
            )
            .bind(&tenant)
            .bind(&id)
            .bind(BATCH)
            .fetch_all(pool)
            .await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            (tenant, id) = (last.try_get("tenant")?, last.try_get("id")?);
            let mut tx = pool.begin().await?;
            for row in &rows {
                let text: String = row.try_get("resource")?;
                // ASCII text (no escapes either) folds the same both ways.
                if text.is_ascii() && !text.contains("\\u") {
                    continue;
                }
                let resource: serde_json::Value = serde_json::from_str(&text)?;
                let (t, i): (String, String) = (row.try_get("tenant")?, row.try_get("id")?);
                Self::write_emails(&mut tx, &t, &i, &resource).await?;
            }
            tx.commit().await?;
        }
    }
}
