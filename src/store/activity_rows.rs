//! The SQL the SQLite and PostgreSQL stores share: the columns, and the `WHERE` clause of
//! an [`ActivityQuery`].

use std::net::IpAddr;

use crate::identity::TokenId;
use crate::store::StoreError;
use crate::store::activity::{
    Activity, ActivityQuery, BUSIEST, BucketCount, LastUse, NewActivity, Outcome, SummaryQuery,
};
use crate::store::columns::count_param;

/// The columns of a row, in the order [`RawActivity`] reads them.
pub(super) const COLUMNS: &str = "id, at, token_id, session_id, tenant, method, route, status, \
                                  outcome, latency_us, client_ip, user_agent, request_id, new_ip";

/// A query parameter: both drivers bind integers and text.
pub(super) enum Param {
    Int(i64),
    Text(String),
}

/// The `WHERE` clause (tenant first) and its parameters; `placeholder(n)` spells the
/// n-th parameter (`?n` or `$n`).
pub(super) fn filters(
    tenant: &str,
    query: &ActivityQuery,
    placeholder: impl Fn(usize) -> String,
) -> (String, Vec<Param>) {
    let mut params = vec![Param::Text(tenant.to_owned())];
    let mut clause = format!("tenant = {}", placeholder(1));
    let mut add = |condition: &str, param: Param| {
        params.push(param);
        clause.push_str(" AND ");
        clause.push_str(&condition.replace('?', &placeholder(params.len())));
    };
    if let Some(id) = query.token_id {
        add("token_id = ?", Param::Int(count_param(id.get())));
    }
    if let Some(before) = query.before {
        add("id < ?", Param::Int(count_param(before)));
    }
    if let Some(outcome) = query.outcome {
        add("outcome = ?", Param::Text(outcome.as_str().to_owned()));
    }
    if let Some(status) = query.status {
        add("status >= ?", Param::Int(status.low().into()));
        add("status <= ?", Param::Int(status.high().into()));
    }
    if let Some(since) = query.since {
        add("at >= ?", Param::Int(crate::clock::to_millis(since)));
    }
    if let Some(until) = query.until {
        add("at <= ?", Param::Int(crate::clock::to_millis(until)));
    }
    (clause, params)
}

/// A row as both drivers read it.
pub(super) struct RawActivity {
    pub(super) id: i64,
    pub(super) at: i64,
    pub(super) token_id: i64,
    pub(super) session_id: Option<String>,
    pub(super) tenant: String,
    pub(super) method: String,
    pub(super) route: String,
    pub(super) status: i64,
    pub(super) outcome: String,
    pub(super) latency_us: i64,
    pub(super) client_ip: Option<String>,
    pub(super) user_agent: Option<String>,
    pub(super) request_id: Option<String>,
    pub(super) new_ip: bool,
}

impl RawActivity {
    pub(super) fn parse(self) -> Result<Activity, StoreError> {
        let corrupt = |what: &str| StoreError::unavailable(format!("corrupt activity row: {what}"));
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.at) * 1_000_000)
            .map_err(|_| corrupt("at"))?;
        let client_ip = match self.client_ip {
            Some(ip) => Some(ip.parse::<IpAddr>().map_err(|_| corrupt("client_ip"))?),
            None => None,
        };
        let request = NewActivity {
            at,
            token_id: TokenId::new(u64::try_from(self.token_id).map_err(|_| corrupt("token_id"))?),
            session_id: self.session_id,
            tenant: self.tenant,
            method: self.method,
            route: self.route,
            status: u16::try_from(self.status).map_err(|_| corrupt("status"))?,
            outcome: self
                .outcome
                .parse::<Outcome>()
                .map_err(|_| corrupt("outcome"))?,
            latency_us: u64::try_from(self.latency_us).unwrap_or(0),
            client_ip,
            user_agent: self.user_agent,
            request_id: self.request_id,
        };
        Ok(Activity {
            id: u64::try_from(self.id).map_err(|_| corrupt("id"))?,
            new_ip: self.new_ip,
            request,
        })
    }
}

/// The columns of a remembered revoked token, in the order [`RawRevoked`] reads them.
pub(super) const REVOKED_COLUMNS: &str =
    "digest, token_id, session_id, tenant, revoked_at, reason, leak_url, leak_source";

/// A remembered revoked token's columns as both drivers read them.
pub(super) struct RawRevoked {
    pub(super) digest: Vec<u8>,
    pub(super) token_id: i64,
    pub(super) session_id: Option<String>,
    pub(super) tenant: String,
    pub(super) revoked_at: i64,
    pub(super) reason: String,
    pub(super) leak_url: Option<String>,
    pub(super) leak_source: Option<String>,
}

