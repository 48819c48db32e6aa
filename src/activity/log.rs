//! [`ActivityLog`]: the queue the layer records into, the writer that empties it into an
//! [`ActivityStore`], and the pruner.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::extract::MatchedPath;
use http::StatusCode;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::ActivityConfig;
use super::capture::{arrival, attribute, latency_us, new_activity, unattributed, with_template};
use super::queue::{Answer, Batch, Queue, Ticket};
use crate::clock::Clock;
use crate::store::StoreError;
use crate::store::activity::{
    Activity, ActivityQuery, ActivityStore, NewActivity, Outcome, RevokedToken,
};
use crate::token::Digest;

/// The longest pause between two attempts of a failing write.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A row still unanswered this long after the writer first saw it (its request was
/// cancelled, or its handler never answered) is given up, and so is an answer whose row
/// never came.
const ABANDON_AFTER: Duration = Duration::from_secs(600);

/// A registry's activity log (see the [module documentation](super)). Cheap to clone.
#[derive(Clone)]
pub struct ActivityLog {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Queue,
    /// Rows of credentials the cache could not attribute (well-formed, unknown here),
    /// which the writer looks up among revoked tokens: apart, with a bound of their own.
    unresolved_queue: Queue,
    config: ActivityConfig,
    clock: Clock,
    writer: tokio::sync::Mutex<Writer>,
    /// Tokens revoked on this node, for the writer to remember in the store.
    revoked: Mutex<Vec<RevokedToken>>,
    /// Rows whose credential the writer could not attribute (not a remembered revoked
    /// token either).
    unresolved: AtomicU64,
    written: AtomicU64,
    write_errors: AtomicU64,
    /// Rows dropped because the store stayed down while the queue kept filling.
    dropped_unwritten: AtomicU64,
    pruned: AtomicU64,
    /// Drops counted when the writer last looked: a rise starts a burst (one warning).
    seen_dropped: AtomicU64,
    in_burst: AtomicBool,
    tasks: Mutex<Vec<AbortHandle>>,
}

/// What the writer keeps between two writes.
#[derive(Default)]
struct Writer {
    /// Emptied batches, given back to the queue's shards.
    spares: Vec<Batch>,
    /// Rows whose answer has not been seen yet: the row as stored but for its answer,
    /// and when the writer first saw it.
    open: HashMap<Ticket, (NewActivity, i64, Instant), foldhash::fast::RandomState>,
    /// Answers whose row has not been taken from its shard yet.
    early: HashMap<Ticket, (Answer, Option<MatchedPath>, Instant), foldhash::fast::RandomState>,
    /// Rows answered, not accepted by the store yet (retried), at most the queue's
    /// capacity.
    unwritten: Vec<NewActivity>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

/// How an activity log is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActivityStats {
    /// Rows waiting for the writer (queued, or retried after a failed write).
    pub waiting: usize,
    /// Rows the store accepted.
    pub written: u64,
    /// Rows dropped: the queue was full, the store stayed down longer than the queue
    /// could hold, or a response head never came (a request cancelled, or answered more
    /// than 10 minutes after it arrived).
    pub dropped: u64,
    /// Requests whose credential was not attributable to a token (missing, malformed,
    /// unknown): counted, never recorded.
    pub unattributed: u64,
    /// Failed writes (each retried).
    pub write_errors: u64,
    /// Rows pruned past the retention.
    pub pruned: u64,
}

