//! Where token records live: the [`TokenStore`] trait and its implementations.
//!
//! A store keeps records ([`TokenRecord`]) keyed by id and, uniquely, by digest. It never
//! sees a plaintext token. The [`Registry`](crate::Registry) caches in front of it, so
//! a store is asked only on cache misses, on issuance and on lifecycle operations.
//!
//! Stores shared by several nodes can offer a [change feed](TokenStore::changes) of
//! invalidations, so that a revocation on one node evicts the cached token on the others.
//!
//! Available stores: [`MemoryStore`] (in-process, for tests and single-process apps) and,
//! with the `sqlite` feature, `SqliteStore` (embedded, persistent).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use time::OffsetDateTime;

use crate::principal::{TokenId, TokenKind};
use crate::scope::ScopeSet;
use crate::token::{Digest, Env};

mod memory;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
mod sqlite;

pub use memory::MemoryStore;
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
}

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

/// An event on a store's change feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// A record was deleted (revoked, rotated away or pruned): evict its digest.
    Invalidated(Invalidation),
    /// The feed lost events (a reconnect, a lagging subscriber): evict everything.
    Reset,
}

/// A store's change feed. It ends when the store goes away.
pub type ChangeStream = BoxStream<'static, Change>;

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

    /// All records of `tenant`, expired ones included, ordered by id.
    async fn list_by_tenant(&self, tenant: &str) -> Result<Vec<TokenRecord>, StoreError>;

    /// Deletes the record with this id if it belongs to `tenant`, and says what caches
    /// must evict. Stores with a change feed publish the invalidation on it.
    async fn delete(&self, tenant: &str, id: TokenId) -> Result<Invalidation, StoreError>;

    /// Adds a batch of usage: `last_used_at` becomes the later of the stored and the new
    /// value, `use_count` grows by `uses`. Updates of deleted records are ignored. One
    /// batch should be one write (one transaction) where the store has them.
    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError>;

    /// Deletes every record that expired before `cutoff` and says what caches must evict.
    async fn prune_expired(&self, cutoff: OffsetDateTime) -> Result<Vec<Invalidation>, StoreError>;

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

    async fn list_by_tenant(&self, tenant: &str) -> Result<Vec<TokenRecord>, StoreError> {
        (**self).list_by_tenant(tenant).await
    }

    async fn delete(&self, tenant: &str, id: TokenId) -> Result<Invalidation, StoreError> {
        (**self).delete(tenant, id).await
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
        (**self).record_usage(batch).await
    }

    async fn prune_expired(&self, cutoff: OffsetDateTime) -> Result<Vec<Invalidation>, StoreError> {
        (**self).prune_expired(cutoff).await
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
