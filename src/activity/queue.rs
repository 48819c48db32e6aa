//! The bounded queue between the request path and the writer: one shard per thread (up
//! to a limit), each a short-held mutex over a batch, so that requests on different
//! threads never write to the same cache line, and a full queue drops instead of waiting.
//!
//! Nothing is allocated per request: a row's text is copied into its shard's text buffer,
//! and the writer swaps a shard's batch for an emptied one that keeps its capacity. A row
//! is begun when the request arrives (what only the request knows) and answered when its
//! response head is ready (status, outcome, time), possibly on another thread: the
//! answer names the row by its [`Ticket`], and the writer joins the two.
//!
//! The bound is shared by the shards in use: with `n` threads recording, each shard holds
//! at most `capacity / n` rows (a single-threaded server gets the whole capacity). A new
//! thread's first row bumps `n`; every push only reads it.

use std::cell::Cell;
use std::net::IpAddr;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::MatchedPath;
use http::Method;
use tokio::sync::Notify;

use crate::identity::TokenId;
use crate::store::activity::Outcome;
use crate::token::Digest;

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

/// At most this many shards (a ticket keeps the shard in its top bits).
const MAX_SHARDS: usize = 64;
const SHARD_SHIFT: u32 = 56;

/// Names a begun row until it is answered: its shard and its number there. Eight bytes,
/// so that a response future carries it for free.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Ticket(NonZeroU64);

/// The text fields of a row, in the order they sit in the text buffer: route, user agent,
/// request id, tenant, session id, and the method when it is not a standard one.
pub(crate) const FIELDS: usize = 6;
/// The method's field, for the methods [`STANDARD_METHODS`] does not have.
const METHOD: usize = FIELDS - 1;
/// Methods a row keeps as a one-byte index.
const STANDARD_METHODS: [Method; 9] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::HEAD,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];
/// The index of a method kept in the text.
const OTHER_METHOD: u8 = u8::MAX;

/// What a request tells about itself when it arrives; the text borrowed from it.
pub(crate) struct Arrival<'a> {
    /// Unix nanoseconds.
    pub(crate) start: i64,
    pub(crate) token_id: TokenId,
    pub(crate) method: &'a Method,
    pub(crate) ip: Option<IpAddr>,
    /// Route, user agent, request id, tenant, session id (the method's slot is filled
    /// here when needed).
    pub(crate) text: [Option<&'a str>; FIELDS],
    /// For a credential not attributed yet (no tenant, no token id): its digest, which
    /// the writer looks up among the revoked tokens it remembers.
    pub(crate) digest: Option<Digest>,
}

/// The answer to a row.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Answer {
    /// Unix nanoseconds.
    pub(crate) end: i64,
    pub(crate) status: u16,
    pub(crate) outcome: Outcome,
}

/// A begun row, its text in the batch's buffer: about one cache line, because the
/// request path writes it into memory the writer's core read last.
pub(crate) struct Row {
    pub(crate) ticket: Ticket,
    pub(crate) start: i64,
    pub(crate) token_id: TokenId,
    pub(crate) ip: Option<IpAddr>,
    /// Known at once for a request rejected before any handler ran.
    answer: Option<Answer>,
    /// Where the row's text starts in the batch's text, and where each field ends,
    /// relative to that start.
    text_start: u32,
    ends: [u16; FIELDS],
    /// Which text fields are present (bit per field).
    present: u8,
    /// An index in [`STANDARD_METHODS`], or [`OTHER_METHOD`].
    method: u8,
}

impl Row {
    /// Its answer, when it was answered at once.
    pub(crate) fn answer(&self) -> Option<Answer> {
        self.answer
    }
}

/// What the writer takes from a shard at once.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) rows: Vec<Row>,
    pub(crate) text: String,
    /// Answers to rows begun here or on other shards, with the route template the
    /// response brought (around a whole router the row began before routing).
    pub(crate) answers: Vec<(Ticket, Answer, Option<MatchedPath>)>,
    /// The digests of the rows not attributed yet, by index in `rows`.
    pub(crate) digests: Vec<(u32, Digest)>,
}

impl Batch {
    /// A text field of `row`, a row of this batch.
    pub(crate) fn field(&self, row: &Row, field: usize) -> Option<&str> {
        if row.present & (1 << field) == 0 {
            return None;
        }
        let base = row.text_start as usize;
        let start = if field == 0 { 0 } else { row.ends[field - 1] };
        self.text
            .get(base + usize::from(start)..base + usize::from(row.ends[field]))
    }

    /// The method of `row`, a row of this batch.
    pub(crate) fn method<'a>(&'a self, row: &Row) -> &'a str {
        match STANDARD_METHODS.get(usize::from(row.method)) {
            Some(method) => method.as_str(),
            None => self.field(row, METHOD).unwrap_or_default(),
        }
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.text.clear();
        self.answers.clear();
        self.digests.clear();
    }
}

struct ShardState {
    batch: Batch,
    /// The number of the next row begun here (from 1).
    next: u64,
}