impl std::fmt::Debug for ActivityLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivityLog")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl ActivityLog {
    /// Starts the log's writer and pruner (on the current tokio runtime).
    #[track_caller]
    pub(crate) fn start(config: ActivityConfig, clock: Clock) -> Self {
        let queue = Queue::new(config.capacity, config.batch);
        let shared = Arc::new(Shared {
            unresolved_queue: Queue::waking(config.capacity, config.batch, queue.waker()),
            queue,
            config,
            clock,
            writer: tokio::sync::Mutex::new(Writer::default()),
            revoked: Mutex::new(Vec::new()),
            unresolved: AtomicU64::new(0),
            written: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            dropped_unwritten: AtomicU64::new(0),
            pruned: AtomicU64::new(0),
            seen_dropped: AtomicU64::new(0),
            in_burst: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
        });
        let writer = tokio::spawn(write_loop(
            Arc::downgrade(&shared),
            shared.queue.waker(),
            shared.config.flush_every,
        ));
        let pruner = tokio::spawn(prune_loop(Arc::downgrade(&shared)));
        shared
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend([writer.abort_handle(), pruner.abort_handle()]);
        Self { shared }
    }

    /// The store the rows go to.
    pub fn store(&self) -> &Arc<dyn ActivityStore> {
        &self.shared.config.store
    }

    /// The revoked API key `token_id` of `tenant`, as remembered: why it was revoked
    /// and, for a leaked one, where it was found. A key revoked on this node a moment
    /// ago is found even before the writer has stored it.
    pub async fn find_revoked_key(
        &self,
        tenant: &str,
        token_id: crate::identity::TokenId,
    ) -> Result<Option<RevokedToken>, StoreError> {
        // With the writer held, a revocation is either still pending here or stored.
        let _writer = self.shared.writer.lock().await;
        let pending = self
            .shared
            .revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .rev()
            .find(|t| t.tenant == tenant && t.token_id == token_id && t.session_id.is_none())
            .cloned();
        match pending {
            Some(token) => Ok(Some(token)),
            None => {
                self.shared
                    .config
                    .store
                    .find_revoked_key(tenant, token_id)
                    .await
            }
        }
    }

    /// How long rows are kept.
    pub fn retention(&self) -> Duration {
        self.shared.config.retention
    }

    /// How the log is doing.
    pub fn stats(&self) -> ActivityStats {
        let shared = &*self.shared;
        let unwritten = shared
            .writer
            .try_lock()
            .map_or(0, |writer| writer.open.len() + writer.unwritten.len());
        ActivityStats {
            waiting: shared.queue.len() + shared.unresolved_queue.len() + unwritten,
            written: shared.written.load(Ordering::Relaxed),
            dropped: shared.queue.dropped() + shared.dropped_unwritten.load(Ordering::Relaxed),
            // Rows of unknown credentials past their own queue's bound are unattributed
            // too: never written.
            unattributed: shared.queue.unattributed()
                + shared.unresolved.load(Ordering::Relaxed)
                + shared.unresolved_queue.dropped(),
            write_errors: shared.write_errors.load(Ordering::Relaxed),
            pruned: shared.pruned.load(Ordering::Relaxed),
        }
    }

    /// Writes every waiting row now (the writer does so every second): at shutdown, and
    /// in tests. Returns how many were written.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        self.shared.write_waiting().await
    }

    /// Deletes the rows older than the retention now (the pruner does so every hour).
    /// Returns how many.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        self.shared.prune().await
    }

    /// The rows of `tenant` that `query` selects, newest first.
    pub async fn query(
        &self,
        tenant: &str,
        query: &ActivityQuery,
    ) -> Result<Vec<Activity>, StoreError> {
        self.shared.config.store.activity(tenant, query).await
    }

    /// The summary of `tenant`'s rows ([`ActivityStore::summary`]): for charts.
    pub async fn summary(
        &self,
        tenant: &str,
        query: &crate::store::activity::SummaryQuery,
    ) -> Result<crate::store::activity::Summary, StoreError> {
        self.shared.config.store.summary(tenant, query).await
    }

    // ----- the request path ---------------------------------------------------------

    /// The clock rows are timed with (the registry's).
    #[inline]
    pub(crate) fn now(&self) -> i64 {
        self.shared.clock.now_nanos()
    }

    /// Begins the row of `request`, made by `principal`, that arrived at `start`; `None`
    /// when the queue is full (the row is dropped and counted).
    #[inline]
    pub(crate) fn begin<B>(
        &self,
        request: &http::Request<B>,
        principal: &crate::principal::Principal,
        start: i64,
    ) -> Option<Ticket> {
        let arrival = arrival(request, principal, start, &self.shared.config);
        self.shared.queue.begin(&arrival, None)
    }

    /// Answers the row of `ticket`: its response head is ready, with the route template
    /// it brought (a row begun before routing has none yet). Never waits.
    #[inline]
    pub(crate) fn answer(
        &self,
        ticket: Ticket,
        status: StatusCode,
        outcome: Outcome,
        template: Option<MatchedPath>,
    ) {
        self.shared
            .queue
            .answer(ticket, self.answer_now(status, outcome), template);
    }

    /// Records a request made by `principal` and answered at once: rejected before any
    /// handler ran, or an authentication made outside the layer (a WebSocket, a login).
    pub(crate) fn answered<B>(
        &self,
        request: &http::Request<B>,
        principal: &crate::principal::Principal,
        start: i64,
        status: StatusCode,
        outcome: Outcome,
    ) {
        let arrival = arrival(request, principal, start, &self.shared.config);
        self.shared
            .queue
            .begin(&arrival, Some(self.answer_now(status, outcome)));
    }

    /// Records a request rejected before any handler ran whose credential the cache
    /// could not attribute: the writer looks `digest` up among the revoked tokens the
    /// store remembers, and counts it as unattributable when it is not one.
    pub(crate) fn unresolved<B>(
        &self,
        request: &http::Request<B>,
        digest: Digest,
        start: i64,
        status: StatusCode,
    ) {
        let mut arrival = unattributed(request, start, &self.shared.config);
        arrival.digest = Some(digest);
        // The writer attributes it as revoked, or counts it. In a queue of its own: a
        // flood of unknown credentials fills that one, never the real rows'.
        let answer = self.answer_now(status, Outcome::Revoked);
        self.shared.unresolved_queue.begin(&arrival, Some(answer));
    }

    /// The answer `status` and `outcome`, now.
    fn answer_now(&self, status: StatusCode, outcome: Outcome) -> Answer {
        Answer {
            end: self.now(),
            status: status.as_u16(),
            outcome,
        }
    }

    /// Remembers (through the writer, in the store) that `token` was revoked here.
    pub(crate) fn remember_revoked(&self, token: RevokedToken) {
        self.shared
            .revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(token);
        self.shared.queue.waker().notify_one();
    }

    /// Counts a request whose credential is not attributable to a token.
    pub(crate) fn count_unattributed(&self) {
        self.shared.queue.count_unattributed();
    }
}

