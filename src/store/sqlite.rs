//! [`SqliteStore`]: token records in an embedded SQLite database (rusqlite).
//!
//! Why rusqlite, run in place: a cache miss is a point query that SQLite answers from its
//! page cache in a couple of microseconds. Drivers that hand every query to another thread
//! (sqlx's SQLite driver does) pay two cross-thread wake-ups per query, which measured
//! 40–80 µs at the median here. This store runs its queries on the calling worker thread
//! with `tokio::task::block_in_place` (on a current-thread runtime, where that is not
//! allowed, on the blocking pool instead), with one connection for writes and a few for
//! reads, which WAL mode lets run beside the writer.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension as _, Row, params};
use time::OffsetDateTime;

use super::columns::{
    COLUMNS, RawRecord, digest_of, id_param, metadata_column, scopes_column, token_id,
};
use super::{
    Invalidation, ListQuery, NewToken, StoreError, TokenRecord, TokenStore, TokenUpdate,
    UsageUpdate,
};
use crate::clock::to_millis as millis;
use crate::identity::{TokenId, TokenKind};
use crate::token::Digest;

/// The schema, one script per version, applied in order on open (`PRAGMA user_version`
/// records how many have run).
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_create_tokens.sql"),
    include_str!("../../migrations/sqlite/0002_lineage_and_markers.sql"),
    include_str!("../../migrations/sqlite/0003_owner_and_metadata.sql"),
    include_str!("../../migrations/sqlite/0004_activity.sql"),
    include_str!("../../migrations/sqlite/0005_activity_revoked.sql"),
    include_str!("../../migrations/sqlite/0006_session_lineage.sql"),
];

/// Read connections beside the writer.
const READERS: usize = 4;

/// A [`TokenStore`] in a SQLite database file: the embedded default.
///
/// Opening a store creates the file if needed (mode 0600: readable by its owner only, and
/// so are the `-wal` and `-shm` files), switches it to WAL mode and applies the embedded
/// migrations. Digests are unique; nothing in the database is a plaintext token.
///
/// A SQLite file is one node's store: it has no change feed. Several processes sharing a
/// file see each other's revocations only when their cached entries expire (the
/// registry's positive TTL); use a shared store with a change feed for many nodes.
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
}

#[derive(Clone, Copy)]
pub(crate) enum Role {
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
    pub(crate) async fn run<T, F>(&self, role: Role, query: F) -> Result<T, StoreError>
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

    /// Runs a `DELETE … WHERE … < ?1 RETURNING id, digest` with `cutoff`.
    async fn prune(
        &self,
        delete: &'static str,
        cutoff: OffsetDateTime,
    ) -> Result<Vec<Invalidation>, StoreError> {
        self.run(Role::Write, move |db| {
            let mut statement = db.prepare_cached(delete).map_err(unavailable)?;
            invalidations(
                statement
                    .query_map([millis(cutoff)], id_and_digest)
                    .map_err(unavailable)?,
            )
        })
        .await
    }
}

impl Connections {
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

pub(crate) fn unavailable(error: rusqlite::Error) -> StoreError {
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

fn raw(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        tenant: row.get(2)?,
        scopes: row.get(3)?,
        env: row.get(4)?,
        kind: row.get(5)?,
        display_prefix: row.get(6)?,
        digest: row.get(7)?,
        created_at: row.get(8)?,
        expires_at: row.get(9)?,
        last_used_at: row.get(10)?,
        use_count: row.get(11)?,
        created_by: row.get(12)?,
        rotated_to: row.get(13)?,
        owner: row.get(14)?,
        metadata: row.get(15)?,
        created_by_session: row.get(16)?,
    })
}