impl RawRevoked {
    /// The row, checked.
    pub(super) fn parse(self) -> Result<super::activity::RevokedToken, StoreError> {
        use crate::store::RevocationReason;
        use crate::store::columns;
        Ok(super::activity::RevokedToken {
            digest: columns::digest_of(self.digest)?,
            token_id: columns::token_id(self.token_id)?,
            session_id: self.session_id,
            tenant: self.tenant,
            revoked_at: columns::from_millis(self.revoked_at)?,
            reason: RevocationReason::from_name(&self.reason)
                .ok_or_else(|| StoreError::unavailable("corrupt revoked token row: reason"))?,
            leak_url: self.leak_url,
            leak_source: self.leak_source,
        })
    }
}

/// The SQL of a summary ([`SummaryQuery`]), shared by both drivers.
pub(super) struct SummarySql {
    /// `start, outcome, count` by bucket and outcome; parameters [`range`](Self::range).
    pub(super) counts: String,
    /// `token_id, count`, the busiest first; parameters [`range`](Self::range).
    pub(super) busiest: String,
    /// `at, client_ip` of the newest `ok` row; parameters [`latest`](Self::latest).
    pub(super) last_use: String,
    /// Tenant, since, until (Unix ms), and the token if any.
    pub(super) range: Vec<Param>,
    /// Tenant, and the token if any.
    pub(super) latest: Vec<Param>,
}

impl SummarySql {
    /// The statements on `table`; `placeholder(n)` spells the n-th parameter.
    pub(super) fn new(
        table: &str,
        tenant: &str,
        query: &SummaryQuery,
        placeholder: impl Fn(usize) -> String,
    ) -> Self {
        let bucket = query.bucket.millis();
        let mut range = vec![
            Param::Text(tenant.to_owned()),
            Param::Int(crate::clock::to_millis(query.since)),
            Param::Int(crate::clock::to_millis(query.until)),
        ];
        let mut latest = vec![Param::Text(tenant.to_owned())];
        let (mut in_range, mut in_latest) = (
            format!(
                "tenant = {} AND at >= {} AND at < {}",
                placeholder(1),
                placeholder(2),
                placeholder(3)
            ),
            format!("tenant = {}", placeholder(1)),
        );
        if let Some(id) = query.token_id {
            range.push(Param::Int(count_param(id.get())));
            latest.push(Param::Int(count_param(id.get())));
            in_range.push_str(&format!(" AND token_id = {}", placeholder(4)));
            in_latest.push_str(&format!(" AND token_id = {}", placeholder(2)));
        }
        Self {
            counts: format!(
                "SELECT (at / {bucket}) * {bucket} AS start, outcome, COUNT(*) FROM {table} \
                 WHERE {in_range} GROUP BY start, outcome"
            ),
            busiest: format!(
                "SELECT token_id, COUNT(*) AS n FROM {table} WHERE {in_range} \
                 GROUP BY token_id ORDER BY n DESC, token_id LIMIT {BUSIEST}"
            ),
            last_use: format!(
                "SELECT at, client_ip FROM {table} WHERE {in_latest} AND outcome = 'ok' \
                 ORDER BY id DESC LIMIT 1"
            ),
            range,
            latest,
        }
    }
}

fn corrupt_summary(what: &str) -> StoreError {
    StoreError::unavailable(format!("corrupt activity summary: {what}"))
}

/// The counts in the reference order (bucket, then outcome name by bytes): a
/// database's collation may order names otherwise.
pub(super) fn ordered(mut counts: Vec<BucketCount>) -> Vec<BucketCount> {
    counts.sort_by(|a, b| (a.start, a.outcome.as_str()).cmp(&(b.start, b.outcome.as_str())));
    counts
}

/// A counts row of [`SummarySql::counts`].
pub(super) fn bucket_count(
    start: i64,
    outcome: &str,
    count: i64,
) -> Result<BucketCount, StoreError> {
    Ok(BucketCount {
        start: crate::store::columns::from_millis(start)?,
        outcome: outcome.parse().map_err(|_| corrupt_summary("outcome"))?,
        count: u64::try_from(count).map_err(|_| corrupt_summary("count"))?,
    })
}

/// A row of [`SummarySql::busiest`].
pub(super) fn busy(token_id: i64, count: i64) -> Result<(TokenId, u64), StoreError> {
    Ok((
        crate::store::columns::token_id(token_id)?,
        u64::try_from(count).map_err(|_| corrupt_summary("count"))?,
    ))
}

/// The row of [`SummarySql::last_use`].
pub(super) fn last_use(at: i64, client_ip: Option<String>) -> Result<LastUse, StoreError> {
    Ok(LastUse {
        at: crate::store::columns::from_millis(at)?,
        client_ip: client_ip
            .map(|ip| {
                ip.parse::<IpAddr>()
                    .map_err(|_| corrupt_summary("client_ip"))
            })
            .transpose()?,
    })
}
