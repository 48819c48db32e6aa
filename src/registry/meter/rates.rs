//! One rate limit on this node: the current window, what this node used of it, and
//! what it holds (reserved from the store) and knows the other nodes to hold.

use std::sync::Mutex;

use crate::identity::TokenId;
use crate::policy::RateLimit;
use crate::store::{StoreError, TokenStore};

pub(super) struct RateMeter {
    rate: RateLimit,
    /// `"name";r=`: how the `RateLimit` field of this limit starts.
    field_start: Box<[u8]>,
    state: Mutex<Window>,
    /// Held while a slice is asked of the store: one reservation at a time.
    reserving: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Window {
    /// Unix seconds; 0 before the first request.
    start: i64,
    /// When it ends: a request before then is in it, without dividing by the window.
    end: i64,
    /// Requests this node accepted in the window.
    used: u64,
    /// Requests this node reserved in the window.
    held: u64,
    /// What the store said the whole window had reserved at the last reservation:
    /// `held` plus the other nodes'.
    reserved: u64,
}

pub(super) enum Take {
    /// Counted: `remaining` of the whole limit (as far as this node knows) and the
    /// seconds until the window ends.
    Taken { remaining: u64, reset: u64 },
    /// The window's budget is spent, here and everywhere: refused for `reset` seconds.
    Over { reset: u64 },
    /// This node's slice is spent; the store may have more.
    Short,
}

impl RateMeter {
    pub(super) fn new(rate: RateLimit) -> Self {
        Self {
            field_start: format!("\"{}\";r=", rate.name).into_bytes().into(),
            rate,
            state: Mutex::new(Window::default()),
            reserving: tokio::sync::Mutex::new(()),
        }
    }

    pub(super) fn rate(&self) -> &RateLimit {
        &self.rate
    }

    pub(super) fn limit(&self) -> u64 {
        self.rate.limit
    }

    pub(super) fn name(&self) -> &str {
        &self.rate.name
    }

    /// The `RateLimit` field of this limit: `"name";r=<remaining>;t=<reset>`.
    pub(super) fn field(&self, remaining: u64, reset: u64) -> http::HeaderValue {
        let (mut r, mut t) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (r, t) = (r.format(remaining).as_bytes(), t.format(reset).as_bytes());
        let mut value = Vec::with_capacity(self.field_start.len() + r.len() + 3 + t.len());
        value.extend_from_slice(&self.field_start);
        value.extend_from_slice(r);
        value.extend_from_slice(b";t=");
        value.extend_from_slice(t);
        // Names are `a-z 0-9 _ -` (checked when stored and when read back).
        http::HeaderValue::from_maybe_shared(bytes::Bytes::from(value))
            .unwrap_or_else(|_| http::HeaderValue::from_static("\"?\";r=0;t=0"))
    }

    pub(super) fn window_start(&self, now: i64) -> i64 {
        self.rate.window_start(now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        // Every update leaves the window consistent: a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `weight` requests at `now` if this node's slice has room.
    pub(super) fn take(&self, weight: u64, now: i64) -> Take {
        let mut window = self.lock();
        if !(window.start..window.end).contains(&now) {
            let start = self.window_start(now);
            let length = i64::try_from(self.rate.window_seconds).unwrap_or(i64::MAX);
            *window = Window {
                start,
                end: start.saturating_add(length),
                ..Window::default()
            };
        }
        let reset = u64::try_from(window.end - now).unwrap_or(0).max(1);
        if window.used + weight <= window.held {
            window.used += weight;
            let others = window.reserved.saturating_sub(window.held);
            let remaining = self.rate.limit.saturating_sub(others + window.used);
            return Take::Taken { remaining, reset };
        }
        if window.reserved >= self.rate.limit {
            // Everything the window has is reserved, by this node or others.
            return Take::Over { reset };
        }
        Take::Short
    }

    /// Gives back `weight` requests taken at `now` (the window may have turned since).
    pub(super) fn give_back(&self, weight: u64, now: i64) {
        let mut window = self.lock();
        if (window.start..window.end).contains(&now) {
            window.used = window.used.saturating_sub(weight);
        }
    }

    /// Reserves a slice of the window starting at `start` from `store`: the whole limit
    /// when no other node shares the store, a tenth of it otherwise (at least `weight`).
    pub(super) async fn reserve(
        &self,
        id: TokenId,
        start: i64,
        weight: u64,
        shared: bool,
        store: &dyn TokenStore,
    ) -> Result<(), StoreError> {
        let _one_at_a_time = self.reserving.lock().await;
        {
            // Another request may have reserved meanwhile.
            let window = self.lock();
            if window.start == start
                && (window.used + weight <= window.held || window.reserved >= self.rate.limit)
            {
                return Ok(());
            }
        }
        let slice = if shared {
            self.rate.limit.div_ceil(10)
        } else {
            self.rate.limit
        };
        let grant = store
            .reserve_requests(id, &self.rate, start, slice.max(weight))
            .await?;
        let mut window = self.lock();
        if window.start == start {
            window.held += grant.granted;
            // The store's count includes what this node held before this grant.
            window.reserved = grant.reserved.max(window.held);
            if grant.granted == 0 {
                window.reserved = self.rate.limit;
            }
        }
        Ok(())
    }
}
