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
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension as _, Row, params};
use time::OffsetDateTime;

use super::{Invalidation, NewToken, StoreError, TokenRecord, TokenStore, UsageUpdate};
use crate::clock::to_millis as millis;
use crate::principal::{TokenId, TokenKind};
use crate::scope::ScopeSet;
use crate::token::{Digest, Env};

/// The schema, one script per version, applied in order on open (`PRAGMA user_version`
/// records how many have run).
const MIGRATIONS: &[&str] = &[include_str!(
    "../../migrations/sqlite/0001_create_tokens.sql"
)];

/// Read connections beside the writer.
const READERS: usize = 4;

const COLUMNS: &str = "id, name, tenant, scopes, env, kind, display_prefix, digest, \
                       created_at, expires_at, last_used_at, use_count";

/// A [`TokenStore`] in a SQLite database file: the embedded default.
///
/// Opening a store creates the file if needed, switches it to WAL mode and applies the
/// embedded migrations. Digests are unique; nothing in the database is a plaintext token.
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
        let writer = Connection::open(path).map_err(unavailable)?;
        configure(&writer).map_err(unavailable)?;
        // WAL mode is a property of the file: set once, by the writer.
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
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

fn migrate(connection: &Connection) -> Result<(), StoreError> {
    let applied: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(unavailable)?;
    for (version, script) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
        let batch = format!(
            "BEGIN IMMEDIATE; {script}\nPRAGMA user_version = {}; COMMIT;",
            version + 1
        );
        connection.execute_batch(&batch).map_err(unavailable)?;
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

fn from_millis(millis: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .map_err(|e| corrupt(format!("timestamp out of range: {e}")))
}

fn corrupt(why: impl Into<String>) -> StoreError {
    StoreError::unavailable(format!("corrupt token row: {}", why.into()))
}

fn scopes_column(scopes: &ScopeSet) -> String {
    let names: Vec<&str> = scopes.iter().map(|scope| scope.as_str()).collect();
    names.join(" ")
}

fn digest_of(bytes: Vec<u8>) -> Result<Digest, StoreError> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| corrupt("digest is not 32 bytes"))?;
    Ok(Digest::from_bytes(bytes))
}

fn id_param(id: TokenId) -> i64 {
    // Ids come from SQLite's INTEGER PRIMARY KEY, so they fit; a larger one matches nothing.
    i64::try_from(id.get()).unwrap_or(-1)
}

/// The raw columns of a row, read inside rusqlite's callback; checked afterwards.
struct RawRecord {
    id: i64,
    name: String,
    tenant: String,
    scopes: String,
    env: String,
    kind: String,
    display_prefix: String,
    digest: Vec<u8>,
    created_at: i64,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    use_count: i64,
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
    })
}

impl RawRecord {
    fn check(self) -> Result<TokenRecord, StoreError> {
        Ok(TokenRecord {
            id: TokenId::new(u64::try_from(self.id).map_err(|_| corrupt("negative id"))?),
            name: self.name,
            tenant: self.tenant,
            scopes: ScopeSet::parse(self.scopes.split_whitespace())
                .map_err(|e| corrupt(e.to_string()))?,
            env: Env::from_str(&self.env).map_err(|e| corrupt(e.to_string()))?,
            kind: TokenKind::from_str(&self.kind).map_err(|e| corrupt(e.to_string()))?,
            display_prefix: self.display_prefix,
            digest: digest_of(self.digest)?,
            created_at: from_millis(self.created_at)?,
            expires_at: self.expires_at.map(from_millis).transpose()?,
            last_used_at: self.last_used_at.map(from_millis).transpose()?,
            use_count: self.use_count.max(0) as u64,
        })
    }
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

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        self.run(Role::Write, move |db| {
            let sql = format!(
                "INSERT INTO tokens (name, tenant, scopes, env, kind, display_prefix, digest, \
                 created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 RETURNING {COLUMNS}"
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
                ],
            )
        })
        .await
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

    async fn list_by_tenant(&self, tenant: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let tenant = tenant.to_owned();
        self.run(Role::Read, move |db| {
            let sql = format!("SELECT {COLUMNS} FROM tokens WHERE tenant = ?1 ORDER BY id");
            let mut statement = db.prepare_cached(&sql).map_err(unavailable)?;
            let rows = statement
                .query_map([tenant], raw)
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
        self.run(Role::Write, move |db| {
            let mut statement = db
                .prepare_cached(
                    "DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at < ?1 \
                     RETURNING id, digest",
                )
                .map_err(unavailable)?;
            let rows = statement
                .query_map([millis(cutoff)], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
                })
                .map_err(unavailable)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(unavailable)?;
            rows.into_iter()
                .map(|(id, digest)| {
                    Ok(Invalidation {
                        id: TokenId::new(id.max(0) as u64),
                        digest: digest_of(digest)?,
                    })
                })
                .collect()
        })
        .await
    }
}
