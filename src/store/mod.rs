//! Where token records live: the [`TokenStore`] trait and its implementations.
//!
//! A store keeps records ([`TokenRecord`]) keyed by id and, uniquely, by digest. It never
//! sees a plaintext token. The [`Registry`](crate::registry::Registry) caches in front of it, so
//! a store is asked only on cache misses, on issuance and on lifecycle operations.
//!
//! Stores shared by several nodes can offer a [change feed](TokenStore::changes) of
//! invalidations, so that a revocation on one node evicts the cached token on the others.
//!
//! Available stores: [`MemoryStore`] (in-process, for tests and single-process apps),
//! with the `sqlite` feature `SqliteStore` (embedded, persistent, one node), and with the
//! `postgres` feature `PostgresStore` (shared by many nodes, with a change feed).
//!
//! # Implementing a store
//!
//! A store is one async trait, [`TokenStore`]. Every method either answers or fails with
//! [`StoreError::Unavailable`] (never "not found" for an outage: that would turn a
//! database hiccup into 401s). Here is a complete one that wraps another store and counts
//! the cache misses that reach it:
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//!
//! use async_trait::async_trait;
//! use time::OffsetDateTime;
//! use tower_bearer::store::{
//!     ChangeStream, Invalidation, ListQuery, NewToken, StoreError, TokenRecord, TokenStore,
//!     TokenUpdate, UsageUpdate,
//! };
//! use tower_bearer::token::Digest;
//! use tower_bearer::TokenId;
//!
//! struct CountingStore<S> {
//!     inner: S,
//!     misses: Arc<AtomicU64>,
//! }
//!
//! #[async_trait]
//! impl<S: TokenStore> TokenStore for CountingStore<S> {
//!     async fn insert(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
//!         self.inner.insert(token).await
//!     }
//!     async fn find_by_digest(&self, digest: &Digest) -> Result<TokenRecord, StoreError> {
//!         // Only cache misses reach the store: this counts them.
//!         self.misses.fetch_add(1, Ordering::Relaxed);
//!         self.inner.find_by_digest(digest).await
//!     }
//!     async fn find_by_id(&self, tenant: &str, id: TokenId) -> Result<TokenRecord, StoreError> {
//!         self.inner.find_by_id(tenant, id).await
//!     }
//!     async fn list_by_tenant(&self, tenant: &str, query: ListQuery) -> Result<Vec<TokenRecord>, StoreError> {
//!         self.inner.list_by_tenant(tenant, query).await
//!     }
//!     async fn delete(&self, tenant: &str, id: TokenId) -> Result<Invalidation, StoreError> {
//!         self.inner.delete(tenant, id).await
//!     }
//!     async fn update(&self, tenant: &str, id: TokenId, update: TokenUpdate) -> Result<TokenRecord, StoreError> {
//!         self.inner.update(tenant, id, update).await
//!     }
//!     async fn delete_with_descendants(&self, tenant: &str, id: TokenId) -> Result<Vec<Invalidation>, StoreError> {
//!         self.inner.delete_with_descendants(tenant, id).await
//!     }
//!     async fn rotate(&self, old: &TokenRecord, new: NewToken, grace_until: Option<OffsetDateTime>) -> Result<TokenRecord, StoreError> {
//!         self.inner.rotate(old, new, grace_until).await
//!     }
//!     async fn insert_once(&self, marker: &str, token: NewToken) -> Result<Option<TokenRecord>, StoreError> {
//!         self.inner.insert_once(marker, token).await
//!     }
//!     async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
//!         self.inner.record_usage(batch).await
//!     }
//!     async fn prune_expired(&self, cutoff: OffsetDateTime) -> Result<Vec<Invalidation>, StoreError> {
//!         self.inner.prune_expired(cutoff).await
//!     }
//!     fn changes(&self) -> Option<ChangeStream> {
//!         self.inner.changes()
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let misses = Arc::new(AtomicU64::new(0));
//! let store = CountingStore { inner: tower_bearer::MemoryStore::new(), misses: misses.clone() };
//! let registry = tower_bearer::Registry::builder(store).build();
//! let issued = registry
//!     .issue(tower_bearer::registry::IssueRequest::new("t", "acme")?)
//!     .await?;
//! for _ in 0..3 {
//!     registry.verify(issued.secret.expose_secret()).await?;
//! }
//! assert_eq!(misses.load(Ordering::Relaxed), 1); // then the cache answered
//! # Ok(())
//! # }
//! ```
//!
//! Then prove it keeps the contract every store keeps, one test per property, with the
//! `testing` feature: `tower_bearer::store_contract_tests!(async { CountingStore { … } });`
//! (see [`testing`](crate::testing) when the feature is on).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use time::OffsetDateTime;

