//! A summary of the activity log for charts: requests per hour or day by outcome, the
//! busiest tokens, and the last use. Computed by the store, so that rows never travel to
//! a browser to be counted there.

use std::net::IpAddr;

use time::OffsetDateTime;

use super::{Activity, Outcome};
use crate::identity::TokenId;

/// How long one bucket of a [`Summary`] is. Buckets are aligned to UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Bucket {
    /// An hour.
    Hour,
    /// A day (UTC midnight to midnight).
    Day,
}

impl Bucket {
    /// The bucket's length in milliseconds (rows' times are kept in milliseconds).
    pub fn millis(self) -> i64 {
        match self {
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }

    /// The name the API uses: `hour` or `day`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// The start of the bucket `at` falls in.
    pub fn start_of(self, at: OffsetDateTime) -> OffsetDateTime {
        let millis = crate::clock::to_millis(at);
        let start = millis.div_euclid(self.millis()) * self.millis();
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(start) * 1_000_000).unwrap_or(at)
    }
}

/// What [`ActivityStore::summary`](super::ActivityStore::summary) counts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SummaryQuery {
    /// Only this token's rows (a key's include its sessions'); the whole tenant's
    /// otherwise.
    pub token_id: Option<TokenId>,
    /// The buckets' length.
    pub bucket: Bucket,
    /// Rows at or after this time.
    pub since: OffsetDateTime,
    /// Rows before this time.
    pub until: OffsetDateTime,
}

impl SummaryQuery {
    /// The tenant's rows from `since` to `until`, by `bucket`.
    pub fn new(bucket: Bucket, since: OffsetDateTime, until: OffsetDateTime) -> Self {
        Self {
            token_id: None,
            bucket,
            since,
            until,
        }
    }

    /// Only `token`'s rows.
    pub fn token(mut self, token: TokenId) -> Self {
        self.token_id = Some(token);
        self
    }

    /// Whether `row` of `tenant` is counted: the reference semantics every store
    /// implements.
    pub fn selects(&self, tenant: &str, row: &Activity) -> bool {
        row.tenant == tenant
            && self.token_id.is_none_or(|id| row.token_id == id)
            && row.at >= self.since
            && row.at < self.until
    }
}

/// How many requests of one outcome a bucket holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BucketCount {
    /// The bucket's start (aligned to UTC).
    pub start: OffsetDateTime,
    /// The outcome.
    pub outcome: Outcome,
    /// How many rows.
    pub count: u64,
}

/// The last successful use counted by a summary's filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LastUse {
    /// When.
    pub at: OffsetDateTime,
    /// From where, when known.
    pub client_ip: Option<IpAddr>,
}

/// The answer of [`ActivityStore::summary`](super::ActivityStore::summary).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Non-zero counts by bucket and outcome, by bucket start then outcome name.
    pub counts: Vec<BucketCount>,
    /// For a tenant-wide summary, the ten tokens with most rows in the range, most
    /// first (ties by id); empty for a token's.
    pub busiest: Vec<(TokenId, u64)>,
    /// The newest `ok` row of the filter's token (or tenant), whatever the range.
    pub last_use: Option<LastUse>,
}

/// How many tokens [`Summary::busiest`] lists.
pub const BUSIEST: usize = 10;

impl Summary {
    /// The summary of `rows` (the reference implementation, and the memory store's).
    pub fn of<'a>(
        tenant: &str,
        query: &SummaryQuery,
        rows: impl IntoIterator<Item = &'a Activity>,
    ) -> Self {
        use std::collections::{BTreeMap, HashMap};
        let mut counts: BTreeMap<(i64, &'static str), (OffsetDateTime, Outcome, u64)> =
            BTreeMap::new();
        let mut per_token: HashMap<TokenId, u64> = HashMap::new();
        let mut last_use: Option<(u64, LastUse)> = None;
        for row in rows {
            let mine = row.tenant == tenant && query.token_id.is_none_or(|id| row.token_id == id);
            if mine && row.outcome == Outcome::Ok && last_use.is_none_or(|(id, _)| row.id > id) {
                let at = LastUse {
                    at: row.at,
                    client_ip: row.client_ip,
                };
                last_use = Some((row.id, at));
            }
            if !query.selects(tenant, row) {
                continue;
            }
            let start = query.bucket.start_of(row.at);
            let key = (crate::clock::to_millis(start), row.outcome.as_str());
            counts.entry(key).or_insert((start, row.outcome, 0)).2 += 1;
            *per_token.entry(row.token_id).or_default() += 1;
        }
        let mut busiest: Vec<(TokenId, u64)> = match query.token_id {
            Some(_) => Vec::new(),
            None => per_token.into_iter().collect(),
        };
        busiest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        busiest.truncate(BUSIEST);
        Self {
            counts: counts
                .into_values()
                .map(|(start, outcome, count)| BucketCount {
                    start,
                    outcome,
                    count,
                })
                .collect(),
            busiest,
            last_use: last_use.map(|(_, at)| at),
        }
    }
}