impl Shared {
    /// Appends the rows left by a failed write and those answered since, in batches.
    async fn write_waiting(&self) -> Result<usize, StoreError> {
        let mut writer = self.writer.lock().await;
        let writer = &mut *writer;
        self.remember_revoked().await?;
        let mut batches = Vec::new();
        self.queue.drain(&mut writer.spares, &mut batches);
        self.unresolved_queue
            .drain(&mut writer.spares, &mut batches);
        self.watch_drops();
        let now = Instant::now();
        // Rows with their precise arrival (Unix nanoseconds), to be put in order by it.
        let mut answered: Vec<(i64, NewActivity)> = Vec::new();
        // Answers first: a row begun on one thread may be answered on another, and both
        // may be in this drain.
        for batch in &batches {
            for (ticket, answer, template) in &batch.answers {
                match writer.open.remove(ticket) {
                    Some((row, start, _)) => {
                        let row = with_template(complete(row, start, *answer), template.as_ref());
                        answered.push((start, row));
                    }
                    None => {
                        writer
                            .early
                            .insert(*ticket, (*answer, template.clone(), now));
                    }
                }
            }
        }
        let mut unresolved = Vec::new();
        for batch in &batches {
            let mut digests = batch.digests.iter().peekable();
            for (index, row) in batch.rows.iter().enumerate() {
                if let Some((_, digest)) = digests.next_if(|(at, _)| *at as usize == index) {
                    if let Some(answer) = row.answer() {
                        unresolved.push((row.start, new_activity(batch, row, answer), *digest));
                    }
                    continue;
                }
                let answer = row.answer().map(|answer| (answer, None)).or_else(|| {
                    writer
                        .early
                        .remove(&row.ticket)
                        .map(|(answer, template, _)| (answer, template))
                });
                match answer {
                    Some((answer, template)) => {
                        let activity =
                            with_template(new_activity(batch, row, answer), template.as_ref());
                        answered.push((row.start, activity));
                    }
                    None => {
                        let unanswered = Answer {
                            end: row.start,
                            status: 0,
                            outcome: Outcome::Ok,
                        };
                        let open = (new_activity(batch, row, unanswered), row.start, now);
                        writer.open.insert(row.ticket, open);
                    }
                }
            }
        }
        writer.spares.append(&mut batches);
        self.resolve(unresolved, &mut answered).await;
        let before = writer.open.len();
        writer
            .open
            .retain(|_, (_, _, seen)| now.duration_since(*seen) < ABANDON_AFTER);
        writer
            .early
            .retain(|_, (_, _, seen)| now.duration_since(*seen) < ABANDON_AFTER);
        self.dropped_unwritten
            .fetch_add((before - writer.open.len()) as u64, Ordering::Relaxed);
        // Shards are drained one after the other: put the rows back in arrival order,
        // so that ids follow time. By the precise arrival: rows keep milliseconds, and
        // requests of one millisecond drained from two shards would keep shard order.
        answered.sort_by_key(|(start, _)| *start);
        let unwritten = &mut writer.unwritten;
        unwritten.extend(answered.into_iter().map(|(_, row)| row));
        // The store has been down long enough for the rows to outgrow the queue: keep
        // the newest.
        let excess = unwritten.len().saturating_sub(self.queue.capacity());
        if excess > 0 {
            unwritten.drain(..excess);
            self.dropped_unwritten
                .fetch_add(excess as u64, Ordering::Relaxed);
        }
        let new_ip_since = self.cutoff();
        let mut written = 0;
        while !unwritten.is_empty() {
            let batch = unwritten.len().min(self.config.batch);
            if let Err(error) = self
                .config
                .store
                .append_activity(&unwritten[..batch], new_ip_since)
                .await
            {
                self.write_errors.fetch_add(1, Ordering::Relaxed);
                return Err(error);
            }
            unwritten.drain(..batch);
            self.written.fetch_add(batch as u64, Ordering::Relaxed);
            written += batch;
        }
        Ok(written)
    }

