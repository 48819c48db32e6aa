//! A key's budgets on this node: its rate limits' windows and its credits, decided
//! locally from slices reserved in the store, and its allow-list.
//!
//! A cached key with policies carries its [`Meter`] (behind the principal's rarely set
//! parts); keys without any carry nothing and pay one branch. One meter per key and node,
//! kept across cache refreshes in [`Meters`], so that a re-read record does not reset
//! what the node has counted.
//!
//! Deciding takes a short lock per policy (no await, no I/O); when a policy's slice is
//! used up, the request waits for the next one ([`Meter::reserve`]), which one request
//! at a time asks of the store.

mod credits;
mod rates;

use std::net::IpAddr;
use std::sync::Arc;

use dashmap::DashMap;
use http::HeaderValue;

use crate::identity::TokenId;
use crate::policy::Policies;
use crate::store::{StoreError, TokenStore};

use credits::CreditMeter;
use rates::RateMeter;

/// What every meter of a registry reserves with and reads: the store, the clock, the
/// store timeout and the trusted proxies.
pub(crate) struct MeterContext {
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) clock: crate::clock::Clock,
    pub(crate) timeout: std::time::Duration,
    pub(crate) proxies: crate::client_ip::TrustedProxies,
}

/// One key's budgets on this node.
pub(crate) struct Meter {
    id: TokenId,
    context: Arc<MeterContext>,
    rates: Box<[RateMeter]>,
    credits: Option<CreditMeter>,
    allowed_ips: Box<[ipnet::IpNet]>,
    /// `RateLimit-Policy`, listing every limit of the key; built once.
    policy_header: Option<HeaderValue>,
}

/// What a key's policies say about one request, decided without waiting.
pub(crate) enum Decision {
    /// Within every budget; the quota to announce, if the key has rate limits.
    Pass(Option<Quota>),
    /// Refused.
    Refuse(Refusal),
    /// A slice is used up: [`Meter::reserve`] the next one, then decide again.
    Reserve(Shortage),
}

/// Why a request is refused by its key's policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// From an address outside the allow-list.
    IpNotAllowed,
    /// Over rate limit `policy`; `retry_after` seconds until its window ends.
    RateLimited {
        policy: Box<str>,
        retry_after: u64,
        quota: Quota,
    },
    /// No credits left; `retry_after` seconds until the next refill, if one is due.
    CreditsExhausted { retry_after: Option<u64> },
    /// A slice was needed and the store could not be asked.
    Unavailable,
}

/// Which budget ran short.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Shortage {
    Rate { index: usize, window_start: i64 },
    Credits,
}

