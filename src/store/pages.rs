//! One page of a filtered, sorted list of users or groups, and the total number of matches.

use sqlx::any::AnyRow;
// Dynamic SQL here is assembled only from constant fragments and numbered placeholders;
// values are always bound, hence `AssertSqlSafe`.
use sqlx::{AssertSqlSafe, Row};

use super::{Predicate, Store, StoreError};

/// One page of a list.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// Matches in total.
    pub total: i64,
    /// The requested slice, in stable order (creation time, then id).
    pub items: Vec<T>,
}

/// Which page of which list: the rows of `table` of `tenant` matching `filter`.
pub(super) struct PageQuery<'a> {
    /// The table.
    pub table: &'static str,
    /// The columns read of each row.
    pub columns: &'static str,
    /// The tenant's key.
    pub tenant: &'a str,
    /// The SCIM filter.
    pub filter: &'a Predicate,
    /// A stable `ORDER BY` list from [`order_by`](super::predicate::order_by), ending in
    /// creation time and id.
    pub order: &'a str,
    /// The 1-based index of the first row (SCIM `startIndex`).
    pub start_index: i64,
    /// The most rows returned.
    pub count: i64,
}

impl Store {
    /// The total number of rows matching `query`, and the requested page of them. A deep page
    /// (a high `startIndex`) is chosen on the ordering index alone and only its rows are read
    /// in full.
    pub(super) async fn page(
        &self,
        query: PageQuery<'_>,
    ) -> Result<(i64, Vec<AnyRow>), StoreError> {
        let PageQuery {
            table,
            columns,
            tenant,
            filter,
            order,
            start_index,
            count,
        } = query;
        let (clause, binds) = super::predicate::to_sql(filter, 1);
        let count_matching = || async {
            let total_sql =
                format!("SELECT COUNT(*) AS n FROM {table} WHERE tenant = $1 AND ({clause})");
            let mut q = sqlx::query(AssertSqlSafe(total_sql)).bind(tenant);
            for b in &binds {
                q = b.bind(q);
            }
            Ok::<i64, StoreError>(q.fetch_one(&self.pool).await?.try_get("n")?)
        };
        if count <= 0 {
            return Ok((count_matching().await?, Vec::new()));
        }
        let offset = (start_index - 1).max(0);
        let n = binds.len() + 2;
        let bound = |sql: String| {
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(tenant.to_owned());
            for b in &binds {
                q = b.bind(q);
            }
            q
        };
        if offset == 0 {
            let sql = format!(
                "SELECT {columns} FROM {table} WHERE tenant = $1 AND ({clause}) ORDER BY {order} LIMIT ${n}"
            );
            let rows = bound(sql).bind(count).fetch_all(&self.pool).await?;
            // A first page that is not full holds every match: no count needed (a lookup by
            // userName or externalId is one round trip).
            let total = if (rows.len() as i64) < count {
                rows.len() as i64
            } else {
                count_matching().await?
            };
            return Ok((total, rows));
        }
        // A deep page: its IDs from the ordering index alone (skipping index entries, not
        // rows), then those rows by primary key. Two statements rather than a join, so that
        // no planner estimate (PostgreSQL's statistics lag a bulk provisioning) can turn the
        // lookup into a scan of the tenant per row. The count and the skip each walk the
        // matches, so they run at once on two connections rather than one after the other.
        let sql = format!(
            "SELECT id FROM {table} WHERE tenant = $1 AND ({clause}) ORDER BY {order} LIMIT ${n} OFFSET ${}",
            n + 1
        );
        let page_ids = async {
            bound(sql)
                .bind(count)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("id"))
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::from)
        };
        let (total, ids) = tokio::try_join!(count_matching(), page_ids)?;
        if offset >= total {
            return Ok((total, Vec::new()));
        }
        if ids.is_empty() {
            return Ok((total, Vec::new()));
        }
        let placeholders: Vec<String> = (2..ids.len() + 2).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {columns} FROM {table} WHERE tenant = $1 AND id IN ({})",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(tenant);
        for id in &ids {
            q = q.bind(id);
        }
        let mut rows = q.fetch_all(&self.pool).await?;
        let position: std::collections::HashMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        rows.sort_by_key(|r| {
            r.try_get::<String, _>("id")
                .ok()
                .and_then(|id| position.get(id.as_str()).copied())
                .unwrap_or(usize::MAX)
        });
        Ok((total, rows))
    }
}
