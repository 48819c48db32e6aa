//! Write-behind usage tracking: counted in memory on every successful verification,
//! flushed to the store in batches by a background task.
//!
//! The hit path touches only atomics in the cached entry; an entry is queued for the next
//! flush the first time it is used after the previous flush, so each token is written at
//! most once per flush.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use tokio::sync::{Mutex, mpsc};

use super::cache::Entry;
use crate::clock::from_nanos;
use crate::principal::TokenId;
use crate::store::{StoreError, TokenStore, UsageUpdate};

/// Per-entry usage since the last flush.
#[derive(Default)]
pub(crate) struct Usage {
    uses: AtomicU64,
    last_used: AtomicI64,
    queued: AtomicBool,
}

pub(crate) struct UsageTracker {
    queue: mpsc::UnboundedSender<Arc<Entry>>,
    drain: Mutex<Drain>,
}

struct Drain {
    queued: mpsc::UnboundedReceiver<Arc<Entry>>,
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

    /// Counts one successful verification. Lock-free; at most one queue push per entry
    /// per flush.
    #[inline]
    pub(crate) fn record(&self, entry: &Arc<Entry>, now: i64) {
        let usage = &entry.usage;
        usage.uses.fetch_add(1, Ordering::SeqCst);
        // Racing hits may store slightly out of order; the store keeps the maximum.
        usage.last_used.store(now, Ordering::Relaxed);
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
            let usage = &entry.usage;
            // Clear the flag before taking the count: a hit after this re-queues the entry.
            usage.queued.store(false, Ordering::SeqCst);
            let uses = usage.uses.swap(0, Ordering::SeqCst);
            if uses == 0 {
                continue;
            }
            let last_used_at = from_nanos(usage.last_used.load(Ordering::Relaxed));
            let id = entry.principal.id();
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
