//! The activity log's storage (feature `activity`): the rows, the query, and the
//! [`ActivityStore`] capability a [`TokenStore`](super::TokenStore) may have, as the
//! memory, SQLite and PostgreSQL stores do. The log that feeds it off the request path
//! is [`activity`](crate::activity).

use std::net::IpAddr;
use std::str::FromStr;

use async_trait::async_trait;
use time::OffsetDateTime;

mod summary;

pub use summary::{BUSIEST, Bucket, BucketCount, LastUse, Summary, SummaryQuery};

use super::{RevocationReason, StoreError};
use crate::identity::TokenId;
use crate::token::Digest;

/// The longest route and user agent a row keeps, in bytes (longer ones are cut at a
/// character boundary).
pub const MAX_FIELD_LEN: usize = 256;
/// The longest request id a row keeps, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// What became of a recorded request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Authenticated (whatever the handler answered: see the status).
    Ok,
    /// Authenticated, but without the scope the route or method requires (403).
    ScopeDenied,
    /// The token had expired (401).
    Expired,
    /// The token had been revoked (401).
    Revoked,
    /// A token of the other environment (401).
    WrongEnv,
    /// An account-style credential naming another account than the token's (401).
    TenantMismatch,
    /// The token store could not answer (503).
    Unavailable,
    /// Over one of the key's rate limits (429).
    RateLimited,
    /// The key had no credits left (429).
    CreditsExhausted,
    /// From a client address outside the key's allow-list (403).
    IpDenied,
    /// Reported leaked by a secret scanner, and revoked: the row of the report (feature
    /// `secret-scanning`).
    Leaked,
}

impl Outcome {
    /// Every outcome, in declaration order.
    pub const ALL: [Outcome; 11] = [
        Outcome::Ok,
        Outcome::ScopeDenied,
        Outcome::Expired,
        Outcome::Revoked,
        Outcome::WrongEnv,
        Outcome::TenantMismatch,
        Outcome::Unavailable,
        Outcome::RateLimited,
        Outcome::CreditsExhausted,
        Outcome::IpDenied,
        Outcome::Leaked,
    ];

    /// The stable name stored and shown by the API, e.g. `"scope_denied"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ScopeDenied => "scope_denied",
            Outcome::Expired => "expired",
            Outcome::Revoked => "revoked",
            Outcome::WrongEnv => "wrong_env",
            Outcome::TenantMismatch => "tenant_mismatch",
            Outcome::Unavailable => "unavailable",
            Outcome::RateLimited => "rate_limited",
            Outcome::CreditsExhausted => "credits_exhausted",
            Outcome::IpDenied => "ip_denied",
            Outcome::Leaked => "leaked",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not an [`Outcome`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown outcome")]
pub struct UnknownOutcome;

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == name)
            .ok_or(UnknownOutcome)
    }
}

/// A request to record: what the writer hands [`ActivityStore::append_activity`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewActivity {
    /// When the request arrived (millisecond precision).
    pub at: OffsetDateTime,
    /// The token (for a session token, its API key).
    pub token_id: TokenId,
    /// The session, for a session token.
    pub session_id: Option<String>,
    /// The token's tenant.
    pub tenant: String,
    /// The HTTP method.
    pub method: String,
    /// axum's route template (`/items/{id}`), wherever the layer sits; without one (a
    /// request rejected before routing around the router, an unmatched path) empty,
    /// or the path without its query string when the application opted in
    /// ([`ActivityConfig::record_raw_paths`](crate::activity::ActivityConfig::record_raw_paths)); at most [`MAX_FIELD_LEN`] bytes.
    pub route: String,
    /// The response status.
    pub status: u16,
    /// What became of the request.
    pub outcome: Outcome,
    /// From the request's arrival to its response head, in microseconds.
    pub latency_us: u64,
    /// The client's address (behind trusted proxies, the one they report).
    pub client_ip: Option<IpAddr>,
    /// The `User-Agent`, at most [`MAX_FIELD_LEN`] bytes.
    pub user_agent: Option<String>,
    /// The `X-Request-Id`, at most [`MAX_REQUEST_ID_LEN`] bytes.
    pub request_id: Option<String>,
}

