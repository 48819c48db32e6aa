//! Per-key policies: rate limits, usage credits and IP allow-lists, kept on the token's
//! record and enforced by the layer from the cache.
//!
//! A key may carry up to four [`RateLimit`]s (requests per window), [`Credits`] (a
//! budget of uses, optionally refilled every day or month) and a list of allowed client
//! networks. A key without policies pays nothing for them.
//!
//! ```
//! use tower_bearer::policy::{Credits, Policies, RateLimit, Refill, RefillPeriod};
//!
//! let policies = Policies::none()
//!     .rate_limit(RateLimit::new("burst", 100, 60)?)
//!     .credits(Credits::new(1_000).refill(Refill::new(1_000, RefillPeriod::Day)))
//!     .allowed_ips(["203.0.113.0/24", "2001:db8::/32", "127.0.0.1"])?;
//! policies.validate()?;
//! assert!(policies.allows_ip("203.0.113.9".parse()?));
//! assert!(!policies.allows_ip("10.0.0.1".parse()?));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How they are counted
//!
//! - **Rate limits** count, in fixed windows aligned on the Unix epoch
//!   (`floor(now / window_seconds)`), the requests that authenticated with the key; a
//!   request refused by one of the key's limits is not counted by that limit.
//! - **Credits** are charged only for requests that reach the inner service. A refill
//!   sets `remaining` back to its `amount` at the first use after midnight UTC (`day`) or
//!   after the first day of a month (`month`).
//! - **Allowed IPs** are checked against the client address as the registry reads it
//!   ([`TrustedProxies`](crate::client_ip::TrustedProxies)); outside them a request gets
//!   403 (the token is valid, its use from there is not).
//!
//! Several nodes sharing a store take slices of a key's budget from it (an atomic
//! reservation) and decide locally; see the guide's "Limits and quotas" for the bounds.

mod period;

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use period::RefillPeriod;

/// The most rate limits one key may carry.
pub const MAX_RATE_LIMITS: usize = 4;
/// The most addresses and networks in one key's allow-list.
pub const MAX_ALLOWED_IPS: usize = 64;
/// The longest rate-limit name.
pub const MAX_POLICY_NAME_LEN: usize = 32;
/// The highest rate limit: requests per window.
pub const MAX_LIMIT: u64 = 1_000_000_000;
/// The longest rate-limit window: 31 days, in seconds.
pub const MAX_WINDOW_SECONDS: u64 = 2_678_400;
/// The most credits a key may hold or be refilled with (10¹⁵, within every store's
/// integer columns).
pub const MAX_CREDITS: u64 = 1_000_000_000_000_000;

/// A key's policies: what it may do, how often, and from where. The default has none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Policies {
    /// Requests per window; every one must allow a request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimit>,
    /// A budget of uses; `None` for unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credits: Option<Credits>,
    /// The client networks the key may be used from; empty for anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_ips: Vec<IpNet>,
}

/// A limit of `limit` requests per `window_seconds`, named for the `RateLimit` headers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateLimit {
    /// 1 to 32 of `a-z 0-9 _ -`, unique among the key's limits.
    pub name: String,
    /// Requests accepted per window, 1 to 10⁹.
    pub limit: u64,
    /// The window, 1 second to 31 days.
    pub window_seconds: u64,
}

/// A key's budget of uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credits {
    /// Uses left (as of the last refill, see [`Credits::remaining_at`]).
    pub remaining: u64,
    /// Set `remaining` back to an amount every day or month; `None` never.
    #[serde(default)]
    pub refill: Option<Refill>,
    /// When `remaining` was last set (issued, changed or refilled): a refill is due at
    /// the first use in a later period.
    #[serde(skip, default = "unix_epoch")]
    pub counted_since: OffsetDateTime,
    /// The balance as last set or refilled, which "80 % used" (webhooks'
    /// `token.credits_low`) counts from; 0 when unknown.
    #[serde(skip)]
    pub allotted: u64,
}

fn unix_epoch() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH
}

/// Setting a key's credits back to `amount` every `every`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refill {
    /// What `remaining` becomes at each refill.
    pub amount: u64,
    /// Every day (at midnight UTC) or every month (on the first, UTC).
    pub every: RefillPeriod,
}

