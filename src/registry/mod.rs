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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    DEFAULT_TENANT, Expiry, InvalidRequest, IssueRequest, Issued, MAX_GRACE, MAX_METADATA_LEN,
    MAX_NAME_LEN, MAX_OWNER_LEN, RotateRequest, TokenInfo,
};

use cache::{Cache, Install, Lookup};
use intern::Interner;
use usage::UsageTracker;

use crate::clock::Clock;
use crate::principal::{Principal, TokenId};
use crate::scope::{Scope, ScopeSet};
use crate::store::{
    Change, ChangeStream, ListQuery, NewToken, StoreError, TokenRecord, TokenStore, TokenUpdate,
};
use crate::token::PendingToken;
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
    /// The longest lifetime issuance accepts (the hard limit when no policy is set).
    max_lifetime: Duration,
    /// Whether `max_lifetime` is a configured policy (then "never expires" is refused).
    lifetime_policy: bool,
    store_timeout: Duration,
    /// The declared scopes (built-ins included); `None` accepts any valid scope.
    declared: Option<std::collections::BTreeSet<crate::scope::Scope>>,
    health: StoreHealth,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// The lifetime no token may exceed, policy or not: 100 years.
pub(crate) const HARD_MAX_LIFETIME: Duration = Duration::from_secs(36_500 * 86_400);

