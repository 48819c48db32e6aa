//! The digest-keyed cache: positive entries, bounded negative entries and revocation
//! tombstones, in one sharded map.
//!
//! Correctness of revocation rests on two things, both updated by [`Cache::invalidate`]:
//! the slot of the digest (replaced by a tombstone under the shard lock), and a global
//! revocation `epoch`. A fill records the epoch before it asks the store and installs its
//! result under the shard lock only if no revocation happened meanwhile; otherwise it asks
//! again. So a fill that read a record before the revocation can never reinstall it after.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;

use super::usage::Usage;
use crate::Principal;
use crate::token::Digest;

/// A verified record, as cached.
pub(crate) struct Entry {
    pub(crate) principal: Principal,
    /// `expires_at` in Unix nanoseconds; `i64::MAX` for never.
    pub(crate) expires_at: i64,
    /// After this instant (Unix nanoseconds) the entry is refreshed from the store.
    fresh_until: i64,
    /// The revocation epoch the record was read in.
    pub(crate) epoch: u64,
    pub(crate) usage: Usage,
}

impl Entry {
    pub(crate) fn new(principal: Principal, fresh_until: i64, epoch: u64) -> Self {
        let expires_at = principal
            .expires_at()
            .map_or(i64::MAX, crate::clock::to_nanos);
        Self {
            principal,
            expires_at,
            fresh_until,
            epoch,
            usage: Usage::default(),
        }
    }
}

enum Slot {
    Known(Arc<Entry>),
    /// A well-formed digest the store does not know, until the given instant.
    Unknown(i64),
    /// A digest revoked on this node or announced by the change feed, until the given
    /// instant. Kept so that the cause is reported as "revoked" and no store query is made.
    Revoked(i64),
}

impl Slot {
    fn is_negative(&self) -> bool {
        !matches!(self, Slot::Known(_))
    }
}

/// What the cache knows about a digest.
pub(crate) enum Lookup {
    Hit(Arc<Entry>),
    Unknown,
    Revoked,
    /// Nothing usable: ask the store.
    Miss,
}

/// The outcome of installing a fill.
pub(crate) enum Install {
    Known(Arc<Entry>),
    Unknown,
    Revoked,
    /// A revocation happened while the store was asked: ask again.
    Stale,
}

pub(crate) struct Limits {
    pub(crate) positive_ttl: i64,
    pub(crate) negative_ttl: i64,
    pub(crate) max_positive: usize,
    pub(crate) max_negative: usize,
}

pub(crate) struct Cache {
    map: DashMap<Digest, Slot>,
    epoch: AtomicU64,
    positives: AtomicUsize,
    negatives: AtomicUsize,
    /// Insertion order of negative slots, for evicting the oldest when over the bound.
    negative_order: Mutex<VecDeque<(Digest, i64)>>,
    /// When the last sweep of expired entries ran (Unix nanoseconds).
    last_sweep: AtomicI64,
    limits: Limits,
}

impl Cache {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            map: DashMap::new(),
            epoch: AtomicU64::new(0),
            positives: AtomicUsize::new(0),
            negatives: AtomicUsize::new(0),
            negative_order: Mutex::new(VecDeque::new()),
            last_sweep: AtomicI64::new(0),
            limits,
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// The hit path: one shard read lock, no allocation, no I/O.
    #[inline]
    pub(crate) fn lookup(&self, digest: &Digest, now: i64) -> Lookup {
        match self.map.get(digest).as_deref() {
            Some(Slot::Known(entry)) if now < entry.fresh_until || now >= entry.expires_at => {
                // An expired token stays expired: no need to refresh it.
                Lookup::Hit(entry.clone())
            }
            Some(Slot::Unknown(until)) if now < *until => Lookup::Unknown,
            Some(Slot::Revoked(until)) if now < *until => Lookup::Revoked,
            _ => Lookup::Miss,
        }
    }

    pub(crate) fn fresh_until(&self, now: i64) -> i64 {
        now.saturating_add(self.limits.positive_ttl)
    }

