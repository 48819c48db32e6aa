//! [`PostgresStore`]: token records in PostgreSQL, shared by many nodes, with a change
//! feed that loses nothing.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

use super::columns::{
    COLUMNS, RawRecord, digest_of, id_param, metadata_column, scopes_column, token_id,
};
use super::{
    Change, ChangeStream, Invalidation, ListQuery, NewToken, StoreError, TokenRecord, TokenStore,
    TokenUpdate, UsageUpdate,
};
use crate::clock::to_millis as millis;
use crate::identity::{TokenId, TokenKind};
use crate::token::Digest;

/// The schema, one script per version, applied in order on open.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_create_tokens.sql"),
    include_str!("../../../migrations/postgres/0002_activity.sql"),
    include_str!("../../../migrations/postgres/0003_activity_revoked.sql"),
    include_str!("../../../migrations/postgres/0004_session_lineage.sql"),
];

/// The advisory lock writers of the change log take (any constant: "tower-be").
const WRITE_LOCK: i64 = 0x746f_7765_722d_6265;
/// The advisory lock held while migrating.
const MIGRATION_LOCK: i64 = WRITE_LOCK + 1;
/// How many invalidations a slow subscriber may fall behind before it gets a
/// [`Change::Reset`].
const FEED_CAPACITY: usize = 4096;

/// How a [`PostgresStore`] connects and keeps its feed.
#[derive(Clone, Debug)]
#[must_use]
pub struct PostgresOptions {
    pool_size: usize,
    /// Bounds every wait for a pooled connection and every connect.
    timeout: Duration,
    heartbeat: Duration,
    retention: Duration,
    application_name: String,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            timeout: Duration::from_secs(2),
            heartbeat: Duration::from_secs(1),
            retention: Duration::from_secs(24 * 3600),
            application_name: "tower-bearer".to_owned(),
        }
    }
}

impl PostgresOptions {
    /// The largest number of pooled connections (default 16).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long to wait for a connection, pooled or new (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often the listener reads the change log, to catch what it may have missed and
    /// to notice a dead connection (default 1 s).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// The `application_name` of the store's connections (default `tower-bearer`; the
    /// listener's is this plus ` listener`), to tell nodes apart in `pg_stat_activity`.
    pub fn application_name(mut self, name: &str) -> Self {
        self.application_name = name.to_owned();
        self
    }

    /// How long change-log rows are kept (default 24 h).
    pub fn change_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }
}

/// A [`TokenStore`] in PostgreSQL: the shared store of many nodes, with a change feed
/// that reaches every node within milliseconds.
///
/// - Queries go through a pool (deadpool-postgres) with cached prepared statements: a
///   cache miss is one round trip.
/// - Every deletion and update writes a row to a change log and sends `NOTIFY` in the same
///   transaction. Writers take an advisory transaction lock first, so the log's sequence
///   order is commit order and a reader can never skip a change that commits late.
/// - Each store keeps one dedicated connection (not from the pool: a pooled connection
///   drops notifications) that `LISTEN`s, applies notifications at once, and on every
///   (re)connect first catches up from the last sequence number it applied. A heartbeat
///   (every second by default) reads the log, which also detects a silently dead
///   connection. While the listener is down the feed says so
///   ([`Change::FeedDown`]), and the registry re-checks cached tokens after its
///   [feed-down TTL](crate::registry::RegistryBuilder::feed_down_ttl).
/// - Change-log rows older than the retention (24 h) are pruned; a node that was away
///   longer drops its whole positive cache when it comes back.
///
/// Poolers in transaction mode (PgBouncer's default) and read replicas cannot `LISTEN`:
/// point the store at the primary, or at a pooler in session mode.
///
/// ```no_run
/// use tower_bearer::store::PostgresStore;
/// use tower_bearer::Registry;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect("postgres://app:secret@db.internal/app").await?;
/// let registry = Registry::builder(store).build();
/// # let _ = registry;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
}