fn one(
    db: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<TokenRecord, StoreError> {
    let mut statement = db.prepare_cached(sql).map_err(unavailable)?;
    statement
        .query_row(params, raw)
        .map_err(unavailable)?
        .check()
}

fn insert(db: &Connection, token: &NewToken) -> Result<TokenRecord, StoreError> {
    let sql = format!(
        "INSERT INTO tokens (name, tenant, scopes, env, kind, display_prefix, digest, \
         created_at, expires_at, created_by, owner, metadata, created_by_session) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING {COLUMNS}"
    );
    one(
        db,
        &sql,
        params![
            token.name,
            token.tenant,
            scopes_column(&token.scopes),
            token.env.as_str(),
            token.kind.as_str(),
            token.display_prefix,
            token.digest.as_bytes().as_slice(),
            millis(token.created_at),
            token.expires_at.map(millis),
            token.created_by.map(id_param),
            token.owner,
            token.metadata.as_ref().map(metadata_column),
            token.created_by_session.map(id_param),
        ],
    )
}

/// Runs `work` in an immediate (write-locking) transaction, committed if it succeeds.
pub(crate) fn in_transaction<T>(
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

fn invalidations(
    rows: rusqlite::MappedRows<'_, impl FnMut(&Row<'_>) -> rusqlite::Result<(i64, Vec<u8>)>>,
) -> Result<Vec<Invalidation>, StoreError> {
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(unavailable)?
        .into_iter()
        .map(|(id, digest)| {
            Ok(Invalidation {
                id: token_id(id)?,
                digest: digest_of(digest)?,
            })
        })
        .collect()
}

fn id_and_digest(row: &Row<'_>) -> rusqlite::Result<(i64, Vec<u8>)> {
    Ok((row.get(0)?, row.get(1)?))
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        self.run(Role::Write, move |db| insert(db, &token)).await
    }

    async fn find_by_digest(&self, digest: &Digest) -> Result<TokenRecord, StoreError> {
        let digest = *digest;
        self.run(Role::Read, move |db| {
            let sql = format!("SELECT {COLUMNS} FROM tokens WHERE digest = ?1");
            one(db, &sql, [digest.as_bytes().as_slice()])
        })
        .await
    }

    async fn find_by_id(&self, tenant: &str, id: TokenId) -> Result<TokenRecord, StoreError> {
        let tenant = tenant.to_owned();
        self.run(Role::Read, move |db| {
            let sql = format!("SELECT {COLUMNS} FROM tokens WHERE id = ?1 AND tenant = ?2");
            one(db, &sql, params![id_param(id), tenant])
        })
        .await
    }

    async fn list_by_tenant(
        &self,
        tenant: &str,
        query: ListQuery,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let tenant = tenant.to_owned();
        let after = query.after.map_or(0, id_param);
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let owner = query.owner;
        let kind = query.kind.map(TokenKind::as_str);
        let created_by = query.created_by.map(id_param);
        let session = query.created_by_session.map(id_param);
        self.run(Role::Read, move |db| {
            let sql = format!(
                "SELECT {COLUMNS} FROM tokens WHERE tenant = ?1 AND id > ?2 \
                 AND (?4 IS NULL OR owner = ?4) AND (?5 IS NULL OR kind = ?5) \
                 AND (?6 IS NULL OR created_by = ?6) \
                 AND (?7 IS NULL OR created_by_session = ?7) ORDER BY id LIMIT ?3"
            );
            let mut statement = db.prepare_cached(&sql).map_err(unavailable)?;
            let params = params![tenant, after, limit, owner, kind, created_by, session];
            let rows = statement
                .query_map(params, raw)
                .map_err(unavailable)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(unavailable)?;
            rows.into_iter().map(RawRecord::check).collect()
        })
        .await
    }

    async fn delete(&self, tenant: &str, id: TokenId) -> Result<Invalidation, StoreError> {
        let tenant = tenant.to_owned();
        self.run(Role::Write, move |db| {
            let mut statement = db
                .prepare_cached("DELETE FROM tokens WHERE id = ?1 AND tenant = ?2 RETURNING digest")
                .map_err(unavailable)?;
            let digest: Option<Vec<u8>> = statement
                .query_row(params![id_param(id), tenant], |row| row.get(0))
                .optional()
                .map_err(unavailable)?;
            let digest = digest.ok_or(StoreError::NotFound)?;
            Ok(Invalidation {
                id,
                digest: digest_of(digest)?,
            })
        })
        .await
    }

    async fn update(
        &self,
        tenant: &str,
        id: TokenId,
        update: TokenUpdate,
    ) -> Result<TokenRecord, StoreError> {
        let tenant = tenant.to_owned();
        self.run(Role::Write, move |db| {
            let sql = format!(
                "UPDATE tokens SET name = COALESCE(?3, name), scopes = COALESCE(?4, scopes), \
                 expires_at = COALESCE(?5, expires_at) WHERE id = ?1 AND tenant = ?2 \
                 RETURNING {COLUMNS}"
            );
            one(
                db,
                &sql,
                params![
                    id_param(id),
                    tenant,
                    update.name,
                    update.scopes.as_ref().map(scopes_column),
                    update.expires_at.map(millis),
                ],
            )
        })
        .await
    }

    async fn delete_with_descendants(
        &self,
        tenant: &str,
        id: TokenId,
    ) -> Result<Vec<Invalidation>, StoreError> {
        let tenant = tenant.to_owned();
        self.run(Role::Write, move |db| {
            in_transaction(db, |db| {
                // The token first, then its descendants (same tenant: lineage never
                // crosses tenants, and a foreign id must not reach anything).
                let mut own = db
                    .prepare_cached(
                        "DELETE FROM tokens WHERE id = ?1 AND tenant = ?2 RETURNING id, digest",
                    )
                    .map_err(unavailable)?;
                let mut removed = invalidations(
                    own.query_map(params![id_param(id), tenant], id_and_digest)
                        .map_err(unavailable)?,
                )?;
                if removed.is_empty() {
                    return Err(StoreError::NotFound);
                }
                let mut descendants = db
                    .prepare_cached(
                        "WITH RECURSIVE tree(id) AS ( \
                             SELECT id FROM tokens WHERE created_by = ?1 AND tenant = ?2 \
                             UNION SELECT t.id FROM tokens t JOIN tree ON t.created_by = tree.id \
                                 WHERE t.tenant = ?2) \
                         DELETE FROM tokens WHERE id IN (SELECT id FROM tree) RETURNING id, digest",
                    )
                    .map_err(unavailable)?;
                removed.extend(invalidations(
                    descendants
                        .query_map(params![id_param(id), tenant], id_and_digest)
                        .map_err(unavailable)?,
                )?);
                Ok(removed)
            })
        })
        .await
    }

    async fn rotate(
        &self,
        old: &TokenRecord,
        replacement: NewToken,
        grace_until: Option<OffsetDateTime>,
    ) -> Result<TokenRecord, StoreError> {
        let old = old.clone();
        self.run(Role::Write, move |db| {
            in_transaction(db, |db| {
                let current: Option<(Vec<u8>, String, Option<i64>)> = db
                    .prepare_cached(
                        "SELECT digest, scopes, rotated_to FROM tokens WHERE id = ?1 AND tenant = ?2",
                    )
                    .map_err(unavailable)?
                    .query_row(params![id_param(old.id), old.tenant], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })
                    .optional()
                    .map_err(unavailable)?;
                let Some((digest, scopes, rotated_to)) = current else {
                    return Err(StoreError::NotFound);
                };
                if digest != old.digest.as_bytes()
                    || scopes != scopes_column(&old.scopes)
                    || rotated_to.is_some()
                {
                    return Err(StoreError::Conflict);
                }
                let record = insert(db, &replacement)?;
                db.prepare_cached("UPDATE tokens SET created_by = ?1 WHERE created_by = ?2")
                    .map_err(unavailable)?
                    .execute(params![id_param(record.id), id_param(old.id)])
                    .map_err(unavailable)?;
                match grace_until {
                    None => db
                        .prepare_cached("DELETE FROM tokens WHERE id = ?1")
                        .map_err(unavailable)?
                        .execute([id_param(old.id)])
                        .map_err(unavailable)?,
                    Some(until) => db
                        .prepare_cached(
                            "UPDATE tokens SET rotated_to = ?1, \
                             expires_at = MIN(COALESCE(expires_at, ?2), ?2) WHERE id = ?3",
                        )
                        .map_err(unavailable)?
                        .execute(params![id_param(record.id), millis(until), id_param(old.id)])
                        .map_err(unavailable)?,
                };
                Ok(record)
            })
        })
        .await
    }

    async fn insert_once(
        &self,
        marker: &str,
        token: NewToken,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let marker = marker.to_owned();
        self.run(Role::Write, move |db| {
            in_transaction(db, |db| {
                let done: Option<i64> = db
                    .prepare_cached("SELECT token_id FROM markers WHERE name = ?1")
                    .map_err(unavailable)?
                    .query_row([&marker], |row| row.get(0))
                    .optional()
                    .map_err(unavailable)?;
                if done.is_some() {
                    return Ok(None);
                }
                let record = insert(db, &token)?;
                db.prepare_cached(
                    "INSERT INTO markers (name, token_id, created_at) VALUES (?1, ?2, ?3)",
                )
                .map_err(unavailable)?
                .execute(params![
                    marker,
                    id_param(record.id),
                    millis(record.created_at)
                ])
                .map_err(unavailable)?;
                Ok(Some(record))
            })
        })
        .await
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
        let batch = batch.to_vec();
        self.run(Role::Write, move |db| {
            let transaction = db.unchecked_transaction().map_err(unavailable)?;
            {
                let mut update = transaction
                    .prepare_cached(
                        "UPDATE tokens SET last_used_at = MAX(COALESCE(last_used_at, 0), ?1), \
                         use_count = use_count + ?2 WHERE id = ?3",
                    )
                    .map_err(unavailable)?;
                for usage in &batch {
                    update
                        .execute(params![
                            millis(usage.last_used_at),
                            i64::try_from(usage.uses).unwrap_or(i64::MAX),
                            id_param(usage.id),
                        ])
                        .map_err(unavailable)?;
                }
            }
            transaction.commit().map_err(unavailable)
        })
        .await
    }

    async fn prune_expired(&self, cutoff: OffsetDateTime) -> Result<Vec<Invalidation>, StoreError> {
        self.prune(
            "DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at < ?1 \
             RETURNING id, digest",
            cutoff,
        )
        .await
    }

    async fn prune_expired_sessions(
        &self,
        cutoff: OffsetDateTime,
    ) -> Result<Vec<Invalidation>, StoreError> {
        self.prune(
            "DELETE FROM tokens WHERE kind = 'session' AND expires_at IS NOT NULL \
             AND expires_at < ?1 RETURNING id, digest",
            cutoff,
        )
        .await
    }
}