impl NewActivity {
    /// A row with only the required fields; the others are empty. For tests and stores.
    pub fn new(
        at: OffsetDateTime,
        token_id: TokenId,
        tenant: &str,
        route: &str,
        status: u16,
        outcome: Outcome,
    ) -> Self {
        Self {
            at,
            token_id,
            session_id: None,
            tenant: tenant.to_owned(),
            method: "GET".to_owned(),
            route: route.to_owned(),
            status,
            outcome,
            latency_us: 0,
            client_ip: None,
            user_agent: None,
            request_id: None,
        }
    }

    /// With this client address.
    pub fn client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }

    /// As stored: with its id and `new_ip` flag.
    pub fn stored(self, id: u64, new_ip: bool) -> Activity {
        Activity {
            id,
            new_ip,
            request: self,
        }
    }
}

/// A recorded request, as [`ActivityStore::activity`] returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Activity {
    /// The row's id: grows with every row appended (newest rows have the largest ids).
    pub id: u64,
    /// Whether this was the first request of the token from this client IP within the
    /// retention window.
    pub new_ip: bool,
    /// What was recorded.
    pub request: NewActivity,
}

impl std::ops::Deref for Activity {
    type Target = NewActivity;

    fn deref(&self) -> &NewActivity {
        &self.request
    }
}

/// Which statuses [`ActivityQuery::status`] selects: one (`404`) or a class (`4xx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusFilter {
    low: u16,
    high: u16,
}

impl StatusFilter {
    /// The lowest status selected.
    pub fn low(self) -> u16 {
        self.low
    }

    /// The highest status selected.
    pub fn high(self) -> u16 {
        self.high
    }

    /// Whether `status` is selected.
    pub fn selects(self, status: u16) -> bool {
        (self.low..=self.high).contains(&status)
    }
}

/// Not a status (`100`–`599`) or a status class (`1xx`–`5xx`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a status filter is a status (404) or a class (4xx)")]
pub struct InvalidStatusFilter;

impl FromStr for StatusFilter {
    type Err = InvalidStatusFilter;

    /// `"404"` or `"4xx"` (also `"4XX"`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = text.as_bytes();
        let class = match bytes {
            [digit @ b'1'..=b'5', x, y]
                if x.eq_ignore_ascii_case(&b'x') && y.eq_ignore_ascii_case(&b'x') =>
            {
                u16::from(digit - b'0')
            }
            [b'1'..=b'5', b'0'..=b'9', b'0'..=b'9'] => {
                let status = text.parse().map_err(|_| InvalidStatusFilter)?;
                return Ok(Self {
                    low: status,
                    high: status,
                });
            }
            _ => return Err(InvalidStatusFilter),
        };
        Ok(Self {
            low: class * 100,
            high: class * 100 + 99,
        })
    }
}

/// Which rows [`ActivityStore::activity`] returns: newest first, those with an id below
/// `before`, matching every filter set, at most `limit`.
///
/// ```
/// use tower_bearer::store::activity::{ActivityQuery, Outcome};
///
/// let query = ActivityQuery::new()
///     .limit(20)
///     .outcome(Outcome::Revoked)
///     .status("4xx".parse()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActivityQuery {
    /// Only this token's rows (a key's rows include its sessions').
    pub token_id: Option<TokenId>,
    /// At most this many rows (default 50).
    pub limit: usize,
    /// Only rows older than this row id (the last id of the previous page).
    pub before: Option<u64>,
    /// Only rows with this outcome.
    pub outcome: Option<Outcome>,
    /// Only rows with these statuses.
    pub status: Option<StatusFilter>,
    /// Only rows at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only rows at or before this time.
    pub until: Option<OffsetDateTime>,
}

impl Default for ActivityQuery {
    fn default() -> Self {
        Self::new()
    }
}