struct Shared {
    pool: Pool,
    feed: broadcast::Sender<Change>,
    listener: tokio::task::AbortHandle,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.shared.pool.status())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/dbname`),
    /// creates or migrates the schema (safely when several nodes start at once), and
    /// starts listening for changes.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// [`connect`](Self::connect) with options.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(StoreError::unavailable)?;
        config
            .connect_timeout(options.timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .application_name(&options.application_name);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .build()
            .map_err(StoreError::unavailable)?;
        migrate(&pool).await?;
        let start = latest_seq(&**pool.get().await.map_err(StoreError::unavailable)?).await?;
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let mut listen_config = config;
        listen_config.application_name(format!("{} listener", options.application_name));
        let listener = Listener::new(listen_config, pool.clone(), feed.clone(), options, start);
        let listener = tokio::spawn(listener.run()).abort_handle();
        Ok(Self {
            shared: Arc::new(Shared {
                pool,
                feed,
                listener,
            }),
        })
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.shared
            .pool
            .get()
            .await
            .map_err(StoreError::unavailable)
    }

    /// Runs a `DELETE … WHERE … < $1 RETURNING id, digest` with `cutoff`, logging each
    /// deletion in the change log in the same transaction.
    async fn prune(
        &self,
        delete: &str,
        cutoff: OffsetDateTime,
    ) -> Result<Vec<Invalidation>, StoreError> {
        let mut client = self.client().await?;
        let transaction = write_transaction(&mut client).await?;
        let rows = transaction
            .query(delete, &[&millis(cutoff)])
            .await
            .map_err(unavailable)?;
        let pruned: Vec<Invalidation> = rows.iter().map(invalidation).collect::<Result<_, _>>()?;
        for gone in &pruned {
            log_change(&transaction, Kind::Invalidated, gone).await?;
        }
        transaction.commit().await.map_err(unavailable)?;
        Ok(pruned)
    }
}

mod feed;

use feed::{Kind, Listener, latest_seq, log_change};

pub(crate) fn unavailable(error: tokio_postgres::Error) -> StoreError {
    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        return StoreError::Conflict;
    }
    StoreError::unavailable(error)
}

fn raw(row: &Row) -> Result<RawRecord, StoreError> {
    let get = |error: tokio_postgres::Error| StoreError::unavailable(error);
    Ok(RawRecord {
        id: row.try_get(0).map_err(get)?,
        name: row.try_get(1).map_err(get)?,
        tenant: row.try_get(2).map_err(get)?,
        scopes: row.try_get(3).map_err(get)?,
        env: row.try_get(4).map_err(get)?,
        kind: row.try_get(5).map_err(get)?,
        display_prefix: row.try_get(6).map_err(get)?,
        digest: row.try_get(7).map_err(get)?,
        created_at: row.try_get(8).map_err(get)?,
        expires_at: row.try_get(9).map_err(get)?,
        last_used_at: row.try_get(10).map_err(get)?,
        use_count: row.try_get(11).map_err(get)?,
        created_by: row.try_get(12).map_err(get)?,
        rotated_to: row.try_get(13).map_err(get)?,
        owner: row.try_get(14).map_err(get)?,
        metadata: row.try_get(15).map_err(get)?,
        created_by_session: row.try_get(16).map_err(get)?,
    })
}

fn record(row: &Row) -> Result<TokenRecord, StoreError> {
    raw(row)?.check()
}

fn invalidation(row: &Row) -> Result<Invalidation, StoreError> {
    let id: i64 = row.try_get(0).map_err(StoreError::unavailable)?;
    let digest: Vec<u8> = row.try_get(1).map_err(StoreError::unavailable)?;
    Ok(Invalidation {
        id: token_id(id)?,
        digest: digest_of(digest)?,
    })
}

/// Creates or migrates the schema under an advisory lock, so that nodes starting at once
/// apply each migration once.
async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await.map_err(StoreError::unavailable)?;
    let transaction = client.transaction().await.map_err(unavailable)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(unavailable)?;
    transaction
        .batch_execute("CREATE TABLE IF NOT EXISTS tower_bearer_schema (version INT NOT NULL)")
        .await
        .map_err(unavailable)?;
    let applied: i32 = transaction
        .query_opt("SELECT version FROM tower_bearer_schema", &[])
        .await
        .map_err(unavailable)?
        .map_or(0, |row| row.get(0));
    for (index, script) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(applied).unwrap_or(0))
    {
        transaction
            .batch_execute(script)
            .await
            .map_err(unavailable)?;
        let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
        transaction
            .execute("DELETE FROM tower_bearer_schema", &[])
            .await
            .map_err(unavailable)?;
        transaction
            .execute(
                "INSERT INTO tower_bearer_schema (version) VALUES ($1)",
                &[&version],
            )
            .await
            .map_err(unavailable)?;
    }
    transaction.commit().await.map_err(unavailable)
}

/// Deletes the token `id` of `tenant` in `transaction`; `NotFound` when there is none.
async fn delete_one(
    transaction: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    id: TokenId,
) -> Result<Invalidation, StoreError> {
    let row = transaction
        .query_opt(
            "DELETE FROM tower_bearer_tokens WHERE id = $1 AND tenant = $2 RETURNING id, digest",
            &[&id_param(id), &tenant],
        )
        .await
        .map_err(unavailable)?
        .ok_or(StoreError::NotFound)?;
    invalidation(&row)
}

/// Starts a transaction that writes the change log: the advisory lock first, so that
/// sequence order is commit order.
async fn write_transaction(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    let transaction = client.transaction().await.map_err(unavailable)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
        .await
        .map_err(unavailable)?;
    Ok(transaction)
}

#[async_trait]
impl TokenStore for PostgresStore {
    async fn insert(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        let client = self.client().await?;
        insert(&client, &token).await
    }

    async fn find_by_digest(&self, digest: &Digest) -> Result<TokenRecord, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM tower_bearer_tokens WHERE digest = $1"
            ))
            .await
            .map_err(unavailable)?;
        let digest = digest.as_bytes().as_slice();
        match client.query_opt(&statement, &[&digest]).await {
            Ok(Some(row)) => record(&row),
            Ok(None) => Err(StoreError::NotFound),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn find_by_id(&self, tenant: &str, id: TokenId) -> Result<TokenRecord, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM tower_bearer_tokens WHERE id = $1 AND tenant = $2"
            ))
            .await
            .map_err(unavailable)?;
        match client
            .query_opt(&statement, &[&id_param(id), &tenant])
            .await
        {
            Ok(Some(row)) => record(&row),
            Ok(None) => Err(StoreError::NotFound),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn list_by_tenant(
        &self,
        tenant: &str,
        query: ListQuery,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM tower_bearer_tokens WHERE tenant = $1 AND id > $2 \
                 AND ($4::TEXT IS NULL OR owner = $4) AND ($5::TEXT IS NULL OR kind = $5) \
                 AND ($6::BIGINT IS NULL OR created_by = $6) \
                 AND ($7::BIGINT IS NULL OR created_by_session = $7) ORDER BY id LIMIT $3"
            ))
            .await
            .map_err(unavailable)?;
        let after = query.after.map_or(0, id_param);
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let kind = query.kind.map(TokenKind::as_str);
        let created_by = query.created_by.map(id_param);
        let session = query.created_by_session.map(id_param);
        let rows = client
            .query(
                &statement,
                &[
                    &tenant,
                    &after,
                    &limit,
                    &query.owner,
                    &kind,
                    &created_by,
                    &session,
                ],
            )
            .await
            .map_err(unavailable)?;
        rows.iter().map(record).collect()
    }

    async fn delete(&self, tenant: &str, id: TokenId) -> Result<Invalidation, StoreError> {
        let mut client = self.client().await?;
        let transaction = write_transaction(&mut client).await?;
        let gone = delete_one(&transaction, tenant, id).await?;
        log_change(&transaction, Kind::Invalidated, &gone).await?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(gone)
    }

    async fn update(
        &self,
        tenant: &str,
        id: TokenId,
        update: TokenUpdate,
    ) -> Result<TokenRecord, StoreError> {
        let mut client = self.client().await?;
        let transaction = write_transaction(&mut client).await?;
        let scopes = update.scopes.as_ref().map(scopes_column);
        let expires_at = update.expires_at.map(millis);
        let row = transaction
            .query_opt(
                &format!(
                    "UPDATE tower_bearer_tokens SET name = COALESCE($3, name), \
                     scopes = COALESCE($4, scopes), expires_at = COALESCE($5, expires_at) \
                     WHERE id = $1 AND tenant = $2 RETURNING {COLUMNS}"
                ),
                &[&id_param(id), &tenant, &update.name, &scopes, &expires_at],
            )
            .await
            .map_err(unavailable)?
            .ok_or(StoreError::NotFound)?;
        let updated = record(&row)?;
        let changed = Invalidation {
            id,
            digest: updated.digest,
        };
        log_change(&transaction, Kind::Updated, &changed).await?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(updated)
    }

    async fn delete_with_descendants(
        &self,
        tenant: &str,
        id: TokenId,
    ) -> Result<Vec<Invalidation>, StoreError> {
        let mut client = self.client().await?;
        let transaction = write_transaction(&mut client).await?;
        let mut removed = vec![delete_one(&transaction, tenant, id).await?];
        let rows = transaction
            .query(
                "WITH RECURSIVE tree(id) AS ( \
                     SELECT id FROM tower_bearer_tokens WHERE created_by = $1 AND tenant = $2 \
                     UNION SELECT t.id FROM tower_bearer_tokens t JOIN tree ON t.created_by = tree.id \
                         WHERE t.tenant = $2) \
                 DELETE FROM tower_bearer_tokens WHERE id IN (SELECT id FROM tree) RETURNING id, digest",
                &[&id_param(id), &tenant],
            )
            .await
            .map_err(unavailable)?;
        for row in &rows {
            removed.push(invalidation(row)?);
        }
        for gone in &removed {
            log_change(&transaction, Kind::Invalidated, gone).await?;
        }
        transaction.commit().await.map_err(unavailable)?;
        Ok(removed)
    }

    async fn rotate(
        &self,
        old: &TokenRecord,
        replacement: NewToken,
        grace_until: Option<OffsetDateTime>,
    ) -> Result<TokenRecord, StoreError> {
        let mut client = self.client().await?;
        let transaction = write_transaction(&mut client).await?;
        let current = transaction
            .query_opt(
                "SELECT digest, scopes, rotated_to FROM tower_bearer_tokens \
                 WHERE id = $1 AND tenant = $2 FOR UPDATE",
                &[&id_param(old.id), &old.tenant],
            )
            .await
            .map_err(unavailable)?
            .ok_or(StoreError::NotFound)?;
        let digest: Vec<u8> = current.get(0);
        let scopes: String = current.get(1);
        let rotated_to: Option<i64> = current.get(2);
        if digest != old.digest.as_bytes()
            || scopes != scopes_column(&old.scopes)
            || rotated_to.is_some()
        {
            return Err(StoreError::Conflict);
        }
        let new = insert(&transaction, &replacement).await?;
        transaction
            .execute(
                "UPDATE tower_bearer_tokens SET created_by = $1 WHERE created_by = $2",
                &[&id_param(new.id), &id_param(old.id)],
            )
            .await
            .map_err(unavailable)?;
        let changed = Invalidation {
            id: old.id,
            digest: old.digest,
        };
        match grace_until {
            None => {
                transaction
                    .execute(
                        "DELETE FROM tower_bearer_tokens WHERE id = $1",
                        &[&id_param(old.id)],
                    )
                    .await
                    .map_err(unavailable)?;
                log_change(&transaction, Kind::Invalidated, &changed).await?;
            }
            Some(until) => {
                transaction
                    .execute(
                        "UPDATE tower_bearer_tokens SET rotated_to = $1, \
                         expires_at = LEAST(COALESCE(expires_at, $2), $2) WHERE id = $3",
                        &[&id_param(new.id), &millis(until), &id_param(old.id)],
                    )
                    .await
                    .map_err(unavailable)?;
                log_change(&transaction, Kind::Updated, &changed).await?;
            }
        }
        transaction.commit().await.map_err(unavailable)?;
        Ok(new)
    }

    async fn insert_once(
        &self,
        marker: &str,
        token: NewToken,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(unavailable)?;
        // Serialises the processes racing on one marker until the first one commits.
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&marker],
            )
            .await
            .map_err(unavailable)?;
        let done = transaction
            .query_opt(
                "SELECT 1 FROM tower_bearer_markers WHERE name = $1",
                &[&marker],
            )
            .await
            .map_err(unavailable)?;
        if done.is_some() {
            return Ok(None);
        }
        let record = insert(&transaction, &token).await?;
        transaction
            .execute(
                "INSERT INTO tower_bearer_markers (name, token_id, created_at) VALUES ($1, $2, $3)",
                &[&marker, &id_param(record.id), &millis(record.created_at)],
            )
            .await
            .map_err(unavailable)?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(Some(record))
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = batch.iter().map(|u| id_param(u.id)).collect();
        let last: Vec<i64> = batch.iter().map(|u| millis(u.last_used_at)).collect();
        let uses: Vec<i64> = batch
            .iter()
            .map(|u| i64::try_from(u.uses).unwrap_or(i64::MAX))
            .collect();
        let client = self.client().await?;
        // One statement for the whole batch.
        client
            .execute(
                "UPDATE tower_bearer_tokens AS t \
                 SET last_used_at = GREATEST(COALESCE(t.last_used_at, 0), u.last_used_at), \
                     use_count = t.use_count + u.uses \
                 FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[]) AS u(id, last_used_at, uses) \
                 WHERE t.id = u.id",
                &[&ids, &last, &uses],
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn prune_expired(&self, cutoff: OffsetDateTime) -> Result<Vec<Invalidation>, StoreError> {
        self.prune(
            "DELETE FROM tower_bearer_tokens WHERE expires_at IS NOT NULL AND expires_at < $1 \
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
            "DELETE FROM tower_bearer_tokens WHERE kind = 'session' AND expires_at IS NOT NULL \
             AND expires_at < $1 RETURNING id, digest",
            cutoff,
        )
        .await
    }

    fn changes(&self) -> Option<ChangeStream> {
        Some(super::broadcast_feed(self.shared.feed.subscribe()))
    }
}

async fn insert(
    client: &impl deadpool_postgres::GenericClient,
    token: &NewToken,
) -> Result<TokenRecord, StoreError> {
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO tower_bearer_tokens (name, tenant, scopes, env, kind, display_prefix, \
             digest, created_at, expires_at, created_by, owner, metadata, created_by_session) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {COLUMNS}"
        ))
        .await
        .map_err(unavailable)?;
    let digest = token.digest.as_bytes().as_slice();
    let row = client
        .query_one(
            &statement,
            &[
                &token.name,
                &token.tenant,
                &scopes_column(&token.scopes),
                &token.env.as_str(),
                &token.kind.as_str(),
                &token.display_prefix,
                &digest,
                &millis(token.created_at),
                &token.expires_at.map(millis),
                &token.created_by.map(id_param),
                &token.owner,
                &token.metadata.as_ref().map(metadata_column),
                &token.created_by_session.map(id_param),
            ],
        )
        .await
        .map_err(unavailable)?;
    record(&row)
}
