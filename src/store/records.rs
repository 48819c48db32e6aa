//! What stores keep and exchange: the records, the changes, their queries and errors.

use futures_util::stream::BoxStream;
use time::OffsetDateTime;

use crate::identity::{TokenId, TokenKind};
use crate::policy::{Credits, Policies, RateLimit};
use crate::scope::ScopeSet;
use crate::token::{Digest, Env};

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
    /// Rate limits, credits and allowed networks ([`Policies::none`] for none).
    pub policies: Policies,
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
    /// Rate limits, credits (their balance as stored) and allowed networks.
    pub policies: Policies,
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
            policies: token.policies,
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

/// Which records of a tenant [`TokenStore::list_by_tenant`](super::TokenStore::list_by_tenant) returns: those with an id
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

/// Changes to a stored token ([`TokenStore::update`](super::TokenStore::update)); `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenUpdate {
    /// A new name.
    pub name: Option<String>,
    /// New scopes.
    pub scopes: Option<ScopeSet>,
    /// A new expiry (the registry only ever shortens it).
    pub expires_at: Option<OffsetDateTime>,
    /// New rate limits (empty: none).
    pub rate_limits: Option<Vec<RateLimit>>,
    /// New credits: `Some(None)` makes the key unlimited; `Some(Some(credits))` sets the
    /// balance (counted from `credits.counted_since`) and the refill.
    pub credits: Option<Option<Credits>>,
    /// A new allow-list (empty: anywhere).
    pub allowed_ips: Option<Vec<ipnet::IpNet>>,
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

    /// Replaces the key's rate limits.
    #[must_use]
    pub fn rate_limits(mut self, rate_limits: Vec<RateLimit>) -> Self {
        self.rate_limits = Some(rate_limits);
        self
    }

    /// Sets the key's credits (`None`: unlimited).
    #[must_use]
    pub fn credits(mut self, credits: Option<Credits>) -> Self {
        self.credits = Some(credits);
        self
    }

    /// Replaces the key's allow-list.
    #[must_use]
    pub fn allowed_ips(mut self, networks: Vec<ipnet::IpNet>) -> Self {
        self.allowed_ips = Some(networks);
        self
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.scopes.is_none()
            && self.expires_at.is_none()
            && !self.changes_policies()
    }

    /// Whether the key's policies change.
    pub fn changes_policies(&self) -> bool {
        self.rate_limits.is_some() || self.credits.is_some() || self.allowed_ips.is_some()
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
        if let Some(rate_limits) = &self.rate_limits {
            record.policies.rate_limits.clone_from(rate_limits);
        }
        if let Some(credits) = &self.credits {
            record.policies.credits.clone_from(credits);
        }
        if let Some(networks) = &self.allowed_ips {
            record.policies.allowed_ips.clone_from(networks);
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

/// Why a token was revoked (the activity log remembers it, `GET /tokens/{id}` shows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevocationReason {
    /// Revoked by name (`DELETE /tokens/{id}`, `Registry::revoke`, a session's logout).
    Manual,
    /// Revoked with an ancestor (`DELETE /tokens/{id}?cascade=true`).
    Cascade,
    /// Replaced by its rotation.
    Rotated,
    /// Reported found in public by a secret scanner.
    Leaked,
    /// The tenant's last admin key, revoked anyway (`DELETE /tokens/{id}?force=true`).
    LastAdminForced,
}

impl RevocationReason {
    /// Every reason, in declaration order.
    pub const ALL: [Self; 5] = [
        Self::Manual,
        Self::Cascade,
        Self::Rotated,
        Self::Leaked,
        Self::LastAdminForced,
    ];

    /// The reason's name in the API and the stores: `manual`, `cascade`, `rotated`,
    /// `leaked`, `last_admin_forced`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Cascade => "cascade",
            Self::Rotated => "rotated",
            Self::Leaked => "leaked",
            Self::LastAdminForced => "last_admin_forced",
        }
    }

    /// The reason named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == name)
    }
}

impl std::fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
