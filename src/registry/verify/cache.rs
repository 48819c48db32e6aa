//! The digest-keyed cache: verified tokens, and a bounded map of unknown and revoked
//! digests.
//!
//! Verified tokens are keyed by the first half of their digest (a random 128-bit value)
//! and store the second half, which a hit compares: the table costs 24 bytes a slot.
//! Only digests found in the store enter it, so nobody can choose its keys. Its reads
//! take no lock and write nothing shared (`scc::HashIndex`): a lock's word, written by
//! every read of its shard, kept two cores verifying different tokens at 1.6× one.
//!
//! Correctness of revocation rests on revocation epochs: [`Cache::invalidate`] bumps the
//! epoch of the digest's stripe before it removes the entry under its bucket's lock, and
//! a fill, which records that epoch before asking the store, installs its record under
//! the same lock only if the epoch did not move. So a fill that read a record before a
//! revocation can never reinstall it after. The epochs are striped by digest (4096
//! stripes) so that a revocation makes only the fills of its own stripe retry: one tenant
//! revoking in a loop cannot make another tenant's cache misses fail. Tombstones of
//! revoked digests (in the negative map) are an optimisation: they report the cause and
//! spare the store a query.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use scc::HashIndex;
use scc::hash_index::Entry as MapEntry;

use crate::identity::TokenId;
use crate::registry::verify::entry::Entry;
use crate::registry::verify::hot::{Hot, Key};
use crate::registry::verify::watchers::Watchers;
use crate::token::Digest;

type Hasher = foldhash::fast::RandomState;

/// What the cache knows about a digest.
pub(crate) enum Lookup {
    Hit(Entry),
    Unknown,
    /// Revoked: the token it was.
    Revoked(TokenId),
    /// Nothing usable: ask the store.
    Miss,
}

/// The outcome of installing a fill.
pub(crate) enum Install {
    Known(Entry),
    Unknown,
    Revoked(TokenId),
    /// A revocation happened while the store was asked: ask again.
    Stale,
}

struct Negative {
    /// Unix nanoseconds.
    until: i64,
    /// The token, when the digest is a revoked token's tombstone.
    revoked: Option<TokenId>,
    /// A revoked token's last cached entry, so that calls still made with it can be
    /// recorded against it (the activity log).
    #[cfg(feature = "activity")]
    holder: Option<Entry>,
}

pub(crate) struct Limits {
    pub(crate) positive_ttl: i64,
    pub(crate) negative_ttl: i64,
    /// How long past its freshness an entry may still be served while the store fails.
    pub(crate) stale_if_error: i64,
    /// The positive TTL while the store's change feed is down.
    pub(crate) feed_down_ttl: i64,
    pub(crate) max_positive: usize,
    pub(crate) max_negative: usize,
}

/// How many revocation epochs there are; a power of two.
const STRIPES: usize = 4096;

