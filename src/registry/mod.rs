//! The registry: a digest cache in front of a [`TokenStore`], and the one place tokens
//! are verified, issued, listed, revoked, rotated and pruned.
//!
//! # Verification
//!
//! [`Registry::verify`] decodes the credential (its shape), digests it, and looks the
//! digest up in a concurrent map whose reads take no lock; a token a thread verifies
//! again and again is served from that thread's own copy of the entry, so that cores
//! share no written cache line. A hit does no I/O; expiry is checked on every hit (a
//! coarse clock, and the precise one within a second of the expiry), so a cached token
//! stops working exactly at its `expires_at`. A miss first checks the checksum (junk
//! stops there), then asks the store once, however many requests are waiting for the
//! same digest (single-flight), and caches the answer: known tokens for the positive TTL
//! (60 s), unknown digests for the negative TTL (10 s, bounded in number).
//!
//! # Revocation
//!
//! Once [`Registry::revoke`] returns, [`Registry::verify`] never again succeeds for that
//! token on this registry, even if a cache fill that read the record before the
//! revocation completes after it. Other registries on the same store evict the token when
//! the store's change feed delivers the invalidation, and at the latest when their cached
//! entry's positive TTL runs out.
//!
//! # Usage
//!
//! Every successful verification is counted in memory; a background task writes
//! `last_used_at` and counts to the store in batches (at most one write per token per
//! interval, 1 s by default). Call [`Registry::flush`] at shutdown.

mod builder;
mod error;
mod lifecycle;
pub(crate) mod meter;
mod mounts;
mod sessions;
mod tasks;
mod undeclared;
mod verify;
#[cfg(feature = "webhooks")]
mod webhooks;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::watch;
use tokio::task::AbortHandle;

pub use builder::RegistryBuilder;
pub use error::{RandomError, RegistryError, RejectCause, VerifyError};
pub use lifecycle::issue::{
    DEFAULT_TENANT, Expiry, InvalidIssueRequest, IssueRequest, Issued, MAX_GRACE, MAX_METADATA_LEN,
    MAX_NAME_LEN, MAX_OWNER_LEN, RotateRequest,
};
#[cfg(feature = "admin")]
pub(crate) use lifecycle::issue::{is_valid_metadata, is_valid_owner};
pub use lifecycle::leaked::{LeakReport, LeakVerdict};
#[cfg(feature = "exchange")]
#[cfg_attr(docsrs, doc(cfg(feature = "exchange")))]
pub use sessions::login::{LoginError, SessionInfo, SessionPage, SessionToken};
#[cfg(feature = "exchange")]
#[cfg_attr(docsrs, doc(cfg(feature = "exchange")))]
pub use sessions::user_tokens::{InvalidUserToken, UserTokenRequest};
pub use verify::check::{Check, Miss};
#[cfg(feature = "webhooks")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhooks")))]
pub use webhooks::Webhooks;

use verify::cache::Cache;
use verify::entry::Entry;
use verify::intern::Interner;
use verify::usage::UsageTracker;

use crate::clock::Clock;
use crate::identity::TokenId;
use crate::scope::ScopeSet;
use crate::store::{ListQuery, StoreError, TokenInfo, TokenStore};
use crate::token::{Digest, Env, Formats, IssueFormat};

/// How often a verification retries when revocations keep racing its cache fill before
/// it gives up with "unavailable". Revocations are rare; this only bounds a pathology.
const MAX_FILL_ATTEMPTS: usize = 4;

/// The result of one shared store lookup, handed to every request waiting on it.
type FillResult = Result<Filled, Arc<StoreError>>;

#[derive(Clone)]
enum Filled {
    /// The record, and the revocation epoch in which it was read.
    Known(Entry, u64),
    Unknown,
    /// Revoked: the token it was.
    Revoked(TokenId),
}