use crate::identity::{TokenId, TokenKind};
use crate::scope::ScopeSet;
use crate::token::{Digest, Env};

#[cfg(feature = "activity")]
#[cfg_attr(docsrs, doc(cfg(feature = "activity")))]
pub mod activity;
#[cfg(all(feature = "activity", any(feature = "sqlite", feature = "postgres")))]
mod activity_rows;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod columns;
mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub(crate) mod postgres;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub(crate) mod sqlite;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{PostgresOptions, PostgresStore};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;

/// A boxed error from a store's driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in a store. "Not found" and "unavailable" are never confused:
/// the first rejects a token, the second answers 503.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No record matches.
    #[error("token not found")]
    NotFound,
    /// A record with the same digest already exists (a fresh random token collided,
    /// which in practice means the store was seeded with duplicates).
    #[error("a token with this digest already exists")]
    Conflict,
    /// The store could not answer: connection refused, timeout, I/O error…
    #[error("token store unavailable: {0}")]
    Unavailable(#[source] BoxError),
}

impl StoreError {
    /// Wraps a driver error as [`StoreError::Unavailable`].
    pub fn unavailable(error: impl Into<BoxError>) -> Self {
        StoreError::Unavailable(error.into())
    }
}

/// A token to be stored: everything but the store-assigned id and the usage counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    /// Human-readable name, e.g. `"CI deploy"`.
    pub name: String,
    /// The tenant (workspace, company, account) the token belongs to.
    pub tenant: String,
    /// Granted scopes (without implications).
    pub scopes: ScopeSet,
    /// `live` or `test`.
    pub env: Env,
    /// API key or session token.
    pub kind: TokenKind,
    /// A few leading characters of the plaintext, for lists.
    pub display_prefix: String,
    /// SHA-256 of the token's secret. Unique.
    pub digest: Digest,
    /// Issuance time.
    pub created_at: OffsetDateTime,
    /// Expiry; `None` for never.
    pub expires_at: Option<OffsetDateTime>,
    /// The token that issued this one (through the management API), or `None` when it
    /// was issued server-side. Cascading revocation follows this lineage.
    pub created_by: Option<TokenId>,
    /// The session (of the `created_by` key) it was issued through, when the caller
    /// used a session's access token: revoking that session with its cascade revokes
    /// what it created.
    pub created_by_session: Option<TokenId>,
    /// The application user the token belongs to (opaque, at most 255 bytes).
    pub owner: Option<String>,
    /// The application's notes about the token (a JSON object of at most 4 KiB).
    pub metadata: Option<Metadata>,
}

/// A token's metadata: a JSON object the application attaches to it.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// A stored token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// Store-assigned id, positive and unique.
    pub id: TokenId,
    /// Human-readable name.
    pub name: String,
    /// The tenant the token belongs to.
    pub tenant: String,
    /// Granted scopes (without implications).
    pub scopes: ScopeSet,
    /// `live` or `test`.
    pub env: Env,
    /// API key or session token.
    pub kind: TokenKind,
    /// A few leading characters of the plaintext.
    pub display_prefix: String,
    /// SHA-256 of the token's secret.
    pub digest: Digest,
    /// Issuance time.
    pub created_at: OffsetDateTime,
    /// Expiry; `None` for never.
    pub expires_at: Option<OffsetDateTime>,
    /// The last successful verification flushed to the store.
    pub last_used_at: Option<OffsetDateTime>,
    /// Successful verifications flushed to the store.
    pub use_count: u64,
    /// The token that issued this one, or `None` when issued server-side.
    pub created_by: Option<TokenId>,
    /// The session it was issued through, if any.
    pub created_by_session: Option<TokenId>,
    /// The token this one was rotated into, while it lives on for a grace period.
    pub rotated_to: Option<TokenId>,
    /// The application user the token belongs to.
    pub owner: Option<String>,
    /// The application's notes about the token.
    pub metadata: Option<Metadata>,
}

