//! Verification: the cache first, the store on a miss (single-flight, bounded by the
//! store timeout), stale answers while the store fails.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;
use tokio::sync::watch;

use crate::counting;
use crate::identity::{TokenId, TokenKind};
use crate::principal::Principal;
use crate::registry::RejectCause;
use crate::registry::verify::cache::{Install, Lookup};
use crate::registry::verify::entry::{self, Entry};
use crate::registry::{
    FillResult, Filled, MAX_FILL_ATTEMPTS, Registry, VerifyError, racing_revocations,
};
use crate::store::StoreError;
use crate::token::{Digest, Env, Presented};

/// What the cache alone says about a credential ([`Registry::check`]).
#[derive(Debug)]
#[must_use]
pub enum Check {
    /// Decided without the store: the principal, or why not.
    Done(Result<Principal, VerifyError>),
    /// A well-formed credential (checksum included) that the cache does not know:
    /// [`Miss::resolve`] asks the store.
    Miss(Miss),
}

/// A credential the cache does not know ([`Check::Miss`]), decoded once and with its
/// checksum checked, so that resolving it goes straight to the store.
#[must_use]
pub struct Miss {
    registry: Registry,
    presented: Presented,
    credential: Box<str>,
}

impl std::fmt::Debug for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credential.
        f.debug_struct("Miss")
            .field("digest", &self.presented.digest())
            .finish_non_exhaustive()
    }
}

impl Miss {
    /// Asks the store (once for all the requests waiting on the same credential), after
    /// checking a session access token's signature and claims, so that forgeries never
    /// reach it; bounded by the store timeout, answered stale while the store fails.
    pub async fn resolve(&self) -> Result<Principal, VerifyError> {
        let (registry, presented) = (&self.registry, &self.presented);
        #[cfg(feature = "exchange")]
        if presented.is_jwt() {
            let claims = registry.check_jwt(Some(&self.credential))?;
            let principal = registry.verify_filled(presented).await?;
            if !Registry::claims_match(&claims, &principal) {
                return Err(unknown(presented));
            }
            return Ok(principal);
        }
        registry.verify_filled(presented).await
    }

    /// The credential, for the activity log's attribution of a refusal.
    pub(crate) fn credential(&self) -> &str {
        &self.credential
    }
}

impl Registry {
    // ----- verification -------------------------------------------------------------

    /// Verifies a plaintext credential and returns the principal it stands for:
    /// [`check`](Self::check), and on a miss [`Miss::resolve`].
    ///
    /// A cache hit completes without I/O. Errors say why (for logs): a
    /// [`VerifyError::Rejected`] must be answered like any other invalid token; a
    /// [`VerifyError::Unavailable`] means the store could not answer a cache miss.
    #[inline]
    pub async fn verify(&self, token: &str) -> Result<Principal, VerifyError> {
        match self.check(token) {
            Check::Done(answer) => answer,
            Check::Miss(miss) => miss.resolve().await,
        }
    }

    /// Verifies a credential from the cache alone, without waiting: the answer, or a
    /// [`Miss`] to resolve. Never blocks, never allocates on a hit.
    ///
    /// ```
    /// use tower_bearer::registry::{Check, IssueRequest};
    /// use tower_bearer::{MemoryStore, Registry};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = Registry::builder(MemoryStore::new()).build();
    /// let issued = registry.issue(IssueRequest::new("ci", "acme")?).await?;
    /// let token = issued.secret.expose_secret();
    ///
    /// // Not cached yet: the miss asks the store.
    /// let principal = match registry.check(token) {
    ///     Check::Done(answer) => answer?,
    ///     Check::Miss(miss) => miss.resolve().await?,
    /// };
    /// assert_eq!(principal.tenant(), "acme");
    /// // Cached now: a hit, answered without waiting.
    /// assert!(matches!(registry.check(token), Check::Done(Ok(_))));
    /// // Junk is refused without a lookup.
    /// assert!(matches!(registry.check("tb_live_junk"), Check::Done(Err(_))));
    /// # Ok(())
    /// # }
    /// ```
    #[inline]
    pub fn check(&self, credential: &str) -> Check {
        self.check_at(credential, self.inner.clock.coarse_nanos())
    }

