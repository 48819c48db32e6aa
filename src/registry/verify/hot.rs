//! Per-thread copies of the tokens a thread verifies again and again.
//!
//! A cache hit hands out a cached entry as the principal: one reference-count increment
//! on the entry, and its usage counters beside it. When every core verifies the same
//! token, every core writes that one cache line, and two cores verified it more slowly
//! than one (0.89×, `benches/multicore.rs`). So a thread that hits the same token twice
//! in a row through its slot of a small direct-mapped table keeps a copy of the entry of
//! its own (the same identity, its own reference count and usage counters), and serves
//! the token's later hits from the copy without touching the shared map.
//!
//! A copy is served only while the cache's generation is the one it was checked at: the
//! cache bumps the generation after every entry it evicts or replaces (revocation,
//! change, reset), so a copy is never served after its entry was revoked or changed (the
//! entries a sweep drops are past their freshness or expired, and so are their copies,
//! which are then not served or answer "expired"). When the
//! generation moved, the next hit goes to the shared map once: if the map still holds
//! the entry the copy was made from, the copy is good again.
//!
//! Tokens that no thread hits twice in a row (a rotating population) never get a copy and
//! cost nothing here but one slot compare.
//!
//! A thread's table (64 slots, about 5 KiB, and the copies it holds) lives as long as the
//! registry; a thread started later may be given an exited thread's table, which is only
//! a cache and is checked like any other.

use std::cell::{RefCell, RefMut};
use std::sync::Arc;

use thread_local::ThreadLocal;

use crate::registry::verify::entry::{self, Entry};

/// Slots per thread (a power of two): room for the tokens one thread keeps hot.
const SLOTS: usize = 64;

/// The cache key: the first half of the digest (see `registry::cache`).
pub(in crate::registry) type Key = (u64, u64);

/// Every thread's table of copies, for one registry.
#[derive(Default)]
pub(in crate::registry) struct Hot {
    threads: ThreadLocal<Table>,
}

/// A thread's table. `ThreadLocal` keeps the threads' values side by side: the alignment
/// keeps the borrow flags, written on every lookup, off each other's cache lines (128
/// bytes: adjacent-line prefetching pairs lines).
#[repr(align(128))]
struct Table(RefCell<Box<[Slot]>>);

impl Hot {
    /// This thread's slot for `key`. Borrowed for one lookup (nothing it calls comes
    /// back here).
    #[inline]
    pub(in crate::registry) fn slot(&self, key: Key) -> RefMut<'_, Slot> {
        let table = self
            .threads
            .get_or(|| Table(RefCell::new((0..SLOTS).map(|_| Slot::default()).collect())));
        // The key is the start of a SHA-256 digest: its low bits are uniform.
        RefMut::map(table.0.borrow_mut(), |slots| {
            &mut slots[key.0 as usize & (SLOTS - 1)]
        })
    }
}

/// One slot: a copy of a hot token's entry, or the last key that went to the shared map
/// through it.
#[derive(Default)]
pub(in crate::registry) struct Slot {
    /// The key of `copy`.
    key: Key,
    /// The shared entry `copy` was made from: while the map holds this very entry, the
    /// copy says what it says.
    source: Option<Entry>,
    copy: Option<Entry>,
    /// The cache generation at which `source` was last seen in the map.
    generation: u64,
    /// The last key that hit the shared map through this slot: hit again, it gets a copy.
    seen: Key,
}

impl Slot {
    /// The copy for `key` and `tail`, if it is valid at `generation`.
    #[inline]
    pub(in crate::registry) fn copy(
        &self,
        key: Key,
        tail: &[u8],
        generation: u64,
    ) -> Option<&Entry> {
        let copy = self.copy.as_ref()?;
        (self.key == key && self.generation == generation && copy.extra.digest_tail == tail)
            .then_some(copy)
    }

    /// `entry`, just found in the shared map for `key` at `generation` (read before the
    /// map was), is to be served: returns the entry to hand out, this thread's copy when
    /// the token is hot here.
    #[inline]
    pub(in crate::registry) fn serve(&mut self, key: Key, entry: &Entry, generation: u64) -> Entry {
        if let (Some(source), Some(copy)) = (&self.source, &self.copy) {
            if self.key == key && Arc::ptr_eq(source, entry) {
                // Still the map's entry: the copy is valid again.
                self.generation = generation;
                return copy.clone();
            }
        }
        if self.seen != key {
            self.seen = key;
            return entry.clone();
        }
        let copy = entry::copy(entry);
        *self = Self {
            key,
            source: Some(entry.clone()),
            copy: Some(copy.clone()),
            generation,
            seen: key,
        };
        copy
    }
}
