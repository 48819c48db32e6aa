//! A key's credits on this node: what it holds of the balance (reserved from the store)
//! and whether the store has none left until the next refill.

use std::sync::Mutex;

use time::OffsetDateTime;

use crate::identity::TokenId;
use crate::policy::Refill;
use crate::store::{StoreError, TokenStore};

/// The largest slice of credits a node holds when the store is shared.
const MAX_SLICE: u64 = 1_000;
/// What a node holds of a key that turned out to have no credits.
const UNLIMITED: u64 = u64::MAX / 2;

pub(super) struct CreditMeter {
    refill: Option<Refill>,
    state: Mutex<Held>,
    /// Held while credits are asked of the store: one reservation at a time.
    reserving: tokio::sync::Mutex<()>,
}

struct Held {
    /// Credits reserved and not spent yet.
    held: u64,
    /// The balance in the store after the last reservation.
    store_remaining: Option<u64>,
    /// The store has no credits left: refused until this instant (Unix seconds; the next
    /// refill), or for good (`i64::MAX`) when the key is never refilled.
    exhausted_until: Option<i64>,
    /// When the balance the node draws on was set (issued, changed through the API).
    set_at: OffsetDateTime,
    /// When the balance `held` came from was counted from, as the store said at the
    /// last reservation: what is given back goes to that balance only.
    since: Option<OffsetDateTime>,
}

pub(super) enum Take {
    Taken,
    /// None left; `retry_after` seconds until the next refill, if one is due.
    Exhausted {
        retry_after: Option<u64>,
    },
    /// This node holds too few; the store may have more.
    Short,
}

impl CreditMeter {
    pub(super) fn new(refill: Option<Refill>, set_at: OffsetDateTime) -> Self {
        Self {
            refill,
            state: Mutex::new(Held {
                held: 0,
                store_remaining: None,
                exhausted_until: None,
                set_at,
                since: None,
            }),
            reserving: tokio::sync::Mutex::new(()),
        }
    }

    pub(super) fn refill(&self) -> Option<Refill> {
        self.refill
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // Every update leaves the state consistent: a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spends `weight` credits at `now` (Unix seconds) if this node holds them.
    pub(super) fn take(&self, weight: u64, now: i64) -> Take {
        let mut state = self.lock();
        if state.held >= weight {
            state.held -= weight;
            return Take::Taken;
        }
        match state.exhausted_until {
            Some(until) if now < until => Take::Exhausted {
                retry_after: (until != i64::MAX)
                    .then(|| u64::try_from(until - now).unwrap_or(1).max(1)),
            },
            _ => Take::Short,
        }
    }

    /// What this node holds and has not spent, with the balance it came from: given back
    /// when the meter goes (the key's policies changed, the registry stops).
    pub(super) fn unspent(&self) -> Option<(u64, OffsetDateTime)> {
        let state = self.lock();
        match state.since {
            Some(since) if state.held > 0 && state.held != UNLIMITED => Some((state.held, since)),
            _ => None,
        }
    }

    /// A balance set through the API at `set_at`: what this node held of an older one
    /// is void, and the new one may have credits.
    pub(super) fn balance_set_at(&self, set_at: OffsetDateTime) {
        let mut state = self.lock();
        if set_at > state.set_at {
            state.held = 0;
            state.exhausted_until = None;
            state.store_remaining = None;
            state.set_at = set_at;
            state.since = None;
        }
    }

    /// Reserves credits for a request of `weight` from `store`: a slice of a tenth of the
    /// last known balance (at least `weight`, at most 1,000), so that the balance the
    /// store shows is never more than a tenth above what is left to spend, whether
    /// other nodes share it or not.
    pub(super) async fn reserve(
        &self,
        id: TokenId,
        weight: u64,
        store: &dyn TokenStore,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let _one_at_a_time = self.reserving.lock().await;
        let want = {
            let state = self.lock();
            if state.held >= weight {
                return Ok(());
            }
            let slice = state
                .store_remaining
                .map_or(1, |remaining| (remaining / 10).clamp(1, MAX_SLICE));
            (weight - state.held).max(slice)
        };
        let grant = store.reserve_credits(id, want, now).await?;
        let mut state = self.lock();
        let Some(grant) = grant else {
            // The key lost its credits meanwhile (its record, read again, will say so):
            // nothing to count until then.
            state.held = UNLIMITED;
            state.since = None;
            return Ok(());
        };
        if state.since != Some(grant.counted_since) {
            // A refill or a change since: what was held belonged to the old balance.
            state.held = 0;
            state.since = Some(grant.counted_since);
        }
        state.held += grant.granted;
        state.store_remaining = Some(grant.remaining);
        state.exhausted_until = (state.held < weight && grant.remaining == 0).then(|| {
            self.refill.map_or(i64::MAX, |refill| {
                refill.every.next_start(now).unix_timestamp()
            })
        });
        Ok(())
    }
}