/// What a store granted of a rate limit's window
/// ([`TokenStore::reserve_requests`](crate::store::TokenStore::reserve_requests)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateGrant {
    /// Requests granted to the caller: at most what it asked for, never beyond the limit.
    pub granted: u64,
    /// Requests reserved in the window by every node, this grant included.
    pub reserved: u64,
}

/// What a store granted of a key's credits
/// ([`TokenStore::reserve_credits`](crate::store::TokenStore::reserve_credits)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditGrant {
    /// Credits granted to the caller: at most what it asked for, never beyond the balance.
    pub granted: u64,
    /// The balance left in the store after the grant.
    pub remaining: u64,
    /// When the balance was last set (a refill, a change): credits taken before a refill
    /// are not given back after it.
    pub counted_since: OffsetDateTime,
}

/// A policy that breaks one of the rules; `field` names the offending part
/// (`rate_limits`, `credits`, `allowed_ips`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidPolicy {
    /// The field at fault.
    pub field: &'static str,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl InvalidPolicy {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl RateLimit {
    /// A limit of `limit` requests per `window_seconds`, checked.
    pub fn new(name: &str, limit: u64, window_seconds: u64) -> Result<Self, InvalidPolicy> {
        let rate = Self {
            name: name.to_owned(),
            limit,
            window_seconds,
        };
        rate.validate()?;
        Ok(rate)
    }

    fn validate(&self) -> Result<(), InvalidPolicy> {
        let name_ok = (1..=MAX_POLICY_NAME_LEN).contains(&self.name.len())
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(InvalidPolicy::new(
                "rate_limits",
                format!(
                    "A rate limit's name must be 1 to {MAX_POLICY_NAME_LEN} of a-z, 0-9, _ and -."
                ),
            ));
        }
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(InvalidPolicy::new(
                "rate_limits",
                format!("A rate limit's limit must be an integer between 1 and {MAX_LIMIT}."),
            ));
        }
        if !(1..=MAX_WINDOW_SECONDS).contains(&self.window_seconds) {
            return Err(InvalidPolicy::new(
                "rate_limits",
                format!(
                    "A rate limit's window_seconds must be an integer between 1 and {MAX_WINDOW_SECONDS}."
                ),
            ));
        }
        Ok(())
    }

    /// The start of the window holding `now` (Unix seconds).
    pub(crate) fn window_start(&self, now: i64) -> i64 {
        let window = i64::try_from(self.window_seconds).unwrap_or(i64::MAX);
        now - now.rem_euclid(window)
    }
}

impl Credits {
    /// `remaining` credits, never refilled.
    pub fn new(remaining: u64) -> Self {
        Self {
            remaining,
            refill: None,
            counted_since: OffsetDateTime::UNIX_EPOCH,
            allotted: remaining,
        }
    }

    /// Refilled as `refill` says.
    #[must_use]
    pub fn refill(mut self, refill: Refill) -> Self {
        self.refill = Some(refill);
        self
    }

    /// What is left at `now`: `remaining`, or the refill's amount once a refill is due.
    pub fn remaining_at(&self, now: OffsetDateTime) -> u64 {
        match self.refill {
            Some(refill) if refill.every.is_due(self.counted_since, now) => refill.amount,
            _ => self.remaining,
        }
    }

    /// When the next refill is due after `now`, if one ever is.
    pub fn next_refill(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.refill.map(|refill| refill.every.next_start(now))
    }

    /// Takes up to `want` credits at `now`, refilling first when a refill is due: what
    /// every store does in one atomic step ([`TokenStore::reserve_credits`](crate::store::TokenStore::reserve_credits)).
    pub fn take(&mut self, want: u64, now: OffsetDateTime) -> CreditGrant {
        if let Some(refill) = self.refill {
            if refill.every.is_due(self.counted_since, now) {
                self.remaining = refill.amount;
                self.allotted = refill.amount;
                self.counted_since = now;
            }
        }
        let granted = want.min(self.remaining);
        self.remaining -= granted;
        CreditGrant {
            granted,
            remaining: self.remaining,
            counted_since: self.counted_since,
        }
    }