impl TokenRecord {
    /// The record a store creates for `token` under `id`, with no usage yet.
    pub fn from_new(id: TokenId, token: NewToken) -> Self {
        Self {
            id,
            name: token.name,
            tenant: token.tenant,
            scopes: token.scopes,
            env: token.env,
            kind: token.kind,
            display_prefix: token.display_prefix,
            digest: token.digest,
            created_at: token.created_at,
            expires_at: token.expires_at,
            last_used_at: None,
            use_count: 0,
            created_by: token.created_by,
            created_by_session: token.created_by_session,
            rotated_to: None,
            owner: token.owner,
            metadata: token.metadata,
        }
    }

    /// Whether the token has expired at `now`. A token stops working exactly at its
    /// `expires_at`.
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|expires_at| now >= expires_at)
    }
}

/// What caches must evict after a record is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invalidation {
    /// The deleted record's id.
    pub id: TokenId,
    /// The deleted record's digest: the cache key.
    pub digest: Digest,
}

/// Usage accumulated in memory for one token since the last flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageUpdate {
    /// The token.
    pub id: TokenId,
    /// The latest successful verification.
    pub last_used_at: OffsetDateTime,
    /// How many successful verifications to add to the count.
    pub uses: u64,
}

/// Which records of a tenant [`TokenStore::list_by_tenant`] returns: those with an id
/// greater than `after`, in id order, at most `limit` of them.
///
/// ```
/// use tower_bearer::store::ListQuery;
/// use tower_bearer::TokenId;
///
/// let first = ListQuery::first(50);
/// let next = ListQuery::first(50).after(TokenId::new(120));
/// assert_eq!(next.after, Some(TokenId::new(120)));
/// assert_eq!(ListQuery::all().limit, usize::MAX);
/// # let _ = first;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListQuery {
    /// Only ids greater than this one (the last id of the previous page).
    pub after: Option<TokenId>,
    /// At most this many records.
    pub limit: usize,
    /// Only the tokens of this owner.
    pub owner: Option<String>,
    /// Only records of this kind (API keys, or sessions).
    pub kind: Option<TokenKind>,
    /// Only the records this token created (the sessions of an API key, the tokens an
    /// admin token issued).
    pub created_by: Option<TokenId>,
    /// Only the records issued through this session.
    pub created_by_session: Option<TokenId>,
}

impl ListQuery {
    /// Every record.
    pub fn all() -> Self {
        Self::first(usize::MAX)
    }

    /// The first `limit` records.
    pub fn first(limit: usize) -> Self {
        Self {
            after: None,
            limit,
            owner: None,
            kind: None,
            created_by: None,
            created_by_session: None,
        }
    }

    /// Only the tokens of `owner`.
    #[must_use]
    pub fn owner(mut self, owner: &str) -> Self {
        self.owner = Some(owner.to_owned());
        self
    }

    /// Only records of `kind`.
    #[must_use]
    pub fn kind(mut self, kind: TokenKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Only the records `id` created.
    #[must_use]
    pub fn created_by(mut self, id: TokenId) -> Self {
        self.created_by = Some(id);
        self
    }

    /// Only the records issued through session `id`.
    #[must_use]
    pub fn created_by_session(mut self, id: TokenId) -> Self {
        self.created_by_session = Some(id);
        self
    }

    /// Whether `record` is selected (apart from `after` and `limit`).
    pub fn selects(&self, record: &TokenRecord) -> bool {
        (self.owner.is_none() || record.owner == self.owner)
            && self.kind.is_none_or(|kind| record.kind == kind)
            && self
                .created_by
                .is_none_or(|id| record.created_by == Some(id))
            && self
                .created_by_session
                .is_none_or(|id| record.created_by_session == Some(id))
    }

    /// Starts after the record with id `id`.
    #[must_use]
    pub fn after(mut self, id: TokenId) -> Self {
        self.after = Some(id);
        self
    }
}

/// Changes to a stored token ([`TokenStore::update`]); `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenUpdate {
    /// A new name.
    pub name: Option<String>,
    /// New scopes.
    pub scopes: Option<ScopeSet>,
    /// A new expiry (the registry only ever shortens it).
    pub expires_at: Option<OffsetDateTime>,
}

impl TokenUpdate {
    /// No change.
    pub fn new() -> Self {
        Self::default()
    }

    /// Renames the token.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Replaces the token's scopes.
    #[must_use]
    pub fn scopes(mut self, scopes: ScopeSet) -> Self {
        self.scopes = Some(scopes);
        self
    }