    /// [`check`](Self::check) at `now` (Unix nanoseconds, read from the registry's clock
    /// by the caller, who needs the time too; a coarse reading will do, see
    /// `Clock::has_passed`).
    #[inline]
    pub(crate) fn check_at(&self, credential: &str, now: i64) -> Check {
        let presented = match self.decode(credential) {
            Ok(presented) => presented,
            Err(error) => return Check::Done(Err(error)),
        };
        if let Some(answer) = self.cached(&presented, now) {
            return Check::Done(answer);
        }
        self.missed(presented, credential)
    }

    /// A cache miss: the checksum, deferred by `decode` (a hit proves the credential
    /// already), is checked once, here, so that junk never reaches the store nor a
    /// lookup future. Out of line: the hit path stays as small as it was.
    #[cold]
    #[inline(never)]
    fn missed(&self, presented: Presented, credential: &str) -> Check {
        if presented.checksum_deferred() {
            if let Err(why) = self.inner.formats.decode(credential) {
                return Check::Done(Err(malformed(why)));
            }
        }
        Check::Miss(Miss {
            registry: self.clone(),
            presented,
            credential: Box::from(credential),
        })
    }

    /// Reads a credential's shape without any lookup; the checksum is left to a cache
    /// miss ([`check_at`](Self::check_at)).
    pub(crate) fn decode(&self, token: &str) -> Result<Presented, VerifyError> {
        #[cfg(feature = "exchange")]
        if self.inner.sessions.is_some() && token.contains('.') {
            // No other format has a `.`: this can only be a session access token. Its
            // shape is checked with its signature on a cache miss: a hit is byte for byte
            // a token this registry minted.
            return match (
                token.len() <= crate::token::MAX_TOKEN_LEN,
                &self.inner.sessions,
            ) {
                (true, Some(sessions)) => Ok(Presented::jwt(token, sessions.check_state())),
                _ => Err(VerifyError::rejected(
                    RejectCause::Malformed(crate::token::Malformed::TooLong),
                    None,
                )),
            };
        }
        self.inner
            .formats
            .decode_deferring_checksum(token)
            .map_err(malformed)
    }

    /// Answers from the cache alone: `None` means the store must be asked.
    #[inline]
    fn cached(&self, presented: &Presented, now: i64) -> Option<Result<Principal, VerifyError>> {
        if presented.env().is_some_and(|env| !self.accepts_env(env)) {
            return Some(Err(VerifyError::rejected(RejectCause::WrongEnv, None)));
        }
        match self.inner.cache.lookup(presented.digest(), now) {
            Lookup::Hit(entry) => {
                counting::lookup(counting::Lookup::Hit);
                Some(self.admit(entry, presented, now))
            }
            Lookup::Unknown => {
                counting::lookup(counting::Lookup::Negative);
                Some(Err(unknown(presented)))
            }
            Lookup::Revoked(id) => {
                counting::lookup(counting::Lookup::Negative);
                Some(Err(revoked(id)))
            }
            Lookup::Miss => {
                counting::lookup(counting::Lookup::Miss);
                None
            }
        }
    }

    /// Who a rejected credential belongs to, as far as the cache remembers: the token of
    /// an expired, wrong-environment or mismatched credential (still cached), or of a
    /// revoked one (its tombstone keeps its last entry). For the activity log's rows.
    #[cfg(feature = "activity")]
    pub(crate) fn holder(&self, presented: &Presented) -> Option<Principal> {
        self.inner
            .cache
            .holder(presented.digest())
            .map(Principal::from_inner)
    }