/// Verifies tokens from a cache in front of a [`TokenStore`], and manages their
/// lifecycle. Cheap to clone; clones share the cache.
///
/// See the [module documentation](self) for the guarantees.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn TokenStore>,
    formats: Formats,
    issue_format: IssueFormat,
    /// The accepted environment; `None` accepts both.
    env: Option<Env>,
    interner: Interner,
    clock: Clock,
    cache: Cache,
    /// In-flight store lookups, one per digest.
    flights: DashMap<Digest, watch::Receiver<Option<FillResult>>>,
    usage: UsageTracker,
    default_lifetime: Duration,
    /// The longest lifetime issuance accepts (the hard limit when no policy is set).
    max_lifetime: Duration,
    /// Whether `max_lifetime` is a configured policy (then "never expires" is refused).
    lifetime_policy: bool,
    store_timeout: Duration,
    /// The declared scopes (built-ins included); `None` accepts any valid scope.
    declared: Option<std::collections::BTreeSet<crate::scope::Scope>>,
    health: StoreHealth,
    /// Where the HTTP routes over this registry are mounted.
    mounts: mounts::Mounts,
    /// Whether code asking for an undeclared scope is an error; the ones warned about.
    strict_scopes: bool,
    undeclared: undeclared::Undeclared,
    tasks: Mutex<Vec<AbortHandle>>,
    /// The budgets of the keys with policies, on this node.
    meters: meter::Meters,
    /// Session access tokens: accepted, and minted by `login`, once configured.
    #[cfg(feature = "exchange")]
    sessions: Option<sessions::keys::Sessions>,
    /// The request log, when configured.
    #[cfg(feature = "activity")]
    activity: Option<crate::activity::ActivityLog>,
    /// Where webhook endpoints are kept, when configured.
    #[cfg(feature = "webhooks")]
    webhooks: Option<Webhooks>,
}

/// The lifetime no token may exceed, policy or not: 100 years.
pub(crate) const HARD_MAX_LIFETIME: Duration = Duration::from_secs(36_500 * 86_400);

/// How the store has been answering cache misses: counters for [`CacheStats`], the
/// outage flag that keeps the warning to one per outage, when it was last heard from,
/// and whether it is known to hang.
struct StoreHealth {
    down: AtomicBool,
    errors: AtomicU64,
    stale_answers: AtomicU64,
    /// When (Unix nanoseconds, the registry's clock) the store last answered a lookup or
    /// its change feed last spoke: stale answers end `stale_if_error` after it.
    last_heard: std::sync::atomic::AtomicI64,
    /// A lookup timed out: until a background probe sees the store answer again, misses
    /// do not ask it (503 and stale answers at once, instead of a timeout each).
    hung: AtomicBool,
}

impl StoreHealth {
    fn heard_at(now: i64) -> Self {
        Self {
            down: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            stale_answers: AtomicU64::new(0),
            last_heard: std::sync::atomic::AtomicI64::new(now),
            hung: AtomicBool::new(false),
        }
    }

    fn heard(&self, now: i64) {
        self.last_heard.fetch_max(now, Ordering::Relaxed);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(|e| e.into_inner());
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (tokens, negative) = self.inner.cache.counts();
        f.debug_struct("Registry")
            .field("formats", &self.inner.formats)
            .field("env", &self.inner.env)
            .field("cached_tokens", &tokens)
            .field("cached_negative", &negative)
            .finish_non_exhaustive()
    }
}

/// How many entries a registry's cache holds, and how the store behind it has been
/// answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Verified tokens.
    pub tokens: usize,
    /// Unknown and revoked digests.
    pub negative: usize,
    /// Cache misses the store failed to answer (errors and timeouts).
    pub store_errors: u64,
    /// Requests accepted from a stale entry because the store failed
    /// ([`RegistryBuilder::stale_if_error`]).
    pub stale_answers: u64,
}

/// One page of [`Registry::list_page`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenPage {
    /// The tokens, ordered by id.
    pub tokens: Vec<TokenInfo>,
    /// Whether more tokens follow the last one.
    pub has_more: bool,
}

impl Registry {
    /// Starts configuring a registry over `store`.
    pub fn builder(store: impl TokenStore) -> RegistryBuilder {
        RegistryBuilder::new(Arc::new(store))
    }