/// The state of a key's rate limits after a request: what the `RateLimit` headers say,
/// made when it was decided (nothing in it is shared with other requests but the
/// policy's value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Quota {
    /// `RateLimit`, for the limit nearest to exhaustion.
    current: HeaderValue,
    /// `RateLimit-Policy`.
    policy: Option<HeaderValue>,
    /// That limit's requests per window, what is left of them, and when its window ends
    /// (Unix seconds): GitHub's fields.
    limit: u64,
    remaining: u64,
    reset_at: i64,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Meter {
    fn new(id: TokenId, policies: &Policies, context: Arc<MeterContext>) -> Self {
        // Names are `a-z 0-9 _ -` (checked when stored and when read back), so this is
        // always a valid value; a name that is not leaves the field out, never panics.
        let policy_header = (!policies.rate_limits.is_empty())
            .then(|| {
                let list: Vec<String> = policies
                    .rate_limits
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                HeaderValue::from_str(&list.join(", ")).ok()
            })
            .flatten();
        Self {
            id,
            context,
            rates: policies
                .rate_limits
                .iter()
                .map(|rate| RateMeter::new(rate.clone()))
                .collect(),
            credits: policies
                .credits
                .as_ref()
                .map(|credits| CreditMeter::new(credits.refill, credits.counted_since)),
            allowed_ips: policies.allowed_ips.clone().into_boxed_slice(),
            policy_header,
        }
    }

    /// Whether the meter counts for `policies`: the same limits, allow-list and refill
    /// (a balance alone may differ: see [`Meters::for_record`]).
    fn counts_for(&self, policies: &Policies) -> bool {
        let rates = self.rates.iter().map(RateMeter::rate);
        rates.eq(policies.rate_limits.iter())
            && *self.allowed_ips == *policies.allowed_ips
            && self.credits.as_ref().map(CreditMeter::refill)
                == policies.credits.as_ref().map(|credits| credits.refill)
    }

    /// Decides a request of `weight` from `ip` at `now` (Unix seconds), just before the
    /// inner service would see it: the allow-list, then every rate limit, then the
    /// credits. A refusal by a rate limit gives back what the others took.
    pub(crate) fn decide(&self, ip: Option<IpAddr>, weight: u64, now: i64) -> Decision {
        if !crate::policy::allows(&self.allowed_ips, ip) {
            return Decision::Refuse(Refusal::IpNotAllowed);
        }
        let mut nearest: Option<(usize, u64, u64)> = None;
        for (index, rate) in self.rates.iter().enumerate() {
            match rate.take(weight, now) {
                rates::Take::Taken { remaining, reset } => {
                    // Nearest to exhaustion: the smallest share of its limit left
                    // (remaining / limit, compared by cross-multiplying).
                    let better = nearest.is_none_or(|(i, r, _)| {
                        u128::from(remaining) * u128::from(self.rates[i].limit())
                            < u128::from(r) * u128::from(rate.limit())
                    });
                    if better {
                        nearest = Some((index, remaining, reset));
                    }
                }
                other => {
                    self.give_back_rates(index, weight, now);
                    return match other {
                        rates::Take::Over { reset } => {
                            let quota = self.quota(index, 0, reset, now);
                            Decision::Refuse(Refusal::RateLimited {
                                policy: rate.name().into(),
                                retry_after: reset,
                                quota,
                            })
                        }
                        _ => Decision::Reserve(Shortage::Rate {
                            index,
                            window_start: rate.window_start(now),
                        }),
                    };
                }
            }
        }
        if let Some(credits) = &self.credits {
            match credits.take(weight, now) {
                credits::Take::Taken => {}
                // The request passed the rate limits: it counts against them, though it
                // never reaches the service.
                credits::Take::Exhausted { retry_after } => {
                    return Decision::Refuse(Refusal::CreditsExhausted { retry_after });
                }
                credits::Take::Short => {
                    self.give_back_rates(self.rates.len(), weight, now);
                    return Decision::Reserve(Shortage::Credits);
                }
            }
        }
        Decision::Pass(
            nearest.map(|(index, remaining, reset)| self.quota(index, remaining, reset, now)),
        )
    }

    /// The quota to announce: limit `index` has `remaining` requests left for `reset`
    /// seconds after `now`.
    fn quota(&self, index: usize, remaining: u64, reset: u64, now: i64) -> Quota {
        let rate = &self.rates[index];
        Quota {
            current: rate.field(remaining, reset),
            policy: self.policy_header.clone(),
            limit: rate.limit(),
            remaining,
            reset_at: now.saturating_add(i64::try_from(reset).unwrap_or(0)),
        }
    }

    /// Gives back `weight` to the first `count` rate limits (taken by a request that a
    /// later budget refused).
    fn give_back_rates(&self, count: usize, weight: u64, now: i64) {
        for rate in &self.rates[..count] {
            rate.give_back(weight, now);
        }
    }

    /// Reserves the next slice of the budget that ran short, from the store (one request
    /// at a time per budget; the others wait for its answer and decide again), bounded by
    /// the store timeout.
    pub(crate) async fn reserve(&self, shortage: Shortage, weight: u64) -> Result<(), StoreError> {
        let store = &*self.context.store;
        let reserve = async {
            match shortage {
                Shortage::Rate {
                    index,
                    window_start,
                } => {
                    let shared = store.shares_budgets();
                    self.rates[index]
                        .reserve(self.id, window_start, weight, shared, store)
                        .await
                }
                Shortage::Credits => match &self.credits {
                    Some(credits) => {
                        let now = self.context.clock.now();
                        credits.reserve(self.id, weight, store, now).await
                    }
                    None => Ok(()),
                },
            }
        };
        match tokio::time::timeout(self.context.timeout, reserve).await {
            Ok(result) => result,
            Err(_elapsed) => Err(StoreError::unavailable("token store timed out")),
        }
    }

    /// Reserves what ran short and decides again, until a request of `weight` from `ip`
    /// passes or is refused. A store that cannot be reached refuses (503): never
    /// unmetered. A reservation that other requests outran is tried again a few times;
    /// a store that keeps granting nothing is not.
    pub(crate) async fn settle(
        &self,
        ip: Option<IpAddr>,
        weight: u64,
        mut shortage: Shortage,
    ) -> Result<Option<Quota>, Refusal> {
        const MAX_WAITS: usize = 4;
        for _ in 0..MAX_WAITS {
            if self.reserve(shortage, weight).await.is_err() {
                return Err(Refusal::Unavailable);
            }
            match self.decide(ip, weight, self.now()) {
                Decision::Pass(quota) => return Ok(quota),
                Decision::Refuse(refusal) => return Err(refusal),
                Decision::Reserve(next) => shortage = next,
            }
        }
        Err(Refusal::Unavailable)
    }

    /// The client address of `request`, as the registry's trusted proxies say; `None`
    /// without looking when the key has no allow-list (nothing reads it then).
    pub(crate) fn client_ip<B>(&self, request: &http::Request<B>) -> Option<IpAddr> {
        if self.allowed_ips.is_empty() {
            return None;
        }
        self.context.proxies.client_ip_of(request)
    }

    /// Now, in Unix seconds, by the registry's clock (coarse: policies count seconds).
    pub(crate) fn now(&self) -> i64 {
        self.context.clock.coarse_nanos().div_euclid(1_000_000_000)
    }
}