    /// Sets the token's expiry.
    #[must_use]
    pub fn expires_at(mut self, at: OffsetDateTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.scopes.is_none() && self.expires_at.is_none()
    }

    /// Applies the changes to `record`.
    pub fn apply(&self, record: &mut TokenRecord) {
        if let Some(name) = &self.name {
            record.name.clone_from(name);
        }
        if let Some(scopes) = &self.scopes {
            record.scopes = scopes.clone();
        }
        if let Some(at) = self.expires_at {
            record.expires_at = Some(at);
        }
    }
}

/// An event on a store's change feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// A record was deleted (revoked, rotated away or pruned): evict its digest.
    Invalidated(Invalidation),
    /// A record still exists but changed (new scopes or name, a shorter life, a grace
    /// period after rotation): evict its digest so that the next request reads it again.
    Updated(Invalidation),
    /// The feed lost events (a lagging subscriber, changes pruned before they were
    /// read): evict everything.
    Reset,
    /// The feed stopped (its connection is down): changes made elsewhere may go unseen
    /// until it is back, so caches re-check what they hold after a short TTL.
    FeedDown,
    /// The feed is back, caught up with every change made while it was down.
    FeedUp,
}

/// A store's change feed. It ends when the store goes away.
pub type ChangeStream = BoxStream<'static, Change>;

/// The change feed of a store that broadcasts its changes in process: a subscriber that
/// falls too far behind gets [`Change::Reset`] in place of what it missed.
pub(crate) fn broadcast_feed(receiver: tokio::sync::broadcast::Receiver<Change>) -> ChangeStream {
    use futures_util::StreamExt as _;
    use tokio::sync::broadcast::error::RecvError;
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        let change = match receiver.recv().await {
            Ok(change) => change,
            Err(RecvError::Lagged(_)) => Change::Reset,
            Err(RecvError::Closed) => return None,
        };
        Some((change, receiver))
    })
    .boxed()
}

/// Persistent storage of token records.
///
/// Implementations never see plaintext tokens: only digests. Every method either answers
/// or fails with [`StoreError::Unavailable`]; "no such record" is
/// [`StoreError::NotFound`].
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Stores a new token and returns it with its assigned id. Fails with
    /// [`StoreError::Conflict`] if the digest exists.
    async fn insert(&self, token: NewToken) -> Result<TokenRecord, StoreError>;

    /// The record with this digest, expired or not.
    async fn find_by_digest(&self, digest: &Digest) -> Result<TokenRecord, StoreError>;

    /// The record with this id, if it belongs to `tenant`; otherwise
    /// [`StoreError::NotFound`], exactly as if it did not exist.
    async fn find_by_id(&self, tenant: &str, id: TokenId) -> Result<TokenRecord, StoreError>;

    /// Records of `tenant`, expired ones included, ordered by id, as `query` selects.
    async fn list_by_tenant(
        &self,
        tenant: &str,
        query: ListQuery,
    ) -> Result<Vec<TokenRecord>, StoreError>;

    /// Deletes the record with this id if it belongs to `tenant`, and says what caches
    /// must evict. Stores with a change feed publish the invalidation on it.
    async fn delete(&self, tenant: &str, id: TokenId) -> Result<Invalidation, StoreError>;

    /// Changes the record with this id if it belongs to `tenant` and returns it as it is
    /// now. Stores with a change feed publish [`Change::Updated`], so that every node
    /// reads the token again (a scope change takes effect everywhere, like a revocation).
    async fn update(
        &self,
        tenant: &str,
        id: TokenId,
        update: TokenUpdate,
    ) -> Result<TokenRecord, StoreError>;

    /// Deletes the record with this id (if it belongs to `tenant`) and every record it
    /// created, recursively through [`TokenRecord::created_by`], in one transaction. The
    /// first invalidation is the record's own. Published on the change feed like
    /// [`delete`](TokenStore::delete).
    async fn delete_with_descendants(
        &self,
        tenant: &str,
        id: TokenId,
    ) -> Result<Vec<Invalidation>, StoreError>;

    /// Replaces `old` with `replacement` in one transaction and returns the new record.
    ///
    /// Fails with [`StoreError::NotFound`] if `old` no longer exists, and with
    /// [`StoreError::Conflict`] if it changed since it was read (other digest or scopes)
    /// or was already rotated: two racing rotations leave one new token, never two.
    /// Records that `old` created now name the new record as their creator. Without
    /// `grace_until`, `old` is deleted (an invalidation on the change feed); with it, it
    /// stays valid until then at the latest, marked [`rotated_to`](TokenRecord::rotated_to)
    /// (an update on the change feed).
    async fn rotate(
        &self,
        old: &TokenRecord,
        replacement: NewToken,
        grace_until: Option<OffsetDateTime>,
    ) -> Result<TokenRecord, StoreError>;

    /// Inserts `token` unless `marker` was used before, recording the marker in the same
    /// transaction: `Ok(None)` when it was. Two processes racing on one database insert
    /// one token. Used for one-time bootstrap tokens.
    async fn insert_once(
        &self,
        marker: &str,
        token: NewToken,
    ) -> Result<Option<TokenRecord>, StoreError>;

    /// Adds a batch of usage: `last_used_at` becomes the later of the stored and the new
    /// value, `use_count` grows by `uses`. Updates of deleted records are ignored. One
    /// batch should be one write (one transaction) where the store has them.
    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError>;

    /// Deletes every record that expired before `cutoff` and says what caches must evict.
    async fn prune_expired(&self, cutoff: OffsetDateTime) -> Result<Vec<Invalidation>, StoreError>;

    /// Deletes the sessions (records of kind [`TokenKind::Session`]) that expired before
    /// `cutoff`, and says what caches must evict; API keys are left alone (expired keys
    /// stay listed until deleted). The registry calls it hourly, so that a key's sessions
    /// do not accumulate. The default keeps every session: a store that keeps sessions
    /// should implement it.
    async fn prune_expired_sessions(
        &self,
        cutoff: OffsetDateTime,
    ) -> Result<Vec<Invalidation>, StoreError> {
        let _ = cutoff;
        Ok(Vec::new())
    }

    /// A feed of invalidations made by any user of the store (this process or others),
    /// if the store has one. Called once per registry.
    fn changes(&self) -> Option<ChangeStream> {
        None
    }
}

