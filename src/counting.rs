//! Counts the hit path adds to without a lock, an atomic read-modify-write or a shared
//! cache line: one block of counters per thread, written by that thread alone (a load and
//! a store), summed by the registry's background task when it publishes them.

/// A request's outcome, as `tower_bearer_requests_total{outcome}` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Missing,
    InvalidRequest,
    Malformed,
    Unknown,
    Expired,
    Revoked,
    WrongEnv,
    TenantMismatch,
    Changed,
    InsufficientScope,
    Forbidden,
    IpDenied,
    RateLimited,
    CreditsExhausted,
    Unavailable,
}

impl Outcome {
    #[cfg(feature = "metrics")]
    pub(crate) const ALL: [Self; 16] = [
        Self::Ok,
        Self::Missing,
        Self::InvalidRequest,
        Self::Malformed,
        Self::Unknown,
        Self::Expired,
        Self::Revoked,
        Self::WrongEnv,
        Self::TenantMismatch,
        Self::Changed,
        Self::InsufficientScope,
        Self::Forbidden,
        Self::IpDenied,
        Self::RateLimited,
        Self::CreditsExhausted,
        Self::Unavailable,
    ];

    /// The label value.
    #[cfg(feature = "metrics")]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Missing => "missing",
            Self::InvalidRequest => "invalid_request",
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::WrongEnv => "wrong_env",
            Self::TenantMismatch => "tenant_mismatch",
            Self::Changed => "changed",
            Self::InsufficientScope => "insufficient_scope",
            Self::Forbidden => "forbidden",
            Self::IpDenied => "ip_denied",
            Self::RateLimited => "rate_limited",
            Self::CreditsExhausted => "credits_exhausted",
            Self::Unavailable => "unavailable",
        }
    }
}

/// A cache lookup's result, as `tower_bearer_cache_lookups_total{result}` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A verified token, answered from memory.
    Hit,
    /// Not cached: the store is asked.
    Miss,
    /// A digest remembered unknown or revoked, answered from memory.
    Negative,
    /// The store failed and a recently verified entry answered.
    Stale,
}

#[cfg(feature = "metrics")]
impl Lookup {
    pub(crate) const ALL: [Self; 4] = [Self::Hit, Self::Miss, Self::Negative, Self::Stale];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Negative => "negative",
            Self::Stale => "stale",
        }
    }

    fn slot(self) -> usize {
        Outcome::ALL.len() + self as usize
    }
}

/// Counts a request's outcome.
#[inline]
pub(crate) fn request(outcome: Outcome) {
    #[cfg(feature = "metrics")]
    per_thread::add(outcome as usize);
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}

/// Counts a cache lookup.
#[inline]
pub(crate) fn lookup(result: Lookup) {
    #[cfg(feature = "metrics")]
    per_thread::add(result.slot());
    #[cfg(not(feature = "metrics"))]
    let _ = result;
}

#[cfg(feature = "metrics")]
pub(crate) use per_thread::take_new;

/// The per-thread blocks and their sum (only with a recorder to publish to).
#[cfg(feature = "metrics")]
mod per_thread {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard};

    use super::{Lookup, Outcome};

    pub(super) const SLOTS: usize = Outcome::ALL.len() + Lookup::ALL.len();

    /// One thread's counters.
    #[derive(Default)]
    struct Block([AtomicU64; SLOTS]);

    /// Every live thread's block, and what the threads that ended had counted.
    struct Threads {
        blocks: Vec<Arc<Block>>,
        ended: [u64; SLOTS],
        /// What was last published.
        published: [u64; SLOTS],
    }

    static THREADS: Mutex<Threads> = Mutex::new(Threads {
        blocks: Vec::new(),
        ended: [0; SLOTS],
        published: [0; SLOTS],
    });

    fn threads() -> MutexGuard<'static, Threads> {
        THREADS.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This thread's block, registered on first use and folded into `ended` when the thread
    /// ends (threads of a blocking pool come and go: their blocks must not pile up).
    struct Local(Arc<Block>);

    impl Local {
        fn new() -> Self {
            let block = Arc::new(Block::default());
            threads().blocks.push(Arc::clone(&block));
            Self(block)
        }
    }

    impl Drop for Local {
        fn drop(&mut self) {
            let mut threads = threads();
            threads.blocks.retain(|block| !Arc::ptr_eq(block, &self.0));
            for (ended, count) in threads.ended.iter_mut().zip(&self.0.0) {
                *ended = ended.wrapping_add(count.load(Ordering::Relaxed));
            }
        }
    }

    thread_local! {
        static LOCAL: Local = Local::new();
    }

    #[inline]
    pub(super) fn add(slot: usize) {
        // During a thread's teardown the block may be gone: that count is lost, harmlessly.
        let _ = LOCAL.try_with(|local| {
            let count = &local.0.0[slot];
            // Only this thread writes its block: no read-modify-write is needed.
            count.store(
                count.load(Ordering::Relaxed).wrapping_add(1),
                Ordering::Relaxed,
            );
        });
    }

    /// What was counted since the last call, by slot: requests by [`Outcome`], then lookups
    /// by [`Lookup`]. One caller at a time takes each increment once.
    pub(crate) fn take_new() -> ([u64; Outcome::ALL.len()], [u64; Lookup::ALL.len()]) {
        let mut threads = threads();
        let mut total = threads.ended;
        for block in &threads.blocks {
            for (total, count) in total.iter_mut().zip(&block.0) {
                *total = total.wrapping_add(count.load(Ordering::Relaxed));
            }
        }
        let mut new = [0; SLOTS];
        for ((new, total), published) in new.iter_mut().zip(&total).zip(&threads.published) {
            *new = total.wrapping_sub(*published);
        }
        threads.published = total;
        drop(threads);
        let mut requests = [0; Outcome::ALL.len()];
        let mut lookups = [0; Lookup::ALL.len()];
        requests.copy_from_slice(&new[..Outcome::ALL.len()]);
        lookups.copy_from_slice(&new[Outcome::ALL.len()..]);
        (requests, lookups)
    }
}
