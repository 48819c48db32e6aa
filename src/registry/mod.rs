//! The registry: a digest cache in front of a [`TokenStore`], and the one place tokens
//! are verified, issued, listed, revoked, rotated and pruned.
//!
//! # Verification
//!
//! [`Registry::verify`] decodes the credential (shape and checksum: junk stops here),
//! digests it, and looks the digest up in a sharded concurrent map. A hit does no I/O and
//! takes no global lock; expiry is checked against the clock on every hit, so a cached
//! token stops working exactly at its `expires_at`. A miss asks the store once, however
//! many requests are waiting for the same digest (single-flight), and caches the answer:
//! known tokens for the positive TTL (60 s), unknown digests for the negative TTL (10 s,
//! bounded in number).
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
mod cache;
mod error;
mod intern;
mod issue;
mod usage;

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;
use futures_util::StreamExt as _;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::AbortHandle;

pub use builder::RegistryBuilder;
pub use error::{RegistryError, RejectCause, VerifyError};
pub use issue::{
    Expiry, InvalidRequest, IssueRequest, Issued, MAX_GRACE, MAX_NAME_LEN, RotateRequest, TokenInfo,
};

use cache::{Cache, Install, Lookup};
use intern::Interner;
use usage::UsageTracker;

use crate::clock::Clock;
use crate::principal::{Principal, TokenId};
use crate::scope::ScopeSet;
use crate::store::{Change, ChangeStream, NewToken, StoreError, TokenStore};
use crate::token::{Digest, Env, Formats, IssueFormat, Presented};

/// How often a verification retries when revocations keep racing its cache fill before
/// it gives up with "unavailable". Revocations are rare; this only bounds a pathology.
const MAX_FILL_ATTEMPTS: usize = 4;

/// The result of one shared store lookup, handed to every request waiting on it.
type FillResult = Result<Filled, Arc<StoreError>>;

#[derive(Clone)]
enum Filled {
    /// The record, and the revocation epoch in which it was read.
    Known(Principal, u64),
    Unknown,
    Revoked,
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
    tasks: Mutex<Vec<AbortHandle>>,
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

/// How many entries a registry's cache holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Verified tokens.
    pub tokens: usize,
    /// Unknown and revoked digests.
    pub negative: usize,
}

impl Registry {
    /// Starts configuring a registry over `store`.
    pub fn builder(store: impl TokenStore) -> RegistryBuilder {
        RegistryBuilder::new(Arc::new(store))
    }