impl Drop for Meter {
    /// Gives the credits this node holds and did not spend back to the key, off the
    /// request path (when a runtime is there to run it).
    fn drop(&mut self) {
        let Some((amount, since)) = self.credits.as_ref().and_then(CreditMeter::unspent) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (id, store) = (self.id, self.context.store.clone());
        runtime.spawn(async move {
            if let Err(error) = store.return_credits(id, amount, since).await {
                tracing::warn!(target: "tower_bearer::registry", token_id = %id, %error, "unspent credits could not be given back");
            }
        });
    }
}

impl Quota {
    /// `RateLimit` (the limit nearest to exhaustion, `"burst";r=42;t=17`) and
    /// `RateLimit-Policy` (every limit of the key).
    pub(crate) fn into_fields(self) -> (HeaderValue, Option<HeaderValue>) {
        (self.current, self.policy)
    }

    /// The limit's requests per window, for `X-RateLimit-Limit`.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Requests left in the window, for `X-RateLimit-Remaining`.
    pub(crate) fn remaining(&self) -> u64 {
        self.remaining
    }

    /// When the window ends (Unix seconds), for `X-RateLimit-Reset`.
    pub(crate) fn reset_at(&self) -> i64 {
        self.reset_at
    }
}

/// Every meter of this node, by key: a record read again keeps its key's meter while its
/// policies stay the same.
pub(crate) struct Meters {
    by_key: DashMap<TokenId, Arc<Meter>>,
    context: Arc<MeterContext>,
}

impl Meters {
    pub(crate) fn new(context: MeterContext) -> Self {
        Self {
            by_key: DashMap::new(),
            context: Arc::new(context),
        }
    }

    /// The meter of the key `id` with `policies`, if it has any.
    pub(crate) fn for_record(&self, id: TokenId, policies: &Policies) -> Option<Arc<Meter>> {
        if policies.is_empty() {
            self.by_key.remove(&id);
            return None;
        }
        let mut slot = self
            .by_key
            .entry(id)
            .or_insert_with(|| Arc::new(Meter::new(id, policies, self.context.clone())));
        if !slot.counts_for(policies) {
            *slot = Arc::new(Meter::new(id, policies, self.context.clone()));
        } else if let (Some(meter), Some(credits)) = (&slot.credits, &policies.credits) {
            // A balance set since (a change through the API) replaces what this node
            // held of the old one.
            meter.balance_set_at(credits.counted_since);
        }
        Some(slot.clone())
    }

    /// Forgets the meter of a revoked key.
    pub(crate) fn forget(&self, id: TokenId) {
        self.by_key.remove(&id);
    }
}

impl crate::registry::Registry {
    /// The meter of the key `principal` stands for, if the key has policies: borrowed,
    /// so that deciding writes no reference count.
    #[inline]
    pub(crate) fn meter_of(principal: &crate::principal::Principal) -> Option<&Meter> {
        principal.attachment()?.downcast_ref::<Meter>()
    }

    /// [`meter_of`](Self::meter_of), owned: for a request that waits for its budget.
    pub(crate) fn owned_meter_of(principal: &crate::principal::Principal) -> Option<Arc<Meter>> {
        let attachment = principal.attachment()?;
        Arc::clone(attachment).downcast::<Meter>().ok()
    }
}
