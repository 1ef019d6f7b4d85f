//! The identity store: users, groups, memberships, the SAML replay cache
//! (consumed assertion and request IDs) and sessions, scoped to one tenant (an
//! IdentityProvider, `namespace/name`, bound to the IdentityProvider's UID: see
//! [`Store::bind_tenant`]).
//!
//! One implementation on top of sqlx's `Any` driver serves both backends with the same SQL:
//! SQLite (a single file in WAL mode, the embedded default for one server replica) and
//! PostgreSQL (for several replicas). Migrations run at start-up.

mod health;
mod pending_tasks;
mod predicate;
mod single_logout;
mod tenants;

pub use predicate::{Bind, CmpOp, Column, Predicate, Sort, Value};
pub use single_logout::SessionSubject;
pub use tenants::{Binding, Purged, StoredTenant};

use std::sync::Arc;
use std::time::Duration;

use health::{Access, Health};
use jiff::Timestamp;
use sqlx::any::{AnyPoolOptions, AnyRow};
// Dynamic SQL here is assembled only from constant fragments and numbered placeholders;
// values are always bound, hence `AssertSqlSafe`.
use sqlx::{AnyPool, AssertSqlSafe, Executor, Row};

/// Which database a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported database URL: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl,
    /// A uniqueness constraint (userName) was violated.
    #[error("{0} already exists")]
    Conflict(String),
    /// The resource does not exist.
    #[error("not found")]
    NotFound,
    /// `If-Match` / expected version did not match the stored version.
    #[error("the resource was changed by someone else (version {current})")]
    VersionMismatch {
        /// The version currently stored.
        current: i64,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The database cannot be used now: it did not answer in time, or the SQLite file was
    /// deleted or replaced under the running server. Nothing was written.
    #[error("the identity store is unavailable: {0}")]
    Unavailable(String),
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored resource is not valid JSON.
    #[error("stored resource is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// A user as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// Server-assigned identifier.
    pub id: String,
    /// `userName`, exactly as sent.
    pub user_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `active`.
    pub active: bool,
    /// The SCIM resource's other attributes, exactly as received.
    pub resource: serde_json::Value,
    /// Created through SCIM (true) or just in time at sign-in (false).
    pub scim_managed: bool,
    /// Incremented on every change (the ETag).
    pub version: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Last change.
    pub last_modified: Timestamp,
}

/// The fields of a user to create or replace.
#[derive(Clone, Debug, PartialEq)]
pub struct UserInput {
    /// `userName`.
    pub user_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `active`.
    pub active: bool,
    /// Other attributes.
    pub resource: serde_json::Value,
    /// Whether SCIM manages the user.
    pub scim_managed: bool,
}

/// A group as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// Server-assigned identifier.
    pub id: String,
    /// `displayName`, exactly as sent.
    pub display_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// Other attributes.
    pub resource: serde_json::Value,
    /// Created through SCIM (true) or from SAML group sync (false).
    pub scim_managed: bool,
    /// Member user IDs, sorted.
    pub members: Vec<String>,
    /// Incremented on every change (the ETag).
    pub version: i64,
    /// Creation time.
    pub created: Timestamp,
    /// Last change.
    pub last_modified: Timestamp,
}

/// The fields of a group to create or replace.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupInput {
    /// `displayName`.
    pub display_name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// Other attributes.
    pub resource: serde_json::Value,
    /// Whether SCIM manages the group.
    pub scim_managed: bool,
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// Matches in total.
    pub total: i64,
    /// The requested slice, in stable order (creation time, then id).
    pub items: Vec<T>,
}

/// How the store uses its database.
#[derive(Clone, Debug)]
pub struct Options {
    /// The longest one store operation may take, waiting for a connection included; an
    /// operation that takes longer fails with [`StoreError::Unavailable`]. Also PostgreSQL's
    /// `statement_timeout` and SQLite's busy timeout.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
        }
    }
}

/// The identity store.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    health: Arc<Health>,
    timeout: Duration,
}

/// How long the store waits at start for a database that does not answer yet.
const STARTUP_WAIT: Duration = Duration::from_secs(30);