    /// Starts configuring a registry over a shared store.
    pub fn builder_shared(store: Arc<dyn TokenStore>) -> RegistryBuilder {
        RegistryBuilder::new(store)
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

    /// How many entries the cache holds.
    pub fn cache_stats(&self) -> CacheStats {
        let (tokens, negative) = self.inner.cache.counts();
        CacheStats { tokens, negative }
    }

    // ----- verification -------------------------------------------------------------

    /// Verifies a plaintext credential and returns the principal it stands for.
    ///
    /// A cache hit completes without I/O. Errors say why (for logs): a
    /// [`VerifyError::Rejected`] must be answered like any other invalid token; a
    /// [`VerifyError::Unavailable`] means the store could not answer a cache miss.
    pub async fn verify(&self, token: &str) -> Result<Principal, VerifyError> {
        let presented = self.decode(token)?;
        self.verify_presented(&presented).await
    }

    /// Checks a credential's shape (and checksum) without any lookup.
    pub fn decode(&self, token: &str) -> Result<Presented, VerifyError> {
        self.inner
            .formats
            .decode(token)
            .map_err(|why| VerifyError::rejected(RejectCause::Malformed(why), None))
    }

    /// Answers from the cache alone: `None` means the store must be asked (use
    /// [`Registry::verify_missed`]). Never blocks, never allocates on a hit.
    #[inline]
    pub fn verify_cached(&self, presented: &Presented) -> Option<Result<Principal, VerifyError>> {
        let now = self.inner.clock.now_nanos();
        if presented.env().is_some_and(|env| !self.accepts_env(env)) {
            return Some(Err(VerifyError::rejected(RejectCause::WrongEnv, None)));
        }
        match self.inner.cache.lookup(presented.digest(), now) {
            Lookup::Hit(principal) => Some(self.admit(principal, presented, now)),
            Lookup::Unknown => Some(Err(unknown(presented))),
            Lookup::Revoked => Some(Err(revoked(presented))),
            Lookup::Miss => None,
        }
    }

    /// Verifies a decoded credential: from the cache, or from the store on a miss.
    pub async fn verify_presented(&self, presented: &Presented) -> Result<Principal, VerifyError> {
        match self.verify_cached(presented) {
            Some(answer) => answer,
            None => self.verify_missed(presented).await,
        }
    }

    /// Verifies a decoded credential that [`Registry::verify_cached`] just missed: asks
    /// the store (once for all the requests waiting on the same digest).
    pub async fn verify_missed(&self, presented: &Presented) -> Result<Principal, VerifyError> {
        for _ in 0..MAX_FILL_ATTEMPTS {
            match self.fill(*presented.digest()).await {
                Ok(Filled::Known(principal, epoch)) => {
                    // A revocation since the record was read may concern this token: the
                    // cache, which revocations update atomically, has the last word.
                    if epoch != self.inner.cache.epoch() {
                        if let Some(answer) = self.verify_cached(presented) {
                            return answer;
                        }
                        continue;
                    }
                    let now = self.inner.clock.now_nanos();
                    return self.admit(principal, presented, now);
                }
                Ok(Filled::Unknown) => return Err(unknown(presented)),
                Ok(Filled::Revoked) => return Err(revoked(presented)),
                Err(error) => return Err(VerifyError::Unavailable(error)),
            }
        }
        Err(VerifyError::Unavailable(racing_revocations()))
    }

    fn accepts_env(&self, env: Env) -> bool {
        self.inner.env.is_none_or(|accepted| accepted == env)
    }

    /// The checks after the digest was found, in order: id (Sanctum), expiry,
    /// environment, tenant (account credentials). Counts the use on success.
    fn admit(
        &self,
        principal: Principal,
        presented: &Presented,
        now: i64,
    ) -> Result<Principal, VerifyError> {
        let id = Some(principal.id());
        if presented
            .expected_id()
            .is_some_and(|expected| expected != principal.id())
        {
            return Err(unknown(presented));
        }
        if now >= principal.expires_at_nanos() {
            return Err(VerifyError::rejected(RejectCause::Expired, id));
        }
        if !self.accepts_env(principal.env()) {
            return Err(VerifyError::rejected(RejectCause::WrongEnv, id));
        }
        if presented
            .account()
            .is_some_and(|account| account != principal.tenant())
        {
            return Err(VerifyError::rejected(RejectCause::TenantMismatch, id));
        }
        self.inner.usage.record(&principal, now);
        Ok(principal)
    }

    /// Joins the store lookup in flight for `digest`, or makes it.
    async fn fill(&self, digest: Digest) -> FillResult {
        for _ in 0..MAX_FILL_ATTEMPTS {
            let leader = match self.inner.flights.entry(digest) {
                MapEntry::Occupied(occupied) => Err(occupied.get().clone()),
                MapEntry::Vacant(vacant) => {
                    let (done, flight) = watch::channel(None);
                    vacant.insert(flight);
                    Ok(done)
                }
            };
            match leader {
                // This request asks the store, in its own task (no hop to another thread);
                // the others wait for its answer. If it is cancelled half-way (a client
                // hanging up), the landing clears the flight and a waiter takes over.
                Ok(done) => {
                    let _landing = FlightLanding {
                        flights: &self.inner.flights,
                        digest,
                    };
                    let result = self.query_and_install(digest).await;
                    let _ = done.send(Some(result.clone()));
                    return result;
                }
                Err(mut flight) => {
                    if let Ok(result) = flight.wait_for(Option::is_some).await {
                        if let Some(result) = result.clone() {
                            return result;
                        }
                    }
                    // The leader was cancelled or panicked: try again.
                }
            }
        }
        Err(fill_aborted())
    }

    async fn query_and_install(&self, digest: Digest) -> FillResult {
        let inner = &self.inner;
        for _ in 0..MAX_FILL_ATTEMPTS {
            let epoch = inner.cache.epoch();
            let found = inner.store.find_by_digest(&digest).await;
            let now = inner.clock.now_nanos();
            let installed = match found {
                Ok(record) => {
                    let shared = inner.interner.shared(&record.tenant, &record.scopes);
                    let fresh_until = inner.cache.fresh_until(now);
                    let principal = Principal::from_record(&record, shared, fresh_until);
                    inner.cache.install_known(&digest, principal, epoch, now)
                }
                Err(StoreError::NotFound) => inner.cache.install_unknown(&digest, now),
                Err(error) => {
                    tracing::warn!(target: "tower_bearer::registry", %error, "token store could not answer a cache miss");
                    return Err(Arc::new(error));
                }
            };
            match installed {
                Install::Known(principal) => return Ok(Filled::Known(principal, epoch)),
                Install::Unknown => return Ok(Filled::Unknown),
                Install::Revoked => return Ok(Filled::Revoked),
                Install::Stale => continue,
            }
        }
        Err(racing_revocations())
    }

    // ----- lifecycle ----------------------------------------------------------------

    /// Issues a token. The plaintext is in the returned [`Issued::secret`], and nowhere
    /// else, ever.
    pub async fn issue(&self, request: IssueRequest) -> Result<Issued, RegistryError> {
        let inner = &self.inner;
        let now = truncate_to_millis(inner.clock.now());
        let expires_at = match request.expiry {
            Expiry::Default => Some(add(now, inner.default_lifetime)?),
            Expiry::In(lifetime) => Some(add(now, lifetime)?),
            Expiry::At(at) => Some(truncate_to_millis(at)),
            Expiry::Never => None,
        };
        if expires_at.is_some_and(|at| at <= now) {
            return Err(RegistryError::InvalidExpiry);
        }
        let minted = inner
            .formats
            .mint(inner.issue_format, request.env)
            .map_err(RegistryError::Random)?;
        let record = inner
            .store
            .insert(NewToken {
                name: request.name,
                tenant: request.tenant,
                scopes: request.scopes,
                env: request.env,
                kind: request.kind,
                display_prefix: minted.display_prefix.clone(),
                digest: minted.digest,
                created_at: now,
                expires_at,
            })
            .await?;
        tracing::info!(
            target: "tower_bearer::registry",
            token_id = %record.id,
            tenant = %record.tenant,
            "token issued"
        );
        Ok(Issued {
            secret: minted.finish(record.id),
            info: TokenInfo::from_record(record, now),
        })
    }

    /// The tokens of `tenant`, without secrets, ordered by id. Expired tokens are listed
    /// (flagged `expired`) until deleted or pruned; revoked tokens are gone.
    pub async fn list(&self, tenant: &str) -> Result<Vec<TokenInfo>, RegistryError> {
        let now = self.inner.clock.now();
        let records = self.inner.store.list_by_tenant(tenant).await?;
        Ok(records
            .into_iter()
            .map(|record| TokenInfo::from_record(record, now))
            .collect())
    }

    /// One token of `tenant`, without its secret.
    pub async fn get(&self, tenant: &str, id: TokenId) -> Result<TokenInfo, RegistryError> {
        let record = self.inner.store.find_by_id(tenant, id).await?;
        Ok(TokenInfo::from_record(record, self.inner.clock.now()))
    }

    /// Revokes (deletes) a token of `tenant`. When this returns, the token no longer
    /// verifies on this registry. A token of another tenant is
    /// [`RegistryError::NotFound`], exactly like a token that does not exist.
    pub async fn revoke(&self, tenant: &str, id: TokenId) -> Result<(), RegistryError> {
        let invalidation = self.inner.store.delete(tenant, id).await?;
        self.inner
            .cache
            .invalidate(&invalidation.digest, self.inner.clock.now_nanos());
        tracing::info!(target: "tower_bearer::registry", token_id = %id, %tenant, "token revoked");
        Ok(())
    }

    /// Replaces a token with a new one with the same name, scopes, environment, kind and
    /// lifetime length (a token that never expired still never expires), and revokes the
    /// old one.
    ///
    /// Refused, with nothing issued and the old token untouched, when the token has
    /// expired ([`RegistryError::Expired`]: create a new one) or when the rotation is on
    /// behalf of a caller that does not hold every scope of the token
    /// ([`RegistryError::ScopesNotHeld`]).
    pub async fn rotate(&self, request: RotateRequest) -> Result<Issued, RegistryError> {
        let RotateRequest {
            tenant,
            id,
            caller,
            grace: _,
        } = request;
        let old = self.inner.store.find_by_id(&tenant, id).await?;
        if old.is_expired_at(self.inner.clock.now()) {
            return Err(RegistryError::Expired);
        }
        if let Some(caller) = &caller {
            let missing: ScopeSet = old
                .scopes
                .iter()
                .filter(|scope| !caller.has_scope(scope.as_str()))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(RegistryError::ScopesNotHeld(missing));
            }
        }
        let expiry = match old.expires_at {
            None => Expiry::Never,
            Some(expires_at) => Expiry::In(
                (expires_at - old.created_at)
                    .try_into()
                    .unwrap_or(self.inner.default_lifetime),
            ),
        };
        let request = IssueRequest {
            name: old.name,
            tenant: old.tenant,
            scopes: old.scopes,
            expiry,
            env: old.env,
            kind: old.kind,
        };
        // Issue first: if that fails, the old token keeps working.
        let issued = self.issue(request).await?;
        self.revoke(&tenant, id).await?;
        Ok(issued)
    }