#[async_trait]
impl<S: TokenStore + ?Sized> TokenStore for Arc<S> {
    async fn insert(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        (**self).insert(token).await
    }

    async fn find_by_digest(&self, digest: &Digest) -> Result<TokenRecord, StoreError> {
        (**self).find_by_digest(digest).await
    }

    async fn find_by_id(&self, tenant: &str, id: TokenId) -> Result<TokenRecord, StoreError> {
        (**self).find_by_id(tenant, id).await
    }

    async fn list_by_tenant(
        &self,
        tenant: &str,
        query: ListQuery,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        (**self).list_by_tenant(tenant, query).await
    }

    async fn delete(&self, tenant: &str, id: TokenId) -> Result<Invalidation, StoreError> {
        (**self).delete(tenant, id).await
    }

    async fn delete_with_descendants(
        &self,
        tenant: &str,
        id: TokenId,
    ) -> Result<Vec<Invalidation>, StoreError> {
        (**self).delete_with_descendants(tenant, id).await
    }

    async fn update(
        &self,
        tenant: &str,
        id: TokenId,
        update: TokenUpdate,
    ) -> Result<TokenRecord, StoreError> {
        (**self).update(tenant, id, update).await
    }

    async fn rotate(
        &self,
        old: &TokenRecord,
        replacement: NewToken,
        grace_until: Option<OffsetDateTime>,
    ) -> Result<TokenRecord, StoreError> {
        (**self).rotate(old, replacement, grace_until).await
    }

    async fn insert_once(
        &self,
        marker: &str,
        token: NewToken,
    ) -> Result<Option<TokenRecord>, StoreError> {
        (**self).insert_once(marker, token).await
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
        (**self).record_usage(batch).await
    }

    async fn prune_expired(&self, cutoff: OffsetDateTime) -> Result<Vec<Invalidation>, StoreError> {
        (**self).prune_expired(cutoff).await
    }

    async fn prune_expired_sessions(
        &self,
        cutoff: OffsetDateTime,
    ) -> Result<Vec<Invalidation>, StoreError> {
        (**self).prune_expired_sessions(cutoff).await
    }

    fn changes(&self) -> Option<ChangeStream> {
        (**self).changes()
    }
}

impl fmt::Debug for dyn TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn TokenStore")
    }
}