/// How the store has been answering cache misses: counters for [`CacheStats`] and the
/// outage flag that keeps the warning to one per outage.
#[derive(Default)]
struct StoreHealth {
    down: AtomicBool,
    errors: AtomicU64,
    stale_answers: AtomicU64,
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
        let digest = presented.digest();
        for _ in 0..MAX_FILL_ATTEMPTS {
            match self.fill(*digest).await {
                Ok(Filled::Known(principal, epoch)) => {
                    // A revocation since the record was read may concern this token: the
                    // cache, which revocations update atomically, has the last word.
                    if epoch != self.inner.cache.epoch(digest) {
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
                Err(error) => return self.answer_stale(presented, error),
            }
        }
        Err(VerifyError::Unavailable(racing_revocations()))
    }

    /// The store failed: a cached token still within its stale-if-error window is
    /// accepted; anything else is "unavailable".
    fn answer_stale(
        &self,
        presented: &Presented,
        error: Arc<StoreError>,
    ) -> Result<Principal, VerifyError> {
        let now = self.inner.clock.now_nanos();
        match self.inner.cache.stale(presented.digest(), now) {
            Some(principal) => {
                self.inner
                    .health
                    .stale_answers
                    .fetch_add(1, Ordering::Relaxed);
                self.admit(principal, presented, now)
            }
            None => Err(VerifyError::Unavailable(error)),
        }
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
                    let waited = tokio::time::timeout(
                        self.inner.store_timeout,
                        flight.wait_for(Option::is_some),
                    )
                    .await;
                    match waited {
                        Ok(Ok(result)) => {
                            if let Some(result) = result.clone() {
                                return result;
                            }
                        }
                        Err(_elapsed) => return Err(self.store_failed(timed_out())),
                        // The leader was cancelled or panicked: try again.
                        Ok(Err(_closed)) => {}
                    }
                }
            }
        }
        Err(fill_aborted())
    }

    async fn query_and_install(&self, digest: Digest) -> FillResult {
        let inner = &self.inner;
        for _ in 0..MAX_FILL_ATTEMPTS {
            let epoch = inner.cache.epoch(&digest);
            let found =
                tokio::time::timeout(inner.store_timeout, inner.store.find_by_digest(&digest))
                    .await
                    .unwrap_or_else(|_elapsed| {
                        Err(StoreError::unavailable("token store timed out"))
                    });
            let now = inner.clock.now_nanos();
            let installed = match found {
                Ok(record) => {
                    self.store_answered();
                    let shared = inner.interner.shared(&record.tenant, &record.scopes);
                    let fresh_until = inner.cache.fresh_until(now);
                    let principal = Principal::from_record(&record, shared, fresh_until);
                    inner.cache.install_known(&digest, principal, epoch, now)
                }
                Err(StoreError::NotFound) => {
                    self.store_answered();
                    inner.cache.install_unknown(&digest, now)
                }
                Err(error) => return Err(self.store_failed(Arc::new(error))),
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

    /// Counts a failed cache miss; warns once per outage, not once per request.
    fn store_failed(&self, error: Arc<StoreError>) -> Arc<StoreError> {
        let health = &self.inner.health;
        health.errors.fetch_add(1, Ordering::Relaxed);
        if !health.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "tower_bearer::registry",
                %error,
                "token store cannot answer cache misses: answering 503 (cached tokens are served stale for a while)"
            );
        } else {
            tracing::debug!(target: "tower_bearer::registry", %error, "token store still failing");
        }
        error
    }

    fn store_answered(&self) {
        let health = &self.inner.health;
        if health.down.load(Ordering::Relaxed) && health.down.swap(false, Ordering::Relaxed) {
            tracing::info!(target: "tower_bearer::registry", "token store answers again");
        }
    }

    // ----- lifecycle ----------------------------------------------------------------

    /// Issues a token. The plaintext is in the returned [`Issued::secret`], and nowhere
    /// else, ever.
    ///
    /// Fails with [`RegistryError::LifetimeTooLong`] beyond the lifetime policy (or 100
    /// years), [`RegistryError::InvalidExpiry`] for an expiry that is not in the future.
    pub async fn issue(&self, request: IssueRequest) -> Result<Issued, RegistryError> {
        let (token, minted) = self.prepare(request)?;
        let now = token.created_at;
        let record = self.inner.store.insert(token).await?;
        Ok(self.issued(record, minted, now))
    }

    /// Issues a token unless `marker` was used before on this store: `Ok(None)` then.
    /// The marker is written in the same transaction as the token, so two processes
    /// starting together on one database issue one token, and a bootstrap token is
    /// minted once per database, never again (even after it was revoked).
    pub async fn issue_once(
        &self,
        marker: &str,
        request: IssueRequest,
    ) -> Result<Option<Issued>, RegistryError> {
        let (token, minted) = self.prepare(request)?;
        let now = token.created_at;
        let record = self.inner.store.insert_once(marker, token).await?;
        Ok(record.map(|record| self.issued(record, minted, now)))
    }

    /// Checks the lifetime and mints the secret of a token to store.
    fn prepare(&self, request: IssueRequest) -> Result<(NewToken, PendingToken), RegistryError> {
        let inner = &self.inner;
        self.check_declared(&request.scopes)?;
        let now = truncate_to_millis(self.now_checked()?);
        let limit = add(now, inner.max_lifetime)?;
        let expires_at = match request.expiry {
            Expiry::Default => Some(add(now, inner.default_lifetime)?),
            // Capped just past the limit, so that an absurd duration is "too long", not
            // an overflow.
            Expiry::In(lifetime) => Some(add(
                now,
                lifetime.min(inner.max_lifetime + Duration::from_secs(1)),
            )?),
            Expiry::At(at) => Some(truncate_to_millis(at)),
            Expiry::Never if inner.lifetime_policy => return Err(RegistryError::LifetimeTooLong),
            Expiry::Never => None,
        };
        if expires_at.is_some_and(|at| at <= now) {
            return Err(RegistryError::InvalidExpiry);
        }
        if expires_at.is_some_and(|at| at > limit) {
            return Err(RegistryError::LifetimeTooLong);
        }
        let minted = inner
            .formats
            .mint(inner.issue_format, request.env)
            .map_err(RegistryError::Random)?;
        let token = NewToken {
            name: request.name,
            tenant: request.tenant,
            scopes: request.scopes,
            env: request.env,
            kind: request.kind,
            display_prefix: minted.display_prefix.clone(),
            digest: minted.digest,
            created_at: now,
            expires_at,
            created_by: request.created_by,
            owner: request.owner,
            metadata: request.metadata,
        };
        Ok((token, minted))
    }

    fn issued(&self, record: TokenRecord, minted: PendingToken, now: OffsetDateTime) -> Issued {
        tracing::info!(
            target: "tower_bearer::registry",
            token_id = %record.id,
            tenant = %record.tenant,
            created_by = record.created_by.map(TokenId::get),
            "token issued"
        );
        Issued {
            secret: minted.finish(record.id),
            info: TokenInfo::from_record(record, now),
        }
    }

    /// The current time, or [`RegistryError::ClockUnreadable`].
    fn now_checked(&self) -> Result<OffsetDateTime, RegistryError> {
        match self.inner.clock.now_nanos() {
            i64::MAX => Err(RegistryError::ClockUnreadable),
            nanos => Ok(crate::clock::from_nanos(nanos)),
        }
    }

    /// The tokens of `tenant`, without secrets, ordered by id. Expired tokens are listed
    /// (flagged `expired`) until deleted or pruned; revoked tokens are gone.
    pub async fn list(&self, tenant: &str) -> Result<Vec<TokenInfo>, RegistryError> {
        Ok(self.list_page(tenant, ListQuery::all()).await?.tokens)
    }

    /// One page of the tokens of `tenant`: at most `query.limit` of them after
    /// `query.after`, and whether more follow.
    pub async fn list_page(
        &self,
        tenant: &str,
        query: ListQuery,
    ) -> Result<TokenPage, RegistryError> {
        let now = self.inner.clock.now();
        let limit = query.limit;
        let mut probe = query;
        probe.limit = limit.saturating_add(1);
        let mut records = self.inner.store.list_by_tenant(tenant, probe).await?;
        let has_more = records.len() > limit;
        records.truncate(limit);
        Ok(TokenPage {
            tokens: records
                .into_iter()
                .map(|record| TokenInfo::from_record(record, now))
                .collect(),
            has_more,
        })
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

    /// Changes a token of `tenant`: renames it, replaces its scopes (declared ones), or
    /// brings its expiry forward (never later: [`RegistryError::ExpiryExtended`]; not into
    /// the past: [`RegistryError::InvalidExpiry`]). When this returns, the change holds
    /// on this registry; other nodes read the token again when the change feed delivers,
    /// as for a revocation.
    pub async fn update(
        &self,
        tenant: &str,
        id: TokenId,
        update: TokenUpdate,
    ) -> Result<TokenInfo, RegistryError> {
        if let Some(scopes) = &update.scopes {
            self.check_declared(scopes)?;
        }
        if let Some(name) = &update.name {
            if !issue::is_valid_name(name) {
                return Err(RegistryError::InvalidName);
            }
        }
        let mut update = update;
        if let Some(at) = update.expires_at {
            let at = truncate_to_millis(at);
            let now = self.now_checked()?;
            if at <= now {
                return Err(RegistryError::InvalidExpiry);
            }
            let current = self.inner.store.find_by_id(tenant, id).await?;
            if current.expires_at.is_some_and(|current| at > current) {
                return Err(RegistryError::ExpiryExtended);
            }
            update.expires_at = Some(at);
        }
        let record = self.inner.store.update(tenant, id, update).await?;
        self.inner.cache.evict(&record.digest);
        tracing::info!(target: "tower_bearer::registry", token_id = %id, %tenant, "token updated");
        Ok(TokenInfo::from_record(record, self.inner.clock.now()))
    }

    /// Whether removing the tokens `removing` from `tenant` (revoking them, or taking
    /// `admin` from them) would leave the tenant without any live token that holds
    /// `admin`, when one of them holds it: the check that keeps the last admin from
    /// locking everyone out.
    pub async fn would_remove_last_admin(
        &self,
        tenant: &str,
        removing: &[TokenId],
    ) -> Result<bool, RegistryError> {
        let now = self.inner.clock.now();
        let mut removes_an_admin = false;
        let mut query = ListQuery::first(1000);
        loop {
            let page = self
                .inner
                .store
                .list_by_tenant(tenant, query.clone())
                .await?;
            for record in &page {
                if record.is_expired_at(now) || !self.grants(&record.scopes, Scope::ADMIN) {
                    continue;
                }
                if removing.contains(&record.id) {
                    removes_an_admin = true;
                } else {
                    return Ok(false);
                }
            }
            match page.last() {
                Some(last) if page.len() == query.limit => query = query.after(last.id),
                _ => return Ok(removes_an_admin),
            }
        }
    }

    /// Issues a new token with scope `admin` in `tenant` (the registry's default
    /// lifetime): the way back in when a tenant's last admin token is gone, like
    /// Django's `createsuperuser`. Call it from a command line, never from a request.
    pub async fn issue_recovery_admin(&self, tenant: &str) -> Result<Issued, RegistryError> {
        let request = IssueRequest::new("recovery admin", tenant)
            .map_err(|_| RegistryError::InvalidTenant)?
            .scopes([Scope::ADMIN])
            .map_err(|_| RegistryError::InvalidTenant)?
            .env(self.default_env());
        let issued = self.issue(request).await?;
        tracing::warn!(target: "tower_bearer::registry", token_id = %issued.info.id, %tenant, "recovery admin token issued");
        Ok(issued)
    }

    /// Revokes a token of `tenant` and every token it created, recursively (the tokens
    /// it issued through the management API, and theirs), in one store transaction: what
    /// an incident responder runs on a stolen admin token. Returns the revoked ids, the
    /// token's own first.
    pub async fn revoke_cascade(
        &self,
        tenant: &str,
        id: TokenId,
    ) -> Result<Vec<TokenId>, RegistryError> {
        let removed = self.inner.store.delete_with_descendants(tenant, id).await?;
        let now = self.inner.clock.now_nanos();
        for invalidation in &removed {
            self.inner.cache.invalidate(&invalidation.digest, now);
        }
        let ids: Vec<TokenId> = removed.iter().map(|i| i.id).collect();
        tracing::info!(target: "tower_bearer::registry", token_id = %id, %tenant, revoked = ids.len(), "token revoked with its descendants");
        Ok(ids)
    }

    /// Replaces a token with a new one with the same name, scopes, environment, kind and
    /// lifetime length (a token that never expired still never expires), in one store
    /// transaction: two racing rotations, or a rotation racing a revocation, leave one
    /// live token whose plaintext was returned ([`RegistryError::Conflict`] or
    /// [`RegistryError::NotFound`] for the loser, with nothing issued).
    ///
    /// Without a grace period the old token stops working when this returns; with one it
    /// works until the grace period ends (or its own expiry, if sooner).
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
            grace,
        } = request;
        if grace > MAX_GRACE {
            return Err(RegistryError::InvalidGrace);
        }
        let old = self.inner.store.find_by_id(&tenant, id).await?;
        let now = truncate_to_millis(self.now_checked()?);
        if old.is_expired_at(now) {
            return Err(RegistryError::Expired);
        }
        if old.rotated_to.is_some() {
            return Err(RegistryError::Conflict);
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
        let lifetime = old.expires_at.map(|expires_at| {
            (expires_at - old.created_at)
                .try_into()
                .unwrap_or(self.inner.default_lifetime)
        });
        // The new token's creator: the caller, unless it rotates itself (then its own
        // creator), so that cascading revocation still reaches it.
        let created_by = match &caller {
            Some(caller) if caller.id() != old.id => Some(caller.id()),
            _ => old.created_by,
        };
        let request = IssueRequest {
            name: old.name.clone(),
            tenant: old.tenant.clone(),
            scopes: old.scopes.clone(),
            expiry: lifetime.map_or(Expiry::Never, |lifetime: Duration| {
                Expiry::In(lifetime.min(self.inner.max_lifetime))
            }),
            env: old.env,
            kind: old.kind,
            created_by,
            owner: old.owner.clone(),
            metadata: old.metadata.clone(),
        };
        let (token, minted) = self.prepare(request)?;
        let grace_until = (!grace.is_zero()).then(|| add(now, grace)).transpose()?;
        let record = self.inner.store.rotate(&old, token, grace_until).await?;
        let at = self.inner.clock.now_nanos();
        match grace_until {
            None => self.inner.cache.invalidate(&old.digest, at),
            Some(_) => self.inner.cache.evict(&old.digest),
        }
        tracing::info!(target: "tower_bearer::registry", token_id = %id, new_token_id = %record.id, %tenant, grace_secs = grace.as_secs(), "token rotated");
        Ok(self.issued(record, minted, now))
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

    #[track_caller]
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

    #[track_caller]
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
                    Change::Updated(invalidation) => {
                        tracing::debug!(target: "tower_bearer::registry", token_id = %invalidation.id, "re-reading token announced as changed by the change feed");
                        cache.evict(&invalidation.digest);
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

fn timed_out() -> Arc<StoreError> {
    Arc::new(StoreError::unavailable("token store timed out"))
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