impl ActivityQuery {
    /// The newest 50 rows of the tenant.
    pub fn new() -> Self {
        Self {
            token_id: None,
            limit: 50,
            before: None,
            outcome: None,
            status: None,
            since: None,
            until: None,
        }
    }

    /// Only `token`'s rows.
    pub fn token(mut self, token: TokenId) -> Self {
        self.token_id = Some(token);
        self
    }

    /// At most `limit` rows.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Only rows older than row `id`.
    pub fn before(mut self, id: u64) -> Self {
        self.before = Some(id);
        self
    }

    /// Only rows with `outcome`.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = Some(outcome);
        self
    }

    /// Only rows with these statuses.
    pub fn status(mut self, status: StatusFilter) -> Self {
        self.status = Some(status);
        self
    }

    /// Only rows at or after `at`.
    pub fn since(mut self, at: OffsetDateTime) -> Self {
        self.since = Some(at);
        self
    }

    /// Only rows at or before `at`.
    pub fn until(mut self, at: OffsetDateTime) -> Self {
        self.until = Some(at);
        self
    }

    /// Whether `row` of `tenant` passes the filters (not the limit): the reference
    /// semantics every store implements.
    pub fn selects(&self, tenant: &str, row: &Activity) -> bool {
        row.tenant == tenant
            && self.token_id.is_none_or(|id| row.token_id == id)
            && self.before.is_none_or(|before| row.id < before)
            && self.outcome.is_none_or(|outcome| row.outcome == outcome)
            && self.status.is_none_or(|status| status.selects(row.status))
            && self.since.is_none_or(|since| row.at >= since)
            && self.until.is_none_or(|until| row.at <= until)
    }
}

/// Where activity rows are kept: an optional capability of a token store (like
/// tower-sessions' `ExpiredDeletion`), implemented by [`MemoryStore`](crate::store::MemoryStore),
/// `SqliteStore` (feature `sqlite`, in the same database file) and `PostgresStore`
/// (feature `postgres`).
///
/// The contract every implementation keeps (checked by
/// [`testing::activity_contract`](crate::testing::activity_contract) with feature
/// `testing`):
///
/// - ids grow with every row appended and are never reused, so that paging by id
///   ([`ActivityQuery::before`]) is stable while rows are added and pruned;
/// - revoked tokens are found by digest until pruned with the rows;
/// - `new_ip` is set on a row with a client IP when no row of the same token with the
///   same IP at or after `new_ip_since` was stored before it (earlier rows of the same
///   batch count);
/// - times are kept to the millisecond.
#[async_trait]
pub trait ActivityStore: Send + Sync + 'static {
    /// Appends `rows` in order, in one transaction where the store has them.
    async fn append_activity(
        &self,
        rows: &[NewActivity],
        new_ip_since: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// The rows of `tenant` that `query` selects, newest (largest id) first, at most
    /// `query.limit`.
    async fn activity(
        &self,
        tenant: &str,
        query: &ActivityQuery,
    ) -> Result<Vec<Activity>, StoreError>;

    /// Deletes the rows recorded before `cutoff`, and the revoked tokens remembered
    /// before it; returns how many rows.
    async fn prune_activity(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError>;

    /// Remembers revoked tokens (by digest), so that calls still made with them, on any
    /// node and long after the caches forgot them, are recorded against them. Remembering
    /// a digest again replaces what was remembered.
    async fn remember_revoked(&self, tokens: &[RevokedToken]) -> Result<(), StoreError>;

    /// The remembered revoked tokens among `digests` (in any order).
    async fn find_revoked(&self, digests: &[Digest]) -> Result<Vec<RevokedToken>, StoreError>;

    /// Requests per bucket by outcome, the busiest tokens and the last use, as
    /// [`Summary::of`] computes them from the rows: for the activity charts.
    async fn summary(&self, tenant: &str, query: &SummaryQuery) -> Result<Summary, StoreError>;

    /// The remembered revoked API key `token_id` of `tenant` (never a session), if it is
    /// remembered: what `GET /tokens/{id}` shows of a key revoked within the retention.
    async fn find_revoked_key(
        &self,
        tenant: &str,
        token_id: TokenId,
    ) -> Result<Option<RevokedToken>, StoreError>;
}

/// A revoked token, as [`ActivityStore::remember_revoked`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevokedToken {
    /// The token's digest (never its secret).
    pub digest: Digest,
    /// The token its calls are recorded against (a session's API key).
    pub token_id: TokenId,
    /// The session, for a session token.
    pub session_id: Option<String>,
    /// The token's tenant.
    pub tenant: String,
    /// When it was revoked (pruned with the rows, past the retention).
    pub revoked_at: OffsetDateTime,
    /// Why it was revoked.
    pub reason: RevocationReason,
    /// For a leaked token: the public address a secret scanner found it at.
    pub leak_url: Option<String>,
    /// For a leaked token: the scanner's kind of place (`content`, `commit`, `npm`…).
    pub leak_source: Option<String>,
}