    /// Writes the revocations made here since the last write (kept for the next one if
    /// the store fails).
    async fn remember_revoked(&self) -> Result<(), StoreError> {
        let revoked = std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|e| e.into_inner()));
        if revoked.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.config.store.remember_revoked(&revoked).await {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
            let mut pending = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
            let newer = std::mem::replace(&mut *pending, revoked);
            pending.extend(newer);
            return Err(error);
        }
        Ok(())
    }

    /// Attributes the rows of unknown credentials that are remembered revoked tokens
    /// (into `answered`); counts the others. A store that cannot answer leaves them all
    /// unattributed: the rows are not worth a retry.
    async fn resolve(
        &self,
        rows: Vec<(i64, NewActivity, Digest)>,
        answered: &mut Vec<(i64, NewActivity)>,
    ) {
        if rows.is_empty() {
            return;
        }
        let mut digests: Vec<Digest> = rows.iter().map(|(_, _, digest)| *digest).collect();
        digests.sort_unstable();
        digests.dedup();
        let found = match self.config.store.find_revoked(&digests).await {
            Ok(found) => found,
            Err(error) => {
                tracing::debug!(target: "tower_bearer::activity", %error, "revoked tokens could not be looked up");
                Vec::new()
            }
        };
        let found: HashMap<Digest, RevokedToken, foldhash::fast::RandomState> = found
            .into_iter()
            .map(|token| (token.digest, token))
            .collect();
        for (start, mut row, digest) in rows {
            match found.get(&digest) {
                Some(revoked) => {
                    attribute(&mut row, revoked);
                    answered.push((start, row));
                }
                None => {
                    self.unresolved.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Warns once when rows start being dropped, and says how many when it stops.
    fn watch_drops(&self) {
        let dropped = self.queue.dropped();
        let before = self.seen_dropped.swap(dropped, Ordering::Relaxed);
        let dropping = dropped > before;
        if dropping && !self.in_burst.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "tower_bearer::activity",
                capacity = self.queue.capacity(),
                "activity queue full: dropping rows (requests are not slowed)"
            );
        } else if !dropping && self.in_burst.swap(false, Ordering::Relaxed) {
            tracing::info!(
                target: "tower_bearer::activity",
                dropped_total = dropped,
                "activity queue no longer full"
            );
        }
    }

    /// Rows recorded before this are past the retention.
    fn cutoff(&self) -> OffsetDateTime {
        let retention =
            time::Duration::try_from(self.config.retention).unwrap_or(time::Duration::MAX);
        self.clock
            .now()
            .checked_sub(retention)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    async fn prune(&self) -> Result<u64, StoreError> {
        let pruned = self.config.store.prune_activity(self.cutoff()).await?;
        self.pruned.fetch_add(pruned, Ordering::Relaxed);
        Ok(pruned)
    }
}

/// `row` (stored as if unanswered) with its answer.
fn complete(mut row: NewActivity, start: i64, answer: Answer) -> NewActivity {
    row.status = answer.status;
    row.outcome = answer.outcome;
    row.latency_us = latency_us(start, answer.end);
    row
}

/// Every flush interval, or as soon as a batch is waiting: write. A failed write is
/// retried with backoff (doubling up to 30 s) while the queue keeps its bound. Holds the
/// log only while writing, so that dropping the last handle stops it.
async fn write_loop(shared: Weak<Shared>, wake: Arc<Notify>, every: Duration) {
    let mut backoff = Duration::ZERO;
    loop {
        if backoff.is_zero() {
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(every) => {}
            }
        } else {
            tokio::time::sleep(backoff).await;
        }
        let Some(strong) = shared.upgrade() else {
            return;
        };
        match strong.write_waiting().await {
            Ok(_) if !backoff.is_zero() => {
                tracing::info!(target: "tower_bearer::activity", "activity store accepts rows again");
                backoff = Duration::ZERO;
            }
            Ok(_) => {}
            Err(error) => {
                if backoff.is_zero() {
                    tracing::warn!(target: "tower_bearer::activity", %error, "activity rows could not be written; retrying with backoff");
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF);
            }
        }
    }
}

async fn prune_loop(shared: Weak<Shared>) {
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        if let Err(error) = strong.prune().await {
            tracing::warn!(target: "tower_bearer::activity", %error, "pruning activity rows failed; will retry");
        }
        let every = strong.config.prune_every;
        drop(strong);
        tokio::time::sleep(every).await;
    }
}
