//! Whether the identity store can be used right now, and the guard every store operation runs
//! under: the database answers in time (a PostgreSQL restart or outage), and a SQLite
//! database file is still the file the store opened (a volume that went away, a file deleted
//! or replaced under the running server).
//!
//! The state is kept in memory and refreshed by a background check once a second, so that
//! `/readyz` and requests read it without touching the database. While the database is
//! unreachable, operations are refused at once instead of each waiting for the timeout; the
//! next successful check lets them through again. A lost SQLite file is final: only a restart
//! opens the database again.

use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use super::StoreError;

/// Identity of a file on its filesystem (device and inode number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
}

impl FileIdentity {
    #[cfg(unix)]
    fn of(path: &std::path::Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(path)?;
        Ok(Self {
            device: m.dev(),
            inode: m.ino(),
        })
    }

    #[cfg(not(unix))]
    fn of(path: &std::path::Path) -> std::io::Result<Self> {
        std::fs::metadata(path).map(|_| Self {
            device: 0,
            inode: 0,
        })
    }
}

/// The SQLite database file the store opened.
#[derive(Debug)]
struct SqliteFile {
    path: PathBuf,
    opened: FileIdentity,
}

#[derive(Clone, Debug)]
enum State {
    Available,
    /// The database did not answer; cleared by the next successful check.
    Unreachable {
        reason: String,
        since: Instant,
    },
    /// The SQLite file was deleted or replaced; final.
    FileLost {
        reason: String,
    },
}

/// Health of one store (shared by its clones).
#[derive(Debug)]
pub(super) struct Health {
    state: RwLock<State>,
    sqlite_file: Option<SqliteFile>,
}

/// Whether an operation changes the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Access {
    Read,
    Write,
}

impl Health {
    /// Health of a PostgreSQL store, or of a SQLite store whose file is at `sqlite_path`
    /// (checked now: the file the store has just opened).
    pub(super) fn new(sqlite_path: Option<PathBuf>) -> std::io::Result<Self> {
        let sqlite_file = match sqlite_path {
            Some(path) => Some(SqliteFile {
                opened: FileIdentity::of(&path)?,
                path,
            }),
            None => None,
        };
        Ok(Self {
            state: RwLock::new(State::Available),
            sqlite_file,
        })
    }

    fn state(&self) -> State {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `Ok` when the store can be used, else why not (for `/readyz` and logs).
    pub(super) fn readiness(&self) -> Result<(), String> {
        match self.state() {
            State::Available => Ok(()),
            State::Unreachable { reason, .. } | State::FileLost { reason } => Err(reason),
        }
    }

    /// Refuses an operation while the store is known to be unusable; before a write to
    /// SQLite, also checks that the file at the database path is still the one opened.
    pub(super) fn admit(&self, access: Access) -> Result<(), StoreError> {
        if access == Access::Write {
            self.check_file()?;
        }
        self.readiness().map_err(StoreError::Unavailable)
    }

    /// After a write to SQLite: the write counts only if the file it went into is still the
    /// one at the database path (otherwise it may have gone into a deleted file).
    pub(super) fn confirm_write(&self) -> Result<(), StoreError> {
        self.check_file()
    }

    /// Compares the file at the SQLite database path with the file opened; on a mismatch,
    /// marks the store lost for good and says so in the log, once.
    pub(super) fn check_file(&self) -> Result<(), StoreError> {
        let Some(file) = &self.sqlite_file else {
            return Ok(());
        };
        let what = match FileIdentity::of(&file.path) {
            Ok(now) if now == file.opened => return Ok(()),
            Ok(_) => "was replaced by another file",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "was deleted",
            Err(_) => "can no longer be read",
        };
        let reason = format!(
            "the SQLite database file {} {what} while the server was running; \
             writes are refused so that none is lost",
            file.path.display()
        );
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if !matches!(*state, State::FileLost { .. }) {
            tracing::error!(
                path = %file.path.display(),
                "{reason}. Check the volume mounted for the database (it must stay mounted, \
                 on a local filesystem, used by one server replica), then restart the pod: \
                 the server opens the database file again only at start"
            );
            *state = State::FileLost {
                reason: reason.clone(),
            };
        }
        Err(StoreError::Unavailable(reason))
    }

    /// Records the outcome of a database round trip (a check or an operation): a failure to
    /// reach the database marks the store unreachable, a success marks it reachable again.
    pub(super) fn record(&self, outcome: Result<(), &str>) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match (&*state, outcome) {
            (State::FileLost { .. }, _) => {}
            (State::Available, Ok(())) => {}
            (State::Unreachable { since, .. }, Ok(())) => {
                tracing::info!(
                    after_seconds = since.elapsed().as_secs_f64(),
                    "the identity store answers again"
                );
                *state = State::Available;
            }
            (State::Available, Err(reason)) => {
                tracing::error!(
                    "the identity store is unreachable: {reason}; requests that need it answer \
                     503 until it answers again"
                );
                *state = State::Unreachable {
                    reason: format!("the identity store is unreachable: {reason}"),
                    since: Instant::now(),
                };
            }
            (State::Unreachable { .. }, Err(_)) => {}
        }
    }
}