    /// Deletes tokens that expired more than `older_than` ago; returns how many.
    pub async fn prune_expired(&self, older_than: Duration) -> Result<usize, RegistryError> {
        let now = self.inner.clock.now();
        let cutoff = time::Duration::try_from(older_than)
            .ok()
            .and_then(|age| now.checked_sub(age))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let pruned = self.inner.store.prune_expired(cutoff).await?;
        let now = self.inner.clock.now_nanos();
        for invalidation in &pruned {
            self.inner.cache.invalidate(&invalidation.digest, now);
        }
        Ok(pruned.len())
    }

    /// Writes the usage counted so far to the store. The background task does this every
    /// interval; call it once more at shutdown. Returns how many tokens were updated.
    pub async fn flush(&self) -> Result<usize, RegistryError> {
        Ok(self.inner.usage.flush(&*self.inner.store).await?)
    }

    // ----- background tasks -----------------------------------------------------------

    fn spawn_housekeeping(&self, interval: Duration) {
        let weak = Arc::downgrade(&self.inner);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await; // the first tick is immediate
            loop {
                ticker.tick().await;
                let Some(registry) = upgrade(&weak) else {
                    break;
                };
                if let Err(error) = registry.flush().await {
                    tracing::warn!(target: "tower_bearer::registry", %error, "usage flush failed; will retry");
                }
                let now = registry.inner.clock.now_nanos();
                if registry.inner.cache.sweep(now, false) {
                    registry.inner.interner.sweep();
                }
            }
        });
        self.track(task.abort_handle());
    }

    fn spawn_change_feed(&self, mut changes: ChangeStream) {
        let weak = Arc::downgrade(&self.inner);
        let task = tokio::spawn(async move {
            while let Some(change) = changes.next().await {
                let Some(registry) = upgrade(&weak) else {
                    break;
                };
                let cache = &registry.inner.cache;
                match change {
                    Change::Invalidated(invalidation) => {
                        tracing::debug!(target: "tower_bearer::registry", token_id = %invalidation.id, "evicting token announced by the change feed");
                        cache.invalidate(&invalidation.digest, registry.inner.clock.now_nanos());
                    }
                    Change::Reset => {
                        tracing::warn!(target: "tower_bearer::registry", "change feed lost events; evicting every cached token");
                        cache.reset();
                    }
                }
            }
        });
        self.track(task.abort_handle());
    }

    fn track(&self, task: AbortHandle) {
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }
}