    /// Installs a record read from the store in `epoch`.
    pub(crate) fn install_known(&self, digest: Digest, entry: Entry, now: i64) -> Install {
        let at_capacity = self.positives.load(Ordering::Relaxed) >= self.limits.max_positive;
        if at_capacity {
            self.sweep(now, false);
        }
        let entry = Arc::new(entry);
        let slot = self.map.entry(digest);
        if let MapEntry::Occupied(occupied) = &slot {
            if let Slot::Revoked(until) = occupied.get() {
                if now < *until {
                    return Install::Revoked;
                }
            }
        }
        // Under the shard lock: a revocation either happened before this check (and we
        // retry) or will replace this slot after we release the lock.
        if self.epoch() != entry.epoch {
            return Install::Stale;
        }
        let full = self.positives.load(Ordering::Relaxed) >= self.limits.max_positive;
        match slot {
            MapEntry::Occupied(mut occupied) => {
                let old = occupied.insert(Slot::Known(entry.clone()));
                if old.is_negative() {
                    self.negatives.fetch_sub(1, Ordering::Relaxed);
                    self.positives.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Full even after a sweep: answer without caching rather than grow.
            MapEntry::Vacant(_) if full => {}
            MapEntry::Vacant(vacant) => {
                vacant.insert(Slot::Known(entry.clone()));
                self.positives.fetch_add(1, Ordering::Relaxed);
            }
        }
        Install::Known(entry)
    }

    /// Remembers that the store does not know `digest`.
    pub(crate) fn install_unknown(&self, digest: Digest, now: i64) -> Install {
        let until = now.saturating_add(self.limits.negative_ttl);
        match self.map.entry(digest) {
            MapEntry::Occupied(occupied) if matches!(occupied.get(), Slot::Revoked(_)) => {
                return Install::Revoked;
            }
            MapEntry::Occupied(mut occupied) => {
                if let Slot::Known(_) = occupied.insert(Slot::Unknown(until)) {
                    self.positives.fetch_sub(1, Ordering::Relaxed);
                    self.negatives.fetch_add(1, Ordering::Relaxed);
                }
            }
            MapEntry::Vacant(vacant) => {
                vacant.insert(Slot::Unknown(until));
                self.negatives.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.remember_negative(digest, until);
        Install::Unknown
    }

    /// Evicts `digest` for good: bumps the epoch (so no fill in progress can reinstall
    /// it) and leaves a tombstone.
    pub(crate) fn invalidate(&self, digest: Digest, now: i64) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let until = now.saturating_add(self.limits.positive_ttl.max(self.limits.negative_ttl));
        let old = self.map.insert(digest, Slot::Revoked(until));
        match old {
            Some(Slot::Known(_)) => {
                self.positives.fetch_sub(1, Ordering::Relaxed);
                self.negatives.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {}
            None => {
                self.negatives.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.remember_negative(digest, until);
    }

    /// Forgets every positive entry (the change feed lost events).
    pub(crate) fn reset(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.map.retain(|_, slot| {
            let keep = slot.is_negative();
            if !keep {
                self.positives.fetch_sub(1, Ordering::Relaxed);
            }
            keep
        });
    }

    /// Drops expired entries. Unless `force`d, runs at most once per negative TTL.
    pub(crate) fn sweep(&self, now: i64, force: bool) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if !force && now.saturating_sub(last) < self.limits.negative_ttl {
            return;
        }
        if self
            .last_sweep
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another sweep is running
        }
        self.map.retain(|_, slot| {
            let keep = match slot {
                Slot::Known(entry) => now < entry.fresh_until && now < entry.expires_at,
                Slot::Unknown(until) | Slot::Revoked(until) => now < *until,
            };
            if !keep {
                let counter = if slot.is_negative() {
                    &self.negatives
                } else {
                    &self.positives
                };
                counter.fetch_sub(1, Ordering::Relaxed);
            }
            keep
        });
    }

    /// Records a negative slot's insertion and evicts the oldest ones over the bound.
    fn remember_negative(&self, digest: Digest, until: i64) {
        let mut order = self
            .negative_order
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        order.push_back((digest, until));
        while self.negatives.load(Ordering::Relaxed) > self.limits.max_negative
            || order.len() > self.limits.max_negative.saturating_mul(2)
        {
            let Some((oldest, oldest_until)) = order.pop_front() else {
                break;
            };
            // Only the slot this queue entry was pushed for; a newer one has a later `until`.
            let removed = self.map.remove_if(
                &oldest,
                |_, slot| matches!(slot, Slot::Unknown(u) | Slot::Revoked(u) if *u == oldest_until),
            );
            if removed.is_some() {
                self.negatives.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// How many (positive, negative) entries are cached.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (
            self.positives.load(Ordering::Relaxed),
            self.negatives.load(Ordering::Relaxed),
        )
    }
}
