//! The identity store: users, groups, memberships, the SAML replay cache
//! (consumed assertion and request IDs) and sessions, scoped to one tenant (an
//! IdentityProvider, `namespace/name`, bound to the IdentityProvider's UID: see
//! [`Store::bind_tenant`]).
//!
//! One implementation on top of sqlx's `Any` driver serves both backends with the same SQL:
//! SQLite (a single file in WAL mode, the embedded default for one server replica) and
//! PostgreSQL (for several replicas). Migrations run at start-up.
//!
//! This module holds the [`Store`] itself: connecting, migrations, the guard every operation
//! runs under, and the helpers the resources share. Each resource has its own `impl Store`
//! block in a file of its own: `users`, `groups`, `memberships`, `sign_in_groups` (groups
//! that sign-in keeps from the IdP's group claims), `sessions`, `single_logout`, `replay`
//! (the SAML replay cache), `oidc` (the OpenID Provider's codes, grant families and refresh
//! tokens) and `tenants`; `pages` reads one page of a filtered list and `predicate` renders
//! filters as SQL.

mod groups;
mod health;
mod memberships;
pub mod oidc;
mod pages;
mod pending_tasks;
mod predicate;
mod replay;
mod sessions;
mod sign_in_groups;
mod single_logout;
mod tenants;
mod users;

// The records and the query vocabulary live in `domain`; re-exported for the store's callers.
pub use crate::domain::{
    CmpOp, Column, Group, GroupInput, Predicate, Sort, User, UserInput, Value,
};
pub use oidc::{CodeRedemption, DevicePoll, DeviceRequest, Grant, RefreshOutcome};
pub use pages::Page;
pub use predicate::Bind;
pub use single_logout::SessionSubject;
pub use tenants::{Binding, Purged, StoredTenant};

use std::sync::Arc;
use std::time::Duration;

use health::{Access, Health};
use jiff::Timestamp;
use sqlx::any::AnyPoolOptions;
// Dynamic SQL here is assembled only from constant fragments and numbered placeholders;
// values are always bound, hence `AssertSqlSafe`.
use sqlx::{AnyPool, AssertSqlSafe, Executor, Row};

use crate::tenant::TenantKey;

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
    /// SQLite: writers take turns here. SQLite admits one writer and makes the others retry
    /// in its busy handler, which sleeps between attempts: under concurrent writes (the OIDC
    /// token endpoint) that sleeping, not the work, set the tail latency.
    writer: Option<Arc<tokio::sync::Semaphore>>,
}

tokio::task_local! {
    /// Set while a write holds the SQLite writer's turn: a write nested in it (a sign-in
    /// creating its groups) goes on without queueing behind itself.
    static WRITING: ();
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
            writer: (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Semaphore::new(1))),
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
        // Waiting for the writer's turn counts against the timeout.
        let work = async {
            match &self.writer {
                Some(writer) if access == Access::Write && WRITING.try_with(|_| ()).is_err() => {
                    let _turn = writer
                        .acquire()
                        .await
                        .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
                    WRITING.scope((), work).await
                }
                _ => work.await,
            }
        };
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

    /// The number of rows of `table` (users or groups) of `tenant`.
    async fn count_rows(&self, table: &'static str, tenant: &str) -> Result<i64, StoreError> {
        self.guarded(Access::Read, async move {
            let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE tenant = $1");
            Ok(sqlx::query(AssertSqlSafe(sql))
                .bind(tenant)
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?)
        })
        .await
    }

    /// Deletes row `id` of `table` (a user or a group) in one transaction, after the rows that
    /// refer to it: `dependents` are `DELETE` statements that bind the tenant as `$1` and `id`
    /// as `$2`. False when there was no such row.
    async fn delete_with_dependents(
        &self,
        table: &'static str,
        dependents: &[&'static str],
        tenant: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        self.guarded(Access::Write, async move {
            let mut tx = self.pool.begin().await?;
            for statement in dependents {
                sqlx::query(*statement)
                    .bind(tenant)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            let sql = format!("DELETE FROM {table} WHERE tenant = $1 AND id = $2");
            let deleted = sqlx::query(AssertSqlSafe(sql))
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(deleted.rows_affected() > 0)
        })
        .await
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    // ---- housekeeping across resources ----

    /// Deletes expired replay-cache entries, sessions, and the OpenID Provider's expired codes,
    /// refresh tokens, grant families and device authorizations; returns how many went.
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
            let oidc = self.purge_expired_oidc(now).await?;
            Ok(a.rows_affected() + c.rows_affected() + oidc)
        })
        .await
    }

    /// Deletes every row of a tenant and forgets which IdentityProvider UID it belonged to,
    /// unconditionally (benchmarks and tests clean up with it; the server purges tenants
    /// through [`Store::bind_tenant`] and [`Store::purge_tenant`]).
    pub async fn delete_tenant(
        &self,
        tenant: &(impl TenantKey + ?Sized),
    ) -> Result<Purged, StoreError> {
        let key = tenant.key();
        let tenant: &str = &key;
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