fn upgrade(weak: &Weak<Inner>) -> Option<Registry> {
    weak.upgrade().map(|inner| Registry { inner })
}

/// Removes a finished, cancelled or panicked lookup from the in-flight map.
struct FlightLanding<'a> {
    flights: &'a DashMap<Digest, watch::Receiver<Option<FillResult>>>,
    digest: Digest,
}

impl Drop for FlightLanding<'_> {
    fn drop(&mut self) {
        self.flights.remove(&self.digest);
    }
}

fn unknown(presented: &Presented) -> VerifyError {
    VerifyError::rejected(RejectCause::Unknown, presented.expected_id())
}

fn revoked(presented: &Presented) -> VerifyError {
    VerifyError::rejected(RejectCause::Revoked, presented.expected_id())
}

fn fill_aborted() -> Arc<StoreError> {
    Arc::new(StoreError::unavailable("token store lookup aborted"))
}

fn racing_revocations() -> Arc<StoreError> {
    Arc::new(StoreError::unavailable(
        "revocations kept racing the cache fill",
    ))
}

fn add(now: OffsetDateTime, lifetime: Duration) -> Result<OffsetDateTime, RegistryError> {
    time::Duration::try_from(lifetime)
        .ok()
        .and_then(|lifetime| now.checked_add(lifetime))
        .map(truncate_to_millis)
        .ok_or(RegistryError::InvalidExpiry)
}

/// Stores keep milliseconds; so does everything we hand them, so that a record read back
/// equals the record written.
fn truncate_to_millis(at: OffsetDateTime) -> OffsetDateTime {
    let millis = at.nanosecond() / 1_000_000;
    at.replace_nanosecond(millis * 1_000_000).unwrap_or(at)
}
