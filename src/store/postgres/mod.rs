//! [`PostgresStore`]: token records in PostgreSQL, shared by many nodes, with a change
//! feed that loses nothing.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::broadcast;
use tokio_postgres::error::SqlState;

use super::{Change, StoreError};

/// The schema, one script per version, applied in order on open.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_create_tokens.sql"),
    include_str!("../../../migrations/postgres/0002_activity.sql"),
    include_str!("../../../migrations/postgres/0003_activity_revoked.sql"),
    include_str!("../../../migrations/postgres/0004_session_lineage.sql"),
    include_str!("../../../migrations/postgres/0005_policies.sql"),
    include_str!("../../../migrations/postgres/0006_revocation_reason.sql"),
    include_str!("../../../migrations/postgres/0007_webhooks.sql"),
    include_str!("../../../migrations/postgres/0008_webhook_outbox.sql"),
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

/// A [`TokenStore`](super::TokenStore) in PostgreSQL: the shared store of many nodes, with a change feed
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
        let (mut config, tls) = tls::configure(url)?;
        config
            .connect_timeout(options.timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .application_name(&options.application_name);
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
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
        // The first connection says why it fails, causes included: a refused TLS
        // handshake names the certificate problem only in its source.
        drop(
            pool.get()
                .await
                .map_err(|error| StoreError::unavailable(explain(&error)))?,
        );
        migrate(&pool).await?;
        let start = latest_seq(&**pool.get().await.map_err(StoreError::unavailable)?).await?;
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let mut listen_config = config;
        listen_config.application_name(format!("{} listener", options.application_name));
        let listener = Listener::new(
            listen_config,
            tls,
            pool.clone(),
            feed.clone(),
            options,
            start,
        );
        let listener = tokio::spawn(listener.run()).abort_handle();
        Ok(Self {
            shared: Arc::new(Shared {
                pool,
                feed,
                listener,
            }),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.shared
            .pool
            .get()
            .await
            .map_err(StoreError::unavailable)
    }
}

#[cfg(feature = "activity")]
mod activity;
mod feed;
#[cfg(feature = "webhooks")]
mod outbox;
mod policies;
mod tls;
mod tokens;
#[cfg(feature = "webhooks")]
mod webhooks;

use feed::{Listener, latest_seq};

/// `error` and its causes, on one line.
fn explain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

fn unavailable(error: tokio_postgres::Error) -> StoreError {
    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        return StoreError::Conflict;
    }
    StoreError::unavailable(error)
}

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