/// A duration as people write it (`5s`, `0.5s`).
fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

fn from_micros(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn session_hash(sid: &str) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(sid.as_bytes()))
}

fn map_unique(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
        _ => StoreError::Database(e),
    }
}

impl Store {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`) with the default [`Options`] and
    /// runs the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, &Options::default()).await
    }

    /// Connects to `url` (`sqlite://PATH` or `postgres://…`) and runs the migrations.
    pub async fn connect_with(url: &str, options: &Options) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let mut sqlite_path = None;
        if backend == Backend::Sqlite {
            // Create the database's folder, so a fresh volume needs no init step.
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let path = std::path::PathBuf::from(path.split('?').next().unwrap_or(path));
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(parent);
            }
            sqlite_path = Some(path);
        }
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            }
            _ => url.to_owned(),
        };
        let timeout = options.timeout;
        let timeout_ms = timeout.as_millis().max(1);
        let pool_options = AnyPoolOptions::new()
            // Waiting for a connection (opening one included) counts against the timeout.
            .acquire_timeout(timeout)
            // A SQLite connection is a local file that cannot go stale: pinging it before every
            // use only costs two thread hand-offs per query (the largest item in the sign-in
            // profile). A PostgreSQL connection is pinged: after a database restart, idle
            // connections are dead and are replaced instead of failing a request.
            .test_before_acquire(backend != Backend::Sqlite)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    match backend {
                        Backend::Sqlite => {
                            // WAL survives a process crash (kill -9) with every committed
                            // write; a busy timeout lets concurrent writers wait instead of
                            // failing.
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute(AssertSqlSafe(format!(
                                "PRAGMA busy_timeout = {timeout_ms}"
                            )))
                            .await?;
                        }
                        Backend::Postgres => {
                            // The server gives up on a statement the client stopped waiting
                            // for, instead of holding its locks.
                            conn.execute(AssertSqlSafe(format!(
                                "SET statement_timeout = {timeout_ms}"
                            )))
                            .await?;
                        }
                    }
                    Ok(())
                })
            });
        // Migrations may take longer than one operation: on a connection of their own,
        // without the statement timeout. At start, a database that is still starting up is
        // waited for a little longer than one operation would.
        let migrations = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(timeout.max(STARTUP_WAIT))
            .connect(&url)
            .await?;
        sqlx::migrate!("./migrations").run(&migrations).await?;
        Self::run_pending_tasks(&migrations).await?;
        migrations.close().await;
        let pool = pool_options
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .connect(&url)
            .await?;
        let health = Health::new(sqlite_path).map_err(|e| {
            StoreError::Unavailable(format!("the SQLite database file cannot be read: {e}"))
        })?;
        Ok(Self {
            pool,
            backend,
            health: Arc::new(health),
            timeout,
        })
    }

    /// `Ok` when the store can be used, else why not (for `/readyz`). Read from memory: kept
    /// current by [`Store::check_health`] and by the outcome of every operation.
    pub fn readiness(&self) -> Result<(), String> {
        self.health.readiness()
    }

    /// Checks once that the database answers (and that the SQLite file is still the one
    /// opened), within the timeout, and records the outcome for [`Store::readiness`]. Run
    /// about once a second, it also lets operations through again soon after an outage ends.
    pub async fn check_health(&self) {
        if self.health.check_file().is_err() {
            return;
        }
        let answer = tokio::time::timeout(self.timeout, self.probe()).await;
        let outcome = match answer {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(health::unreachable(&e, self.timeout)
                .unwrap_or_else(|| format!("the check query failed: {e}"))),
            Err(_) => Err(format!(
                "the database did not answer within {}",
                seconds(self.timeout)
            )),
        };
        self.health
            .record(outcome.as_ref().map(|_| ()).map_err(String::as_str));
    }

    /// One round trip that proves the store usable: `SELECT 1` on PostgreSQL; on SQLite a
    /// write transaction that is rolled back, since SQLite files that can only be read (a
    /// read-only volume or `-shm` file) still answer reads.
    async fn probe(&self) -> Result<(), sqlx::Error> {
        match self.backend {
            Backend::Postgres => sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map(|_| ()),
            Backend::Sqlite => {
                let mut conn = self.pool.acquire().await?;
                sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
                let written = sqlx::query("PRAGMA user_version = 0")
                    .execute(&mut *conn)
                    .await;
                let rolled_back = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                written?;
                rolled_back.map(|_| ())
            }
        }
    }

    /// Runs one store operation under the store's guards: refused at once while the database
    /// is known to be unusable, bounded by the timeout, a failure to reach the database
    /// recorded (and reported as [`StoreError::Unavailable`]), and a write to SQLite confirmed
    /// to have gone into the file at the database path.
    async fn guarded<T>(
        &self,
        access: Access,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.health.admit(access)?;
        let result = match tokio::time::timeout(self.timeout, work).await {
            Ok(Err(StoreError::Database(e))) => match health::unreachable(&e, self.timeout) {
                Some(reason) => {
                    self.health.record(Err(&reason));
                    Err(StoreError::Unavailable(reason))
                }
                None => Err(StoreError::Database(e)),
            },
            Ok(result) => result,
            Err(_) => {
                let reason = format!(
                    "the database did not answer within {}",
                    seconds(self.timeout)
                );
                self.health.record(Err(&reason));
                Err(StoreError::Unavailable(reason))
            }
        };
        if access == Access::Write {
            self.health.confirm_write()?;
        }
        result
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    // ---- users ----

    /// Creates a user; [`StoreError::Conflict`] when the `userName` exists (case-insensitively).
    pub async fn create_user(&self, tenant: &str, input: UserInput) -> Result<User, StoreError> {
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
    async fn write_emails(
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

    const USER_COLUMNS: &'static str = "id, user_name, external_id, active, resource, scim_managed, version, created_us, modified_us";

    fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
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
    pub async fn get_user(&self, tenant: &str, id: &str) -> Result<Option<User>, StoreError> {
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
        tenant: &str,
        user_name: &str,
    ) -> Result<Option<User>, StoreError> {
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
        tenant: &str,
        id: &str,
        expected_version: Option<i64>,
        input: UserInput,
    ) -> Result<User, StoreError> {
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
    pub async fn delete_user(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.guarded(Access::Write, async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM scim_user_emails WHERE tenant = $1 AND user_id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM scim_memberships WHERE tenant = $1 AND user_id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            // A deleted user's sessions end with them.
            sqlx::query("DELETE FROM sso_sessions WHERE tenant = $1 AND user_id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let deleted = sqlx::query("DELETE FROM scim_users WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(deleted.rows_affected() > 0)
        })
        .await
    }

    /// Users matching `filter`, 1-based `start_index`, at most `count`.
    pub async fn list_users(
        &self,
        tenant: &str,
        filter: &Predicate,
        start_index: i64,
        count: i64,
    ) -> Result<Page<User>, StoreError> {
        self.search_users(tenant, filter, None, start_index, count)
            .await
    }

    /// Users matching `filter` in the order of `sort` (creation order without one), 1-based
    /// `start_index`, at most `count`.
    pub async fn search_users(
        &self,
        tenant: &str,
        filter: &Predicate,
        sort: Option<&Sort>,
        start_index: i64,
        count: i64,
    ) -> Result<Page<User>, StoreError> {
        self.guarded(Access::Read, async move {
            let (total, rows) = self
                .page(
                    "scim_users",
                    Self::USER_COLUMNS,
                    tenant,
                    filter,
                    &Sort::order_by(sort),
                    start_index,
                    count,
                )
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

    /// The total number of rows of `table` matching `filter`, and the requested page of them
    /// in stable `order` (an `ORDER BY` list from [`Sort::order_by`], ending in creation time
    /// and id). A deep page (a high `startIndex`) is chosen on the ordering index alone and
    /// only its rows are read in full.
    #[allow(clippy::too_many_arguments)]
    async fn page(
        &self,
        table: &'static str,
        columns: &'static str,
        tenant: &str,
        filter: &Predicate,
        order: &str,
        start_index: i64,
        count: i64,
    ) -> Result<(i64, Vec<AnyRow>), StoreError> {
        let (clause, binds) = filter.to_sql(1);
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
        let total = count_matching().await?;
        if offset >= total {
            return Ok((total, Vec::new()));
        }
        // A deep page: its IDs from the ordering index alone (skipping index entries, not
        // rows), then those rows by primary key. Two statements rather than a join, so that
        // no planner estimate (PostgreSQL's statistics lag a bulk provisioning) can turn the
        // lookup into a scan of the tenant per row.
        let sql = format!(
            "SELECT id FROM {table} WHERE tenant = $1 AND ({clause}) ORDER BY {order} LIMIT ${n} OFFSET ${}",
            n + 1
        );
        let ids: Vec<String> = bound(sql)
            .bind(count)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("id"))
            .collect::<Result<_, _>>()?;
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

    /// Number of users.
    pub async fn count_users(&self, tenant: &str) -> Result<i64, StoreError> {
        self.guarded(Access::Read, async move {
            Ok(
                sqlx::query("SELECT COUNT(*) AS n FROM scim_users WHERE tenant = $1")
                    .bind(tenant)
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("n")?,
            )
        })
        .await
    }

    // ---- groups ----

    /// Creates a group with `members` (user IDs of the same tenant; unknown IDs are ignored).
    pub async fn create_group(
        &self,
        tenant: &str,
        input: GroupInput,
        members: &[String],
    ) -> Result<Group, StoreError> {
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

    async fn insert_members(
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

    const GROUP_COLUMNS: &'static str =
        "id, display_name, external_id, resource, scim_managed, version, created_us, modified_us";

    async fn group_from_row(&self, tenant: &str, row: &AnyRow) -> Result<Group, StoreError> {
        let id: String = row.try_get("id")?;
        let members = sqlx::query("SELECT user_id FROM scim_memberships WHERE tenant = $1 AND group_id = $2 ORDER BY user_id")
            .bind(tenant)
            .bind(&id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>("user_id"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Group {
            id,
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

    /// The group with `id`, with its members.
    pub async fn get_group(&self, tenant: &str, id: &str) -> Result<Option<Group>, StoreError> {
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
                Some(row) => Ok(Some(self.group_from_row(tenant, &row).await?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Replaces a group's attributes and, when `members` is given, its whole member list.
    pub async fn replace_group(
        &self,
        tenant: &str,
        id: &str,
        expected_version: Option<i64>,
        input: GroupInput,
        members: Option<&[String]>,
    ) -> Result<Group, StoreError> {
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

    /// Adds and removes members in one transaction, bumping the group's version.
    pub async fn change_members(
        &self,
        tenant: &str,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<Group, StoreError> {
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

    /// Deletes a group and its memberships; false when there was none.
    pub async fn delete_group(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.guarded(Access::Write, async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM scim_memberships WHERE tenant = $1 AND group_id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let deleted = sqlx::query("DELETE FROM scim_groups WHERE tenant = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(deleted.rows_affected() > 0)
        })
        .await
    }

    /// Groups matching `filter`, 1-based `start_index`, at most `count`.
    pub async fn list_groups(
        &self,
        tenant: &str,
        filter: &Predicate,
        start_index: i64,
        count: i64,
    ) -> Result<Page<Group>, StoreError> {
        self.search_groups(tenant, filter, None, start_index, count)
            .await
    }

    /// Groups matching `filter` in the order of `sort` (creation order without one), 1-based
    /// `start_index`, at most `count`.
    pub async fn search_groups(
        &self,
        tenant: &str,
        filter: &Predicate,
        sort: Option<&Sort>,
        start_index: i64,
        count: i64,
    ) -> Result<Page<Group>, StoreError> {
        self.guarded(Access::Read, async move {
            let (total, rows) = self
                .page(
                    "scim_groups",
                    Self::GROUP_COLUMNS,
                    tenant,
                    filter,
                    &Sort::order_by(sort),
                    start_index,
                    count,
                )
                .await?;
            let mut items = Vec::with_capacity(rows.len());
            for row in &rows {
                items.push(self.group_from_row(tenant, row).await?);
            }
            Ok(Page { total, items })
        })
        .await
    }

    /// The IDs among `ids` that name no user of `tenant` (in the order given, without
    /// repeats): what a group's member list must not contain.
    pub async fn missing_users(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
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

    /// Number of groups.
    pub async fn count_groups(&self, tenant: &str) -> Result<i64, StoreError> {
        self.guarded(Access::Read, async move {
            Ok(
                sqlx::query("SELECT COUNT(*) AS n FROM scim_groups WHERE tenant = $1")
                    .bind(tenant)
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("n")?,
            )
        })
        .await
    }

    /// IDs of the groups of each of `user_ids`, in one query (for list pages).
    pub async fn groups_of_users(
        &self,
        tenant: &str,
        user_ids: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<String>>, StoreError> {
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
        tenant: &str,
        user_id: &str,
    ) -> Result<Vec<String>, StoreError> {
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

    // ---- SAML replay cache and login state ----

    /// Records a consumed assertion ID until `expires`; false when it was already recorded
    /// (a replay). Shared by every server replica using this database.
    pub async fn remember_assertion(
        &self,
        tenant: &str,
        assertion_id: &str,
        expires: Timestamp,
    ) -> Result<bool, StoreError> {
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

    // ---- sign-in: linking, just-in-time users, sign-in groups ----

    /// Users with the work email `email`, ignoring case; at most `limit`.
    pub async fn find_users_by_email(
        &self,
        tenant: &str,
        email: &str,
        limit: i64,
    ) -> Result<Vec<User>, StoreError> {
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

    /// Makes the user's memberships in sign-in groups (groups not managed by SCIM) exactly
    /// `names`, creating missing sign-in groups. Memberships in SCIM groups are left alone:
    /// the IdP's SCIM client owns those.
    pub async fn set_sign_in_groups(
        &self,
        tenant: &str,
        user_id: &str,
        names: &[String],
    ) -> Result<(), StoreError> {
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

    // ---- sessions ----

    /// Starts a session of `user_id` until `expires`; returns the session ID (a secret: it
    /// goes only into the sealed cookie; the store keeps its SHA-256).
    pub async fn create_session(
        &self,
        tenant: &str,
        user_id: &str,
        expires: Timestamp,
    ) -> Result<String, StoreError> {
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
        tenant: &str,
        sid: &str,
    ) -> Result<Option<(User, Timestamp, Vec<String>)>, StoreError> {
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
        tenant: &str,
        sid: &str,
        expires: Timestamp,
    ) -> Result<(), StoreError> {
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

    /// Ends a session (sign-out); false when there was none.
    pub async fn delete_session(&self, tenant: &str, sid: &str) -> Result<bool, StoreError> {
        self.guarded(Access::Write, async move {
            Ok(
                sqlx::query("DELETE FROM sso_sessions WHERE tenant = $1 AND id_sha256 = $2")
                    .bind(tenant)
                    .bind(session_hash(sid))
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    > 0,
            )
        })
        .await
    }

    /// Deletes expired replay-cache entries and sessions; returns how many went.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.guarded(Access::Write, async move {
            let now = micros(Timestamp::now());
            let a = sqlx::query("DELETE FROM saml_replay_cache WHERE expires_us <= $1")
                .bind(now)
                .execute(&self.pool)
                .await?;
            let c = sqlx::query("DELETE FROM sso_sessions WHERE expires_us <= $1")
                .bind(now)
                .execute(&self.pool)
                .await?;
            Ok(a.rows_affected() + c.rows_affected())
        })
        .await
    }

    /// Deletes every row of a tenant and forgets which IdentityProvider UID it belonged to,
    /// unconditionally (benchmarks and tests clean up with it; the server purges tenants
    /// through [`Store::bind_tenant`] and [`Store::purge_tenant`]).
    pub async fn delete_tenant(&self, tenant: &str) -> Result<Purged, StoreError> {
        self.guarded(Access::Write, async move {
            let mut tx = self.pool.begin().await?;
            let purged = Self::purge_rows(&mut tx, tenant).await?;
            sqlx::query("DELETE FROM sso_tenants WHERE tenant = $1")
                .bind(tenant)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(purged)
        })
        .await
    }
}
