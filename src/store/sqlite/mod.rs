//! [`SqliteStore`]: token records in an embedded SQLite database (rusqlite).
//!
//! Why rusqlite, run in place: a cache miss is a point query that SQLite answers from its
//! page cache in a couple of microseconds. Drivers that hand every query to another thread
//! (sqlx's SQLite driver does) pay two cross-thread wake-ups per query, which measured
//! 40–80 µs at the median here. This store runs its queries on the calling worker thread
//! with `tokio::task::block_in_place` (on a current-thread runtime, where that is not
//! allowed, on the blocking pool instead), with one connection for writes and a few for
//! reads, which WAL mode lets run beside the writer.

#[cfg(feature = "activity")]
mod activity;
mod feed;
#[cfg(feature = "webhooks")]
mod outbox;
mod policies;
mod tokens;
#[cfg(feature = "webhooks")]
mod webhooks;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::StoreError;

/// The schema, one script per version, applied in order on open (`PRAGMA user_version`
/// records how many have run).
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_create_tokens.sql"),
    include_str!("../../../migrations/sqlite/0002_lineage_and_markers.sql"),
    include_str!("../../../migrations/sqlite/0003_owner_and_metadata.sql"),
    include_str!("../../../migrations/sqlite/0004_activity.sql"),
    include_str!("../../../migrations/sqlite/0005_activity_revoked.sql"),
    include_str!("../../../migrations/sqlite/0006_session_lineage.sql"),
    include_str!("../../../migrations/sqlite/0007_change_log.sql"),
    include_str!("../../../migrations/sqlite/0008_policies.sql"),
    include_str!("../../../migrations/sqlite/0009_revocation_reason.sql"),
    include_str!("../../../migrations/sqlite/0010_webhooks.sql"),
    include_str!("../../../migrations/sqlite/0011_webhook_outbox.sql"),
];

/// Read connections beside the writer.
const READERS: usize = 4;

/// A [`TokenStore`](super::TokenStore) in a SQLite database file: the embedded default.
///
/// Opening a store creates the file if needed (mode 0600: readable by its owner only, and
/// so are the `-wal` and `-shm` files), switches it to WAL mode and applies the embedded
/// migrations. Digests are unique; nothing in the database is a plaintext token.
///
/// Several processes may share a file (a web and a worker process, a rolling restart):
/// every change of a token is logged in the transaction that makes it, and each
/// process's registry follows the log, so that a revocation in one holds in the others
/// within a poll interval (100 ms by default, [`poll_changes_every`](Self::poll_changes_every)).
/// For many machines, use the PostgreSQL store.
///
/// ```no_run
/// use tower_bearer::store::SqliteStore;
/// use tower_bearer::Registry;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = SqliteStore::open("tokens.db").await?;
/// let registry = Registry::builder(store).build();
/// # let _ = registry;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Connections>,
}

struct Connections {
    /// `None` once closed.
    writer: Mutex<Option<Connection>>,
    readers: Vec<Mutex<Option<Connection>>>,
    next_reader: AtomicUsize,
    /// The file, which each change feed opens a connection of its own to.
    path: std::path::PathBuf,
    /// How often a change feed looks at the file, in nanoseconds.
    poll_nanos: std::sync::atomic::AtomicU64,
}