    /// The store behind the cache.
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.inner.store
    }

    /// The accepted wire formats.
    pub fn formats(&self) -> &Formats {
        &self.inner.formats
    }

    /// The environment new tokens should be issued for: the accepted one, or `live` when
    /// both are accepted.
    pub fn default_env(&self) -> Env {
        self.inner.env.unwrap_or_default()
    }

    /// The clock expiry is measured against.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The activity log, when one is configured
    /// ([`RegistryBuilder::activity`]).
    #[cfg(feature = "activity")]
    #[cfg_attr(docsrs, doc(cfg(feature = "activity")))]
    #[inline]
    pub fn activity(&self) -> Option<&crate::activity::ActivityLog> {
        self.inner.activity.as_ref()
    }

    /// The webhook endpoints, when configured ([`RegistryBuilder::webhooks`]).
    #[cfg(feature = "webhooks")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webhooks")))]
    pub fn webhooks(&self) -> Option<&Webhooks> {
        self.inner.webhooks.as_ref()
    }

    /// The scopes the registry declares (none when it accepts any).
    pub(crate) fn declared_scopes(&self) -> impl Iterator<Item = &str> {
        self.inner
            .declared
            .iter()
            .flatten()
            .map(crate::scope::Scope::as_str)
    }

    /// Whether the registry trades API keys for access tokens (`POST /auth/login`).
    #[cfg(feature = "dashboard")]
    pub(crate) fn has_sessions(&self) -> bool {
        #[cfg(feature = "exchange")]
        return self.inner.sessions.is_some();
        #[cfg(not(feature = "exchange"))]
        return false;
    }

    /// Whether the registry keeps an activity log.
    #[cfg(any(feature = "dashboard", feature = "activity"))]
    pub(crate) fn has_activity_log(&self) -> bool {
        #[cfg(feature = "activity")]
        return self.inner.activity.is_some();
        #[cfg(not(feature = "activity"))]
        return false;
    }

    /// Publishes the metrics counted since the last call to the installed recorder
    /// (feature `metrics`): the registry's background task does so once per usage flush
    /// ([`RegistryBuilder::usage_flush_interval`]); call it to publish at once.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn publish_metrics(&self) {
        #[cfg(feature = "activity")]
        let dropped = self.activity().map(|log| log.stats().dropped);
        #[cfg(not(feature = "activity"))]
        let dropped = None;
        crate::telemetry::publish(self.inner.cache.counts().0, dropped);
    }

    /// How many entries the cache holds.
    pub fn cache_stats(&self) -> CacheStats {
        let (tokens, negative) = self.inner.cache.counts();
        let health = &self.inner.health;
        CacheStats {
            tokens,
            negative,
            store_errors: health.errors.load(Ordering::Relaxed),
            stale_answers: health.stale_answers.load(Ordering::Relaxed),
        }
    }

    /// Whether `scope` may be issued: declared, or no declaration is configured
    /// ([`RegistryBuilder::declare_scopes`]).
    pub fn is_declared(&self, scope: &str) -> bool {
        self.inner
            .declared
            .as_ref()
            .is_none_or(|declared| declared.iter().any(|d| d.as_str() == scope))
    }

    /// Whether `granted` includes `scope` under this registry's implications (or `*`):
    /// what a token granted those scopes would answer to `has_scope`.
    pub fn grants(&self, granted: &ScopeSet, scope: &str) -> bool {
        self.inner.interner.implications().grants(granted, scope)
    }

    fn check_declared(&self, scopes: &ScopeSet) -> Result<(), RegistryError> {
        match scopes
            .iter()
            .find(|scope| !self.is_declared(scope.as_str()))
        {
            Some(undeclared) => Err(RegistryError::UndeclaredScope(undeclared.clone())),
            None => Ok(()),
        }
    }

    /// The longest lifetime a token may be issued with, when a policy is set
    /// ([`RegistryBuilder::max_lifetime`]).
    pub fn max_lifetime(&self) -> Option<Duration> {
        self.inner
            .lifetime_policy
            .then_some(self.inner.max_lifetime)
    }
}

impl Registry {
    /// Tells the activity log (when there is one) that a token was revoked here, so that
    /// calls still made with it are recorded against it (`token_id` and `session_id` as
    /// its principal had them), and so that its admins can read why (`reason`, and where
    /// it leaked).
    #[cfg_attr(not(feature = "activity"), allow(unused_variables))]
    fn remember_revoked(
        &self,
        digest: &Digest,
        token_id: crate::identity::TokenId,
        session_id: Option<crate::identity::TokenId>,
        tenant: &str,
        reason: crate::store::RevocationReason,
        leak: Option<&LeakReport>,
    ) {
        #[cfg(feature = "activity")]
        if let Some(log) = &self.inner.activity {
            let mut token = crate::store::activity::RevokedToken::new(
                *digest,
                token_id,
                tenant,
                self.inner.clock.now(),
            )
            .because(reason);
            token.session_id = session_id.map(|id| id.to_string());
            if let Some(leak) = leak {
                token.leak_url = leak.url.clone();
                token.leak_source = leak.source.clone();
            }
            log.remember_revoked(token);
        }
    }
}

fn racing_revocations() -> Arc<StoreError> {
    Arc::new(StoreError::unavailable(
        "revocations kept racing the cache fill",
    ))
}
