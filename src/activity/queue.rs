//! The bounded queue between the request path and the writer: one shard per thread (up
//! to a limit), each a short-held mutex over a vector, so that requests on different
//! threads never write to the same cache line, and a full queue drops instead of waiting.
//!
//! The bound is shared by the shards in use: with `n` threads recording, each shard holds
//! at most `capacity / n` rows (a single-threaded server gets the whole capacity). A new
//! thread's first row bumps `n`; every push only reads it.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Threads are given shards in turn, once each.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn thread_shard() -> usize {
    THREAD_SHARD.with(|shard| {
        if shard.get() == usize::MAX {
            shard.set(NEXT_SHARD.fetch_add(1, Ordering::Relaxed));
        }
        shard.get()
    })
}

/// One thread's part of the queue, on cache lines of its own.
#[repr(align(128))]
struct Shard<T> {
    rows: Mutex<Vec<T>>,
    /// Whether a thread has pushed to this shard (it then counts in the bound's split).
    used: AtomicBool,
    dropped: AtomicU64,
    /// Requests whose credential was not attributable to a token.
    unattributed: AtomicU64,
}

pub(crate) struct Queue<T> {
    shards: Box<[Shard<T>]>,
    capacity: usize,
    /// How many shards have been used: the capacity is split between them.
    in_use: AtomicUsize,
    /// A shard this full wakes the writer before its interval.
    wake_at: usize,
    wake: Arc<Notify>,
}

impl<T> Queue<T> {
    /// A queue of about `capacity` rows that wakes the writer when about `batch` are
    /// waiting.
    pub(crate) fn new(capacity: usize, batch: usize) -> Self {
        let threads = std::thread::available_parallelism().map_or(4, usize::from);
        let count = (threads * 2).clamp(1, 64);
        let capacity = capacity.max(1);
        Self {
            shards: (0..count)
                .map(|_| Shard {
                    rows: Mutex::new(Vec::new()),
                    used: AtomicBool::new(false),
                    dropped: AtomicU64::new(0),
                    unattributed: AtomicU64::new(0),
                })
                .collect(),
            capacity,
            in_use: AtomicUsize::new(0),
            wake_at: batch.clamp(1, capacity),
            wake: Arc::new(Notify::new()),
        }
    }

    fn shard(&self) -> &Shard<T> {
        &self.shards[thread_shard() % self.shards.len()]
    }

    /// Queues `row` without waiting; a full shard drops it (and counts the drop).
    pub(crate) fn push(&self, row: T) {
        let shard = self.shard();
        if !shard.used.load(Ordering::Relaxed) && !shard.used.swap(true, Ordering::Relaxed) {
            self.in_use.fetch_add(1, Ordering::Relaxed);
        }
        let in_use = self.in_use.load(Ordering::Relaxed).max(1);
        let bound = (self.capacity / in_use).max(1);
        let mut rows = shard.rows.lock().unwrap_or_else(|e| e.into_inner());
        if rows.len() >= bound {
            drop(rows);
            shard.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        rows.push(row);
        let len = rows.len();
        drop(rows);
        // Each shard wakes the writer at its share of a batch.
        if len == (self.wake_at / in_use).max(1) {
            self.wake.notify_one();
        }
    }

    /// Counts a request that could not be attributed to a token.
    pub(crate) fn count_unattributed(&self) {
        self.shard().unattributed.fetch_add(1, Ordering::Relaxed);
    }

    /// Moves every queued row to `into` (the shards keep their capacity).
    pub(crate) fn drain(&self, into: &mut Vec<T>) {
        for shard in &*self.shards {
            let mut rows = shard.rows.lock().unwrap_or_else(|e| e.into_inner());
            into.append(&mut rows);
        }
    }

    /// Notified when a shard fills to its share of a batch (a notification that finds
    /// nobody waiting is kept for the next wait).
    pub(crate) fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.sum(|shard| &shard.dropped)
    }

    pub(crate) fn unattributed(&self) -> u64 {
        self.sum(|shard| &shard.unattributed)
    }

    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.rows.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// How many rows the queue holds at most (while the threads recording stay the same).
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    fn sum(&self, counter: impl Fn(&Shard<T>) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|shard| counter(shard).load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts() {
        let queue = Queue::new(4, 2);
        let capacity = queue.capacity();
        for row in 0..capacity + 10 {
            queue.push(row);
        }
        // One thread alone gets the whole capacity.
        let kept = queue.len();
        assert_eq!(kept, capacity);
        assert_eq!(queue.dropped(), 10);
        let mut rows = Vec::new();
        queue.drain(&mut rows);
        assert_eq!(rows.len(), kept);
        assert_eq!(queue.len(), 0);
        queue.push(1);
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn threads_share_the_bound() {
        let queue = std::sync::Arc::new(Queue::new(100, 10));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    for row in 0..100 {
                        queue.push(row);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        // Shards joining late may find earlier ones fuller than their new share: at worst
        // capacity × (1 + 1/2 + 1/3 + 1/4) until the writer drains them.
        assert!(queue.len() <= 209, "{}", queue.len());
        assert_eq!(queue.len() as u64 + queue.dropped(), 400);
        let in_use = queue.in_use.load(Ordering::Relaxed);
        assert!((1..=4).contains(&in_use));
    }

    #[tokio::test]
    async fn filling_to_the_batch_size_wakes_the_writer() {
        let queue = Queue::new(1000, 1);
        queue.push(1);
        tokio::time::timeout(std::time::Duration::from_secs(5), queue.waker().notified())
            .await
            .expect("woken");
    }
}