#[derive(Clone, Copy)]
enum Role {
    Read,
    Write,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path))
            .await
            .map_err(StoreError::unavailable)?
    }

    fn open_blocking(path: &Path) -> Result<Self, StoreError> {
        create_private(path)?;
        let writer = Connection::open(path).map_err(unavailable)?;
        configure(&writer).map_err(unavailable)?;
        // WAL mode is a property of the file: set once, by the writer. Switching takes an
        // exclusive lock for which SQLite may not wait (a process opening the same new
        // file at the same moment holds it): retry for a while.
        let mode: String =
            retry_busy(|| writer.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)))
                .map_err(unavailable)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::unavailable(format!(
                "SQLite refused WAL mode (journal_mode is {mode})"
            )));
        }
        // With WAL, NORMAL loses no committed transaction on a process crash, only
        // possibly the last ones on a power loss: the usual trade for a token store.
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(unavailable)?;
        migrate(&writer)?;
        let readers = (0..READERS)
            .map(|_| {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let reader = Connection::open_with_flags(path, flags).map_err(unavailable)?;
                configure(&reader).map_err(unavailable)?;
                Ok(Mutex::new(Some(reader)))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Self {
            shared: Arc::new(Connections {
                writer: Mutex::new(Some(writer)),
                readers,
                next_reader: AtomicUsize::new(0),
                path: path.to_owned(),
                poll_nanos: std::sync::atomic::AtomicU64::new(100_000_000),
            }),
        })
    }

    /// How many tokens the database holds (all tenants, expired ones included).
    pub async fn count(&self) -> Result<u64, StoreError> {
        self.run(Role::Read, |db| {
            let count: i64 = db
                .query_row("SELECT COUNT(*) FROM tokens", [], |row| row.get(0))
                .map_err(unavailable)?;
            Ok(count.max(0) as u64)
        })
        .await
    }

    /// Closes the database. Every later call fails with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for slot in std::iter::once(&shared.writer).chain(&shared.readers) {
                drop(lock(slot).take());
            }
        })
        .await;
    }

    /// Runs `query` with a connection of `role`, on this worker thread where the runtime
    /// allows blocking it briefly, on the blocking pool otherwise.
    async fn run<T, F>(&self, role: Role, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let shared = self.shared.clone();
        let job = move || shared.with(role, query);
        let multi_thread = tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
            runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        if multi_thread {
            tokio::task::block_in_place(job)
        } else {
            tokio::task::spawn_blocking(job)
                .await
                .map_err(StoreError::unavailable)?
        }
    }
}

impl Connections {
    /// Whether [`SqliteStore::close`] ran.
    fn is_closed(&self) -> bool {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_none()
    }

    fn with<T>(
        &self,
        role: Role,
        query: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let slot = match role {
            Role::Write => &self.writer,
            Role::Read => {
                let at = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
                &self.readers[at]
            }
        };
        let connection = lock(slot);
        let connection = connection
            .as_ref()
            .ok_or_else(|| StoreError::unavailable("the SQLite store is closed"))?;
        query(connection)
    }
}

/// Runs `step` again while SQLite answers "busy" without waiting (up to about 5 s).
fn retry_busy<T>(mut step: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let mut attempts = 0;
    loop {
        match step() {
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if failure.code == ErrorCode::DatabaseBusy && attempts < 250 =>
            {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Creates the database file readable and writable by its owner only (0600), unless it
/// exists. SQLite gives its `-wal` and `-shm` files the database file's permissions.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(StoreError::unavailable(error)),
    }
}

/// A connection is left consistent by every query (SQLite rolls back what a panic
/// interrupted), so a poisoned lock is still usable.
fn lock(slot: &Mutex<Option<Connection>>) -> std::sync::MutexGuard<'_, Option<Connection>> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(Duration::from_secs(5))?;
    connection.set_prepared_statement_cache_capacity(32);
    Ok(())
}

/// Applies the migrations not yet recorded in `PRAGMA user_version`, each in its own
/// write-locking transaction that reads the version again first: processes opening one
/// new database together apply each migration once.
fn migrate(connection: &Connection) -> Result<(), StoreError> {
    let version = |db: &Connection| -> Result<usize, StoreError> {
        let applied: i64 = db
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(unavailable)?;
        Ok(usize::try_from(applied).unwrap_or(0))
    };
    if version(connection)? >= MIGRATIONS.len() {
        return Ok(());
    }
    for (index, script) in MIGRATIONS.iter().enumerate() {
        in_transaction(connection, |db| {
            if version(db)? > index {
                return Ok(()); // another process got here first
            }
            db.execute_batch(&format!("{script}\nPRAGMA user_version = {};", index + 1))
                .map_err(unavailable)
        })?;
    }
    Ok(())
}

fn unavailable(error: rusqlite::Error) -> StoreError {
    match error {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict
        }
        other => StoreError::unavailable(other),
    }
}

/// Runs `work` in an immediate (write-locking) transaction, committed if it succeeds.
fn in_transaction<T>(
    db: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let transaction =
        rusqlite::Transaction::new_unchecked(db, rusqlite::TransactionBehavior::Immediate)
            .map_err(unavailable)?;
    let result = work(&transaction)?;
    transaction.commit().map_err(unavailable)?;
    Ok(result)
}