    /// Whether a balance going from `before` to `after` crossed into its last 20 % (80 %
    /// of [`allotted`](Self::allotted) used): what `token.credits_low` announces, once
    /// per crossing.
    pub fn crossed_low(&self, before: u64, after: u64) -> bool {
        let low = |balance: u64| u128::from(balance) * 5 <= u128::from(self.allotted);
        self.allotted > 0 && !low(before) && low(after)
    }

    /// Gives back `amount` credits taken from the balance counted since `counted_since`;
    /// nothing when the balance was set since ([`TokenStore::return_credits`](crate::store::TokenStore::return_credits)).
    pub fn give_back(&mut self, amount: u64, counted_since: OffsetDateTime) {
        if self.counted_since == counted_since {
            self.remaining = self.remaining.saturating_add(amount).min(MAX_CREDITS);
        }
    }
}

impl RateGrant {
    /// Grants up to `want` requests of the window of `rate` starting at `window_start`,
    /// given what a store keeps of it (`stored`: the start of the window it counts and
    /// what was reserved in it): what every store does in one atomic step. A window that
    /// started earlier is over (nothing reserved in the new one yet); a request for a
    /// window that is over (a node whose clock lags) is granted nothing.
    pub fn of_window(
        rate: &RateLimit,
        stored: Option<(i64, u64)>,
        window_start: i64,
        want: u64,
    ) -> Self {
        let reserved = match stored {
            Some((start, reserved)) if start == window_start => reserved,
            Some((start, _)) if start > window_start => {
                return Self {
                    granted: 0,
                    reserved: rate.limit,
                };
            }
            _ => 0,
        };
        let granted = want.min(rate.limit.saturating_sub(reserved));
        Self {
            granted,
            reserved: reserved + granted,
        }
    }
}

impl Refill {
    /// Back to `amount` every `every`.
    pub fn new(amount: u64, every: RefillPeriod) -> Self {
        Self { amount, every }
    }
}

impl Policies {
    /// No policies (the default).
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether there is nothing to enforce.
    pub fn is_empty(&self) -> bool {
        self.rate_limits.is_empty() && self.credits.is_none() && self.allowed_ips.is_empty()
    }

    /// Adds a rate limit.
    #[must_use]
    pub fn rate_limit(mut self, rate: RateLimit) -> Self {
        self.rate_limits.push(rate);
        self
    }

    /// Sets the credits.
    #[must_use]
    pub fn credits(mut self, credits: Credits) -> Self {
        self.credits = Some(credits);
        self
    }