/// One thread's part of the queue, on cache lines of its own.
#[repr(align(128))]
struct Shard {
    state: Mutex<ShardState>,
    /// Whether a thread has begun a row here (it then counts in the bound's split).
    used: AtomicBool,
    dropped: AtomicU64,
    /// Requests whose credential was not attributable to a token.
    unattributed: AtomicU64,
}

pub(crate) struct Queue {
    shards: Box<[Shard]>,
    capacity: usize,
    /// How many shards have been used: the capacity is split between them.
    in_use: AtomicUsize,
    /// Rows a shard may hold, and the row count at which it wakes the writer: the
    /// capacity and the batch size shared by the shards in use, recomputed when a shard
    /// joins (a division per row would cost more than the rest of the bookkeeping).
    bound: AtomicUsize,
    wake_at: AtomicUsize,
    batch: usize,
    wake: Arc<Notify>,
}

impl Queue {
    /// A queue of about `capacity` rows that wakes the writer when about `batch` are
    /// waiting.
    pub(crate) fn new(capacity: usize, batch: usize) -> Self {
        Self::waking(capacity, batch, Arc::new(Notify::new()))
    }

    /// [`new`](Self::new), waking the writer through `wake` (one writer empties several
    /// queues).
    pub(crate) fn waking(capacity: usize, batch: usize, wake: Arc<Notify>) -> Self {
        let threads = std::thread::available_parallelism().map_or(4, usize::from);
        let count = (threads * 2).clamp(1, MAX_SHARDS);
        let capacity = capacity.max(1);
        Self {
            shards: (0..count)
                .map(|_| Shard {
                    state: Mutex::new(ShardState {
                        batch: Batch::default(),
                        next: 1,
                    }),
                    used: AtomicBool::new(false),
                    dropped: AtomicU64::new(0),
                    unattributed: AtomicU64::new(0),
                })
                .collect(),
            capacity,
            in_use: AtomicUsize::new(0),
            bound: AtomicUsize::new(capacity),
            wake_at: AtomicUsize::new(batch.clamp(1, capacity)),
            batch: batch.clamp(1, capacity),
            wake,
        }
    }

    fn shard(&self) -> (usize, &Shard) {
        let at = thread_shard() % self.shards.len();
        (at, &self.shards[at])
    }

    /// Begins a row (answered at once when `answer` is given); `None` when the shard is
    /// full (the row is dropped and counted). Never waits for the writer.
    pub(crate) fn begin(&self, arrival: &Arrival<'_>, answer: Option<Answer>) -> Option<Ticket> {
        let (at, shard) = self.shard();
        if !shard.used.load(Ordering::Relaxed) && !shard.used.swap(true, Ordering::Relaxed) {
            let in_use = self.in_use.fetch_add(1, Ordering::Relaxed) + 1;
            self.bound
                .store((self.capacity / in_use).max(1), Ordering::Relaxed);
            self.wake_at
                .store((self.batch / in_use).max(1), Ordering::Relaxed);
        }
        let mut state = lock(shard);
        if state.batch.rows.len() >= self.bound.load(Ordering::Relaxed) {
            drop(state);
            shard.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let seq = state.next;
        state.next += 1;
        let ticket = Ticket(
            NonZeroU64::new(((at as u64) << SHARD_SHIFT) | (seq & ((1 << SHARD_SHIFT) - 1)))
                .unwrap_or(NonZeroU64::MIN),
        );
        let method = STANDARD_METHODS
            .iter()
            .position(|standard| standard == arrival.method)
            .map_or(OTHER_METHOD, |at| at as u8);
        let mut fields = arrival.text;
        if method == OTHER_METHOD {
            fields[METHOD] = Some(crate::store::activity::clip(arrival.method.as_str(), 32));
        }
        let batch = &mut state.batch;
        let text_start = batch.text.len();
        let mut ends = [0; FIELDS];
        let mut present = 0;
        for (at, field) in fields.into_iter().enumerate() {
            if let Some(field) = field {
                batch.text.push_str(field);
                present |= 1 << at;
            }
            // Every field is clipped (a method is short): a row's text fits in u16.
            ends[at] = u16::try_from(batch.text.len() - text_start).unwrap_or(u16::MAX);
        }
        if let Some(digest) = arrival.digest {
            let index = u32::try_from(batch.rows.len()).unwrap_or(u32::MAX);
            batch.digests.push((index, digest));
        }
        batch.rows.push(Row {
            ticket,
            start: arrival.start,
            token_id: arrival.token_id,
            ip: arrival.ip,
            answer,
            text_start: u32::try_from(text_start).unwrap_or(u32::MAX),
            ends,
            present,
            method,
        });
        let len = batch.rows.len();
        drop(state);
        // Each shard wakes the writer at its share of a batch.
        if len == self.wake_at.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
        Some(ticket)
    }

    /// Records the answer to the row of `ticket`, and the route template it brought.
    pub(crate) fn answer(&self, ticket: Ticket, answer: Answer, template: Option<MatchedPath>) {
        let (_, shard) = self.shard();
        lock(shard).batch.answers.push((ticket, answer, template));
    }

    /// Counts a request that could not be attributed to a token.
    pub(crate) fn count_unattributed(&self) {
        self.shard().1.unattributed.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes every shard's batch, leaving in its place one from `spares` (emptied here,
    /// its capacity kept) or a new one.
    pub(crate) fn drain(&self, spares: &mut Vec<Batch>, into: &mut Vec<Batch>) {
        for shard in &*self.shards {
            let mut spare = spares.pop().unwrap_or_default();
            spare.clear();
            let mut state = lock(shard);
            if state.batch.rows.is_empty() && state.batch.answers.is_empty() {
                drop(state);
                spares.push(spare);
                continue;
            }
            std::mem::swap(&mut state.batch, &mut spare);
            drop(state);
            into.push(spare);
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

    /// Rows begun and not taken by the writer yet.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| lock(shard).batch.rows.len())
            .sum()
    }

    /// How many rows the queue holds at most (while the threads recording stay the same).
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    fn sum(&self, counter: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|shard| counter(shard).load(Ordering::Relaxed))
            .sum()
    }
}

/// A shard's state is consistent after every push: a poisoned lock is still usable.
fn lock(shard: &Shard) -> MutexGuard<'_, ShardState> {
    shard.state.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(route: &str) -> Arrival<'_> {
        Arrival {
            start: 1,
            token_id: TokenId::new(1),
            method: &Method::GET,
            ip: None,
            text: [Some(route), None, Some("req"), Some("acme"), None, None],
            digest: None,
        }
    }

