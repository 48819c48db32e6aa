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
//! use tower_bearer::policy::{CreditGrant, RateGrant, RateLimit};
//! use tower_bearer::store::{
//!     ChangeStream, Invalidation, ListQuery, NewToken, RevocationReason, StoreError,
//!     TokenRecord, TokenStore, TokenUpdate, UsageUpdate,
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
//!     async fn delete(&self, tenant: &str, id: TokenId, reason: RevocationReason) -> Result<Invalidation, StoreError> {
//!         self.inner.delete(tenant, id, reason).await
//!     }
//!     async fn update(&self, tenant: &str, id: TokenId, update: TokenUpdate) -> Result<TokenRecord, StoreError> {
//!         self.inner.update(tenant, id, update).await
//!     }
//!     async fn delete_with_descendants(&self, tenant: &str, id: TokenId, reason: RevocationReason) -> Result<Vec<Invalidation>, StoreError> {
//!         self.inner.delete_with_descendants(tenant, id, reason).await
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
//!     async fn reserve_requests(&self, id: TokenId, rate: &RateLimit, window_start: i64, want: u64) -> Result<RateGrant, StoreError> {
//!         self.inner.reserve_requests(id, rate, window_start, want).await
//!     }
//!     async fn reserve_credits(&self, id: TokenId, want: u64, now: OffsetDateTime) -> Result<Option<CreditGrant>, StoreError> {
//!         self.inner.reserve_credits(id, want, now).await
//!     }
//!     async fn return_credits(&self, id: TokenId, amount: u64, since: OffsetDateTime) -> Result<(), StoreError> {
//!         self.inner.return_credits(id, amount, since).await
//!     }
//!     fn shares_budgets(&self) -> bool {
//!         self.inner.shares_budgets()
//!     }
//!     fn backend(&self) -> &'static str {
//!         self.inner.backend()
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
use time::OffsetDateTime;

use crate::identity::TokenId;
use crate::policy::{CreditGrant, RateGrant, RateLimit};
use crate::token::Digest;

#[cfg(feature = "activity")]
#[cfg_attr(docsrs, doc(cfg(feature = "activity")))]
pub mod activity;
#[cfg(all(feature = "activity", any(feature = "sqlite", feature = "postgres")))]
mod activity_rows;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod columns;
mod happened;
mod info;
mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub(crate) mod postgres;
mod records;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub(crate) mod sqlite;
#[cfg(feature = "metrics")]
mod timed;
#[cfg(feature = "webhooks")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhooks")))]
pub mod webhooks;

pub(crate) use happened::Happened;
pub use info::TokenInfo;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{PostgresOptions, PostgresStore};
pub(crate) use records::broadcast_feed;
pub use records::{
    BoxError, Change, ChangeStream, Invalidation, ListQuery, Metadata, NewToken, RevocationReason,
    StoreError, TokenRecord, TokenUpdate, UsageUpdate,
};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;
#[cfg(feature = "metrics")]
pub(crate) use timed::TimedStore;

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
    /// must evict. Stores with a change feed publish the invalidation on it; stores with
    /// webhooks write the `token.revoked` (or `session.ended`) event with `reason` in the
    /// same transaction.
    async fn delete(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<Invalidation, StoreError>;

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
    /// [`delete`](TokenStore::delete); `reason` is the record's own, the others are
    /// revoked for [`RevocationReason::Cascade`].
    async fn delete_with_descendants(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
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

    /// Deletes the sessions (records of kind [`TokenKind::Session`](crate::identity::TokenKind::Session)) that expired before
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

    /// Reserves up to `want` requests of `rate`'s window that starts at `window_start`
    /// (Unix seconds) for token `id`: never more than `rate.limit` for the window in all,
    /// whichever nodes ask, in one atomic step. Windows of the same limit that started
    /// earlier may be forgotten. Nodes call it for a slice of the budget at a time
    /// (see [`policy`](crate::policy)), never once per request.
    async fn reserve_requests(
        &self,
        id: TokenId,
        rate: &RateLimit,
        window_start: i64,
        want: u64,
    ) -> Result<RateGrant, StoreError>;

    /// Takes up to `want` of token `id`'s credits at `now`, in one atomic step, after
    /// setting the balance back to the refill's amount when a refill is due. `Ok(None)`
    /// when the token has no credits (it is unlimited); [`StoreError::NotFound`] when it
    /// does not exist.
    async fn reserve_credits(
        &self,
        id: TokenId,
        want: u64,
        now: OffsetDateTime,
    ) -> Result<Option<CreditGrant>, StoreError>;

    /// Gives back `amount` credits of token `id` taken from the balance counted since
    /// `counted_since`; nothing when the balance was refilled or set since (the credits
    /// given back belonged to a period that is over).
    async fn return_credits(
        &self,
        id: TokenId,
        amount: u64,
        counted_since: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Whether nodes other than this process may share the store's budgets: then each
    /// node reserves slices of a budget instead of all of it. `true` unless the store
    /// lives in this process alone.
    fn shares_budgets(&self) -> bool {
        true
    }

    /// The kind of store, for metrics (`backend` label): `memory`, `sqlite`, `postgres`,
    /// or `custom` (the default).
    fn backend(&self) -> &'static str {
        "custom"
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

    async fn delete(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<Invalidation, StoreError> {
        (**self).delete(tenant, id, reason).await
    }

    async fn delete_with_descendants(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<Vec<Invalidation>, StoreError> {
        (**self).delete_with_descendants(tenant, id, reason).await
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

    async fn reserve_requests(
        &self,
        id: TokenId,
        rate: &RateLimit,
        window_start: i64,
        want: u64,
    ) -> Result<RateGrant, StoreError> {
        (**self)
            .reserve_requests(id, rate, window_start, want)
            .await
    }

    async fn reserve_credits(
        &self,
        id: TokenId,
        want: u64,
        now: OffsetDateTime,
    ) -> Result<Option<CreditGrant>, StoreError> {
        (**self).reserve_credits(id, want, now).await
    }

    async fn return_credits(
        &self,
        id: TokenId,
        amount: u64,
        counted_since: OffsetDateTime,
    ) -> Result<(), StoreError> {
        (**self).return_credits(id, amount, counted_since).await
    }

    fn shares_budgets(&self) -> bool {
        (**self).shares_budgets()
    }

    fn backend(&self) -> &'static str {
        (**self).backend()
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