    /// Sets the allow-list: addresses (`127.0.0.1`) or networks (`10.0.0.0/8`).
    pub fn allowed_ips<I, S>(mut self, networks: I) -> Result<Self, InvalidPolicy>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.allowed_ips = networks
            .into_iter()
            .map(|text| parse_network(text.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// Checks every rule: at most four rate limits with distinct valid names, limits and
    /// windows in range, credits within 10¹⁵, at most 64 networks.
    pub fn validate(&self) -> Result<(), InvalidPolicy> {
        if self.rate_limits.len() > MAX_RATE_LIMITS {
            return Err(InvalidPolicy::new(
                "rate_limits",
                format!("A key may have at most {MAX_RATE_LIMITS} rate limits."),
            ));
        }
        for (i, rate) in self.rate_limits.iter().enumerate() {
            rate.validate()?;
            if self.rate_limits[..i].iter().any(|r| r.name == rate.name) {
                return Err(InvalidPolicy::new(
                    "rate_limits",
                    format!("The rate limit name `{}` is used twice.", rate.name),
                ));
            }
        }
        if let Some(credits) = &self.credits {
            let amount = credits.refill.map_or(0, |refill| refill.amount);
            if credits.remaining > MAX_CREDITS || amount > MAX_CREDITS {
                return Err(InvalidPolicy::new(
                    "credits",
                    format!("Credits must be integers between 0 and {MAX_CREDITS}."),
                ));
            }
        }
        if self.allowed_ips.len() > MAX_ALLOWED_IPS {
            return Err(InvalidPolicy::new(
                "allowed_ips",
                format!("A key may have at most {MAX_ALLOWED_IPS} allowed addresses or networks."),
            ));
        }
        Ok(())
    }

    /// Whether a client at `ip` may use the key: always when the list is empty.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        allows(&self.allowed_ips, Some(ip))
    }
}

/// Whether `ip` is in `networks` (an IPv4-mapped IPv6 address counts as its IPv4
/// address); an unknown client is allowed only by an empty list.
pub(crate) fn allows(networks: &[IpNet], ip: Option<IpAddr>) -> bool {
    if networks.is_empty() {
        return true;
    }
    let Some(ip) = ip.map(crate::client_ip::canonical) else {
        return false;
    };
    networks.iter().any(|network| network.contains(&ip))
}

/// An address (`127.0.0.1`, a host network) or a network (`203.0.113.0/24`), with its
/// host bits cleared.
pub fn parse_network(text: &str) -> Result<IpNet, InvalidPolicy> {
    let invalid = || {
        InvalidPolicy::new(
            "allowed_ips",
            format!(
                "`{}` is not an IP address or a CIDR network.",
                text.chars().take(64).collect::<String>()
            ),
        )
    };
    let network = match text.parse::<IpNet>() {
        Ok(network) => network,
        Err(_) => IpNet::from(text.parse::<IpAddr>().map_err(|_| invalid())?),
    };
    Ok(network.trunc())
}

impl fmt::Display for RateLimit {
    /// The policy as `RateLimit-Policy` lists it: `"burst";q=100;w=60`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\"{}\";q={};w={}",
            self.name, self.limit, self.window_seconds
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_limits_and_windows_are_checked() {
        assert!(RateLimit::new("burst-1_a", 1, 1).is_ok());
        for (name, limit, window) in [
            ("", 1, 1),
            ("Burst", 1, 1),
            ("a b", 1, 1),
            (&*"x".repeat(33), 1, 1),
            ("x", 0, 1),
            ("x", MAX_LIMIT + 1, 1),
            ("x", 1, 0),
            ("x", 1, MAX_WINDOW_SECONDS + 1),
        ] {
            assert!(
                RateLimit::new(name, limit, window).is_err(),
                "{name} {limit} {window}"
            );
        }
    }

    #[test]
    fn a_key_has_at_most_four_distinct_limits_and_64_networks() {
        let rate = |name: &str| RateLimit::new(name, 1, 1).unwrap();
        let twice = Policies::none().rate_limit(rate("a")).rate_limit(rate("a"));
        assert_eq!(twice.validate().unwrap_err().field, "rate_limits");
        let five = (0..5).fold(Policies::none(), |p, i| p.rate_limit(rate(&i.to_string())));
        assert!(five.validate().is_err());
        let many = (0..65).map(|i| format!("10.0.0.{i}"));
        assert!(
            Policies::none()
                .allowed_ips(many)
                .unwrap()
                .validate()
                .is_err()
        );
    }

    #[test]
    fn networks_parse_as_addresses_or_cidr_and_mapped_addresses_match() {
        let policies = Policies::none()
            .allowed_ips(["203.0.113.7/24", "::1"])
            .unwrap();
        assert_eq!(policies.allowed_ips[0].to_string(), "203.0.113.0/24");
        assert!(policies.allows_ip("203.0.113.200".parse().unwrap()));
        assert!(policies.allows_ip("::ffff:203.0.113.1".parse().unwrap()));
        assert!(policies.allows_ip("::1".parse().unwrap()));
        assert!(!policies.allows_ip("127.0.0.1".parse().unwrap()));
        assert!(Policies::none().allowed_ips(["10.0.0.0/33"]).is_err());
        assert!(Policies::none().allowed_ips(["example.com"]).is_err());
        assert!(!allows(&policies.allowed_ips, None));
        assert!(allows(&[], None));
    }

    #[test]
    fn windows_are_aligned_on_the_epoch() {
        let rate = RateLimit::new("x", 5, 10).unwrap();
        assert_eq!(rate.window_start(1_000_007), 1_000_000);
        assert_eq!(rate.window_start(1_000_010), 1_000_010);
        assert_eq!(rate.to_string(), "\"x\";q=5;w=10");
    }
}