/// Whether `e` says the database could not be reached (rather than that a statement failed),
/// and if so, a short description.
pub(super) fn unreachable(e: &sqlx::Error, timeout: Duration) -> Option<String> {
    match e {
        sqlx::Error::PoolTimedOut => Some(format!(
            "no database connection could be had within {}",
            super::seconds(timeout)
        )),
        sqlx::Error::Io(io) => Some(format!("connection failed ({})", io.kind())),
        sqlx::Error::Tls(_) => Some("TLS connection failed".into()),
        sqlx::Error::Protocol(_) => Some("the connection broke".into()),
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            Some("the connection pool stopped".into())
        }
        sqlx::Error::Database(db) => sqlite_unusable(db.as_ref()),
        _ => None,
    }
}

/// SQLite's answer when its files cannot be used as they must (rather than a statement that
/// failed): read-only files or volume, I/O errors, a full disk, a file that cannot be opened or
/// is not a database. A read-only `-shm` file, for one, lets reads through and fails every
/// write; the store is then unusable and says why.
fn sqlite_unusable(db: &dyn sqlx::error::DatabaseError) -> Option<String> {
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>()?;
    let code: i32 = db.code()?.parse().ok()?;
    // Primary result codes (the low byte of the extended code).
    const READONLY: i32 = 8;
    const IOERR: i32 = 10;
    const FULL: i32 = 13;
    const CANTOPEN: i32 = 14;
    const NOTADB: i32 = 26;
    let what = match code & 0xff {
        READONLY => {
            "the SQLite database cannot be written (a read-only volume, or database files \
             such as identity.db-shm or identity.db-wal that the server's user cannot write)"
        }
        IOERR => "the SQLite database files could not be read or written (an I/O error)",
        FULL => "the volume holding the SQLite database is full",
        CANTOPEN => "a SQLite database file cannot be opened",
        NOTADB => "the SQLite database file is not a database",
        _ => return None,
    };
    Some(format!("{what} (SQLite code {code})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sso-health-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, b"db").unwrap();
        path
    }

    #[test]
    fn a_deleted_sqlite_file_refuses_writes_for_good() {
        let path = temp_file("deleted.db");
        let health = Health::new(Some(path.clone())).unwrap();
        assert!(health.admit(Access::Write).is_ok());
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            health.admit(Access::Write),
            Err(StoreError::Unavailable(r)) if r.contains("was deleted")
        ));
        // Reads are refused too, and a later successful round trip does not clear it.
        health.record(Ok(()));
        assert!(health.admit(Access::Read).is_err());
        assert!(health.readiness().is_err());
    }

    #[test]
    fn a_replaced_sqlite_file_is_noticed() {
        let path = temp_file("replaced.db");
        let health = Health::new(Some(path.clone())).unwrap();
        let other = temp_file("other.db");
        std::fs::rename(&other, &path).unwrap();
        assert!(matches!(
            health.confirm_write(),
            Err(StoreError::Unavailable(r)) if r.contains("was replaced")
        ));
    }

    #[test]
    fn an_unreachable_database_is_refused_until_it_answers_again() {
        let health = Health::new(None).unwrap();
        health.record(Err("connection refused"));
        assert!(health.admit(Access::Read).is_err());
        assert!(
            health
                .readiness()
                .unwrap_err()
                .contains("connection refused")
        );
        health.record(Ok(()));
        assert!(health.admit(Access::Write).is_ok());
        assert!(health.readiness().is_ok());
    }
}
