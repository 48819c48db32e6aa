//! Watching a credential for the moment it stops being valid: what a WebSocket, a
//! server-sent-event stream or a long poll needs to end a connection that outlives a
//! revocation or an expiry.
//!
//! Watchers of one token share one [`Notify`], keyed by its digest. The cache wakes them
//! whenever it evicts that digest (a revocation here, or one the change feed delivers, or
//! a change of the token), forgets everything (a feed reset), or the change feed goes
//! down; each woken watcher checks its credential again, and ends if it is no longer
//! valid or no longer what it was (a change of scopes, name or expiry). A watcher waits on that
//! notification and on one timer: its token's expiry, or the moment its cached entry
//! stops being fresh, whichever comes first. Then it checks again, as a new request
//! would: a revocation that reached the store but not this node (no change feed, or the
//! feed down) ends the watch when the entry goes stale, as it ends new requests then.
//! Watchers of one token share its entry, so they wake together and ask the store once
//! (single-flight), not once per watcher. No task of its own, nothing that ticks.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::principal::Principal;
use crate::registry::RejectCause;
use crate::registry::{Registry, VerifyError};
use crate::token::Digest;

/// The watched digests, each with the notification its watchers share.
#[derive(Default)]
pub(crate) struct Watchers {
    by_digest: DashMap<Digest, Arc<Notify>>,
}

impl Watchers {
    /// Wakes the watchers of `digest`, if any: one map read.
    pub(crate) fn notify(&self, digest: &Digest) {
        if let Some(notify) = self.by_digest.get(digest) {
            notify.notify_waiters();
        }
    }

    /// Wakes every watcher.
    pub(crate) fn notify_all(&self) {
        for notify in self.by_digest.iter() {
            notify.notify_waiters();
        }
    }

    fn register(&self, digest: Digest) -> Registration<'_> {
        let notify = self.by_digest.entry(digest).or_default().clone();
        Registration {
            watchers: self,
            digest,
            notify: Some(notify),
        }
    }
}

/// A watcher's hold on its digest's notification; the last one out removes it.
struct Registration<'a> {
    watchers: &'a Watchers,
    digest: Digest,
    notify: Option<Arc<Notify>>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        drop(self.notify.take());
        self.watchers
            .by_digest
            .remove_if(&self.digest, |_, notify| Arc::strong_count(notify) == 1);
    }
}

impl Registry {
    /// Resolves when `token` stops being valid on this registry, with the reason: revoked
    /// (here: at once; on another node: when the change feed delivers), expired, its
    /// API key revoked (for a session token), or its store unreachable once its cached
    /// entry may no longer be trusted. Resolves at once for a token that is not valid.
    ///
    /// Any change to the token (scopes, name, expiry) ends the watch too, with
    /// [`RejectCause::Changed`]: the connection ends, and a new one gets the new rights.
    /// A revocation that reaches the store but not this registry (no change feed between
    /// them, or the feed down) ends it when the token's cached entry goes stale (the
    /// positive TTL, or the feed-down TTL), as it ends new requests then. Expiry and
    /// staleness are timed by the runtime's timer against the registry's clock as read
    /// when the watch (re)checks the token.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_bearer::registry::IssueRequest;
    /// use tower_bearer::{MemoryStore, RejectCause, Registry, VerifyError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = Registry::builder(MemoryStore::new()).build();
    /// let issued = registry.issue(IssueRequest::new("socket", "acme")?).await?;
    /// let token = issued.secret.expose_secret().to_owned();
    ///
    /// let watching = registry.clone();
    /// let watch = tokio::spawn(async move { watching.watch(&token).await });
    /// tokio::time::sleep(Duration::from_millis(10)).await;
    /// registry.revoke("acme", issued.info.id).await?;
    /// let ended = watch.await?;
    /// assert!(matches!(ended, VerifyError::Rejected { cause: RejectCause::Revoked, .. }));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn watch(&self, token: &str) -> VerifyError {
        let presented = match self.decode(token) {
            Ok(presented) => presented,
            Err(error) => return error,
        };
        let registration = self.inner.cache.watchers().register(*presented.digest());
        let notify = registration.notify.as_ref().expect("held until dropped");
        // The token as the connection was authenticated with it.
        let mut first: Option<Principal> = None;
        loop {
            // Armed before the check: an eviction between the check and the wait still
            // wakes this watcher.
            let woken = notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let verified = self.verify(token).await;
            let principal = match verified {
                Ok(principal) => principal,
                Err(error) => return error,
            };
            match &first {
                None => first = Some(principal.clone()),
                Some(first) if !same_rights(first, &principal) => {
                    return VerifyError::rejected(RejectCause::Changed, Some(principal.id()));
                }
                Some(_) => {}
            }
            let now = self.inner.clock.now();
            let until_expiry = principal
                .expires_at()
                .map(|at| Duration::try_from(at - now).unwrap_or_default());
            drop(principal);
            let until_recheck = self.until_stale(presented.digest(), now);
            let wait = until_expiry.map_or(until_recheck, |left| left.min(until_recheck));
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// How long a watched token's cached entry stays fresh: when it goes stale, a new
    /// request would ask the store, and so does the watch. An entry already stale (the
    /// store failing, the token served stale-if-error) or not cached is checked again at
    /// the next whole second, the same instant for every watcher of it.
    fn until_stale(&self, digest: &crate::token::Digest, now: OffsetDateTime) -> Duration {
        let now_secs = now.unix_timestamp();
        let at = match self.inner.cache.fresh_end(digest, now_secs) {
            Some(end) if end > now_secs => end,
            _ => now_secs + 1,
        };
        // A little past the second: hits read the kernel's coarse clock, a few
        // milliseconds behind, which must see the entry stale too.
        Duration::try_from(OffsetDateTime::from_unix_timestamp(at).unwrap_or(now) - now)
            .unwrap_or_default()
            + COARSE_CLOCK_MARGIN
    }
}

/// How far the coarse clock may lag the precise one (a few jiffies).
const COARSE_CLOCK_MARGIN: Duration = Duration::from_millis(20);

/// Whether two verifications of one token found it as it was: what a connection was
/// authenticated with still holds.
fn same_rights(before: &Principal, now: &Principal) -> bool {
    before.id() == now.id()
        && before.name() == now.name()
        && before.tenant() == now.tenant()
        && before.scopes() == now.scopes()
        && before.expires_at() == now.expires_at()
        && before.owner() == now.owner()
        && before.session_id() == now.session_id()
}