impl RevokedToken {
    /// A token of `tenant` revoked by name ([`RevocationReason::Manual`]), recorded
    /// against `token_id`; set [`reason`](Self::reason) and the leak's place with
    /// [`because`](Self::because).
    pub fn new(
        digest: Digest,
        token_id: TokenId,
        tenant: &str,
        revoked_at: OffsetDateTime,
    ) -> Self {
        Self {
            digest,
            token_id,
            session_id: None,
            tenant: tenant.to_owned(),
            revoked_at,
            reason: RevocationReason::Manual,
            leak_url: None,
            leak_source: None,
        }
    }

    /// The same token, revoked for `reason`.
    pub fn because(mut self, reason: RevocationReason) -> Self {
        self.reason = reason;
        self
    }
}

#[async_trait]
impl<T: ActivityStore + ?Sized> ActivityStore for std::sync::Arc<T> {
    async fn append_activity(
        &self,
        rows: &[NewActivity],
        new_ip_since: OffsetDateTime,
    ) -> Result<(), StoreError> {
        (**self).append_activity(rows, new_ip_since).await
    }

    async fn activity(
        &self,
        tenant: &str,
        query: &ActivityQuery,
    ) -> Result<Vec<Activity>, StoreError> {
        (**self).activity(tenant, query).await
    }

    async fn prune_activity(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
        (**self).prune_activity(cutoff).await
    }

    async fn remember_revoked(&self, tokens: &[RevokedToken]) -> Result<(), StoreError> {
        (**self).remember_revoked(tokens).await
    }

    async fn find_revoked(&self, digests: &[Digest]) -> Result<Vec<RevokedToken>, StoreError> {
        (**self).find_revoked(digests).await
    }

    async fn find_revoked_key(
        &self,
        tenant: &str,
        token_id: TokenId,
    ) -> Result<Option<RevokedToken>, StoreError> {
        (**self).find_revoked_key(tenant, token_id).await
    }

    async fn summary(&self, tenant: &str, query: &SummaryQuery) -> Result<Summary, StoreError> {
        (**self).summary(tenant, query).await
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary.
pub(crate) fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_through_their_names() {
        for outcome in Outcome::ALL {
            assert_eq!(outcome.as_str().parse::<Outcome>(), Ok(outcome));
        }
        assert!("OK".parse::<Outcome>().is_err());
    }

    #[test]
    fn status_filters_are_a_status_or_a_class() {
        let class: StatusFilter = "4xx".parse().unwrap();
        assert!(class.selects(400) && class.selects(499) && !class.selects(500));
        let one: StatusFilter = "404".parse().unwrap();
        assert!(one.selects(404) && !one.selects(403));
        for bad in [
            "", "4x", "6xx", "0xx", "4xxx", "40", "600", "x04", "4x4", "+404",
        ] {
            assert!(bad.parse::<StatusFilter>().is_err(), "{bad}");
        }
    }

    #[test]
    fn clipping_keeps_whole_characters() {
        assert_eq!(clip("héllo", 2), "h");
        assert_eq!(clip("héllo", 3), "hé");
        assert_eq!(clip("abc", 256), "abc");
    }
}
