//! How an activity log is configured.

use std::sync::Arc;
use std::time::Duration;

use crate::client_ip::TrustedProxies;
use crate::store::activity::ActivityStore;

/// How long rows are kept by default: 30 days, as comparable products keep theirs.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// An activity log to configure on a registry
/// ([`RegistryBuilder::activity`](crate::registry::RegistryBuilder::activity)).
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::activity::ActivityConfig;
/// use tower_bearer::MemoryStore;
///
/// // The client addresses recorded are read as the registry's trusted proxies say
/// // (`RegistryBuilder::trusted_proxies`).
/// let config = ActivityConfig::new(MemoryStore::new())
///     .retention(Duration::from_secs(7 * 86_400));
/// # let _ = config;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct ActivityConfig {
    pub(crate) store: Arc<dyn ActivityStore>,
    pub(crate) retention: Duration,
    pub(crate) capacity: usize,
    pub(crate) batch: usize,
    pub(crate) flush_every: Duration,
    pub(crate) prune_every: Duration,
    /// The registry's, set when it is built.
    pub(crate) proxies: TrustedProxies,
    /// Record the path of a request that has no route template (opt-in).
    pub(crate) raw_paths: bool,
}

impl std::fmt::Debug for ActivityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivityConfig")
            .field("retention", &self.retention)
            .field("capacity", &self.capacity)
            .field("batch", &self.batch)
            .field("flush_every", &self.flush_every)
            .field("prune_every", &self.prune_every)
            .field("proxies", &self.proxies)
            .field("raw_paths", &self.raw_paths)
            .finish_non_exhaustive()
    }
}

impl ActivityConfig {
    /// A log kept in `store` (often the registry's own store, cloned).
    pub fn new(store: impl ActivityStore) -> Self {
        Self {
            store: Arc::new(store),
            retention: DEFAULT_RETENTION,
            capacity: 10_000,
            batch: 1_000,
            flush_every: Duration::from_secs(1),
            prune_every: Duration::from_secs(3_600),
            proxies: TrustedProxies::none(),
            raw_paths: false,
        }
    }

    /// How long rows are kept (default 30 days); older ones are pruned in the background.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// How many rows may wait for the writer (default 10,000); beyond, rows are dropped
    /// and counted, never waited for.
    pub fn queue_capacity(mut self, rows: usize) -> Self {
        self.capacity = rows.max(1);
        self
    }

    /// How many rows the writer appends per transaction, and how many waiting rows wake
    /// it before its interval (default 1,000).
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch = rows.max(1);
        self
    }

    /// How often the writer appends what is waiting (default 1 s).
    pub fn flush_interval(mut self, every: Duration) -> Self {
        self.flush_every = every;
        self
    }

    /// How often rows past the retention are pruned (default 1 h).
    pub fn prune_interval(mut self, every: Duration) -> Self {
        self.prune_every = every;
        self
    }

    /// Records the path of a request that has no route template (a request rejected
    /// before routing, a path no route matches, a service that is not an axum router).
    /// By default such rows keep no route: a path can hold an invite code, a reset
    /// token or an e-mail address. Rows of matched routes keep axum's template
    /// (`/items/{id}`) either way, wherever the layer sits. Never the query string.
    pub fn record_raw_paths(mut self) -> Self {
        self.raw_paths = true;
        self
    }
}
