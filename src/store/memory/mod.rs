//! [`MemoryStore`]: tokens, sessions and (feature `activity`) the activity log in
//! process memory.

#[cfg(feature = "activity")]
mod activity;
#[cfg(feature = "webhooks")]
mod webhooks;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::broadcast;

use super::{
    Change, ChangeStream, Happened, Invalidation, ListQuery, NewToken, RevocationReason,
    StoreError, TokenRecord, TokenStore, TokenUpdate, UsageUpdate,
};
use crate::identity::{TokenId, TokenKind};
use crate::policy::{CreditGrant, RateGrant, RateLimit};
use crate::token::Digest;

/// How many invalidations a slow subscriber may fall behind before it gets a
/// [`Change::Reset`].
const FEED_CAPACITY: usize = 1024;

/// An in-process [`TokenStore`]: complete, fast, and gone when the process exits.
///
/// Good for tests and for single-process services that issue tokens at startup. Clones
/// share the same records, and registries built on clones receive each other's
/// revocations through the [change feed](TokenStore::changes), as nodes sharing a
/// database would.
///
/// ```
/// use tower_bearer::{MemoryStore, Registry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let node_a = Registry::builder(store.clone()).build();
/// let node_b = Registry::builder(store).build();
/// # let _ = (node_a, node_b);
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

/// How many capabilities a memory store can keep state for.
const CAPABILITIES: usize = 4;

struct Shared {
    state: RwLock<State>,
    feed: broadcast::Sender<Change>,
    /// The states of the optional capabilities implemented outside this module (the
    /// activity log's rows, the webhook endpoints), each created on first use.
    capabilities: [std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>; CAPABILITIES],
}

#[derive(Default)]
struct State {
    next_id: u64,
    records: BTreeMap<TokenId, TokenRecord>,
    by_digest: HashMap<Digest, TokenId>,
    markers: std::collections::HashSet<String>,
    /// Per token and rate limit: the current window's start and what was reserved in it.
    windows: HashMap<(TokenId, String), (i64, u64)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                state: RwLock::new(State::default()),
                feed: broadcast::channel(FEED_CAPACITY).0,
                capabilities: Default::default(),
            }),
        }
    }

    /// The state of the optional capability that keeps a `T`, so that capabilities live
    /// beside the records without this module knowing them. Each kind takes the first
    /// slot that holds it or is free: a slot, once filled, never changes, so two callers
    /// for one kind always meet in the same slot.
    #[cfg_attr(not(any(feature = "activity", feature = "webhooks")), allow(dead_code))]
    pub(crate) fn capability<T: std::any::Any + Send + Sync + Default>(&self) -> &T {
        self.shared
            .capabilities
            .iter()
            .find_map(|slot| slot.get_or_init(|| Box::new(T::default())).downcast_ref())
            .expect("a memory store keeps a few kinds of capability state")
    }

    /// How many records the store holds.
    pub fn len(&self) -> usize {
        self.read().records.len()
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A panic while holding the lock cannot leave `State` half-updated (every method
    // validates before mutating), so a poisoned lock is still consistent.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.shared.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.shared.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, change: Change) {
        // No subscribers is fine: nobody caches.
        let _ = self.shared.feed.send(change);
    }

    /// Deletes the records (of `kind`, or all) that expired before `cutoff`.
    fn prune(&self, cutoff: OffsetDateTime, kind: Option<TokenKind>) -> Vec<Invalidation> {
        let pruned: Vec<Invalidation> = {
            let mut state = self.write();
            let expired: Vec<TokenId> = state
                .records
                .values()
                .filter(|record| record.expires_at.is_some_and(|at| at < cutoff))
                .filter(|record| kind.is_none_or(|kind| record.kind == kind))
                .map(|record| record.id)
                .collect();
            let now = OffsetDateTime::now_utc();
            let mut pruned = Vec::with_capacity(expired.len());
            for id in expired {
                if let Some(record) = state.remove_record(id) {
                    #[cfg(feature = "webhooks")]
                    self.expired_on_prune(&record, now);
                    pruned.push(Invalidation {
                        id,
                        digest: record.digest,
                    });
                }
            }
            #[cfg(not(feature = "webhooks"))]
            let _ = now;
            pruned
        };
        for invalidation in &pruned {
            self.publish(Change::Invalidated(*invalidation));
        }
        pruned
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("records", &self.len())
            .finish()
    }
}