    async fn verify_filled(&self, presented: &Presented) -> Result<Principal, VerifyError> {
        let digest = presented.digest();
        for _ in 0..MAX_FILL_ATTEMPTS {
            match self.fill(*digest, presented.jwt_check()).await {
                Ok(Filled::Known(entry, epoch)) => {
                    // A revocation since the record was read may concern this token: the
                    // cache, which revocations update atomically, has the last word.
                    if epoch != self.inner.cache.epoch(digest) {
                        let now = self.inner.clock.coarse_nanos();
                        if let Some(answer) = self.cached(presented, now) {
                            return answer;
                        }
                        continue;
                    }
                    let now = self.inner.clock.now_nanos();
                    return self.admit(entry, presented, now);
                }
                Ok(Filled::Unknown) => return Err(unknown(presented)),
                Ok(Filled::Revoked(id)) => return Err(revoked(id)),
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
        let last_heard = self.inner.health.last_heard.load(Ordering::Relaxed);
        match self.inner.cache.stale(presented.digest(), now, last_heard) {
            Some(entry) => {
                self.inner
                    .health
                    .stale_answers
                    .fetch_add(1, Ordering::Relaxed);
                counting::lookup(counting::Lookup::Stale);
                self.admit(entry, presented, now)
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
        entry: Entry,
        presented: &Presented,
        now: i64,
    ) -> Result<Principal, VerifyError> {
        let identity = &entry.identity;
        let id = Some(identity.id);
        if presented
            .expected_id()
            .is_some_and(|expected| expected != identity.id)
        {
            return Err(unknown(presented));
        }
        // A session token is found by its signature: its header and payload must be the
        // cached token's too (and only a JWT may stand for a session).
        if (identity.kind == TokenKind::Session || presented.is_jwt())
            && !session_token_matches(&entry, presented)
        {
            return Err(unknown(presented));
        }
        if self.inner.clock.has_passed(identity.expires_at, now) {
            return Err(VerifyError::rejected(RejectCause::Expired, id));
        }
        if !self.accepts_env(identity.env) {
            return Err(VerifyError::rejected(RejectCause::WrongEnv, id));
        }
        if presented
            .account()
            .is_some_and(|account| *account != **identity.tenant)
        {
            return Err(VerifyError::rejected(RejectCause::TenantMismatch, id));
        }
        self.inner.usage.record(&entry, now);
        Ok(Principal::from_inner(entry))
    }

    /// Joins the store lookup in flight for `digest`, or makes it. `token_check` goes
    /// into a session token's entry.
    async fn fill(&self, digest: Digest, token_check: u64) -> FillResult {
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
                    let result = match self.filled_meanwhile(&digest) {
                        Some(filled) => Ok(filled),
                        None => self.query_and_install(digest, token_check).await,
                    };
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

    /// What the cache knows now about a digest that missed it a moment ago. A request
    /// can miss, be preempted, and come back after another request's lookup for the
    /// same digest filled the cache and left the in-flight map: it then finds no flight
    /// to join, and without this look it would ask the store a second time.
    fn filled_meanwhile(&self, digest: &Digest) -> Option<Filled> {
        let epoch = self.inner.cache.epoch(digest);
        match self
            .inner
            .cache
            .lookup(digest, self.inner.clock.now_nanos())
        {
            Lookup::Hit(entry) => Some(Filled::Known(entry, epoch)),
            Lookup::Unknown => Some(Filled::Unknown),
            Lookup::Revoked(id) => Some(Filled::Revoked(id)),
            Lookup::Miss => None,
        }
    }

    async fn query_and_install(&self, digest: Digest, token_check: u64) -> FillResult {
        let inner = &self.inner;
        for _ in 0..MAX_FILL_ATTEMPTS {
            if inner.health.hung.load(Ordering::Relaxed) {
                // Known down: a probe asks it in the background, nobody waits here.
                return Err(self.store_failed(known_hung()));
            }
            let epoch = inner.cache.epoch(&digest);
            let found =
                tokio::time::timeout(inner.store_timeout, inner.store.find_by_digest(&digest))
                    .await
                    .unwrap_or_else(|_elapsed| {
                        self.store_hung();
                        Err(StoreError::unavailable("token store timed out"))
                    });
            let now = inner.clock.now_nanos();
            // A session lives only as long as its API key, and counts against its
            // key's policies: the key's meter is the session's.
            let found = match found {
                Ok(record) if record.kind == TokenKind::Session => {
                    use crate::registry::sessions::rows::{KeyOfSession, key_of_session};
                    let checked = tokio::time::timeout(
                        inner.store_timeout,
                        key_of_session(&*inner.store, &record, inner.clock.now()),
                    )
                    .await
                    .unwrap_or_else(|_elapsed| {
                        Err(StoreError::unavailable("token store timed out"))
                    });
                    match checked {
                        Ok(KeyOfSession::NoKey) => Ok((record, None)),
                        Ok(KeyOfSession::Live(key)) => {
                            let meter = inner.meters.for_record(key.id, &key.policies);
                            Ok((record, meter))
                        }
                        Ok(KeyOfSession::Gone) => Err(StoreError::NotFound),
                        Err(error) => Err(error),
                    }
                }
                Ok(record) => {
                    let meter = inner.meters.for_record(record.id, &record.policies);
                    Ok((record, meter))
                }
                Err(error) => Err(error),
            };
            let installed = match found {
                Ok((record, meter)) => {
                    self.store_answered();
                    let shared = inner.interner.shared(&record.tenant, &record.scopes);
                    let fresh_until = inner.cache.fresh_until(now);
                    let entry =
                        entry::from_record(&record, shared, fresh_until, token_check, meter);
                    inner.cache.install_known(&digest, entry, epoch, now)
                }
                Err(StoreError::NotFound) => {
                    self.store_answered();
                    inner.cache.install_unknown(&digest, now)
                }
                Err(error) => return Err(self.store_failed(Arc::new(error))),
            };
            match installed {
                Install::Known(entry) => return Ok(Filled::Known(entry, epoch)),
                Install::Unknown => return Ok(Filled::Unknown),
                Install::Revoked(id) => return Ok(Filled::Revoked(id)),
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
        health.heard(self.inner.clock.now_nanos());
        if health.down.load(Ordering::Relaxed) && health.down.swap(false, Ordering::Relaxed) {
            tracing::info!(target: "tower_bearer::registry", "token store answers again");
        }
    }
}

impl Registry {
    /// A lookup timed out: the store is known down until it answers a probe. Misses stop
    /// asking it meanwhile (each would wait the whole timeout); one task probes it.
    fn store_hung(&self) {
        if self.inner.health.hung.swap(true, Ordering::Relaxed) {
            return; // already probing
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.health.hung.store(false, Ordering::Relaxed);
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            // A digest nobody holds: the store answers "not found" once it answers.
            let probe = Digest::of(b"tower-bearer: is the token store answering?");
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let Some(inner) = weak.upgrade() else { return };
                let registry = Registry { inner };
                let answer = tokio::time::timeout(
                    registry.inner.store_timeout,
                    registry.inner.store.find_by_digest(&probe),
                )
                .await;
                if let Ok(Ok(_) | Err(StoreError::NotFound)) = answer {
                    registry.inner.health.hung.store(false, Ordering::Relaxed);
                    registry.store_answered();
                    return;
                }
            }
        });
    }
}

/// How often a store known to hang is probed.
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

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

/// Whether a cached session entry and a presented JWT are the same token: both a
/// session and a JWT, with the same keyed hash of header and payload. Out of line, so
/// that the checks of an API key, which never come here, stay as small as they were.
#[inline(never)]
fn session_token_matches(entry: &Entry, presented: &Presented) -> bool {
    let identity = &entry.identity;
    identity.kind == TokenKind::Session
        && presented.is_jwt()
        && identity
            .rare
            .as_ref()
            .is_some_and(|rare| rare.token_check == presented.jwt_check())
}

fn malformed(why: crate::token::Malformed) -> VerifyError {
    VerifyError::rejected(RejectCause::Malformed(why), None)
}

fn unknown(presented: &Presented) -> VerifyError {
    VerifyError::rejected(RejectCause::Unknown, presented.expected_id())
}

/// A revoked token's refusal names it: the tombstone knows which token it was.
fn revoked(id: TokenId) -> VerifyError {
    VerifyError::rejected(RejectCause::Revoked, Some(id))
}

fn timed_out() -> Arc<StoreError> {
    Arc::new(StoreError::unavailable("token store timed out"))
}

fn known_hung() -> Arc<StoreError> {
    Arc::new(StoreError::unavailable(
        "token store timed out recently: answering without it until a probe succeeds",
    ))
}

fn fill_aborted() -> Arc<StoreError> {
    Arc::new(StoreError::unavailable("token store lookup aborted"))
}
