//! Per-key policies in the layer: after a request authenticated, its key's allow-list,
//! rate limits and credits decide whether it goes on; the answer carries the
//! `RateLimit` fields (and, on request, GitHub's `X-RateLimit-*`).
//!
//! A key without policies costs one branch here. A key with policies decides from the
//! slices this node holds, without waiting; when one is used up, the request waits for
//! the next (`Policed::Wait`), which one request at a time reserves from the store.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Request};

use super::Config;
use crate::principal::Principal;
use crate::registry::Registry;
use crate::registry::meter::{Decision, Meter, Quota, Refusal, Shortage};
use crate::reject::Rejection;

/// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers).
static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`.
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// What a key's policies say about a request.
pub(crate) enum Policed {
    /// Go on; the quota to announce, if the key has rate limits.
    Pass(Option<Quota>),
    /// Refused; with the quota to announce when a rate limit refused it.
    Refused(Rejection, Option<Quota>),
    /// A slice is used up: [`Config::police_waiting`] reserves the next and decides
    /// again, for the same client address.
    Wait(Arc<Meter>, Shortage, Option<IpAddr>),
}

impl Config {
    /// Decides `request` of `principal` (weight 1) without waiting. `now` is the time
    /// the cache was consulted (Unix nanoseconds), if it was.
    #[inline]
    pub(super) fn police<B>(
        &self,
        principal: &Principal,
        request: &Request<B>,
        now: Option<i64>,
    ) -> Policed {
        match Registry::meter_of(principal) {
            None => Policed::Pass(None),
            Some(meter) => self.decide(meter, principal, request, now),
        }
    }

    #[cold]
    #[inline(never)]
    fn decide<B>(
        &self,
        meter: &Meter,
        principal: &Principal,
        request: &Request<B>,
        now: Option<i64>,
    ) -> Policed {
        let now = now.map_or_else(|| meter.now(), |nanos| nanos.div_euclid(1_000_000_000));
        let ip = meter.client_ip(request);
        match meter.decide(ip, 1, now) {
            Decision::Pass(quota) => Policed::Pass(quota),
            Decision::Refuse(refusal) => {
                let (rejection, quota) = rejection(refusal, principal);
                Policed::Refused(rejection, quota)
            }
            Decision::Reserve(shortage) => match Registry::owned_meter_of(principal) {
                Some(meter) => Policed::Wait(meter, shortage, ip),
                // The meter just read is the principal's: unreachable, and never let
                // through unmetered.
                None => Policed::Refused(Rejection::Unavailable, None),
            },
        }
    }

    /// Reserves what ran short and decides again ([`Meter::settle`]).
    pub(super) async fn police_waiting(
        &self,
        meter: Arc<Meter>,
        shortage: Shortage,
        principal: &Principal,
        ip: Option<IpAddr>,
    ) -> Result<Option<Quota>, (Rejection, Option<Quota>)> {
        meter
            .settle(ip, 1, shortage)
            .await
            .map_err(|refusal| rejection(refusal, principal))
    }
}

/// The rejection of a refusal by `principal`'s key, and the quota it announces.
pub(crate) fn rejection(refusal: Refusal, principal: &Principal) -> (Rejection, Option<Quota>) {
    let token_id = Some(principal.id());
    match refusal {
        Refusal::IpNotAllowed => (Rejection::IpNotAllowed { token_id }, None),
        Refusal::RateLimited {
            policy,
            retry_after,
            quota,
        } => (
            Rejection::RateLimited {
                policy: String::from(policy).into(),
                retry_after,
                token_id,
            },
            Some(quota),
        ),
        Refusal::CreditsExhausted { retry_after } => (
            Rejection::UsageExceeded {
                retry_after,
                token_id,
            },
            None,
        ),
        Refusal::Unavailable => (Rejection::Unavailable, None),
    }
}

/// Adds the `RateLimit-Policy` and `RateLimit` fields of `quota` to `headers` (and
/// GitHub's `X-RateLimit-Limit`, `-Remaining` and `-Reset` when `github`), unless the
/// inner service set them.
#[cold]
pub(crate) fn announce(headers: &mut HeaderMap, quota: Quota, github: bool) {
    let (limit, remaining, reset_at) = (quota.limit(), quota.remaining(), quota.reset_at());
    let (current, policy) = quota.into_fields();
    match headers.entry(&RATELIMIT) {
        http::header::Entry::Occupied(_) => return,
        http::header::Entry::Vacant(vacant) => {
            vacant.insert(current);
        }
    }
    if let Some(policy) = policy {
        headers.insert(&RATELIMIT_POLICY, policy);
    }
    if github {
        headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(reset_at));
    }
}