pub(crate) struct Cache {
    known: HashIndex<Key, Entry, Hasher>,
    /// How many entries `known` holds, about (its own count scans every bucket): kept by
    /// inserts and evictions, set again by sweeps and resets.
    known_count: AtomicUsize,
    negative: DashMap<Digest, Negative, Hasher>,
    /// Revocation epochs by digest stripe.
    epochs: Box<[AtomicU64]>,
    /// Bumped after every entry removed from or replaced in `known`: the threads' copies
    /// of hot entries are served only while it stays where it was when they were checked.
    generation: AtomicU64,
    /// Per-thread copies of hot entries.
    hot: Hot,
    /// Bumped when every entry is dropped at once (the change feed lost events).
    resets: AtomicU64,
    /// Since when (Unix seconds) the store's change feed is down; 0 while it is up.
    /// Meanwhile entries are filled for the short TTL, and the ones filled before are
    /// fresh for at most that long after the feed went down.
    feed_down_since: AtomicI64,
    /// Insertion order of negative entries, for evicting the oldest over the bound.
    negative_order: Mutex<VecDeque<(Digest, i64)>>,
    /// When the last sweep of expired entries ran (Unix nanoseconds).
    last_sweep: AtomicI64,
    limits: Limits,
    /// Connections waiting for their token to be evicted (`Registry::watch`).
    watchers: Watchers,
}

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// The cache key: the first half of the digest, as two words (a `u128` would be aligned
/// to 16 bytes and pad every slot to 32).
#[inline]
fn key(digest: &Digest) -> Key {
    let bytes = digest.as_bytes();
    let word = |at: usize| {
        let mut word = [0; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_ne_bytes(word)
    };
    (word(0), word(8))
}

#[inline]
fn tail(digest: &Digest) -> &[u8] {
    &digest.as_bytes()[16..]
}

#[inline]
fn stripe(digest: &Digest) -> usize {
    let bytes = digest.as_bytes();
    usize::from(u16::from_le_bytes([bytes[30], bytes[31]])) % STRIPES
}

impl Cache {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            known: HashIndex::default(),
            known_count: AtomicUsize::new(0),
            negative: DashMap::default(),
            epochs: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            generation: AtomicU64::new(0),
            hot: Hot::default(),
            resets: AtomicU64::new(0),
            feed_down_since: AtomicI64::new(0),
            negative_order: Mutex::new(VecDeque::new()),
            last_sweep: AtomicI64::new(0),
            limits,
            watchers: Watchers::default(),
        }
    }

    /// Who is waiting for an eviction.
    pub(crate) fn watchers(&self) -> &Watchers {
        &self.watchers
    }

    /// The revocation epoch that concerns `digest`: it moves whenever a revocation in
    /// the digest's stripe, or a reset, happens. Both counters only grow, so their sum
    /// moves whenever either does.
    pub(crate) fn epoch(&self, digest: &Digest) -> u64 {
        self.epochs[stripe(digest)]
            .load(Ordering::SeqCst)
            .wrapping_add(self.resets.load(Ordering::SeqCst))
    }

    /// A verified token whose freshness ran out less than the stale-if-error window ago,
    /// whose store was heard from (at `last_heard`, Unix nanoseconds) less than that
    /// window ago, and that has not expired: what a request may be answered with while
    /// the store fails. Revoked tokens are never here (revocation removes them).
    pub(crate) fn stale(&self, digest: &Digest, now: i64, last_heard: i64) -> Option<Entry> {
        let heard_until = last_heard.saturating_add(self.limits.stale_if_error);
        self.known
            .peek_with(&key(digest), |_, entry| {
                let slot = &entry.extra;
                let stale_until = i64::from(slot.fresh_until)
                    .saturating_mul(NANOS_PER_SEC)
                    .saturating_add(self.limits.stale_if_error)
                    .min(heard_until);
                (slot.digest_tail == tail(digest)
                    && now < stale_until
                    && now < entry.expires_at_nanos())
                .then(|| entry.clone())
            })
            .flatten()
    }

    /// The hit path: no allocation, no I/O, no lock; a token this thread keeps hot is
    /// served from its own copy (no shared write at all).
    #[inline]
    pub(crate) fn lookup(&self, digest: &Digest, now: i64) -> Lookup {
        let key = key(digest);
        let tail = tail(digest);
        // Read before the map is, so that a removal after this read moves it again.
        let generation = self.generation.load(Ordering::Acquire);
        let mut hot = self.hot.slot(key);
        if let Some(copy) = hot.copy(key, tail, generation) {
            if self.servable(copy, now) {
                return Lookup::Hit(copy.clone());
            }
        }
        let found = self
            .known
            .peek_with(&key, |_, entry| {
                (entry.extra.digest_tail == tail).then(|| {
                    if self.servable(entry, now) {
                        Lookup::Hit(hot.serve(key, entry, generation))
                    } else {
                        Lookup::Miss
                    }
                })
            })
            .flatten();
        drop(hot);
        if let Some(found) = found {
            return found;
        }
        match self.negative.get(digest).as_deref() {
            Some(negative) if now < negative.until => match negative.revoked {
                Some(id) => Lookup::Revoked(id),
                None => Lookup::Unknown,
            },
            _ => Lookup::Miss,
        }
    }

    /// Whether a hit on `entry` is answered from the cache: while it is fresh, and for
    /// good once it expired (an expired token stays expired: no need to refresh it).
    #[inline]
    fn servable(&self, entry: &Entry, now: i64) -> bool {
        self.is_fresh(entry.extra.fresh_until, now / NANOS_PER_SEC)
            || now >= entry.expires_at_nanos()
    }

    /// The Unix second until which an entry filled at `now` is served (`u32` seconds
    /// last until 2106). An unreadable clock (`i64::MAX`) makes entries never fresh.
    fn short_ttl(&self) -> i64 {
        self.limits.feed_down_ttl.min(self.limits.positive_ttl)
    }

    /// Whether an entry fresh until `fresh_until` (Unix seconds) is fresh at `now_secs`:
    /// before it, and, while the change feed is down, filled after the feed went down
    /// (its freshness is short) or not yet the feed-down TTL past that.
    #[inline]
    fn is_fresh(&self, fresh_until: u32, now_secs: i64) -> bool {
        if now_secs >= i64::from(fresh_until) {
            return false;
        }
        let down_since = self.feed_down_since.load(Ordering::Relaxed);
        if down_since == 0 {
            return true;
        }
        // Whole seconds, rounded up.
        let short = self.short_ttl().saturating_add(NANOS_PER_SEC - 1) / NANOS_PER_SEC;
        now_secs < down_since + short || i64::from(fresh_until) <= now_secs + short
    }

    /// When (Unix seconds) the cached entry of `digest` stops being fresh, as
    /// [`is_fresh`](Self::is_fresh) counts at `now_secs` and after: a time at or before
    /// `now_secs` means it is stale already. `None` when nothing is cached for it.
    pub(crate) fn fresh_end(&self, digest: &Digest, now_secs: i64) -> Option<i64> {
        let fresh_until = self
            .known
            .peek_with(&key(digest), |_, entry| {
                (entry.extra.digest_tail == tail(digest)).then_some(entry.extra.fresh_until)
            })
            .flatten()?;
        let fresh_until = i64::from(fresh_until);
        let down_since = self.feed_down_since.load(Ordering::Relaxed);
        if down_since == 0 {
            return Some(fresh_until);
        }
        let short = self.short_ttl().saturating_add(NANOS_PER_SEC - 1) / NANOS_PER_SEC;
        if fresh_until <= now_secs + short {
            // Fresh until its own end from now on (filled since the feed went down).
            return Some(fresh_until);
        }
        Some((down_since + short).min(fresh_until))
    }

    pub(crate) fn fresh_until(&self, now: i64) -> u32 {
        if now == i64::MAX {
            return 0;
        }
        let ttl = if self.feed_down_since.load(Ordering::Relaxed) != 0 {
            self.short_ttl()
        } else {
            self.limits.positive_ttl
        };
        let secs = now.saturating_add(ttl) / NANOS_PER_SEC;
        u32::try_from(secs.max(0)).unwrap_or(u32::MAX)
    }

    /// The token `digest` was, while its tombstone says it is revoked.
    fn revoked(&self, digest: &Digest, now: i64) -> Option<TokenId> {
        self.negative
            .get(digest)
            .and_then(|negative| negative.revoked.filter(|_| now < negative.until))
    }

    /// Installs a record read from the store in revocation epoch `epoch`.
    pub(crate) fn install_known(
        &self,
        digest: &Digest,
        entry: Entry,
        epoch: u64,
        now: i64,
    ) -> Install {
        if let Some(id) = self.revoked(digest, now) {
            return Install::Revoked(id);
        }
        let mut full = self.known_count.load(Ordering::Relaxed) >= self.limits.max_positive;
        if full && self.sweep(now, false) {
            full = self.known_count.load(Ordering::Relaxed) >= self.limits.max_positive;
        }
        let slot = self.known.entry_sync(key(digest));
        // Under the bucket's lock: a revocation either bumped the epoch before this check
        // (and we ask again) or will remove this entry after we release the lock.
        if self.epoch(digest) != epoch {
            return Install::Stale;
        }
        match slot {
            MapEntry::Occupied(mut occupied) => {
                occupied.update(entry.clone());
                self.generation.fetch_add(1, Ordering::Release);
            }
            // Full even after a sweep: answer without caching rather than grow.
            MapEntry::Vacant(_) if full => {}
            MapEntry::Vacant(vacant) => {
                vacant.insert_entry(entry.clone());
                self.known_count.fetch_add(1, Ordering::Relaxed);
            }
        }
        Install::Known(entry)
    }

    /// Remembers that the store does not know `digest`.
    pub(crate) fn install_unknown(&self, digest: &Digest, now: i64) -> Install {
        if let Some(id) = self.revoked(digest, now) {
            return Install::Revoked(id);
        }
        self.remember_negative(
            *digest,
            now.saturating_add(self.limits.negative_ttl),
            None,
            None,
        );
        Install::Unknown
    }

    /// Evicts `digest` for good: bumps the epoch (so no fill in progress can reinstall
    /// it), removes the entry, and leaves a tombstone.
    pub(crate) fn invalidate(&self, digest: &Digest, id: TokenId, now: i64) {
        let holder = self.evict(digest);
        // The change feed announces this node's own revocations again: keep what the
        // first tombstone remembered.
        #[cfg(feature = "activity")]
        let holder = holder.or_else(|| {
            self.negative
                .get(digest)
                .and_then(|negative| negative.holder.clone())
        });
        let until = now.saturating_add(self.limits.positive_ttl.max(self.limits.negative_ttl));
        self.remember_negative(*digest, until, Some(id), holder);
    }

    /// Evicts `digest` so that the next request reads its record again (the record
    /// changed): like [`Cache::invalidate`], no fill in progress can reinstall the old
    /// version, but no tombstone is left. Returns the evicted entry.
    pub(crate) fn evict(&self, digest: &Digest) -> Option<Entry> {
        self.epochs[stripe(digest)].fetch_add(1, Ordering::SeqCst);
        let removed = match self.known.entry_sync(key(digest)) {
            MapEntry::Occupied(occupied) if occupied.get().extra.digest_tail == tail(digest) => {
                let entry = occupied.get().clone();
                occupied.remove_entry();
                self.known_count.fetch_sub(1, Ordering::Relaxed);
                Some(entry)
            }
            _ => None,
        };
        // After the removal: a thread that reads the new generation finds the map without
        // the entry, and stops serving its copy.
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.watchers.notify(digest);
        removed
    }

    /// Who `digest` stands for, as far as the cache remembers: its entry (fresh or not,
    /// expired or not), or the last entry of a revoked token while its tombstone lasts.
    /// For the activity log's rows of rejected requests.
    #[cfg(feature = "activity")]
    pub(crate) fn holder(&self, digest: &Digest) -> Option<Entry> {
        let entry = self
            .known
            .peek_with(&key(digest), |_, entry| {
                (entry.extra.digest_tail == tail(digest)).then(|| entry.clone())
            })
            .flatten();
        if entry.is_some() {
            return entry;
        }
        self.negative
            .get(digest)
            .and_then(|negative| negative.holder.clone())
    }

    /// The change feed went down (`true`: entries are re-checked against the store after
    /// at most the feed-down TTL, and kept for stale-if-error meanwhile) or came back.
    pub(crate) fn set_feed_down(&self, down: bool, now: i64) {
        let since = if down {
            (now / NANOS_PER_SEC).max(1)
        } else {
            0
        };
        self.feed_down_since.store(since, Ordering::SeqCst);
        if down {
            // Entries are fresh for a shorter while now: watchers count again.
            self.watchers.notify_all();
        }
    }

    /// Forgets every verified token (the change feed lost events).
    pub(crate) fn reset(&self) {
        self.resets.fetch_add(1, Ordering::SeqCst);
        self.known.clear_sync();
        self.known_count.store(self.known.len(), Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.watchers.notify_all();
    }

    /// Drops expired entries. Unless `force`d, runs at most once per negative TTL.
    /// Returns whether it ran.
    pub(crate) fn sweep(&self, now: i64, force: bool) -> bool {
        let last = self.last_sweep.load(Ordering::Relaxed);
        if !force && now.saturating_sub(last) < self.limits.negative_ttl {
            return false;
        }
        if self
            .last_sweep
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return false; // another sweep is running
        }
        // Entries stay while they may still be served stale.
        let keep_after = now.saturating_sub(self.limits.stale_if_error) / NANOS_PER_SEC;
        self.known.retain_sync(|_, entry| {
            keep_after < i64::from(entry.extra.fresh_until) && now < entry.expires_at_nanos()
        });
        self.known_count.store(self.known.len(), Ordering::Relaxed);
        self.negative.retain(|_, negative| now < negative.until);
        true
    }

    /// Records a negative entry and evicts the oldest ones over the bound.
    fn remember_negative(
        &self,
        digest: Digest,
        until: i64,
        revoked: Option<TokenId>,
        holder: Option<Entry>,
    ) {
        let mut order = self
            .negative_order
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        #[cfg(not(feature = "activity"))]
        let _ = holder;
        self.negative.insert(
            digest,
            Negative {
                until,
                revoked,
                #[cfg(feature = "activity")]
                holder,
            },
        );
        order.push_back((digest, until));
        // The queue may hold entries already replaced or swept; those are skipped.
        while order.len() > self.limits.max_negative {
            let Some((oldest, oldest_until)) = order.pop_front() else {
                break;
            };
            self.negative
                .remove_if(&oldest, |_, negative| negative.until == oldest_until);
        }
    }

    /// How many (verified, negative) entries are cached.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.known.len(), self.negative.len())
    }
}
