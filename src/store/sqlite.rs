//! [`SqliteStore`]: token records in an embedded SQLite database.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row as _, migrate::Migrator};
use time::OffsetDateTime;

use super::{Invalidation, NewToken, StoreError, TokenRecord, TokenStore, UsageUpdate};
use crate::principal::{TokenId, TokenKind};
use crate::scope::ScopeSet;
use crate::token::{Digest, Env};

/// The schema, embedded at compile time and applied when a store is opened.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

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
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = SqliteStore::open("tokens.db").await?;
/// let registry = Registry::builder(store).build();
/// # let _ = registry;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL loses no committed transaction on a process crash, only
            // possibly the last ones on a power loss: the usual trade for a token store.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            // A ping before every acquire would double the latency of each cache miss; a
            // broken SQLite connection is rare, and a failed query reports "unavailable".
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(StoreError::unavailable)?;
        Self::with_pool(pool).await
    }

    /// Uses an existing pool (configured as you like) and migrates its database.
    pub async fn with_pool(pool: SqlitePool) -> Result<Self, StoreError> {
        MIGRATOR.run(&pool).await.map_err(StoreError::unavailable)?;
        Ok(Self { pool })
    }

    /// The connection pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// How many tokens the database holds (all tenants, expired ones included).
    pub async fn count(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(count.max(0) as u64)
    }
}

fn unavailable(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        other => StoreError::unavailable(other),
    }
}

fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
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

fn record(row: &SqliteRow) -> Result<TokenRecord, StoreError> {
    let get_err = |e: sqlx::Error| corrupt(e.to_string());
    let digest: Vec<u8> = row.try_get("digest").map_err(get_err)?;
    let digest: [u8; 32] = digest
        .try_into()
        .map_err(|_| corrupt("digest is not 32 bytes"))?;
    let scopes: String = row.try_get("scopes").map_err(get_err)?;
    let env: String = row.try_get("env").map_err(get_err)?;
    let kind: String = row.try_get("kind").map_err(get_err)?;
    let id: i64 = row.try_get("id").map_err(get_err)?;
    let optional_time = |column: &str| -> Result<Option<OffsetDateTime>, StoreError> {
        let value: Option<i64> = row.try_get(column).map_err(get_err)?;
        value.map(from_millis).transpose()
    };
    let use_count: i64 = row.try_get("use_count").map_err(get_err)?;
    Ok(TokenRecord {
        id: TokenId::new(u64::try_from(id).map_err(|_| corrupt("negative id"))?),
        name: row.try_get("name").map_err(get_err)?,
        tenant: row.try_get("tenant").map_err(get_err)?,
        scopes: ScopeSet::parse(scopes.split_whitespace()).map_err(|e| corrupt(e.to_string()))?,
        env: Env::from_str(&env).map_err(|e| corrupt(e.to_string()))?,
        kind: TokenKind::from_str(&kind).map_err(|e| corrupt(e.to_string()))?,
        display_prefix: row.try_get("display_prefix").map_err(get_err)?,
        digest: Digest::from_bytes(digest),
        created_at: from_millis(row.try_get("created_at").map_err(get_err)?)?,
        expires_at: optional_time("expires_at")?,
        last_used_at: optional_time("last_used_at")?,
        use_count: use_count.max(0) as u64,
    })
}

fn id_param(id: TokenId) -> i64 {
    // Ids come from SQLite's INTEGER PRIMARY KEY, so they fit; a larger one matches nothing.
    i64::try_from(id.get()).unwrap_or(-1)
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        let sql = format!(
            "INSERT INTO tokens (name, tenant, scopes, env, kind, display_prefix, digest, \
             created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&token.name)
            .bind(&token.tenant)
            .bind(scopes_column(&token.scopes))
            .bind(token.env.as_str())
            .bind(token.kind.as_str())
            .bind(&token.display_prefix)
            .bind(token.digest.as_bytes().as_slice())
            .bind(millis(token.created_at))
            .bind(token.expires_at.map(millis))
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        record(&row)
    }

    async fn find_by_digest(&self, digest: &Digest) -> Result<TokenRecord, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tokens WHERE digest = ?");
        let row = sqlx::query(&sql)
            .bind(digest.as_bytes().as_slice())
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        record(&row)
    }

    async fn find_by_id(&self, tenant: &str, id: TokenId) -> Result<TokenRecord, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tokens WHERE id = ? AND tenant = ?");
        let row = sqlx::query(&sql)
            .bind(id_param(id))
            .bind(tenant)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        record(&row)
    }

    async fn list_by_tenant(&self, tenant: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tokens WHERE tenant = ? ORDER BY id");
        let rows = sqlx::query(&sql)
            .bind(tenant)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(record).collect()
    }

    async fn delete(&self, tenant: &str, id: TokenId) -> Result<Invalidation, StoreError> {
        let digest: Vec<u8> =
            sqlx::query_scalar("DELETE FROM tokens WHERE id = ? AND tenant = ? RETURNING digest")
                .bind(id_param(id))
                .bind(tenant)
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable)?;
        let digest: [u8; 32] = digest
            .try_into()
            .map_err(|_| corrupt("digest is not 32 bytes"))?;
        Ok(Invalidation {
            id,
            digest: Digest::from_bytes(digest),
        })
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        for update in batch {
            sqlx::query(
                "UPDATE tokens SET last_used_at = MAX(COALESCE(last_used_at, 0), ?), \
                 use_count = use_count + ? WHERE id = ?",
            )
            .bind(millis(update.last_used_at))
            .bind(i64::try_from(update.uses).unwrap_or(i64::MAX))
            .bind(id_param(update.id))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn prune_expired(&self, cutoff: OffsetDateTime) -> Result<Vec<Invalidation>, StoreError> {
        let rows = sqlx::query(
            "DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at < ? \
             RETURNING id, digest",
        )
        .bind(millis(cutoff))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get("id").map_err(unavailable)?;
                let digest: Vec<u8> = row.try_get("digest").map_err(unavailable)?;
                let digest: [u8; 32] = digest
                    .try_into()
                    .map_err(|_| corrupt("digest is not 32 bytes"))?;
                Ok(Invalidation {
                    id: TokenId::new(id.max(0) as u64),
                    digest: Digest::from_bytes(digest),
                })
            })
            .collect()
    }
}