impl State {
    fn insert(&mut self, token: NewToken) -> Result<TokenRecord, StoreError> {
        if self.by_digest.contains_key(&token.digest) {
            return Err(StoreError::Conflict);
        }
        self.next_id += 1;
        let id = TokenId::new(self.next_id);
        let record = TokenRecord::from_new(id, token);
        self.by_digest.insert(record.digest, id);
        self.records.insert(id, record.clone());
        Ok(record)
    }

    fn remove_record(&mut self, id: TokenId) -> Option<TokenRecord> {
        let record = self.records.remove(&id)?;
        self.windows.retain(|(token, _), _| *token != id);
        self.by_digest.remove(&record.digest);
        Some(record)
    }
}

impl MemoryStore {
    /// Writes the webhook messages of `happened` to `record` (feature `webhooks`;
    /// nothing without it). Called with the records' lock held, as a transaction would.
    fn announce(&self, record: &TokenRecord, happened: Happened) {
        #[cfg(feature = "webhooks")]
        self.write_messages(record, happened);
        #[cfg(not(feature = "webhooks"))]
        let _ = (record, happened);
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn insert(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        let mut state = self.write();
        let record = state.insert(token)?;
        self.announce(&record, Happened::Created);
        Ok(record)
    }

    async fn find_by_digest(&self, digest: &Digest) -> Result<TokenRecord, StoreError> {
        let state = self.read();
        state
            .by_digest
            .get(digest)
            .and_then(|id| state.records.get(id))
            .cloned()
            .ok_or(StoreError::NotFound)
    }

    async fn find_by_id(&self, tenant: &str, id: TokenId) -> Result<TokenRecord, StoreError> {
        self.read()
            .records
            .get(&id)
            .filter(|record| record.tenant == tenant)
            .cloned()
            .ok_or(StoreError::NotFound)
    }

    async fn list_by_tenant(
        &self,
        tenant: &str,
        query: ListQuery,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let start = query.after.map_or(0, TokenId::get).saturating_add(1);
        Ok(self
            .read()
            .records
            .range(TokenId::new(start)..)
            .map(|(_, record)| record)
            .filter(|record| record.tenant == tenant && query.selects(record))
            .take(query.limit)
            .cloned()
            .collect())
    }

    async fn delete(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<Invalidation, StoreError> {
        let invalidation = {
            let mut state = self.write();
            let record = match state.records.get(&id) {
                Some(record) if record.tenant == tenant => state.remove_record(id),
                _ => None,
            }
            .ok_or(StoreError::NotFound)?;
            self.announce(&record, Happened::Revoked(reason));
            Invalidation {
                id,
                digest: record.digest,
            }
        };
        self.publish(Change::Invalidated(invalidation));
        Ok(invalidation)
    }

    async fn update(
        &self,
        tenant: &str,
        id: TokenId,
        update: TokenUpdate,
    ) -> Result<TokenRecord, StoreError> {
        let record = {
            let mut state = self.write();
            let record = state
                .records
                .get_mut(&id)
                .filter(|record| record.tenant == tenant)
                .ok_or(StoreError::NotFound)?;
            update.apply(record);
            let record = record.clone();
            self.announce(&record, Happened::Updated);
            record
        };
        self.publish(Change::Updated(Invalidation {
            id,
            digest: record.digest,
        }));
        Ok(record)
    }

    async fn delete_with_descendants(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<Vec<Invalidation>, StoreError> {
        let removed: Vec<Invalidation> = {
            let mut state = self.write();
            if state.records.get(&id).is_none_or(|r| r.tenant != tenant) {
                return Err(StoreError::NotFound);
            }
            // Breadth first from `id` through `created_by`.
            let mut tree = vec![id];
            let mut at = 0;
            while at < tree.len() {
                let parent = tree[at];
                tree.extend(
                    state
                        .records
                        .values()
                        .filter(|r| r.created_by == Some(parent) && r.tenant == tenant)
                        .map(|r| r.id),
                );
                at += 1;
            }
            let mut removed = Vec::with_capacity(tree.len());
            for gone in tree {
                if let Some(record) = state.remove_record(gone) {
                    let why = if gone == id {
                        reason
                    } else {
                        RevocationReason::Cascade
                    };
                    self.announce(&record, Happened::Revoked(why));
                    removed.push(Invalidation {
                        id: gone,
                        digest: record.digest,
                    });
                }
            }
            removed
        };
        for invalidation in &removed {
            self.publish(Change::Invalidated(*invalidation));
        }
        Ok(removed)
    }

    async fn rotate(
        &self,
        old: &TokenRecord,
        replacement: NewToken,
        grace_until: Option<OffsetDateTime>,
    ) -> Result<TokenRecord, StoreError> {
        let (record, change) = {
            let mut state = self.write();
            match state.records.get(&old.id) {
                Some(current) if current.tenant == old.tenant => {
                    let changed = current.digest != old.digest || current.scopes != old.scopes;
                    if changed || current.rotated_to.is_some() {
                        return Err(StoreError::Conflict);
                    }
                }
                _ => return Err(StoreError::NotFound),
            }
            let record = state.insert(replacement)?;
            for child in state.records.values_mut() {
                if child.created_by == Some(old.id) {
                    child.created_by = Some(record.id);
                }
            }
            self.announce(&record, Happened::Rotated { from: old.id });
            let change = match grace_until {
                None => {
                    let gone = state.remove_record(old.id).ok_or(StoreError::NotFound)?;
                    self.announce(&gone, Happened::Revoked(RevocationReason::Rotated));
                    Change::Invalidated(Invalidation {
                        id: old.id,
                        digest: gone.digest,
                    })
                }
                Some(until) => {
                    let current = state.records.get_mut(&old.id).ok_or(StoreError::NotFound)?;
                    current.rotated_to = Some(record.id);
                    current.expires_at = Some(current.expires_at.map_or(until, |at| at.min(until)));
                    Change::Updated(Invalidation {
                        id: old.id,
                        digest: old.digest,
                    })
                }
            };
            (record, change)
        };
        self.publish(change);
        Ok(record)
    }

    async fn insert_once(
        &self,
        marker: &str,
        token: NewToken,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let mut state = self.write();
        if state.markers.contains(marker) {
            return Ok(None);
        }
        let record = state.insert(token)?;
        state.markers.insert(marker.to_owned());
        self.announce(&record, Happened::Created);
        Ok(Some(record))
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
        let mut state = self.write();
        for update in batch {
            if let Some(record) = state.records.get_mut(&update.id) {
                record.last_used_at = Some(match record.last_used_at {
                    Some(stored) => stored.max(update.last_used_at),
                    None => update.last_used_at,
                });
                record.use_count = record.use_count.saturating_add(update.uses);
            }
        }
        Ok(())
    }

    async fn prune_expired(&self, cutoff: OffsetDateTime) -> Result<Vec<Invalidation>, StoreError> {
        Ok(self.prune(cutoff, None))
    }

    async fn prune_expired_sessions(
        &self,
        cutoff: OffsetDateTime,
    ) -> Result<Vec<Invalidation>, StoreError> {
        Ok(self.prune(cutoff, Some(TokenKind::Session)))
    }

    async fn reserve_requests(
        &self,
        id: TokenId,
        rate: &RateLimit,
        window_start: i64,
        want: u64,
    ) -> Result<RateGrant, StoreError> {
        let mut state = self.write();
        if !state.records.contains_key(&id) {
            return Err(StoreError::NotFound);
        }
        let key = (id, rate.name.clone());
        let stored = state.windows.get(&key).copied();
        let grant = RateGrant::of_window(rate, stored, window_start, want);
        if stored.is_none_or(|(start, _)| start <= window_start) {
            state.windows.insert(key, (window_start, grant.reserved));
        }
        Ok(grant)
    }

    async fn reserve_credits(
        &self,
        id: TokenId,
        want: u64,
        now: OffsetDateTime,
    ) -> Result<Option<CreditGrant>, StoreError> {
        let mut state = self.write();
        let record = state.records.get_mut(&id).ok_or(StoreError::NotFound)?;
        let Some(credits) = record.policies.credits.as_mut() else {
            return Ok(None);
        };
        let before = credits.remaining_at(now);
        let grant = credits.take(want, now);
        if credits.crossed_low(before, grant.remaining) {
            let record = record.clone();
            self.announce(&record, Happened::CreditsLow);
        }
        Ok(Some(grant))
    }

    async fn return_credits(
        &self,
        id: TokenId,
        amount: u64,
        counted_since: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut state = self.write();
        if let Some(credits) = state
            .records
            .get_mut(&id)
            .and_then(|record| record.policies.credits.as_mut())
        {
            credits.give_back(amount, counted_since);
        }
        Ok(())
    }

    /// A memory store lives in this process alone: a node takes a whole budget at once.
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn shares_budgets(&self) -> bool {
        false
    }

    fn changes(&self) -> Option<ChangeStream> {
        Some(super::broadcast_feed(self.shared.feed.subscribe()))
    }
}
