//! Write-behind usage tracking: counted in memory on every successful verification,
//! flushed to the store in batches by a background task.
//!
//! The hit path touches only atomics in the entry it was answered from (a thread's own
//! copy when the token is hot there, see `registry::hot`, so that cores do not share
//! the counters of a hot token); an entry is queued for the next flush the first time it
//! is used after the previous flush, and the flush adds up the entries of one token, so
//! each token is written at most once per flush.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use time::OffsetDateTime;
use tokio::sync::{Mutex, mpsc};

use crate::identity::TokenId;
use crate::registry::verify::entry::Entry;
use crate::store::{StoreError, TokenStore, UsageUpdate};

pub(crate) struct UsageTracker {
    queue: mpsc::UnboundedSender<Entry>,
    drain: Mutex<Drain>,
}

struct Drain {
    queued: mpsc::UnboundedReceiver<Entry>,
    /// A batch the store failed to take, retried with the next flush.
    retry: HashMap<TokenId, UsageUpdate>,
}

impl UsageTracker {
    pub(crate) fn new() -> Self {
        let (queue, queued) = mpsc::unbounded_channel();
        Self {
            queue,
            drain: Mutex::new(Drain {
                queued,
                retry: HashMap::new(),
            }),
        }
    }

    /// Counts one successful verification at `now` (Unix nanoseconds). Lock-free; at
    /// most one queue push per token per flush.
    #[inline]
    pub(crate) fn record(&self, entry: &Entry, now: i64) {
        let usage = &entry.extra.usage;
        usage.uses.fetch_add(1, Ordering::Relaxed);
        // Seconds are precise enough for "last used"; racing hits may store out of order
        // within a second, and the store keeps the maximum anyway.
        let now_secs = u32::try_from(now / 1_000_000_000).unwrap_or(u32::MAX);
        if usage.last_used.load(Ordering::Relaxed) != now_secs {
            usage.last_used.store(now_secs, Ordering::Relaxed);
        }
        if !usage.queued.load(Ordering::SeqCst) && !usage.queued.swap(true, Ordering::SeqCst) {
            // The receiver lives as long as `self`.
            let _ = self.queue.send(entry.clone());
        }
    }

    /// Writes everything counted so far to `store` as one batch. Returns how many tokens
    /// were updated. On failure the batch is kept and retried by the next flush.
    pub(crate) async fn flush(&self, store: &dyn TokenStore) -> Result<usize, StoreError> {
        let mut drain = self.drain.lock().await;
        let mut batch = std::mem::take(&mut drain.retry);
        while let Ok(entry) = drain.queued.try_recv() {
            let usage = &entry.extra.usage;
            // Clear the flag before taking the count: a hit after this re-queues the token.
            usage.queued.store(false, Ordering::SeqCst);
            let uses = u64::from(usage.uses.swap(0, Ordering::SeqCst));
            if uses == 0 {
                continue;
            }
            let last_used = i64::from(usage.last_used.load(Ordering::Relaxed));
            let last_used_at = OffsetDateTime::from_unix_timestamp(last_used)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            let id = entry.identity.id;
            batch
                .entry(id)
                .and_modify(|update| {
                    update.uses += uses;
                    update.last_used_at = update.last_used_at.max(last_used_at);
                })
                .or_insert(UsageUpdate {
                    id,
                    last_used_at,
                    uses,
                });
        }
        if batch.is_empty() {
            return Ok(0);
        }
        let mut updates: Vec<UsageUpdate> = batch.values().copied().collect();
        updates.sort_by_key(|update| update.id);
        match store.record_usage(&updates).await {
            Ok(()) => Ok(updates.len()),
            Err(error) => {
                drain.retry = batch;
                Err(error)
            }
        }
    }
}
