//! The registry's background tasks: usage flushing, cache sweeping and the hourly
//! pruning of expired sessions, and the store's change feed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::task::AbortHandle;

use super::{Inner, Registry};
use crate::store::{Change, ChangeStream};

/// How often expired sessions are deleted.
const PRUNE_SESSIONS_EVERY: Duration = Duration::from_secs(3600);

impl Registry {
    // ----- background tasks -----------------------------------------------------------

    #[track_caller]
    pub(super) fn spawn_housekeeping(&self, interval: Duration) {
        let weak = Arc::downgrade(&self.inner);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await; // the first tick is immediate
            let mut sessions_pruned = tokio::time::Instant::now();
            let mut flushing = Outage::new("usage flush");
            let mut pruning = Outage::new("pruning expired sessions");
            loop {
                ticker.tick().await;
                let Some(registry) = upgrade(&weak) else {
                    break;
                };
                flushing.record(
                    registry
                        .inner
                        .usage
                        .flush(&*registry.inner.store)
                        .await
                        .map(drop),
                );
                let now = registry.inner.clock.now_nanos();
                if registry.inner.cache.sweep(now, false) {
                    registry.inner.interner.sweep();
                }
                #[cfg(feature = "metrics")]
                registry.publish_metrics();
                if sessions_pruned.elapsed() >= PRUNE_SESSIONS_EVERY {
                    sessions_pruned = tokio::time::Instant::now();
                    pruning.record(registry.prune_expired_sessions().await.map(drop));
                }
            }
        });
        self.track(task.abort_handle());
    }

    #[track_caller]
    pub(super) fn spawn_change_feed(&self, mut changes: ChangeStream) {
        let weak = Arc::downgrade(&self.inner);
        // Up until it says otherwise: it was opened with the store.
        #[cfg(feature = "metrics")]
        crate::telemetry::feed_up(true);
        let task = tokio::spawn(async move {
            while let Some(change) = changes.next().await {
                let Some(registry) = upgrade(&weak) else {
                    break;
                };
                let cache = &registry.inner.cache;
                // The feed spoke: the store was there a moment ago (a feed that just
                // went down was up until now).
                registry
                    .inner
                    .health
                    .heard(registry.inner.clock.now_nanos());
                match change {
                    Change::Invalidated(invalidation) => {
                        tracing::debug!(target: "tower_bearer::registry", token_id = %invalidation.id, "evicting token announced by the change feed");
                        cache.invalidate(
                            &invalidation.digest,
                            invalidation.id,
                            registry.inner.clock.now_nanos(),
                        );
                        registry.inner.meters.forget(invalidation.id);
                    }
                    Change::Updated(invalidation) => {
                        tracing::debug!(target: "tower_bearer::registry", token_id = %invalidation.id, "re-reading token announced as changed by the change feed");
                        cache.evict(&invalidation.digest);
                    }
                    Change::FeedDown => {
                        tracing::warn!(target: "tower_bearer::registry", "change feed down; re-checking cached tokens against the store until it is back");
                        cache.set_feed_down(true, registry.inner.clock.now_nanos());
                        #[cfg(feature = "metrics")]
                        crate::telemetry::feed_up(false);
                    }
                    Change::FeedUp => {
                        cache.set_feed_down(false, 0);
                        #[cfg(feature = "metrics")]
                        crate::telemetry::feed_up(true);
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

    pub(super) fn track(&self, task: AbortHandle) {
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }
}

/// A background job that fails while the store is away: one warning when it starts
/// failing, one line with the count when it succeeds again, not a line per attempt.
pub(super) struct Outage {
    job: &'static str,
    /// Failed attempts since the last success, and when the first of them was.
    failing: Option<(u64, tokio::time::Instant)>,
}

impl Outage {
    pub(super) fn new(job: &'static str) -> Self {
        Self { job, failing: None }
    }

    pub(super) fn record<E: std::fmt::Display>(&mut self, attempt: Result<(), E>) {
        let job = self.job;
        match (attempt, &mut self.failing) {
            (Ok(()), None) => {}
            (Ok(()), Some((failures, since))) => {
                tracing::warn!(
                    target: "tower_bearer::registry",
                    job,
                    failures = *failures,
                    seconds = since.elapsed().as_secs(),
                    "{job} succeeds again",
                );
                self.failing = None;
            }
            (Err(error), None) => {
                tracing::warn!(
                    target: "tower_bearer::registry",
                    job,
                    %error,
                    "{job} failed; retrying quietly until it succeeds",
                );
                self.failing = Some((1, tokio::time::Instant::now()));
            }
            (Err(error), Some((failures, _))) => {
                *failures += 1;
                tracing::debug!(target: "tower_bearer::registry", job, %error, "{job} still failing");
            }
        }
    }
}

fn upgrade(weak: &Weak<Inner>) -> Option<Registry> {
    weak.upgrade().map(|inner| Registry { inner })
}