    fn answered() -> Option<Answer> {
        Some(Answer {
            end: 2,
            status: 200,
            outcome: Outcome::Ok,
        })
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let queue = Queue::new(4, 2);
        for _ in 0..14 {
            queue.begin(&arrival("/"), answered());
        }
        // One thread alone gets the whole capacity.
        assert_eq!(queue.len(), 4);
        assert_eq!(queue.dropped(), 10);
        let (mut spares, mut batches) = (Vec::new(), Vec::new());
        queue.drain(&mut spares, &mut batches);
        assert_eq!(batches.iter().map(|b| b.rows.len()).sum::<usize>(), 4);
        assert_eq!(queue.len(), 0);
        assert!(queue.begin(&arrival("/"), answered()).is_some());
    }

    #[test]
    fn text_is_kept_per_field_and_answers_name_their_row() {
        let queue = Queue::new(100, 100);
        let first = queue.begin(&arrival("/a"), None).unwrap();
        let second = queue.begin(&arrival("/bb"), None).unwrap();
        assert_ne!(first, second);
        queue.answer(second, answered().unwrap(), None);
        let (mut spares, mut batches) = (Vec::new(), Vec::new());
        queue.drain(&mut spares, &mut batches);
        let batch = &batches[0];
        let fields = |row: &Row| (0..FIELDS).map(|f| batch.field(row, f)).collect::<Vec<_>>();
        assert_eq!(
            fields(&batch.rows[1]),
            [Some("/bb"), None, Some("req"), Some("acme"), None, None]
        );
        assert_eq!(batch.answers[0].0, second);
        // The emptied batch goes back as a spare, its buffers kept: the next drain puts
        // it in the shard, and the one after hands it back.
        let capacity = batches[0].text.capacity();
        spares.append(&mut batches);
        queue.begin(&arrival("/c"), None);
        queue.drain(&mut spares, &mut batches);
        spares.append(&mut batches);
        queue.begin(&arrival("/d"), None);
        queue.drain(&mut spares, &mut batches);
        assert_eq!(batches[0].rows.len(), 1);
        assert!(batches[0].text.capacity() >= capacity);
    }

    #[test]
    fn a_row_is_about_one_cache_line_and_keeps_any_method() {
        assert!(
            std::mem::size_of::<Row>() <= 80,
            "{}",
            std::mem::size_of::<Row>()
        );
        let queue = Queue::new(10, 10);
        let purge = Method::from_bytes(b"PURGE").unwrap();
        let mut odd = arrival("/x");
        odd.method = &purge;
        queue.begin(&odd, None);
        queue.begin(&arrival("/y"), None);
        let (mut spares, mut batches) = (Vec::new(), Vec::new());
        queue.drain(&mut spares, &mut batches);
        let batch = &batches[0];
        assert_eq!(batch.method(&batch.rows[0]), "PURGE");
        assert_eq!(batch.field(&batch.rows[0], 0), Some("/x"));
        assert_eq!(batch.method(&batch.rows[1]), "GET");
        assert_eq!(batch.field(&batch.rows[1], 0), Some("/y"));
    }

    #[test]
    fn threads_share_the_bound() {
        let queue = Arc::new(Queue::new(100, 10));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        queue.begin(&arrival("/"), answered());
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
    }

    #[tokio::test]
    async fn filling_to_the_batch_size_wakes_the_writer() {
        let queue = Queue::new(1000, 1);
        queue.begin(&arrival("/"), answered());
        tokio::time::timeout(std::time::Duration::from_secs(5), queue.waker().notified())
            .await
            .expect("woken");
    }
}
